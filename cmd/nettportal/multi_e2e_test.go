package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"layeh.com/radius/rfc2866"

	"github.com/nettportal/nettportal/store"
)

// TestTwoInstancesOnOneDatabase runs two serve instances on one database,
// as production does, with a router that lists both as accounting servers:
// it alternates between them (failover), sends the very same packet to
// both, and sends consecutive interims to the two at once so they commit
// out of order. Then: one row per session, the newest counters won, and
// both instances show the same live view.
func TestTwoInstancesOnOneDatabase(t *testing.T) {
	const secret = "tw0-instances"
	dbURL := migratedDBWithRouter(t, "core-1", "127.0.0.31", secret)
	// --stale-grace: the packets' event times are an hour old, so each
	// instance's first stale sweep (a second after it starts) would close
	// the open sessions as stale, during the traffic or after the checks
	// below began (it failed that way now and then).
	a := startServe(t, dbURL, "--stale-grace", "1000h")
	b := startServe(t, dbURL, "--stale-grace", "1000h")
	servers := []*testServer{a, b}

	const sessions, interims = 40, 8
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	nas := net.ParseIP("127.0.0.31")
	pkt := func(s int, st rfc2866.AcctStatusType, step int) acctPacket {
		secs := uint32(step * 60)
		return acctPacket{User: fmt.Sprintf("multi%02d", s), SessionID: fmt.Sprintf("8200%04x", s), Status: st,
			SessionTime: secs, In: secs*1000 + uint32(s), Out: secs*3000 + uint32(s), NASIP: nas,
			Event: base.Add(time.Duration(secs) * time.Second)}
	}

	// Each session is its own goroutine with its own sockets (one per
	// server), so batches from both instances touch the same rows at once.
	var acked [2]struct {
		mu sync.Mutex
		n  int
	}
	send := func(t *testing.T, conns [2]*net.UDPConn, to int, raw []byte) {
		for try := 0; ; try++ {
			if exchange(t, conns[to], raw, secret, 2*time.Second) {
				acked[to].mu.Lock()
				acked[to].n++
				acked[to].mu.Unlock()
				return
			}
			if try == 3 {
				t.Errorf("no answer from instance %d after %d tries", to, try+1)
				return
			}
		}
	}
	both := func(t *testing.T, conns [2]*net.UDPConn, raws [2][]byte) {
		var wg sync.WaitGroup
		for i := range 2 {
			wg.Add(1)
			go func() { defer wg.Done(); send(t, conns, i, raws[i]) }()
		}
		wg.Wait()
	}
	t.Run("traffic", func(t *testing.T) {
		var wg sync.WaitGroup
		for s := range sessions {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var conns [2]*net.UDPConn
				for i, srv := range servers {
					conns[i] = udpFrom(t, "127.0.0.31", srv.AcctAddr)
				}
				start := pkt(s, rfc2866.AcctStatusType_Value_Start, 0).encode(t, secret)
				// The same Start to both: one row.
				both(t, conns, [2][]byte{start, start})
				// Repeat: alternate, same to both, two consecutive to both at once.
				for step, k := 1, 0; step <= interims; step, k = step+1, k+1 {
					raw := pkt(s, rfc2866.AcctStatusType_Value_InterimUpdate, step).encode(t, secret)
					switch k % 3 {
					case 0: // failover: alternate between the two
						send(t, conns, (s+step)%2, raw)
					case 1: // the same packet to both (a retransmission to the backup)
						both(t, conns, [2][]byte{raw, raw})
					case 2: // this interim and the next to both at once: either may commit first
						next := pkt(s, rfc2866.AcctStatusType_Value_InterimUpdate, step+1).encode(t, secret)
						both(t, conns, [2][]byte{next, raw})
						step++
					}
				}
				if s%2 == 0 {
					stop := pkt(s, rfc2866.AcctStatusType_Value_Stop, interims+1).encode(t, secret)
					both(t, conns, [2][]byte{stop, stop})
					// A late interim to the other instance must not reopen it.
					late := pkt(s, rfc2866.AcctStatusType_Value_InterimUpdate, interims).encode(t, secret)
					send(t, conns, (s+1)%2, late)
				}
			}()
		}
		wg.Wait()
	})
	if acked[0].n == 0 || acked[1].n == 0 {
		t.Fatalf("both instances must have ingested: %d and %d answers", acked[0].n, acked[1].n)
	}

	db, err := store.Open(context.Background(), dbURL, 2, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	var rows, distinct int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT acctsessionid) FROM radacct`).Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	if rows != sessions || distinct != sessions {
		t.Errorf("%d rows for %d distinct session ids, want %d of each", rows, distinct, sessions)
	}
	for s := range sessions {
		last := pkt(s, rfc2866.AcctStatusType_Value_InterimUpdate, interims)
		if s%2 == 0 {
			last = pkt(s, rfc2866.AcctStatusType_Value_Stop, interims+1)
		}
		var in, out, secs int64
		var stopped bool
		err := db.Pool.QueryRow(ctx, `SELECT acctinputoctets, acctoutputoctets, acctsessiontime, acctstoptime IS NOT NULL
			FROM radacct WHERE acctsessionid = $1`, last.SessionID).Scan(&in, &out, &secs, &stopped)
		if err != nil {
			t.Errorf("session %s: %v", last.SessionID, err)
			continue
		}
		if in != int64(last.In) || out != int64(last.Out) || secs != int64(last.SessionTime) || stopped != (s%2 == 0) {
			t.Errorf("session %s: in %d out %d time %d stopped %v; want %d %d %d %v (a lost or rewound update)",
				last.SessionID, in, out, secs, stopped, last.In, last.Out, last.SessionTime, s%2 == 0)
		}
	}

	// Packets acknowledged by each instance add up: nothing answered that
	// was not committed, nothing counted twice.
	var okTotal, dups float64
	for _, srv := range servers {
		m := scrape(t, srv.HTTPURL)
		for _, typ := range []string{"start", "interim", "stop"} {
			okTotal += m[`nettportal_radius_packets_total{outcome="ok",type="`+typ+`"}`]
		}
		dups += m[`nettportal_radius_packets_total{outcome="duplicate",type="unknown"}`]
		if got := m[`nettportal_open_sessions{router="core-1"}`]; got != sessions/2 {
			t.Errorf("%s: /metrics open sessions %v, want %d", srv.HTTPURL, got, sessions/2)
		}
	}
	// Answers = committed ones + retransmissions answered from the cache.
	if answers := float64(acked[0].n + acked[1].n); answers < okTotal || answers > okTotal+dups {
		t.Errorf("instances report %v packets answered after commit and %v duplicates; the router got %v answers", okTotal, dups, answers)
	}

	// The same live view from both, through the API when it is wired.
	compareLiveViews(t, dbURL, servers, sessions/2)
}

// compareLiveViews compares GET /api/sessions from every instance, which
// must list the open sessions. Until
// the web API and `nettportal token create` exist it says so and returns.
func compareLiveViews(t *testing.T, dbURL string, servers []*testServer, open int) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"token", "create", "--db", dbURL, "--name", "multi-e2e", "--role", "viewer"}, noEnv, &out, &errOut)
	if err != nil && strings.Contains(err.Error(), "unknown command") {
		t.Logf("live views not compared through the API (no `token create` in this build)")
		return
	}
	if err != nil {
		t.Fatalf("nettportal token create: %v\n%s", err, errOut.String())
	}
	token := strings.TrimSpace(out.String())
	if i := strings.LastIndexAny(token, " \n\t"); i >= 0 {
		token = token[i+1:]
	}
	type view struct {
		Total    int64 `json:"total"`
		Sessions []struct {
			ID            int64  `json:"id"`
			AcctSessionID string `json:"acct_session_id"`
			Username      string `json:"username"`
			Router        string `json:"router"`
			InputOctets   int64  `json:"input_octets"`
			OutputOctets  int64  `json:"output_octets"`
		} `json:"sessions"`
	}
	var views []view
	for _, srv := range servers {
		req, _ := http.NewRequest("GET", srv.HTTPURL+"/api/sessions?limit=1000&sort=username&order=asc", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET /api/sessions: %v", err)
		}
		var v view
		err = json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		if resp.StatusCode != 200 || err != nil {
			t.Fatalf("GET /api/sessions from %s: %s %v", srv.HTTPURL, resp.Status, err)
		}
		sort.Slice(v.Sessions, func(i, j int) bool { return v.Sessions[i].ID < v.Sessions[j].ID })
		views = append(views, v)
	}
	x, _ := json.Marshal(views[0])
	for i, v := range views[1:] {
		if y, _ := json.Marshal(v); !bytes.Equal(x, y) {
			t.Errorf("instance %d shows another live view:\n%s\n%s", i+1, x, y)
		}
	}
	if views[0].Total != int64(open) || len(views[0].Sessions) != open {
		t.Errorf("live view: total %d, %d sessions listed; want %d open", views[0].Total, len(views[0].Sessions), open)
	}
	t.Logf("GET /api/sessions: the same %d sessions from all %d instances", views[0].Total, len(views))
}
