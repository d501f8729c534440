package web_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/nettportal/nettportal"
)

// GET /api/quarantine lists what PostgreSQL refused, per router or all,
// newest first, bounded, with the fields an operator looks for; the raw
// packet only for admins; bad parameters are a 400 or 404 that says why.
func TestQuarantineAPI(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	other := &nettportal.Router{Name: "edge-2", IP: netip.MustParseAddr("127.0.0.12"), Secret: "AlsoSecret"}
	if err := e.db.CreateRouter(ctx, other); err != nil {
		t.Fatal(err)
	}
	// Text with NUL is refused before any round trip and quarantined.
	bad := startRecords(e.router, "bad", 3)
	for i := range bad {
		bad[i].Username += "\x00"
		bad[i].Raw = []byte{4, byte(i), 0, 20}
		bad[i].Source = netip.MustParseAddrPort("127.0.0.11:1813")
	}
	elsewhere := startRecords(other, "far", 1)
	elsewhere[0].Username = "far\x00"
	batch := append(append([]nettportal.AccountingRecord{}, bad...), elsewhere...)
	batch = append(batch, bad[0]) // a copy: one row, two copies
	if err := e.db.ApplyAccounting(ctx, batch); err != nil {
		t.Fatal(err)
	}
	type record struct {
		Router        string `json:"router"`
		RouterID      int64  `json:"router_id"`
		Username      string `json:"username"`
		AcctSessionID string `json:"acct_session_id"`
		Status        string `json:"status"`
		Repeats       int64  `json:"repeats"`
		Source        string `json:"source"`
		Error         string `json:"error"`
		SQLState      string `json:"sqlstate"`
		FirstSeen     string `json:"first_seen"`
		LastSeen      string `json:"last_seen"`
		RawHex        string `json:"raw_hex"`
	}
	type answer struct {
		Router  *string  `json:"router"`
		Limit   int      `json:"limit"`
		More    bool     `json:"more"`
		Records []record `json:"records"`
	}
	get := func(c *client, path string) answer {
		t.Helper()
		s, b := c.do("GET", path, nil)
		if s != 200 {
			t.Fatalf("GET %s: %d %s", path, s, b)
		}
		var a answer
		if err := json.Unmarshal(b, &a); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		return a
	}
	viewer, admin := e.login(t, "vic"), e.login(t, "ada")
	all := get(viewer, "/api/quarantine")
	if len(all.Records) != 4 || all.More || all.Router != nil || all.Limit != 50 {
		t.Fatalf("all: %+v", all)
	}
	mine := get(viewer, "/api/quarantine?router=core-1")
	if len(mine.Records) != 3 || mine.Router == nil || *mine.Router != "core-1" {
		t.Fatalf("router=core-1: %+v", mine)
	}
	byID := map[string]record{}
	for _, r := range mine.Records {
		byID[r.AcctSessionID] = r
		if r.Router != "core-1" || r.RouterID != e.router.ID || r.Status != "Start" || r.Source != "127.0.0.11:1813" ||
			r.SQLState != "22021" || !strings.Contains(r.Error, "NUL") || r.FirstSeen == "" || r.LastSeen == "" {
			t.Errorf("record %+v", r)
		}
		if r.RawHex != "" {
			t.Errorf("a viewer sees the raw packet %s", r.RawHex)
		}
	}
	if r := byID[bad[0].SessionID]; r.Repeats != 2 || r.Username != `bad0000\x00` {
		t.Errorf("the record sent twice: %+v", r)
	}
	if r := byID[bad[1].SessionID]; r.Repeats != 1 {
		t.Errorf("a record sent once: %+v", r)
	}
	// By id as well as name; limit bounds and says there is more.
	two := get(admin, "/api/quarantine?router="+strconv.FormatInt(e.router.ID, 10)+"&limit=2")
	if len(two.Records) != 2 || !two.More || two.Limit != 2 {
		t.Fatalf("limit=2: %+v", two)
	}
	for _, r := range two.Records {
		raw, err := hex.DecodeString(r.RawHex)
		if err != nil || len(raw) != 4 || raw[0] != 4 {
			t.Errorf("admin's raw_hex %q (%v)", r.RawHex, err)
		}
	}
	if far := get(viewer, "/api/quarantine?router=edge-2"); len(far.Records) != 1 || far.Records[0].Username != `far\x00` || far.Records[0].RawHex != "" {
		t.Errorf("router=edge-2: %+v", far)
	}
	for path, want := range map[string]int{
		"/api/quarantine?limit=0":        400,
		"/api/quarantine?limit=501":      400,
		"/api/quarantine?limit=ten":      400,
		"/api/quarantine?router=nowhere": 404,
	} {
		s, b := viewer.do("GET", path, nil)
		if s != want || errorOf(b) == "" {
			t.Errorf("GET %s: %d %s, want %d with a message", path, s, b, want)
		}
	}
	if s, _ := e.anon(t).do("GET", "/api/quarantine", nil); s != 401 {
		t.Errorf("unauthenticated: %d", s)
	}
}
