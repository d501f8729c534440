package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/store"
	"github.com/nettportal/nettportal/store/storetest"
	"github.com/nettportal/nettportal/web"
)

// fakeControl stands in for the CoA controller (a separate package with
// its own tests); it records who asked for what.
type fakeControl struct {
	mu    sync.Mutex
	calls []string
}

func (f *fakeControl) Disconnect(_ context.Context, actor string, id int64) (nettportal.ControlResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("disconnect %s %d", actor, id))
	return nettportal.ControlResult{SessionID: id, OK: true, Method: "radius", Result: "ack", Detail: "Disconnect-ACK"}, nil
}

func (f *fakeControl) DisconnectMany(_ context.Context, actor string, flt nettportal.SessionFilter) ([]nettportal.ControlResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("many %s %s", actor, flt.Router))
	return []nettportal.ControlResult{{SessionID: 1, OK: true, Method: "radius", Result: "ack"}}, nil
}

func (f *fakeControl) ChangeRateLimit(_ context.Context, actor string, id int64, rate string) (nettportal.ControlResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("coa %s %d %s", actor, id, rate))
	return nettportal.ControlResult{SessionID: id, OK: true, Method: "radius", Result: "ack"}, nil
}

type env struct {
	db      *store.DB
	srv     *web.Server
	ts      *httptest.Server
	router  *nettportal.Router
	control *fakeControl
}

func newEnv(t *testing.T, tune func(*web.Server)) *env {
	t.Helper()
	db := storetest.MustOpenDB(t)
	e := &env{db: db, control: &fakeControl{}}
	e.srv = &web.Server{Sessions: db, Routers: db, Accounts: db, Customers: db, Changes: db, Audit: db,
		Control: e.control, Log: zerolog.Nop()}
	if tune != nil {
		tune(e.srv)
	}
	e.ts = httptest.NewServer(e.srv.Handler())
	t.Cleanup(e.ts.Close)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.srv.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	e.router = &nettportal.Router{Name: "core-1", IP: netip.MustParseAddr("127.0.0.11"), Secret: "TopSecret!"}
	if err := db.CreateRouter(ctx, e.router); err != nil {
		t.Fatal(err)
	}
	for _, u := range []struct{ name, role string }{{"vic", "viewer"}, {"olga", "operator"}, {"ada", "admin"}} {
		if _, err := db.CreateUser(ctx, u.name, "password-"+u.name, nettportal.Role(u.role)); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// startRecords returns Start records for n sessions of users named prefix0..
func startRecords(r *nettportal.Router, prefix string, n int) []nettportal.AccountingRecord {
	out := make([]nettportal.AccountingRecord, n)
	now := time.Now()
	for i := range out {
		user, sid := fmt.Sprintf("%s%04d", prefix, i), fmt.Sprintf("%08x", 0x82000000+i)
		out[i] = nettportal.AccountingRecord{Status: nettportal.StatusStart, RouterID: r.ID, EventTime: now,
			UniqueID: nettportal.AcctUniqueID(user, sid, r.IP.String(), r.Name, "", ""), SessionID: sid, Username: user,
			NASIP: r.IP, NASIdent: r.Name, CallingStation: "AA:BB:CC:00:00:01",
			FramedIP: netip.AddrFrom4([4]byte{100, 64, byte(i >> 8), byte(i)})}
	}
	return out
}

// client is a browser: a cookie jar and the CSRF token from login.
type client struct {
	t     *testing.T
	base  string
	http  *http.Client
	csrf  string
	token string
}

func (e *env) anon(t *testing.T) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: t, base: e.ts.URL, http: &http.Client{Jar: jar}}
}

func (e *env) login(t *testing.T, name string) *client {
	t.Helper()
	c := e.anon(t)
	status, body := c.do("POST", "/api/login", map[string]string{"username": name, "password": "password-" + name})
	if status != 200 {
		t.Fatalf("login %s: %d %s", name, status, body)
	}
	var m map[string]string
	json.Unmarshal(body, &m)
	c.csrf = m["csrf_token"]
	if c.csrf == "" || m["role"] == "" || m["user"] != name {
		t.Fatalf("login answer %s", body)
	}
	return c
}

// do sends a request; body may be nil, a string (sent raw) or a value
// (sent as JSON). The CSRF token goes along when the client has one.
func (c *client) do(method, path string, body any) (int, []byte) {
	c.t.Helper()
	return c.doHeaders(method, path, body, nil)
}

func (c *client) doHeaders(method, path string, body any, hdr map[string]string) (int, []byte) {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.csrf != "" {
		req.Header.Set("X-CSRF-Token", c.csrf)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func errorOf(body []byte) string {
	var e struct{ Error string }
	json.Unmarshal(body, &e)
	return e.Error
}

func TestAPIAuthRolesAndCSRF(t *testing.T) {
	e := newEnv(t, nil)
	if err := e.db.ApplyAccounting(context.Background(), startRecords(e.router, "user", 3)); err != nil {
		t.Fatal(err)
	}
	anon := e.anon(t)
	if s, b := anon.do("GET", "/api/sessions", nil); s != 401 || errorOf(b) == "" {
		t.Errorf("unauthenticated: %d %s", s, b)
	}
	if s, _ := anon.do("GET", "/ws", nil); s != 401 {
		t.Errorf("unauthenticated websocket: %d", s)
	}
	viewer, op, admin := e.login(t, "vic"), e.login(t, "olga"), e.login(t, "ada")

	if s, b := viewer.do("GET", "/api/sessions", nil); s != 200 || !strings.Contains(string(b), `"username":"user0000"`) {
		t.Errorf("viewer lists sessions: %d %s", s, b)
	}
	if s, b := viewer.do("POST", "/api/sessions/1/disconnect", nil); s != 403 || !strings.Contains(errorOf(b), "operator") {
		t.Errorf("viewer disconnects: %d %s", s, b)
	}
	noCSRF := *op
	noCSRF.csrf = ""
	if s, b := noCSRF.do("POST", "/api/sessions/1/disconnect", nil); s != 403 || !strings.Contains(errorOf(b), "CSRF") {
		t.Errorf("operator without CSRF: %d %s", s, b)
	}
	wrongCSRF := *op
	wrongCSRF.csrf = admin.csrf
	if s, _ := wrongCSRF.do("POST", "/api/sessions/1/disconnect", nil); s != 403 {
		t.Errorf("operator with another login's CSRF token: %d", s)
	}
	s, b := op.do("POST", "/api/sessions/7/disconnect", nil)
	var res map[string]any
	json.Unmarshal(b, &res)
	if s != 200 || res["ok"] != true || res["method"] != "radius" || res["result"] != "ack" || res["detail"] != "Disconnect-ACK" {
		t.Errorf("operator disconnects: %d %s", s, b)
	}
	if s, b := op.do("POST", "/api/sessions/7/coa", map[string]string{"rate_limit": "10M/20M"}); s != 200 {
		t.Errorf("coa: %d %s", s, b)
	}
	for _, bad := range []string{"", "fast", "10M/20X", "10M/20M 1/2/3", "1M/2M 2M/4M 1M/2M 10/10 9"} {
		if s, b := op.do("POST", "/api/sessions/7/coa", map[string]string{"rate_limit": bad}); s != 400 || !strings.Contains(errorOf(b), "rate_limit") {
			t.Errorf("coa %q: %d %s", bad, s, b)
		}
	}
	if s, b := op.do("POST", "/api/disconnect", map[string]any{}); s != 400 || !strings.Contains(errorOf(b), "refusing") {
		t.Errorf("bulk disconnect without a filter: %d %s", s, b)
	}
	if s, b := op.do("POST", "/api/disconnect", map[string]any{"router": "core-1"}); s != 200 || !strings.Contains(string(b), `"results":[`) {
		t.Errorf("bulk disconnect: %d %s", s, b)
	}
	if got := strings.Join(e.control.calls, "; "); got != "disconnect olga 7; coa olga 7 10M/20M; many olga core-1" {
		t.Errorf("control calls: %s", got)
	}
	if s, _ := viewer.do("GET", "/api/audit", nil); s != 403 {
		t.Errorf("viewer reads the audit: %d", s)
	}
	if s, b := op.do("GET", "/api/audit", nil); s != 200 || !strings.Contains(string(b), `"entries":`) {
		t.Errorf("operator reads the audit: %d %s", s, b)
	}
	if s, _ := op.do("POST", "/api/users", map[string]string{"name": "x", "password": "12345678", "role": "viewer"}); s != 403 {
		t.Errorf("operator creates a user: %d", s)
	}

	// Tokens: no ambient credential, so no CSRF token needed.
	s, b = admin.do("POST", "/api/tokens", map[string]string{"name": "script", "role": "operator"})
	var tok map[string]string
	json.Unmarshal(b, &tok)
	if s != 201 || !strings.HasPrefix(tok["token"], "npt_") {
		t.Fatalf("create token: %d %s", s, b)
	}
	script := &client{t: t, base: e.ts.URL, http: http.DefaultClient, token: tok["token"]}
	if s, b := script.do("POST", "/api/sessions/9/disconnect", nil); s != 200 {
		t.Errorf("token disconnects without CSRF: %d %s", s, b)
	}
	if s, _ := script.do("GET", "/api/users", nil); s != 403 {
		t.Errorf("operator token lists users: %d", s)
	}
	if s, _ := admin.do("DELETE", "/api/tokens/script", nil); s != 204 {
		t.Errorf("revoke: %d", s)
	}
	if s, _ := script.do("GET", "/api/sessions", nil); s != 401 {
		t.Errorf("revoked token: %d", s)
	}

	if s, b := op.do("POST", "/api/logout", nil); s != 200 {
		t.Errorf("logout: %d %s", s, b)
	}
	if s, _ := op.do("GET", "/api/me", nil); s != 401 {
		t.Errorf("after logout: %d", s)
	}
	if s, b := viewer.do("GET", "/api/me", nil); s != 200 || !strings.Contains(string(b), `"role":"viewer"`) || !strings.Contains(string(b), viewer.csrf) {
		t.Errorf("me: %d %s", s, b)
	}
}

func TestAPIBadInput(t *testing.T) {
	e := newEnv(t, nil)
	admin := e.login(t, "ada")
	cases := []struct {
		method, path string
		body         any
		status       int
		msg          string
	}{
		{"GET", "/api/sessions?sort=password", nil, 400, "cannot sort by"},
		{"GET", "/api/sessions?order=sideways", nil, 400, "not asc or desc"},
		{"GET", "/api/sessions?limit=abc", nil, 400, `limit "abc" is not a number`},
		{"GET", "/api/sessions?limit=100000", nil, 400, "above 1000"},
		{"GET", "/api/sessions/abc", nil, 400, "not a positive number"},
		{"GET", "/api/sessions/99999", nil, 404, "session 99999"},
		{"POST", "/api/customers", `{"name": "x",`, 400, "bad JSON"},
		{"POST", "/api/customers", `{"name": "x", "usernme": "y"}`, 400, `unknown field "usernme"`},
		{"POST", "/api/customers", `{"name": 5}`, 400, `"name" must be string`},
		{"POST", "/api/customers", ``, 400, "empty"},
		{"POST", "/api/customers", `{"name": "Kari"}`, 400, "username"},
		{"POST", "/api/users", map[string]string{"name": "x", "password": "12345678", "role": "god"}, 400, "admin, operator or viewer"},
		{"POST", "/api/users", map[string]string{"name": "ada", "password": "12345678", "role": "viewer"}, 409, "exists"},
		{"POST", "/api/routers", map[string]any{"name": "r", "ip": "nope", "secret": "s"}, 400, "not an IP"},
		{"POST", "/api/routers", map[string]any{"name": "core-1", "ip": "127.0.0.11", "secret": "s"}, 409, "exists"},
		{"DELETE", "/api/users/ada", nil, 409, "yourself"},
		{"GET", "/api/nothing", nil, 404, "no such API endpoint"},
		{"POST", "/api/login", strings.Repeat("x", 2<<20), 413, "larger than"},
		{"POST", "/api/customers", `{"name":"` + strings.Repeat("x", 2<<20) + `"}`, 413, "larger than"},
	}
	for _, tc := range cases {
		s, b := admin.do(tc.method, tc.path, tc.body)
		if s != tc.status || !strings.Contains(errorOf(b), tc.msg) {
			t.Errorf("%s %s: %d %s; want %d with %q", tc.method, tc.path, s, b, tc.status, tc.msg)
		}
	}
}

func TestLoginRateLimit(t *testing.T) {
	e := newEnv(t, nil)
	c := e.anon(t)
	for i := 0; i < 5; i++ {
		if s, _ := c.do("POST", "/api/login", map[string]string{"username": "olga", "password": "guess"}); s != 401 {
			t.Fatalf("attempt %d: %d", i, s)
		}
	}
	req, _ := http.NewRequest("POST", e.ts.URL+"/api/login", strings.NewReader(`{"username":"olga","password":"password-olga"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("6th login within a minute: %d, Retry-After %q; want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

func TestSessionsAPIAndCSV(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	if err := e.db.ApplyAccounting(ctx, startRecords(e.router, "user", 3)); err != nil {
		t.Fatal(err)
	}
	op := e.login(t, "olga")
	if s, b := op.do("POST", "/api/customers", map[string]string{"name": "=cmd|' /C calc'!A0", "username": "user0001", "profile": "gold"}); s != 201 {
		t.Fatalf("customer: %d %s", s, b)
	}
	s, b := op.do("GET", "/api/sessions?q=user000&sort=username&order=desc&limit=2", nil)
	var page struct {
		Total    int64
		Sessions []map[string]any
		Stats    map[string]any
	}
	if err := json.Unmarshal(b, &page); s != 200 || err != nil {
		t.Fatalf("sessions: %d %s", s, b)
	}
	if page.Total != 3 || len(page.Sessions) != 2 || page.Sessions[0]["username"] != "user0002" || page.Stats["sessions"] != 3.0 {
		t.Errorf("page = %s", b)
	}
	for _, k := range []string{"id", "acct_session_id", "username", "customer", "router", "ip", "mac", "profile", "started_at",
		"uptime_seconds", "input_octets", "output_octets", "input_bps", "output_bps"} {
		if _, ok := page.Sessions[0][k]; !ok {
			t.Errorf("session object lacks %q: %v", k, page.Sessions[0])
		}
	}
	for _, k := range []string{"sessions", "input_octets", "output_octets"} {
		if _, ok := page.Stats[k]; !ok {
			t.Errorf("stats lack %q", k)
		}
	}
	id := int64(page.Sessions[1]["id"].(float64))
	if s, b := op.do("GET", fmt.Sprintf("/api/sessions/%d", id), nil); s != 200 || !strings.Contains(string(b), `"customer":"=cmd`) ||
		!strings.Contains(string(b), `"acctuniqueid"`) || !strings.Contains(string(b), `"profile":"gold"`) {
		t.Errorf("detail: %d %s", s, b)
	}
	if s, b := op.do("GET", fmt.Sprintf("/api/sessions/%d/samples", id), nil); s != 200 || string(bytes.TrimSpace(b)) != "[]" {
		t.Errorf("samples: %d %s", s, b)
	}
	// The full export streams in id order whatever the view's sort.
	s, b = op.do("GET", "/api/sessions.csv?sort=username", nil)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if s != 200 || len(lines) != 4 || !strings.HasPrefix(lines[0], "id,acct_session_id,username,customer") ||
		!strings.Contains(lines[1], "'=cmd") || !strings.HasPrefix(lines[1], "1,") || !strings.HasPrefix(lines[3], "3,") {
		t.Errorf("csv: %d\n%s", s, b)
	}

	admin := e.login(t, "ada")
	s, b = admin.do("GET", "/api/routers", nil)
	if s != 200 || strings.Contains(string(b), "TopSecret") || !strings.Contains(string(b), `"secret_set":true`) ||
		!strings.Contains(string(b), `"open_sessions":3`) {
		t.Errorf("routers: %d %s", s, b)
	}
	s, b = admin.do("PUT", fmt.Sprintf("/api/routers/%d", e.router.ID), map[string]any{"name": "core-1b", "ip": "127.0.0.11", "description": "moved"})
	if s != 200 || strings.Contains(string(b), "TopSecret") {
		t.Errorf("update router: %d %s", s, b)
	}
	if r, _ := e.db.Router(ctx, "core-1b"); r.Secret != "TopSecret!" {
		t.Errorf("an update without a secret must keep it, got %q", r.Secret)
	}
	if s, b := admin.do("POST", "/api/customers/import", "name,username\nOla,user0002\n,bad\n"); s != 200 ||
		!strings.Contains(string(b), `"created":1`) || !strings.Contains(string(b), `"line":3`) {
		t.Errorf("import: %d %s", s, b)
	}

	resp, err := http.Get(e.ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") ||
		resp.Header.Get("Cache-Control") != "no-cache" {
		t.Errorf("ui: %d %v", resp.StatusCode, resp.Header)
	}
}

// panickySessions breaks one method to prove a panic becomes a 500.
type panickySessions struct{ web.SessionSource }

func (panickySessions) Sessions(context.Context, nettportal.SessionFilter) (nettportal.SessionPage, error) {
	panic("boom")
}

func TestPanicIsA500(t *testing.T) {
	e := newEnv(t, func(s *web.Server) { s.Sessions = panickySessions{s.Sessions} })
	s, b := e.login(t, "vic").do("GET", "/api/sessions", nil)
	if s != 500 || errorOf(b) != "internal error" {
		t.Errorf("panic: %d %s", s, b)
	}
}

func TestControlNotConfigured(t *testing.T) {
	e := newEnv(t, func(s *web.Server) { s.Control = nil })
	s, b := e.login(t, "olga").do("POST", "/api/sessions/1/disconnect", nil)
	if s != 503 || errorOf(b) != "control not configured" {
		t.Errorf("disconnect without control: %d %s", s, b)
	}
}
