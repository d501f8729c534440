package web

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
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

// csvCell keeps a cell from being run as a formula by a spreadsheet: user
// names come from routers and customers from billing, not from us. A
// spreadsheet splitting at the other locale's separator (';' or ',') sees
// a new cell after each one inside a field, quotes or not, so a formula
// start after either separator is neutralised with a ' too.
func csvCell(v string) string {
	if _, err := strconv.ParseFloat(v, 64); err == nil {
		return v // a plain number, such as -1, is no formula
	}
	var b strings.Builder
	cellStart := true
	for i := 0; i < len(v); i++ {
		c := v[i]
		if cellStart && strings.IndexByte("=+-@\t\r", c) >= 0 {
			b.WriteByte('\'')
		}
		b.WriteByte(c)
		cellStart = c == ',' || c == ';'
	}
	return b.String()
}

// csvWriter writes every CSV the server sends. encoding/csv quotes only
// around commas, but Excel in semicolon locales (Norway among them) splits
// at ';': "x;=1+2" unquoted becomes a second cell holding a formula. So
// every field with ',' ';' '"' or a line break is quoted, and every field
// is neutralised by csvCell.
type csvWriter struct {
	w   *bufio.Writer
	err error // the first failed flush
}

func newCSVWriter(w io.Writer) *csvWriter { return &csvWriter{w: bufio.NewWriter(w)} }

// Write writes one record; errors are kept for Flush.
func (c *csvWriter) Write(fields []string) error {
	for i, f := range fields {
		if i > 0 {
			c.w.WriteByte(',') //nolint:errcheck // bufio keeps the error for Flush
		}
		f = csvCell(f)
		if strings.ContainsAny(f, ",;\"\r\n") {
			f = `"` + strings.ReplaceAll(f, `"`, `""`) + `"`
		}
		c.w.WriteString(f) //nolint:errcheck // bufio keeps the error for Flush
	}
	_, err := c.w.WriteString("\n")
	return err
}

// Flush sends what is buffered; a failure means the client went away, and
// Error says so.
func (c *csvWriter) Flush() {
	if err := c.w.Flush(); err != nil && c.err == nil {
		c.err = err
	}
}

// Error is the first write or flush failure, nil while the client reads.
func (c *csvWriter) Error() error { return c.err }

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
	if err != nil {
		return err
	}
	if results == nil {
		results = []nettportal.ControlResult{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"results": results})
	return nil
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
	if skipped == nil {
		skipped = []nettportal.SkippedNAS{}
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
	writeJSON(w, http.StatusOK, map[string]any{"routers": out, "skipped": skipped})
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
	if list == nil {
		list = []nettportal.Customer{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"total": total, "customers": list})
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

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request, _ nettportal.User) error {
	users, err := s.Accounts.Users(r.Context())
	if err != nil {
		return err
	}
	if users == nil {
		users = []nettportal.User{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": users})
	return nil
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request, actor nettportal.User) error {
	var in struct {
		Name     string `json:"name"`
		Password string `json:"password"`
		Role     string `json:"role"`
	}
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	role, err := nettportal.ParseRole(in.Role)
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

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request, _ nettportal.User) error {
	toks, err := s.Accounts.Tokens(r.Context())
	if err != nil {
		return err
	}
	if toks == nil {
		toks = []nettportal.Token{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": toks})
	return nil
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request, actor nettportal.User) error {
	var in struct {
		Name string `json:"name"`
		Role string `json:"role"`
	}
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	role, err := nettportal.ParseRole(in.Role)
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
