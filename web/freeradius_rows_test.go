package web_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/nettportal/nettportal/web"
)

// Rows FreeRADIUS wrote before this server knew their router (nas_id
// NULL, never backfilled) through the API: the sessions list and a
// history search show their router, ?router= selects them, the routers
// page counts the open one, and usage has their traffic.
func TestAPIShowsFreeRADIUSHistoryWithItsRouter(t *testing.T) {
	e := newEnv(t, func(s *web.Server) { s.Usage = s.Sessions.(web.UsageSource) })
	ctx := context.Background()
	// As written before the nas_id trigger existed (a migrated database).
	tx, err := e.db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		`ALTER TABLE radacct DISABLE TRIGGER radacct_nas_id`,
		`INSERT INTO radacct (acctsessionid, acctuniqueid, username, nasipaddress, acctstarttime, acctupdatetime,
			acctstoptime, acctsessiontime, acctinputoctets, acctoutputoctets, acctterminatecause) VALUES
			('fr1', 'fr-hist-1', 'histuser', '127.0.0.11', '2026-11-10 08:00+00', '2026-11-10 09:00+00',
			 '2026-11-10 09:00+00', 3600, 1234, 56789, 'User-Request'),
			('fr2', 'fr-open-1', 'openuser', '127.0.0.11', now() - interval '1 hour', now(), NULL, 3600, 10, 20, NULL)`,
		`ALTER TABLE radacct ENABLE TRIGGER radacct_nas_id`,
	} {
		if _, err := tx.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	v := e.login(t, "vic")
	type page struct {
		Total    int64
		Sessions []struct {
			Username string `json:"username"`
			Router   string `json:"router"`
			RouterID int64  `json:"router_id"`
		}
	}
	get := func(path string) page {
		t.Helper()
		s, b := v.do("GET", path, nil)
		var p page
		if err := json.Unmarshal(b, &p); s != 200 || err != nil {
			t.Fatalf("%s: %d %s", path, s, b)
		}
		return p
	}
	for _, path := range []string{
		"/api/sessions?closed=true&router=core-1",
		"/api/sessions?closed=true&q=histuser&from=2026-11-01&to=2026-11-30",
		"/api/sessions?closed=true&q=histuser&from=2026-11-01&to=2026-11-30&router=core-1",
	} {
		p := get(path)
		found := false
		for _, s := range p.Sessions {
			if s.Username == "histuser" {
				found = true
				if s.Router != "core-1" || s.RouterID != e.router.ID {
					t.Errorf("%s: histuser shown with router %q (%d), want core-1 (%d)", path, s.Router, s.RouterID, e.router.ID)
				}
			}
		}
		if !found {
			t.Errorf("%s: histuser missing: %+v", path, p)
		}
	}
	if p := get("/api/sessions?router=core-1"); p.Total != 1 || p.Sessions[0].Username != "openuser" || p.Sessions[0].Router != "core-1" {
		t.Errorf("open sessions of core-1: %+v", p)
	}
	s, b := v.do("GET", "/api/routers", nil)
	if s != 200 || !strings.Contains(string(b), `"open_sessions":1`) {
		t.Errorf("routers page does not count the open FreeRADIUS row: %d %s", s, b)
	}
	s, b = v.do("GET", "/api/usage?from=2026-11-01&to=2026-11-30&username=histuser", nil)
	if s != 200 || !strings.Contains(string(b), `"day":"2026-11-10","input_octets":1234,"output_octets":56789`) {
		t.Errorf("usage of a FreeRADIUS session: %d %s", s, b)
	}
}
