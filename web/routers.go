package web

import (
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/nettportal/nettportal"
)

// routerJSON never carries the RADIUS secret or the API password, only
// whether they are set.
type routerJSON struct {
	ID             int64  `json:"id"`
	Name           string `json:"name"`
	IP             string `json:"ip"`
	CoAPort        int    `json:"coa_port"`
	APIAddr        string `json:"api_addr"`
	APIUser        string `json:"api_user"`
	APITLS         bool   `json:"api_tls"`
	APITLSPinned   string `json:"api_tls_fingerprint,omitempty"`
	APITLSInsecure bool   `json:"api_tls_insecure"`
	// APITLSWarning is for the routers page: the API password is exposed.
	APITLSWarning  string `json:"api_tls_warning,omitempty"`
	Description    string `json:"description"`
	InterimSeconds int64  `json:"interim_seconds"`
	SecretSet      bool   `json:"secret_set"`
	APIPasswordSet bool   `json:"api_password_set"`
	// ClockSkewSeconds is the router's last Event-Timestamp minus receive
	// time (positive: ahead), ClockSkewed the packets whose timestamp was
	// not believed; both absent until the listener has seen the router.
	ClockSkewSeconds *float64 `json:"clock_skew_seconds,omitempty"`
	ClockSkewed      uint64   `json:"clock_skewed_packets,omitempty"`
	nettportal.RouterState
}

func toRouterJSON(rt nettportal.Router, st nettportal.RouterState) routerJSON {
	return routerJSON{ID: rt.ID, Name: rt.Name, IP: addrString(rt.IP), CoAPort: rt.CoAPort, APIAddr: rt.APIAddr,
		APIUser: rt.APIUser, APITLS: rt.APITLS, Description: rt.Description,
		InterimSeconds: int64(rt.InterimInterval / time.Second), SecretSet: rt.Secret != "",
		APIPasswordSet: rt.APIPassword != "", RouterState: st,
		APITLSPinned: rt.APITLSFingerprint, APITLSInsecure: rt.APITLSInsecure, APITLSWarning: apiTLSWarning(rt)}
}

func apiTLSWarning(rt nettportal.Router) string {
	if rt.APITLS && rt.APITLSInsecure && rt.APITLSFingerprint == "" && rt.APITLSCAFile == "" {
		return "API TLS certificate is not verified (--api-tls-insecure): pin it with `nettportal router trust`"
	}
	return ""
}

func (s *Server) listRouters(w http.ResponseWriter, r *http.Request, _ nettportal.User) error {
	routers, err := s.Routers.Routers(r.Context())
	if err != nil {
		return err
	}
	states, err := s.Routers.RouterStates(r.Context())
	if err != nil {
		return err
	}
	skipped, err := s.Routers.SkippedNAS(r.Context())
	if err != nil {
		return err
	}
	clocks := map[int64]nettportal.RouterClock{}
	if s.Clocks != nil {
		for _, c := range s.Clocks() {
			clocks[c.RouterID] = c
		}
	}
	out := make([]routerJSON, len(routers))
	for i, rt := range routers {
		out[i] = toRouterJSON(rt, states[rt.ID])
		if c, ok := clocks[rt.ID]; ok {
			off := c.Offset.Seconds()
			out[i].ClockSkewSeconds, out[i].ClockSkewed = &off, c.Skewed
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"routers": out, "skipped": nonNil(skipped)})
	return nil
}

// routerInput is a router as admins send it. On update an empty secret or
// API password keeps the stored one (the API never shows them).
type routerInput struct {
	Name           string  `json:"name"`
	IP             string  `json:"ip"`
	Secret         string  `json:"secret"`
	CoAPort        int     `json:"coa_port"`
	APIAddr        string  `json:"api_addr"`
	APIUser        string  `json:"api_user"`
	APIPassword    *string `json:"api_password"`
	APITLS         bool    `json:"api_tls"`
	Description    string  `json:"description"`
	InterimSeconds int     `json:"interim_seconds"`
}

func (in routerInput) apply(rt *nettportal.Router) error {
	ip, err := netip.ParseAddr(strings.TrimSpace(in.IP))
	if err != nil {
		return fmt.Errorf("ip %q is not an IP address: %w", in.IP, nettportal.ErrInvalid)
	}
	if in.InterimSeconds < 0 {
		return fmt.Errorf("interim_seconds %d is negative: %w", in.InterimSeconds, nettportal.ErrInvalid)
	}
	rt.Name, rt.IP, rt.CoAPort, rt.APIAddr, rt.APIUser, rt.APITLS, rt.Description =
		in.Name, ip, in.CoAPort, in.APIAddr, in.APIUser, in.APITLS, in.Description
	rt.InterimInterval = time.Duration(in.InterimSeconds) * time.Second
	if in.Secret != "" {
		rt.Secret = in.Secret
	}
	if in.APIPassword != nil {
		rt.APIPassword = *in.APIPassword
	}
	return nil
}

func (s *Server) createRouter(w http.ResponseWriter, r *http.Request, u nettportal.User) error {
	var in routerInput
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	var rt nettportal.Router
	if err := in.apply(&rt); err != nil {
		return err
	}
	if err := s.Routers.CreateRouter(r.Context(), &rt); err != nil {
		return err
	}
	s.Log.Info().Str("actor", u.Actor()).Str("router", rt.Name).Msg("router created")
	writeJSON(w, http.StatusCreated, toRouterJSON(rt, nettportal.RouterState{RouterID: rt.ID}))
	return nil
}

func (s *Server) updateRouter(w http.ResponseWriter, r *http.Request, u nettportal.User) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	var in routerInput
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	rt, err := s.Routers.Router(r.Context(), strconv.FormatInt(id, 10))
	if err != nil {
		return err
	}
	if err := in.apply(&rt); err != nil {
		return err
	}
	if err := s.Routers.UpdateRouter(r.Context(), &rt); err != nil {
		return err
	}
	s.Log.Info().Str("actor", u.Actor()).Str("router", rt.Name).Msg("router updated")
	states, err := s.Routers.RouterStates(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toRouterJSON(rt, states[rt.ID]))
	return nil
}

func (s *Server) deleteRouter(w http.ResponseWriter, r *http.Request, u nettportal.User) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	if err := s.Routers.DeleteRouter(r.Context(), strconv.FormatInt(id, 10)); err != nil {
		return err
	}
	s.Log.Info().Str("actor", u.Actor()).Int64("router_id", id).Msg("router deleted")
	w.WriteHeader(http.StatusNoContent)
	return nil
}
