package web_test

import (
	"context"
	"encoding/csv"
	"strings"
	"testing"
	"time"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/web"
)

// hostileNames are user names a router or a billing system might hand us,
// each a formula in some spreadsheet locale if written carelessly.
var hostileNames = []string{"x;=1+2", "=HYPERLINK(\"http://evil\")", "a,b;-3+4", "y;@SUM(A1)", "z,+1", "line\nbreak;=1", "tab\t;\t=1", "q\"uote;=2"}

// checkCSV parses b with both separators Excel uses and fails on any cell
// that a spreadsheet would run as a formula, and on hostile names that did
// not come through whole.
func checkCSV(t *testing.T, what string, b []byte, wantWhole []string) {
	t.Helper()
	for _, sep := range []rune{',', ';'} {
		r := csv.NewReader(strings.NewReader(string(b)))
		r.Comma, r.FieldsPerRecord, r.LazyQuotes = sep, -1, true
		recs, err := r.ReadAll()
		if err != nil {
			t.Fatalf("%s with %q: %v\n%s", what, sep, err, b)
		}
		seen := map[string]bool{}
		for _, rec := range recs {
			for _, cell := range rec {
				// The names hold no ', so without the neutralising ' each
				// must be one whole cell.
				seen[strings.ReplaceAll(cell, "'", "")] = true
				if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
					t.Errorf("%s read with %q: cell %q starts a formula\n%s", what, sep, cell, b)
				}
			}
		}
		if sep != ',' {
			continue // the file's own separator must give the names whole
		}
		for _, n := range wantWhole {
			if !seen[n] {
				t.Errorf("%s read with %q: %q is not one cell\n%s", what, sep, n, b)
			}
		}
	}
}

// TestCSVFormulaInjection: every CSV the server writes quotes fields with
// a separator of either locale and neutralises cells starting a formula.
func TestCSVFormulaInjection(t *testing.T) {
	e := newEnv(t, func(s *web.Server) { s.Usage = s.Sessions.(web.UsageSource) })
	ctx := context.Background()
	recs := startRecords(e.router, "u", len(hostileNames))
	for i := range recs {
		recs[i].Username = hostileNames[i]
		recs[i].EventTime = time.Now().Add(-time.Hour)
	}
	if err := e.db.ApplyAccounting(ctx, recs); err != nil {
		t.Fatal(err)
	}
	// Interims with counters, so the names show in usage too.
	in, out := uint64(1000), uint64(2000)
	for i := range recs {
		recs[i].Status, recs[i].EventTime, recs[i].InputOctets, recs[i].OutputOctets = nettportal.StatusInterimUpdate, time.Now(), &in, &out
	}
	if err := e.db.ApplyAccounting(ctx, recs); err != nil {
		t.Fatal(err)
	}
	op := e.login(t, "olga")
	s, b := op.do("GET", "/api/sessions.csv", nil)
	if s != 200 {
		t.Fatalf("sessions.csv: %d %s", s, b)
	}
	checkCSV(t, "sessions.csv", b, hostileNames)

	day := time.Now().UTC().Format(time.DateOnly)
	s, b = op.do("GET", "/api/usage.csv?from="+day+"&to="+day, nil)
	if s != 200 {
		t.Fatalf("usage.csv: %d %s", s, b)
	}
	checkCSV(t, "usage.csv", b, hostileNames)
}

// TestNoDirectoryListing: /js/ and other directories of the embedded UI
// are not listed; the files themselves and "/" are served.
func TestNoDirectoryListing(t *testing.T) {
	e := newEnv(t, nil)
	c := e.anon(t)
	for _, p := range []string{"/js/", "/js", "/js/../js/"} {
		if s, b := c.do("GET", p, nil); s != 404 || strings.Contains(string(b), "dom.js") {
			t.Errorf("GET %s: %d %s; want 404 without a listing", p, s, b)
		}
	}
	for _, p := range []string{"/", "/js/dom.js"} {
		if s, _ := c.do("GET", p, nil); s != 200 {
			t.Errorf("GET %s: %d", p, s)
		}
	}
}
