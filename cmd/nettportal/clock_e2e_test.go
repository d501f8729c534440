package main

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	rad "layeh.com/radius"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/radius/radiustest"
)

// A MikroTik without NTP says 1970, a broken one 2100: through the real
// listener both sessions start at receive time, the routers API says how
// far the clock is off (for the routers page), and /metrics counts the
// skew per router. A packet with padding after its Length is answered.
func TestClockSkewAndPaddingThroughServe(t *testing.T) {
	dbURL := migratedDBWithRouter(t, "no-ntp", "127.0.0.1", "s3cret")
	srv := startServe(t, dbURL)
	api := tokenAPI(t, dbURL, srv, "noc", "viewer")
	conn := udpFrom(t, "127.0.0.1", srv.AcctAddr) // the router's address
	before := time.Now().Add(-time.Second)
	start := func(user, sid string, at time.Time) radiustest.Request {
		r := radiustest.Start(user, sid)
		r.Event = at
		return r
	}
	sendAcct(t, conn, "s3cret", start("future", "81000002", time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)))
	sendAcct(t, conn, "s3cret", start("epoch", "81000001", time.Unix(86400, 0)))

	// Padding after Length (RFC 2865 section 3: ignored).
	raw := start("padded", "81000003", time.Now()).Encode(t, "s3cret")
	padded := append(append([]byte{}, raw...), make([]byte, 16)...)
	if _, err := conn.Write(padded); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, err := conn.Read(buf)
	if err != nil || !rad.IsAuthenticResponse(buf[:n], raw, []byte("s3cret")) {
		t.Fatalf("a packet with padding after its Length was not answered (%v)", err)
	}

	pg, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close(context.Background())
	for _, user := range []string{"epoch", "future", "padded"} {
		var started time.Time
		if err := pg.QueryRow(context.Background(),
			`SELECT acctstarttime FROM radacct WHERE username = $1`, user).Scan(&started); err != nil {
			t.Fatalf("%s: %v", user, err)
		}
		if started.Before(before) || started.After(time.Now().Add(time.Second)) {
			t.Errorf("%s: acctstarttime %s, want receive time", user, started)
		}
	}
	var routers struct {
		Routers []struct {
			Name             string   `json:"name"`
			ClockSkewSeconds *float64 `json:"clock_skew_seconds"`
			ClockSkewed      uint64   `json:"clock_skewed_packets"`
		} `json:"routers"`
	}
	if code := api.do("GET", "/api/routers", nil, &routers); code != 200 || len(routers.Routers) != 1 {
		t.Fatalf("routers: %d %+v", code, routers)
	}
	r := routers.Routers[0]
	// The last packet (padded) had a good clock; the two before it did not.
	if r.ClockSkewed != 2 || r.ClockSkewSeconds == nil {
		t.Errorf("routers API: clock_skewed_packets %d, clock_skew_seconds %v; want 2 and a value", r.ClockSkewed, r.ClockSkewSeconds)
	}
	m := scrape(t, srv.HTTPURL)
	if got := m[`nettportal_radius_clock_skew_total{router="no-ntp"}`]; got != 2 {
		t.Errorf("/metrics clock skew of the router = %v, want 2", got)
	}
	// Every outcome in the one table is exposed, even at 0.
	for _, o := range nettportal.Outcomes() {
		if o == nettportal.OutcomeOK {
			continue
		}
		if _, ok := m[`nettportal_radius_packets_total{outcome="`+o.String()+`",type="unknown"}`]; !ok {
			t.Errorf("/metrics lacks outcome %q", o)
		}
	}
}
