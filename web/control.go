package web

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nettportal/nettportal"
)

// needControl refuses disconnects and CoA on a server built without them.
func (s *Server) needControl() error {
	if s.Control == nil {
		return httpError(http.StatusServiceUnavailable, "control not configured")
	}
	return nil
}

func (s *Server) disconnect(w http.ResponseWriter, r *http.Request, u nettportal.User) error {
	if err := s.needControl(); err != nil {
		return err
	}
	id, err := pathID(r)
	if err != nil {
		return err
	}
	res, err := s.Control.Disconnect(r.Context(), u.Actor(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

func (s *Server) disconnectMany(w http.ResponseWriter, r *http.Request, u nettportal.User) error {
	if err := s.needControl(); err != nil {
		return err
	}
	var req struct {
		Router string  `json:"router"`
		Q      string  `json:"q"`
		IDs    []int64 `json:"ids"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if req.Router == "" && strings.TrimSpace(req.Q) == "" && len(req.IDs) == 0 {
		return httpError(http.StatusBadRequest, "give router, q or ids: refusing to disconnect every session")
	}
	f := nettportal.SessionFilter{Router: req.Router, Query: req.Q, IDs: req.IDs}
	results, err := s.Control.DisconnectMany(r.Context(), u.Actor(), f)
	return answerList(w, "results", results, err)
}

// validRateLimit checks a MikroTik rate limit: "rx[/tx] [burst-rx[/tx]
// [threshold-rx[/tx] [burst-time-rx[/tx] [priority [min-rx[/tx]]]]]]",
// rates as numbers with an optional k, M or G.
func validRateLimit(v string) error {
	parts := strings.Fields(v)
	if len(parts) == 0 || len(parts) > 6 {
		return fmt.Errorf("rate_limit %q: want rx/tx like \"10M/20M\", optionally followed by burst rates, thresholds, burst times, priority and minimum rates: %w", v, nettportal.ErrInvalid)
	}
	rate := func(s string, suffix bool) bool {
		if suffix && s != "" && strings.ContainsRune("kKmMgG", rune(s[len(s)-1])) {
			s = s[:len(s)-1]
		}
		_, err := strconv.ParseUint(s, 10, 64)
		return err == nil
	}
	pair := func(s string, suffix bool) bool {
		a, b, two := strings.Cut(s, "/")
		return rate(a, suffix) && (!two || rate(b, suffix))
	}
	for i, p := range parts {
		ok := false
		switch i {
		case 3: // burst time, seconds
			ok = pair(p, false)
		case 4: // priority
			n, err := strconv.Atoi(p)
			ok = err == nil && n >= 1 && n <= 8
		default:
			ok = pair(p, true)
		}
		if !ok {
			return fmt.Errorf("rate_limit %q: part %d (%q) is not valid; want e.g. \"10M/20M\" or \"10M/20M 20M/40M 8M/16M 10/10 8\": %w", v, i+1, p, nettportal.ErrInvalid)
		}
	}
	return nil
}

func (s *Server) changeRate(w http.ResponseWriter, r *http.Request, u nettportal.User) error {
	if err := s.needControl(); err != nil {
		return err
	}
	id, err := pathID(r)
	if err != nil {
		return err
	}
	var req struct {
		RateLimit string `json:"rate_limit"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if err := validRateLimit(req.RateLimit); err != nil {
		return err
	}
	res, err := s.Control.ChangeRateLimit(r.Context(), u.Actor(), id, req.RateLimit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

type auditJSON struct {
	ID         int64     `json:"id"`
	At         time.Time `json:"at"`
	Actor      string    `json:"actor"`
	Action     string    `json:"action"`
	SessionID  int64     `json:"session_id"`
	Username   string    `json:"username"`
	RouterID   int64     `json:"router_id"`
	Router     string    `json:"router"`
	Method     string    `json:"method"`
	Result     string    `json:"result"`
	OK         bool      `json:"ok"`
	Detail     string    `json:"detail"`
	ErrorCause uint32    `json:"error_cause,omitempty"`
	RateLimit  string    `json:"rate_limit,omitempty"`
}

func (s *Server) listAudit(w http.ResponseWriter, r *http.Request, _ nettportal.User) error {
	if s.Audit == nil {
		return httpError(http.StatusServiceUnavailable, "audit not configured")
	}
	limit, err := intParam(r.URL.Query(), "limit")
	if err != nil {
		return err
	}
	offset, err := intParam(r.URL.Query(), "offset")
	if err != nil {
		return err
	}
	if limit == 0 {
		limit = 100
	}
	if limit > 1000 {
		return httpError(http.StatusBadRequest, "limit must be at most 1000")
	}
	entries, err := s.Audit.Audit(r.Context(), limit, offset)
	if err != nil {
		return err
	}
	out := make([]auditJSON, len(entries))
	for i, e := range entries {
		out[i] = auditJSON(e)
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": out})
	return nil
}
