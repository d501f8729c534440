package web

import (
	"net/http"

	"github.com/nettportal/nettportal"
)

func (s *Server) listCustomers(w http.ResponseWriter, r *http.Request, _ nettportal.User) error {
	q := r.URL.Query()
	limit, err := intParam(q, "limit")
	if err != nil {
		return err
	}
	offset, err := intParam(q, "offset")
	if err != nil {
		return err
	}
	list, total, err := s.Customers.Customers(r.Context(), q.Get("q"), limit, offset)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"total": total, "customers": nonNil(list)})
	return nil
}

type customerInput struct {
	Name     string `json:"name"`
	Username string `json:"username"`
	Profile  string `json:"profile"`
	Phone    string `json:"phone"`
	Address  string `json:"address"`
}

// saveCustomer creates a customer or, when the username is linked
// already, updates that one: 201 or 200.
func (s *Server) saveCustomer(w http.ResponseWriter, r *http.Request, _ nettportal.User) error {
	var in customerInput
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	c := nettportal.Customer(nettportal.Customer{Name: in.Name, Username: in.Username, Profile: in.Profile, Phone: in.Phone, Address: in.Address})
	created, err := s.Customers.SaveCustomer(r.Context(), &c)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, c)
	return nil
}

func (s *Server) updateCustomer(w http.ResponseWriter, r *http.Request, _ nettportal.User) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	var in customerInput
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	c := nettportal.Customer{ID: id, Name: in.Name, Username: in.Username, Profile: in.Profile, Phone: in.Phone, Address: in.Address}
	if err := s.Customers.UpdateCustomer(r.Context(), &c); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

func (s *Server) deleteCustomer(w http.ResponseWriter, r *http.Request, _ nettportal.User) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	if err := s.Customers.DeleteCustomer(r.Context(), id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) importCustomers(w http.ResponseWriter, r *http.Request, u nettportal.User) error {
	res, err := s.Customers.ImportCustomersCSV(r.Context(), r.Body)
	if err != nil {
		return err
	}
	s.Log.Info().Str("actor", u.Actor()).Int("created", res.Created).Int("updated", res.Updated).
		Int("errors", len(res.Errors)).Msg("customers imported")
	writeJSON(w, http.StatusOK, res)
	return nil
}
