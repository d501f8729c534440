package sim

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-routeros/routeros/v3"
	"github.com/rs/zerolog"
	rad "layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2866"
	"layeh.com/radius/rfc2869"
	"layeh.com/radius/rfc3576"

	"github.com/nettportal/nettportal/coa"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// mustDisconnectFirst waits until r's sessions are all up and then ends
// the first one by a CoA Disconnect-Request, as an operator does; it
// fails unless r ACKs. It returns the session as it was.
func mustDisconnectFirst(ctx context.Context, t *testing.T, r *Router) SessionInfo {
	t.Helper()
	if err := r.AwaitAllStarted(ctx); err != nil {
		t.Fatal(err)
	}
	victim := r.Sessions()[0]
	client := &coa.Client{Timeout: 300 * time.Millisecond, Retries: -1}
	target := coa.Target{Addr: r.CoAAddr(), Secret: "s3cret", NASIP: r.Addr()}
	res, err := client.Disconnect(ctx, target, coa.Session{Username: victim.Username, AcctSessionID: victim.SessionID, FramedIP: victim.IP})
	if err != nil || res.Result != coa.ResultACK {
		t.Fatalf("disconnect: %+v %v", res, err)
	}
	return victim
}

// startRouter starts a router on 127.0.1.<last> against the responder.
func startRouter(t *testing.T, resp *responder, last byte, mod func(*RouterConfig)) *Router {
	t.Helper()
	cfg := RouterConfig{
		Name: fmt.Sprintf("test-%d", last), Addr: netip.AddrFrom4([4]byte{127, 0, 1, last}), Secret: "s3cret",
		Server: resp.addr(), Interim: time.Hour, Sessions: 3, Seed: 1, Timeout: 100 * time.Millisecond,
		APIPassword: "pw",
	}
	if mod != nil {
		mod(&cfg)
	}
	r, err := New(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

var hex8 = regexp.MustCompile(`^[0-9a-f]{8}$`)

func TestRouterSendsRouterOSAccounting(t *testing.T) {
	resp := newResponder(t, "s3cret")
	clock := newClock()
	r := startRouter(t, resp, 11, func(c *RouterConfig) { c.Now = clock.Now })
	ctx := ctxT(t)
	if err := r.AwaitAllStarted(ctx); err != nil {
		t.Fatal(err)
	}
	sessions := r.Sessions()
	starts := resp.packets(status(rfc2866.AcctStatusType_Value_Start))
	if len(sessions) != 3 || len(starts) != 3 {
		t.Fatalf("%d sessions, %d Starts", len(sessions), len(starts))
	}
	byUser := map[string]SessionInfo{}
	for _, s := range sessions {
		byUser[s.Username] = s
	}
	for _, g := range starts {
		p := g.p
		s, ok := byUser[rfc2865.UserName_GetString(p)]
		if !ok {
			t.Fatalf("Start for unknown user %q", rfc2865.UserName_GetString(p))
		}
		sid := rfc2866.AcctSessionID_GetString(p)
		port := uint32(rfc2865.NASPort_Get(p))
		checks := []struct{ name, got, want string }{
			{"source", g.from.Addr().String(), "127.0.1.11"},
			{"Acct-Session-Id", sid, s.SessionID},
			{"boot digit", sid[:2], "81"},
			{"NAS-Port", FormatSessionID(port), sid},
			{"Calling-Station-Id", rfc2865.CallingStationID_GetString(p), strings.ToUpper(s.MAC)},
			{"Called-Station-Id", rfc2865.CalledStationID_GetString(p), "pppoe-test-11"},
			{"NAS-Port-Id", rfc2869.NASPortID_GetString(p), s.Interface},
			{"NAS-Identifier", rfc2865.NASIdentifier_GetString(p), "test-11"},
			{"NAS-IP-Address", rfc2865.NASIPAddress_Get(p).String(), "127.0.1.11"},
			{"NAS-Port-Type", rfc2865.NASPortType_Get(p).String(), "Ethernet"},
			{"Service-Type", rfc2865.ServiceType_Get(p).String(), "Framed-User"},
			{"Framed-Protocol", rfc2865.FramedProtocol_Get(p).String(), "PPP"},
			{"Acct-Authentic", rfc2866.AcctAuthentic_Get(p).String(), "RADIUS"},
			{"Framed-IP-Address", rfc2865.FramedIPAddress_Get(p).String(), s.IP.String()},
			{"Event-Timestamp", rfc2869.EventTimestamp_Get(p).UTC().String(), clock.Now().String()},
		}
		for _, c := range checks {
			if c.got != c.want {
				t.Errorf("%s: %s = %q, want %q", s.Username, c.name, c.got, c.want)
			}
		}
		if !hex8.MatchString(sid) || !strings.HasPrefix(s.Interface, "vlan") {
			t.Errorf("session id %q, interface %q", sid, s.Interface)
		}
		if _, err := rfc2866.AcctInputOctets_Lookup(p); err == nil {
			t.Error("a Start carries counters; RouterOS sends none")
		}
	}

	// Five minutes later an interim reports what the API shows.
	clock.Advance(5 * time.Minute)
	r.Tick()
	if err := r.AwaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	api, err := routeros.DialContext(ctx, r.APIAddr(), "admin", "pw")
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	ifaces, err := api.Run("/interface/print", "?type=pppoe-in")
	if err != nil {
		t.Fatal(err)
	}
	active, err := api.Run("/ppp/active/print")
	if err != nil {
		t.Fatal(err)
	}
	if len(ifaces.Re) != 3 || len(active.Re) != 3 {
		t.Fatalf("API shows %d interfaces, %d active", len(ifaces.Re), len(active.Re))
	}
	for _, a := range active.Re {
		s := byUser[a.Map["name"]]
		if a.Map["session-id"] != "0x"+s.SessionID || a.Map["caller-id"] != s.MAC || a.Map["address"] != s.IP.String() {
			t.Errorf("API /ppp/active %v, want session %+v", a.Map, s)
		}
	}
	apiCounters := map[string][2]string{}
	for _, i := range ifaces.Re {
		apiCounters[i.Map["name"]] = [2]string{i.Map["rx-byte"], i.Map["tx-byte"]}
	}
	for _, g := range resp.packets(status(rfc2866.AcctStatusType_Value_InterimUpdate)) {
		p := g.p
		user := rfc2865.UserName_GetString(p)
		s, _ := r.Session(user)
		in := uint64(rfc2869.AcctInputGigawords_Get(p))<<32 | uint64(rfc2866.AcctInputOctets_Get(p))
		out := uint64(rfc2869.AcctOutputGigawords_Get(p))<<32 | uint64(rfc2866.AcctOutputOctets_Get(p))
		if rfc2866.AcctSessionTime_Get(p) != 300 || in != s.InputOctets || out != s.OutputOctets || in == 0 || out <= in {
			t.Errorf("%s: interim time %d in %d out %d; session %+v", user, rfc2866.AcctSessionTime_Get(p), in, out, s)
		}
		if c := apiCounters["<pppoe-"+user+">"]; c[0] != strconv.FormatUint(in, 10) || c[1] != strconv.FormatUint(out, 10) {
			t.Errorf("%s: API rx/tx %v, interim %d/%d", user, c, in, out)
		}
		if s.LastAcked.Status.String() != "Interim-Update" || s.LastAcked.InputOctets != in {
			t.Errorf("%s: last acked %+v", user, s.LastAcked)
		}
	}

	// A user hangs up.
	user := sessions[0].Username
	clock.Advance(time.Minute)
	if !r.Disconnect(user, rfc2866.AcctTerminateCause_Value_UserRequest) {
		t.Fatal("Disconnect found no session")
	}
	if err := r.AwaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	stops := resp.packets(status(rfc2866.AcctStatusType_Value_Stop))
	if len(stops) != 1 || rfc2865.UserName_GetString(stops[0].p) != user ||
		rfc2866.AcctTerminateCause_Get(stops[0].p) != rfc2866.AcctTerminateCause_Value_UserRequest ||
		rfc2866.AcctSessionTime_Get(stops[0].p) != 360 {
		t.Fatalf("Stops: %v", stops)
	}
	if s, _ := r.Session(user); s.Up {
		t.Error("session still up after Disconnect")
	}
	if st := r.Stats(); st.Acked != 7 || st.Retransmits != 0 || st.GivenUp != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestRouterRetransmitsWithGrowingDelay(t *testing.T) {
	resp := newResponder(t, "s3cret")
	// Every packet is answered only at its third copy.
	resp.setDrop(func(p *rad.Packet, copyNo int) bool { return copyNo < 3 })
	r := startRouter(t, resp, 12, func(c *RouterConfig) { c.Sessions = 1; c.Timeout = 30 * time.Millisecond })
	ctx := ctxT(t)
	if err := r.AwaitAllStarted(ctx); err != nil {
		t.Fatal(err)
	}
	got := resp.packets(nil)
	if len(got) != 3 {
		t.Fatalf("%d copies of the Start, want 3", len(got))
	}
	ids := map[byte]bool{}
	for i, g := range got {
		ids[g.p.Identifier] = true
		if d := rfc2866.AcctDelayTime_Get(g.p); int(d) != i {
			t.Errorf("copy %d: Acct-Delay-Time %d, want %d", i, d, i)
		}
		if !rfc2869.EventTimestamp_Get(g.p).Equal(rfc2869.EventTimestamp_Get(got[0].p)) {
			t.Error("a retransmission changed Event-Timestamp")
		}
	}
	if len(ids) != 3 {
		t.Errorf("identifiers %v: a changed Acct-Delay-Time needs a new Identifier (RFC 2866 5.2)", ids)
	}
	if st := r.Stats(); st.Retransmits != 2 || st.Acked != 1 || st.Transmissions != 3 {
		t.Errorf("stats %+v", st)
	}

	// A server that never answers: the request is given up after Retries.
	resp.setDrop(func(*rad.Packet, int) bool { return true })
	r.Tick()
	if err := r.AwaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	if st := r.Stats(); st.GivenUp != 1 || st.Retransmits != 2+DefaultRetries {
		t.Errorf("after silence: stats %+v", st)
	}
}

func TestRouterSurvivesLoss(t *testing.T) {
	resp := newResponder(t, "s3cret")
	r := startRouter(t, resp, 13, func(c *RouterConfig) {
		c.Sessions = 40
		c.Loss = 0.3
		c.Timeout = 20 * time.Millisecond
		c.Retries = 30
	})
	if err := r.AwaitAllStarted(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if st := r.Stats(); st.Lost == 0 || st.Acked != 40 || st.GivenUp != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestRouterAnswersDisconnectAndCoA(t *testing.T) {
	resp := newResponder(t, "s3cret")
	r := startRouter(t, resp, 14, nil)
	ctx := ctxT(t)
	if err := r.AwaitAllStarted(ctx); err != nil {
		t.Fatal(err)
	}
	client := &coa.Client{Timeout: 300 * time.Millisecond, Retries: -1}
	target := coa.Target{Addr: r.CoAAddr(), Secret: "s3cret", NASIP: r.Addr()}
	sessions := r.Sessions()
	sessOf := func(s SessionInfo) coa.Session {
		return coa.Session{Username: s.Username, AcctSessionID: s.SessionID, FramedIP: s.IP}
	}

	// Rate limit: applied, session stays up.
	res, err := client.ChangeRateLimit(ctx, target, sessOf(sessions[1]), "1M/2M")
	if err != nil || res.Result != coa.ResultACK {
		t.Fatalf("CoA: %+v %v", res, err)
	}
	if s, _ := r.Session(sessions[1].Username); !s.Up || s.RateLimit != "1M/2M" {
		t.Errorf("after CoA: %+v", s)
	}

	// Unknown session: NAK 503. A right user with the wrong IP is unknown too.
	wrong := sessOf(sessions[0])
	wrong.FramedIP = netip.MustParseAddr("100.127.0.1")
	for _, s := range []coa.Session{{Username: "nobody", AcctSessionID: "81000099", FramedIP: wrong.FramedIP}, wrong} {
		res, err = client.Disconnect(ctx, target, s)
		if err != nil || res.Result != coa.ResultNAK || res.ErrorCause != uint32(rfc3576.ErrorCause_Value_SessionContextNotFound) {
			t.Errorf("disconnect %+v: %+v %v", s, res, err)
		}
	}

	// Wrong secret: dropped silently.
	bad := target
	bad.Secret = "wrong"
	if res, _ = client.Disconnect(ctx, bad, sessOf(sessions[0])); res.Result != coa.ResultTimeout {
		t.Errorf("wrong secret: %+v", res)
	}

	// Ignoring CoA: no answer at all.
	r.IgnoreCoA(true)
	if res, _ = client.Disconnect(ctx, target, sessOf(sessions[0])); res.Result != coa.ResultTimeout {
		t.Errorf("ignoring CoA: %+v", res)
	}
	r.IgnoreCoA(false)

	// Disconnect: ACK, then a Stop with Admin-Reset.
	res, err = client.Disconnect(ctx, target, sessOf(sessions[0]))
	if err != nil || res.Result != coa.ResultACK {
		t.Fatalf("disconnect: %+v %v", res, err)
	}
	if err := r.AwaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	stops := resp.packets(status(rfc2866.AcctStatusType_Value_Stop))
	if len(stops) != 1 || rfc2866.AcctTerminateCause_Get(stops[0].p) != rfc2866.AcctTerminateCause_Value_AdminReset ||
		rfc2866.AcctSessionID_GetString(stops[0].p) != sessions[0].SessionID {
		t.Fatalf("Stops after disconnect: %v", stops)
	}
	st := r.Stats()
	if st.CoAACKs != 2 || st.CoANAKs != 2 || st.CoADropped != 1 || st.CoAIgnored != 1 {
		t.Errorf("stats %+v", st)
	}
	if len(r.API().Sessions()) != 2 {
		t.Errorf("API still shows %d sessions", len(r.API().Sessions()))
	}
}

func TestRouterAPIRemoveSendsStop(t *testing.T) {
	resp := newResponder(t, "s3cret")
	r := startRouter(t, resp, 15, nil)
	ctx := ctxT(t)
	if err := r.AwaitAllStarted(ctx); err != nil {
		t.Fatal(err)
	}
	api, err := routeros.DialContext(ctx, r.APIAddr(), "admin", "pw")
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	active, err := api.Run("/ppp/active/print")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.Run("/ppp/active/remove", "=.id="+active.Re[0].Map[".id"]); err != nil {
		t.Fatal(err)
	}
	if err := r.await(ctx, "stop", func() bool { return len(r.sessions) == 2 }); err != nil {
		t.Fatal(err)
	}
	if err := r.AwaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	stops := resp.packets(status(rfc2866.AcctStatusType_Value_Stop))
	if len(stops) != 1 || rfc2865.UserName_GetString(stops[0].p) != active.Re[0].Map["name"] ||
		rfc2866.AcctTerminateCause_Get(stops[0].p) != rfc2866.AcctTerminateCause_Value_AdminReset {
		t.Fatalf("Stops: %v", stops)
	}

	r.SetAPIUnreachable(true)
	if _, err := routeros.DialTimeout(r.APIAddr(), "admin", "pw", time.Second); err == nil {
		t.Error("API reachable while unreachable")
	}
}

func TestRouterReboot(t *testing.T) {
	resp := newResponder(t, "s3cret")
	r := startRouter(t, resp, 16, func(c *RouterConfig) { c.AccountingOnAtBoot = true })
	ctx := ctxT(t)
	if err := r.AwaitAllStarted(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(resp.packets(status(rfc2866.AcctStatusType_Value_AccountingOn))); n != 1 {
		t.Errorf("%d Accounting-On at start", n)
	}
	r.LoseStops(true)
	r.Disconnect(r.Sessions()[0].Username, rfc2866.AcctTerminateCause_Value_LostCarrier)
	r.LoseStops(false)

	r.Reboot(true)
	if err := r.AwaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	if len(r.Sessions()) != 0 || len(r.API().Sessions()) != 0 {
		t.Fatalf("sessions survived the reboot: %v", r.Sessions())
	}
	ons := resp.packets(status(rfc2866.AcctStatusType_Value_AccountingOn))
	if len(ons) != 2 || rfc2865.NASIdentifier_GetString(ons[1].p) != "test-16" {
		t.Fatalf("Accounting-On after reboot: %v", ons)
	}
	if n := len(resp.packets(status(rfc2866.AcctStatusType_Value_Stop))); n != 0 {
		t.Errorf("%d Stops: a reboot and a lost Stop send none", n)
	}
	r.Tick()
	if err := r.AwaitAllStarted(ctx); err != nil {
		t.Fatal(err)
	}
	after := r.Sessions()
	if len(after) != 2 { // the one disconnected stays away
		t.Fatalf("%d sessions after reboot", len(after))
	}
	for _, s := range after {
		if s.SessionID[:2] != "91" {
			t.Errorf("session id %s after reboot: boot digit should move from 8 to 9", s.SessionID)
		}
	}
	if st := r.Stats(); st.LostStops != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestRouterInterimAndChurnOnTheirOwn(t *testing.T) {
	resp := newResponder(t, "s3cret")
	r := startRouter(t, resp, 17, func(c *RouterConfig) {
		c.Sessions = 10
		c.Interim = 100 * time.Millisecond
		c.Churn = 0.5
	})
	resp.await(5*time.Second, func() bool {
		return len(resp.packets(status(rfc2866.AcctStatusType_Value_InterimUpdate))) >= 20 &&
			len(resp.packets(status(rfc2866.AcctStatusType_Value_Stop))) >= 5
	})
	interims := len(resp.packets(status(rfc2866.AcctStatusType_Value_InterimUpdate)))
	stops := len(resp.packets(status(rfc2866.AcctStatusType_Value_Stop)))
	if interims < 20 || stops < 5 {
		t.Fatalf("%d interims and %d stops in 5s at a 100ms interval with churn 0.5", interims, stops)
	}
	if n := len(r.Sessions()); n < 9 || n > 10 {
		t.Errorf("%d sessions up, want the 10 kept up by refill", n)
	}
}
