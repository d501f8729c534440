package web

import (
	"net/http"
	"strconv"

	"github.com/nettportal/nettportal"
)

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request, _ nettportal.User) error {
	users, err := s.Accounts.Users(r.Context())
	return answerList(w, "users", users, err)
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request, _ nettportal.User) error {
	toks, err := s.Accounts.Tokens(r.Context())
	return answerList(w, "tokens", toks, err)
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request, actor nettportal.User) error {
	var in struct {
		Name     string `json:"name"`
		Password string `json:"password"`
		Role     string `json:"role"`
	}
	role, err := decodeWithRole(r, &in, &in.Role)
	if err != nil {
		return err
	}
	u, err := s.Accounts.CreateUser(r.Context(), in.Name, in.Password, role)
	if err != nil {
		return err
	}
	s.Log.Info().Str("actor", actor.Actor()).Str("user", u.Name).Str("role", string(u.Role)).Msg("user created")
	writeJSON(w, http.StatusCreated, u)
	return nil
}

func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request, actor nettportal.User) error {
	name := r.PathValue("name")
	if !actor.Token && (name == actor.Name || name == strconv.FormatInt(actor.ID, 10)) {
		return httpError(http.StatusConflict, "you cannot delete yourself")
	}
	if err := s.Accounts.DeleteUser(r.Context(), name); err != nil {
		return err
	}
	s.Log.Info().Str("actor", actor.Actor()).Str("user", name).Msg("user deleted")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request, actor nettportal.User) error {
	var in struct {
		Name string `json:"name"`
		Role string `json:"role"`
	}
	role, err := decodeWithRole(r, &in, &in.Role)
	if err != nil {
		return err
	}
	secret, err := s.Accounts.CreateToken(r.Context(), in.Name, role)
	if err != nil {
		return err
	}
	s.Log.Info().Str("actor", actor.Actor()).Str("token", in.Name).Str("role", string(role)).Msg("token created")
	writeJSON(w, http.StatusCreated, map[string]string{"name": in.Name, "role": string(role), "token": secret})
	return nil
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request, actor nettportal.User) error {
	name := r.PathValue("name")
	if err := s.Accounts.RevokeToken(r.Context(), name); err != nil {
		return err
	}
	s.Log.Info().Str("actor", actor.Actor()).Str("token", name).Msg("token revoked")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// decodeWithRole reads the body of a new user or token into in, as
// decodeJSON does, and parses the role it names (*role, a field of in).
func decodeWithRole(r *http.Request, in any, role *string) (nettportal.Role, error) {
	if err := decodeJSON(r, in); err != nil {
		return "", err
	}
	return nettportal.ParseRole(*role)
}
