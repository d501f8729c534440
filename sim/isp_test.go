package sim

import (
	"testing"
	"time"

	"github.com/go-routeros/routeros/v3"
	"github.com/rs/zerolog"
	rad "layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2866"
	"layeh.com/radius/vendors/mikrotik"
)

// TestRouterRedialsAfterOperatorDisconnect: a CPE whose session the
// operator ended dials again after Redial, as the same subscriber with a
// new session id, and no other subscriber takes its place meanwhile.
func TestRouterRedialsAfterOperatorDisconnect(t *testing.T) {
	resp := newResponder(t, "s3cret")
	clock := newClock()
	r := startRouter(t, resp, 31, func(c *RouterConfig) { c.Now = clock.Now; c.Redial = 5 * time.Second })
	ctx := ctxT(t)
	victim := mustDisconnectFirst(ctx, t, r)
	clock.Advance(4 * time.Second)
	r.Tick()
	if s, _ := r.Session(victim.Username); s.Up {
		t.Fatalf("redialed before Redial: %+v", s)
	}
	if got := len(r.Sessions()); got != 2 {
		t.Errorf("%d sessions while the CPE waits to redial, want 2 (no stand-in)", got)
	}
	clock.Advance(2 * time.Second)
	r.Tick()
	if err := r.AwaitAllStarted(ctx); err != nil {
		t.Fatal(err)
	}
	s, _ := r.Session(victim.Username)
	if !s.Up || s.SessionID == victim.SessionID || s.IP != victim.IP || s.MAC != victim.MAC {
		t.Errorf("after redial: %+v, before %+v", s, victim)
	}
	if got := len(r.Sessions()); got != 3 {
		t.Errorf("%d sessions after the redial, want 3", got)
	}
}

// TestRouterWithoutRedialStaysDown keeps the test fleets' behaviour: with
// no Redial a disconnected subscriber stays offline.
func TestRouterWithoutRedialStaysDown(t *testing.T) {
	resp := newResponder(t, "s3cret")
	clock := newClock()
	r := startRouter(t, resp, 32, func(c *RouterConfig) { c.Now = clock.Now })
	victim := mustDisconnectFirst(ctxT(t), t, r)
	clock.Advance(time.Hour)
	r.Tick()
	if s, _ := r.Session(victim.Username); s.Up || len(r.Sessions()) != 2 {
		t.Errorf("without Redial: %+v, %d sessions", s, len(r.Sessions()))
	}
}

// TestRouterPlans: plans become Mikrotik-Group on a router that sends it,
// /ppp/secret profiles on one that does not, and cap the rates.
func TestRouterPlans(t *testing.T) {
	plans := []Plan{{Name: "home-20", RateLimit: "5M/20M"}, {Name: "fiber-500", RateLimit: "250M/500M"}}
	if _, err := New(RouterConfig{Name: "x", Addr: DefaultBaseIP(), Secret: "s", Server: "127.0.0.1:1",
		Plans: []Plan{{Name: "bad", RateLimit: "fast"}}}, zerolog.Nop()); err == nil {
		t.Error("a plan with an unreadable rate limit was accepted")
	}
	resp := newResponder(t, "s3cret")
	ctx := ctxT(t)
	withGroup := startRouter(t, resp, 33, func(c *RouterConfig) { c.Plans = plans; c.GroupAttr = true })
	withSecrets := startRouter(t, resp, 34, func(c *RouterConfig) { c.Plans = plans })
	for _, r := range []*Router{withGroup, withSecrets} {
		if err := r.AwaitAllStarted(ctx); err != nil {
			t.Fatal(err)
		}
	}
	groups := map[string]string{}
	for _, rc := range resp.packets(status(rfc2866.AcctStatusType_Value_Start)) {
		g, err := mikrotik.MikrotikGroup_LookupString(rc.p)
		ident := rfc2865.NASIdentifier_GetString(rc.p)
		switch {
		case ident == withSecrets.Name() && err != rad.ErrNoAttribute:
			t.Errorf("%s sent Mikrotik-Group %q (%v)", ident, g, err)
		case ident == withGroup.Name():
			groups[rfc2865.UserName_GetString(rc.p)] = g
		}
	}
	if groups["u0001@"+withGroup.Name()] != "home-20" || groups["u0002@"+withGroup.Name()] != "fiber-500" || len(groups) != 3 {
		t.Errorf("Mikrotik-Group per user: %v", groups)
	}
	api, err := routeros.DialContext(ctx, withSecrets.APIAddr(), "admin", "pw")
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	rep, err := api.RunContext(ctx, "/ppp/secret/print")
	if err != nil {
		t.Fatal(err)
	}
	profiles := map[string]string{}
	for _, re := range rep.Re {
		profiles[re.Map["name"]] = re.Map["profile"]
	}
	if profiles["u0001@"+withSecrets.Name()] != "home-20" || profiles["u0003@"+withSecrets.Name()] != "home-20" || profiles["u0002@"+withSecrets.Name()] != "fiber-500" {
		t.Errorf("/ppp/secret profiles: %v", profiles)
	}
}

// TestDailyCurve: the compressed day peaks in the evening and is quiet
// twelve hours later; without a day length rates are flat.
func TestDailyCurve(t *testing.T) {
	day := 24 * time.Minute // one "hour" per minute
	at := func(h int) time.Time { return time.Unix(0, 0).Add(time.Duration(h) * time.Minute) }
	if f := dayFactor(at(21), day); f < 0.99 {
		t.Errorf("evening factor %v", f)
	}
	if f := dayFactor(at(9), day); f > 0.11 {
		t.Errorf("morning factor %v", f)
	}
	if f := dayFactor(at(9), 0); f != 1 {
		t.Errorf("flat factor %v", f)
	}
	tr := traffic{downRate: 1000, at: at(9), day: day, burst: 1}
	tr.advance(at(9).Add(time.Second))
	quiet := tr.out
	tr = traffic{downRate: 1000, at: at(21), day: day, burst: 1}
	tr.advance(at(21).Add(time.Second))
	if tr.out < 5*quiet {
		t.Errorf("evening second %v bytes, morning %v", tr.out, quiet)
	}
}
