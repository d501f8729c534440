package web_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/store/storetest"
	"github.com/nettportal/nettportal/web"
)

// fuzzEndpoint is one JSON endpoint; {id} is filled from the fuzzer.
type fuzzEndpoint struct{ method, path string }

// FuzzAPIJSON posts arbitrary bodies and queries to the JSON API through
// the real handler on a real database, authenticated as an admin: the
// answer is never a 5xx (the control is configured, so not even 503) and
// the handler never panics (the server would turn a panic into a 500).
func FuzzAPIJSON(f *testing.F) {
	// endpoints are every endpoint that reads a request body or query,
	// each called as an admin so authorization never hides the parsing.
	endpoints := [...]fuzzEndpoint{
		{"POST", "/api/login"},
		{"POST", "/api/sessions/{id}/disconnect"},
		{"POST", "/api/sessions/{id}/coa"},
		{"POST", "/api/disconnect"},
		{"POST", "/api/routers"},
		{"PUT", "/api/routers/{id}"},
		{"POST", "/api/customers"},
		{"PUT", "/api/customers/{id}"},
		{"POST", "/api/customers/import"},
		{"POST", "/api/users"},
		{"POST", "/api/tokens"},
		{"GET", "/api/sessions"},
		{"GET", "/api/sessions.csv"},
		{"GET", "/api/sessions/{id}"},
		{"GET", "/api/sessions/{id}/samples"},
		{"GET", "/api/audit"},
		{"GET", "/api/customers"},
		{"GET", "/api/quarantine"},
	}
	db := storetest.MustOpenDB(f)
	ctx := context.Background()
	rt := &nettportal.Router{Name: "fuzz-1", IP: netip.MustParseAddr("127.0.0.11"), Secret: "s"}
	if err := db.CreateRouter(ctx, rt); err != nil {
		f.Fatal(err)
	}
	if err := db.ApplyAccounting(ctx, startRecords(rt, "fz", 3)); err != nil {
		f.Fatal(err)
	}
	token, err := db.CreateToken(ctx, "fuzz", nettportal.RoleAdmin)
	if err != nil {
		f.Fatal(err)
	}
	srv := &web.Server{Sessions: db, Routers: db, Accounts: db, Customers: db, Changes: db, Audit: db,
		Control: &fakeControl{}, Log: zerolog.Nop()}
	h := srv.Handler()

	seeds := []struct {
		which uint8
		id    string
		query string
		body  string
	}{
		{0, "", "", `{"username":"ada","password":"x"}`},
		{1, "1", "", `{}`},
		{2, "1", "", `{"rate_limit":"10M/20M"}`},
		{3, "", "", `{"router":"fuzz-1","q":"fz","ids":[1,2,3]}`},
		{4, "", "", `{"name":"r2","ip":"10.0.0.2","secret":"x","coa_port":3799,"api_password":null}`},
		{5, "1", "", `{"name":"fuzz-1","ip":"127.0.0.11","interim_seconds":-1}`},
		{6, "", "", `{"name":"Ola","username":"fz0000","phone":"+47"}`},
		{7, "1", "", `{"name":"\u0000"}`},
		{8, "", "", "username,name\nfz0001,Kari\n"},
		{9, "", "", `{"name":"u","password":"p","role":"root"}`},
		{10, "", "", `{"name":"t","role":"viewer"}`},
		{11, "", "q=fz&sort=uptime&order=desc&limit=5&offset=0&router=fuzz-1", ``},
		{12, "", "limit=-1&sort=%00", ``},
		{13, "99999999999999999999", "", ``},
		{14, "1", "from=2020-01-01T00:00:00Z&to=x", ``},
		{15, "", "limit=1e9", ``},
		{16, "", "q=%ff%fe", ``},
		{4, "", "", `{"name":"a","ip":"::1","secret":"` + string(make([]byte, 3)) + `"}`},
		{5, "1", "", `[`},
		{11, "", "q=%ff%fe", ``},
		{11, "", "q=%00&router=%00", ``},
		{16, "", "q=%00", ``},
		{15, "", "user=%ff", ``},
		{4, "", "", `{"name":"a\u0000","ip":"10.1.1.1","secret":"x"}`},
		{6, "", "", `{"name":"a\u0000","username":"u"}`},
		{9, "", "", `{"name":"a\u0000","password":"p","role":"viewer"}`},
		{10, "", "", `{"name":"a\u0000","role":"viewer"}`},
		{0, "", "", `{"username":"a\u0000","password":"p"}`},
		{8, "", "", "username,name\na\x00,b\n"},
		{2, "1", "", `{"rate_limit":1e999}`},
		{17, "", "router=fuzz-1&limit=5", ``},
		{17, "", "router=%00&limit=99999999999999999999", ``},
		{17, "", "router=%ff%fe", ``},
	}
	for _, s := range seeds {
		f.Add(s.which, s.id, s.query, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, which uint8, id, query string, body []byte) {
		ep := endpoints[int(which)%len(endpoints)]
		path := ep.path
		if id == "" {
			id = "1"
		}
		path = strings.Replace(path, "{id}", url.PathEscape(id), 1)
		target := path
		if query != "" {
			target += "?" + query
		}
		req, err := http.NewRequest(ep.method, "http://nettportal.test"+target, bytes.NewReader(body))
		if err != nil {
			return // not a request a client could send
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		if ep.path == "/api/customers/import" {
			req.Header.Set("Content-Type", "text/csv")
		}
		rctx, cancel := context.WithTimeout(req.Context(), 10*time.Second)
		defer cancel()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req.WithContext(rctx))
		if rec.Code >= 500 {
			t.Fatalf("%s %s with %q: %d %s", ep.method, target, body, rec.Code, rec.Body.String())
		}
	})
}
