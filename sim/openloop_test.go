package sim

import (
	"net/netip"
	"testing"
	"time"

	rad "layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2866"
	"layeh.com/radius/rfc2869"

	"github.com/nettportal/nettportal"
)

func TestRunOpenLoopStorm(t *testing.T) {
	resp := newResponder(t, "olsecret")
	resp.dropTenthOnce()
	cfg := OpenLoopConfig{Server: resp.addr(), Secret: "olsecret", Routers: 2, BaseIP: netip.MustParseAddr("127.0.1.71"),
		Rate: 1000, Duration: 400 * time.Millisecond, Sessions: 100, Timeout: 50 * time.Millisecond}
	res, err := RunOpenLoop(ctxT(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Offered != 400 || res.Answered != 400 || res.Failed != 0 || res.Retransmits == 0 || res.Rounds != 4 {
		t.Fatalf("result %+v", res)
	}
	if res.P50 <= 0 || res.P99 < res.P50 || res.Max < 50*time.Millisecond {
		t.Errorf("latency p50 %v p99 %v max %v: the retransmitted ones wait a timeout from their first send", res.P50, res.P99, res.Max)
	}
	// The dropped tenth is answered on a retransmission, the rest on
	// their first send.
	if res.AnsweredOnRetry < 40 || res.AnsweredOnRetry >= res.Answered || res.FirstSend.Max <= 0 || res.FirstSend.P50 > res.P50 {
		t.Errorf("%d of %d answers to a retransmission; answers to a first send: p50 %v (all: %v), max %v",
			res.AnsweredOnRetry, res.Answered, res.FirstSend.P50, res.P50, res.FirstSend.Max)
	}
	statuses := map[rfc2866.AcctStatusType]int{}
	last := resp.lastPackets(func(g received) {
		if rfc2865.NASIPAddress_Get(g.p).String() != g.from.Addr().String() {
			t.Fatalf("NAS-IP-Address %s from %s", rfc2865.NASIPAddress_Get(g.p), g.from)
		}
		if ts := rfc2869.EventTimestamp_Get(g.p); ts.After(time.Now()) {
			t.Fatalf("Event-Timestamp %v in the future", ts)
		}
		if rfc2866.AcctDelayTime_Get(g.p) == 0 {
			statuses[rfc2866.AcctStatusType_Get(g.p)]++
		}
	})
	if statuses[rfc2866.AcctStatusType_Value_Start] != 100 || statuses[rfc2866.AcctStatusType_Value_InterimUpdate] != 200 ||
		statuses[rfc2866.AcctStatusType_Value_Stop] != 100 {
		t.Errorf("first copies by status %v, want 100 Starts, 200 interims, 100 Stops", statuses)
	}
	if len(res.Ledger) != 100 || len(last) != 100 {
		t.Fatalf("%d ledger entries, %d sessions seen", len(res.Ledger), len(last))
	}
	for _, l := range res.Ledger {
		p := last[l.NASIP.String()+"/"+l.SessionID]
		if p == nil {
			t.Fatalf("ledger session %+v never reached the server", l)
		}
		in := uint64(rfc2869.AcctInputGigawords_Get(p))<<32 | uint64(rfc2866.AcctInputOctets_Get(p))
		if l.Status != nettportal.StatusStop || l.Acked != 4 || rfc2865.UserName_GetString(p) != l.Username ||
			rfc2866.AcctStatusType_Get(p) != rfc2866.AcctStatusType_Value_Stop || in != l.InputOctets || in == 0 {
			t.Fatalf("ledger %+v, last packet %q in %d", l, rfc2865.UserName_GetString(p), in)
		}
	}
}

// Open loop: against a silent server the packets still leave on
// schedule, are retransmitted Retries times and then given up.
func TestRunOpenLoopSendsOnScheduleWhateverTheAnswers(t *testing.T) {
	resp := newResponder(t, "olsecret")
	resp.setDrop(func(*rad.Packet, int) bool { return true })
	cfg := OpenLoopConfig{Server: resp.addr(), Secret: "olsecret", Routers: 2, BaseIP: netip.MustParseAddr("127.0.1.81"),
		Rate: 500, Duration: 400 * time.Millisecond, Mix: MixSteady, Timeout: 50 * time.Millisecond, Retries: 2}
	began := time.Now()
	res, err := RunOpenLoop(ctxT(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Offered != 200 || res.Answered != 0 || res.Failed != 200 || res.Retransmits != 400 {
		t.Fatalf("silent server: %+v", res)
	}
	var first, lastFirst time.Time
	for _, g := range resp.packets(nil) {
		if rfc2866.AcctStatusType_Get(g.p) != rfc2866.AcctStatusType_Value_InterimUpdate {
			t.Fatalf("steady mix sent %v", rfc2866.AcctStatusType_Get(g.p))
		}
		if rfc2866.AcctDelayTime_Get(g.p) != 0 {
			continue
		}
		if first.IsZero() {
			first = g.at
		}
		lastFirst = g.at
	}
	if spread := lastFirst.Sub(first); spread < 300*time.Millisecond || first.Sub(began) > 100*time.Millisecond {
		t.Errorf("first transmissions spread over %v (from %v after the start), want the 400ms schedule", spread, first.Sub(began))
	}
}
