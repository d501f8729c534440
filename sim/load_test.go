package sim

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	rad "layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2866"
	"layeh.com/radius/rfc2869"

	"github.com/nettportal/nettportal"
)

func TestRunLoad(t *testing.T) {
	resp := newResponder(t, "loadsecret")
	resp.dropTenthOnce()
	cfg := LoadConfig{
		Server: resp.addr(), Secret: "loadsecret", Routers: 3, BaseIP: netip.MustParseAddr("127.0.1.51"),
		SessionsPerRouter: 40, InterimsPerSession: 2, Concurrency: 30, Timeout: 50 * time.Millisecond,
	}
	res, err := RunLoad(ctxT(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	const want = 3 * 40 * 4
	if res.Acked != want || res.Sent != want || res.Failed != 0 || res.Retransmits == 0 {
		t.Fatalf("result %+v", res)
	}
	if res.P50 <= 0 || res.P99 < res.P50 || res.Max < res.P99 || res.Max < 50*time.Millisecond {
		t.Errorf("latencies p50 %v p99 %v max %v", res.P50, res.P99, res.Max)
	}
	t.Logf("%.0f packets/s, p50 %v p99 %v", res.PacketsPerSecond(), res.P50, res.P99)

	// The ledger says what the server acknowledged; the server saw it.
	last := resp.lastPackets(func(g received) {
		if !strings.HasPrefix(rfc2865.NASIdentifier_GetString(g.p), "load-") || rfc2865.NASIPAddress_Get(g.p).String() != g.from.Addr().String() {
			t.Fatalf("NAS attributes %q %s from %s", rfc2865.NASIdentifier_GetString(g.p), rfc2865.NASIPAddress_Get(g.p), g.from)
		}
	})
	if len(res.Ledger) != 120 || len(last) != 120 {
		t.Fatalf("%d ledger entries, %d sessions seen", len(res.Ledger), len(last))
	}
	users := map[string]bool{}
	for _, l := range res.Ledger {
		p := last[l.NASIP.String()+"/"+l.SessionID]
		if p == nil {
			t.Fatalf("ledger session %+v never reached the server", l)
		}
		users[l.Username] = true
		in := uint64(rfc2869.AcctInputGigawords_Get(p))<<32 | uint64(rfc2866.AcctInputOctets_Get(p))
		out := uint64(rfc2869.AcctOutputGigawords_Get(p))<<32 | uint64(rfc2866.AcctOutputOctets_Get(p))
		if l.Status != nettportal.StatusStop || l.Acked != 4 || rfc2865.UserName_GetString(p) != l.Username ||
			rfc2866.AcctStatusType_Get(p) != rfc2866.AcctStatusType_Value_Stop || in != l.InputOctets ||
			out != l.OutputOctets || out <= in || rfc2866.AcctSessionTime_Get(p) != 900 || l.SessionTime != 900 {
			t.Fatalf("ledger %+v, last packet user %q in %d out %d time %d", l, rfc2865.UserName_GetString(p), in, out,
				rfc2866.AcctSessionTime_Get(p))
		}
		if FormatSessionID(uint32(rfc2865.NASPort_Get(p))) != l.SessionID || !hex8.MatchString(l.SessionID) {
			t.Fatalf("session id %s, NAS-Port %d", l.SessionID, rfc2865.NASPort_Get(p))
		}
		if ts := rfc2869.EventTimestamp_Get(p); ts.After(time.Now()) {
			t.Fatalf("Event-Timestamp %v in the future", ts)
		}
	}
	if len(users) != 120 {
		t.Errorf("%d distinct usernames for 120 sessions", len(users))
	}
}

func TestRunLoadRateAndFailure(t *testing.T) {
	resp := newResponder(t, "loadsecret")
	cfg := LoadConfig{
		Server: resp.addr(), Secret: "loadsecret", Routers: 2, BaseIP: netip.MustParseAddr("127.0.1.61"),
		SessionsPerRouter: 25, InterimsPerSession: 2, Concurrency: 16, Rate: 1000, Timeout: 50 * time.Millisecond,
	}
	res, err := RunLoad(ctxT(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	// 200 packets at 1000/s take about 0.2s.
	if res.Acked != 200 || res.Duration < 150*time.Millisecond || res.PacketsPerSecond() > 1300 {
		t.Errorf("rate-capped run: %d acked in %v (%.0f/s)", res.Acked, res.Duration, res.PacketsPerSecond())
	}

	// A silent server: everything fails after its retries, and the run ends.
	resp.setDrop(func(*rad.Packet, int) bool { return true })
	cfg.Rate, cfg.SessionsPerRouter, cfg.Retries = 0, 2, 1
	res, err = RunLoad(ctxT(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Acked != 0 || res.Failed != 16 || res.Retransmits != 16 {
		t.Errorf("silent server: %+v", res)
	}

	// Cancelling stops the run.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	cfg.Retries, cfg.Timeout = 100, time.Second
	if _, err := RunLoad(ctx, cfg); err == nil {
		t.Error("a cancelled run returned no error")
	}
}
