package web

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"time"

	"github.com/nettportal/nettportal"
)

// sessionJSON is a session as the API, the CSV export and the WebSocket
// show it (the DESIGN.md contract, plus router_id).
type sessionJSON struct {
	ID            int64     `json:"id"`
	AcctSessionID string    `json:"acct_session_id"`
	Username      string    `json:"username"`
	Customer      string    `json:"customer"`
	Router        string    `json:"router"`
	RouterID      int64     `json:"router_id"`
	IP            string    `json:"ip"`
	MAC           string    `json:"mac"`
	Profile       string    `json:"profile"`
	StartedAt     time.Time `json:"started_at"`
	UptimeSeconds int64     `json:"uptime_seconds"`
	InputOctets   int64     `json:"input_octets"`
	OutputOctets  int64     `json:"output_octets"`
	InputBps      int64     `json:"input_bps"`
	OutputBps     int64     `json:"output_bps"`
}

type statsJSON struct {
	Sessions     int64 `json:"sessions"`
	InputOctets  int64 `json:"input_octets"`
	OutputOctets int64 `json:"output_octets"`
	InputBps     int64 `json:"input_bps"`
	OutputBps    int64 `json:"output_bps"`
}

type pageJSON struct {
	Total    int64         `json:"total"`
	Sessions []sessionJSON `json:"sessions"`
	Stats    statsJSON     `json:"stats"`
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func toSessionJSON(s nettportal.Session, now time.Time) sessionJSON {
	end := now
	if s.StoppedAt != nil {
		end = *s.StoppedAt
	}
	uptime := int64(0)
	if !s.StartedAt.IsZero() && end.After(s.StartedAt) {
		uptime = int64(end.Sub(s.StartedAt) / time.Second)
	}
	return sessionJSON{ID: s.ID, AcctSessionID: s.AcctSessionID, Username: s.Username, Customer: s.Customer,
		Router: s.Router, RouterID: s.RouterID, IP: addrString(s.IP), MAC: s.MAC, Profile: s.Profile,
		StartedAt: s.StartedAt, UptimeSeconds: uptime, InputOctets: s.InputOctets, OutputOctets: s.OutputOctets,
		InputBps: s.InputBps, OutputBps: s.OutputBps}
}

func toPageJSON(p nettportal.SessionPage, now time.Time) pageJSON {
	out := pageJSON{Total: p.Total, Sessions: make([]sessionJSON, len(p.Sessions)), Stats: statsJSON(p.Stats)}
	for i, s := range p.Sessions {
		out.Sessions[i] = toSessionJSON(s, now)
	}
	return out
}

func intParam(q url.Values, name string) (int, error) {
	v := q.Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%s %q is not a number: %w", name, v, nettportal.ErrInvalid)
	}
	if n < 0 {
		return 0, fmt.Errorf("%s %d is negative: %w", name, n, nettportal.ErrInvalid)
	}
	return n, nil
}

// sessionFilter reads the live view's query parameters.
func sessionFilter(q url.Values) (nettportal.SessionFilter, error) {
	f := nettportal.SessionFilter{Router: q.Get("router"), Query: q.Get("q"), Sort: q.Get("sort"), Order: q.Get("order")}
	var err error
	if f.Limit, err = intParam(q, "limit"); err != nil {
		return f, err
	}
	if f.Offset, err = intParam(q, "offset"); err != nil {
		return f, err
	}
	switch q.Get("closed") {
	case "", "0", "false":
	case "1", "true":
		f.Closed = true
	default:
		return f, fmt.Errorf("closed %q is not true or false: %w", q.Get("closed"), nettportal.ErrInvalid)
	}
	if f.From, err = timeParam(q, "from"); err != nil {
		return f, err
	}
	if f.To, err = timeParam(q, "to"); err != nil {
		return f, err
	}
	return f, nil
}

// timeParam reads a time as RFC 3339 or a date (2006-01-02, midnight UTC).
func timeParam(q url.Values, name string) (time.Time, error) {
	v := q.Get(name)
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%s %q is not a date (2006-01-02) or an RFC 3339 time: %w", name, v, nettportal.ErrInvalid)
}

// sessionExporter streams every session a filter selects, page by page,
// without OFFSET; the store has it.
type sessionExporter interface {
	ExportSessions(ctx context.Context, f nettportal.SessionFilter, fn func([]nettportal.Session) error) error
}

func (s *Server) listSessions(w http.ResponseWriter, r *http.Request, _ nettportal.User) error {
	f, err := sessionFilter(r.URL.Query())
	if err != nil {
		return err
	}
	page, err := s.Sessions.Sessions(r.Context(), f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toPageJSON(page, time.Now()))
	return nil
}

// exportSessions writes the view as CSV: every matching session when no
// limit is given, streamed in id order as the store reads it (the view's
// sort does not apply: a spreadsheet sorts), else one page of the view.
func (s *Server) exportSessions(w http.ResponseWriter, r *http.Request, _ nettportal.User) error {
	f, err := sessionFilter(r.URL.Query())
	if err != nil {
		return err
	}
	now := time.Now()
	cw := newCSVWriter(w)
	wrote := false
	write := func(sessions []nettportal.Session) error {
		if !wrote {
			w.Header().Set("Content-Type", "text/csv; charset=utf-8")
			w.Header().Set("Content-Disposition", `attachment; filename="sessions-`+now.UTC().Format("20060102-150405")+`.csv"`)
			cw.Write([]string{"id", "acct_session_id", "username", "customer", "router", "ip", "mac", "profile", //nolint:errcheck // checked by Flush
				"started_at", "uptime_seconds", "input_octets", "output_octets", "input_bps", "output_bps"})
			wrote = true
		}
		for _, ss := range sessions {
			j := toSessionJSON(ss, now)
			// The writer quotes and neutralises every cell (csvCell).
			cw.Write([]string{strconv.FormatInt(j.ID, 10), j.AcctSessionID, j.Username, j.Customer, //nolint:errcheck // checked by Flush
				j.Router, j.IP, j.MAC, j.Profile, j.StartedAt.UTC().Format(time.RFC3339),
				strconv.FormatInt(j.UptimeSeconds, 10), strconv.FormatInt(j.InputOctets, 10), strconv.FormatInt(j.OutputOctets, 10),
				strconv.FormatInt(j.InputBps, 10), strconv.FormatInt(j.OutputBps, 10)})
		}
		// Each page goes out now: the export never holds more than a page.
		cw.Flush()
		return cw.Error()
	}
	exp, streams := s.Sessions.(sessionExporter)
	if f.Limit == 0 && streams {
		err = exp.ExportSessions(r.Context(), f, write)
	} else {
		var page nettportal.SessionPage
		if page, err = s.Sessions.Sessions(r.Context(), f); err == nil {
			err = write(page.Sessions)
		}
	}
	switch {
	case err != nil && !wrote:
		return err
	case err != nil:
		// Mid-stream the status is sent: end the body short, so the client
		// sees a broken download rather than a complete-looking file.
		s.Log.Warn().Err(err).Msg("session export ended early")
		panic(http.ErrAbortHandler)
	case !wrote:
		write(nil) //nolint:errcheck // a header-only file; the client left if this fails
	}
	return nil
}

func pathID(r *http.Request) (int64, error) {
	v := r.PathValue("id")
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("id %q is not a positive number: %w", v, nettportal.ErrInvalid)
	}
	return id, nil
}

type sessionDetailJSON struct {
	sessionJSON
	UniqueID       string                    `json:"acct_unique_id"`
	NASIP          string                    `json:"nas_ip"`
	Service        string                    `json:"service"`
	Interface      string                    `json:"interface"`
	UpdatedAt      time.Time                 `json:"updated_at"`
	StoppedAt      *time.Time                `json:"stopped_at"`
	Open           bool                      `json:"open"`
	SessionTime    int64                     `json:"session_time"`
	TerminateCause string                    `json:"terminate_cause"`
	ClosedBy       string                    `json:"closed_by"`
	HasStart       bool                      `json:"has_start"`
	InterimSeconds int64                     `json:"interim_seconds"`
	Attributes     nettportal.RadacctColumns `json:"attributes"`
}

func (s *Server) getSession(w http.ResponseWriter, r *http.Request, _ nettportal.User) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	ss, err := s.Sessions.Session(r.Context(), id)
	if err != nil {
		return err
	}
	attrs, err := s.Sessions.SessionAttributes(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, sessionDetailJSON{sessionJSON: toSessionJSON(ss, time.Now()), UniqueID: ss.UniqueID,
		NASIP: addrString(ss.NASIP), Service: ss.Service, Interface: ss.Interface, UpdatedAt: ss.UpdatedAt,
		StoppedAt: ss.StoppedAt, Open: ss.Open(), SessionTime: ss.SessionTime, TerminateCause: ss.TerminateCause,
		ClosedBy: ss.ClosedBy, HasStart: ss.HasStart, InterimSeconds: ss.InterimSeconds, Attributes: attrs})
	return nil
}

func (s *Server) getSamples(w http.ResponseWriter, r *http.Request, _ nettportal.User) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	pts, err := s.Sessions.SessionSamples(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, pts)
	return nil
}
