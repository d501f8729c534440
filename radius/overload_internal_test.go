package radius

import (
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	rad "layeh.com/radius"
	"layeh.com/radius/rfc2866"
)

func TestFingerprintIgnoresOnlyAcctDelayTime(t *testing.T) {
	secret := []byte("s3cret")
	encode := func(id byte, sid string, delay uint32) []byte {
		p := rad.New(rad.CodeAccountingRequest, secret)
		p.Identifier = id
		rfc2866.AcctSessionID_SetString(p, sid)
		rfc2866.AcctStatusType_Set(p, rfc2866.AcctStatusType_Value_InterimUpdate)
		rfc2866.AcctDelayTime_Set(p, rfc2866.AcctDelayTime(delay))
		raw, err := p.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	m := newShedMemory(time.Second, 16, time.Now())
	src := netip.MustParseAddrPort("10.0.0.1:1700")
	orig := m.fingerprint(src, encode(7, "a", 0))
	if got := m.fingerprint(src, encode(7, "a", 3)); got != orig {
		t.Error("a retransmission with a larger Acct-Delay-Time has another fingerprint")
	}
	for name, fp := range map[string]uint64{
		"another Identifier":  m.fingerprint(src, encode(8, "a", 0)),
		"another session":     m.fingerprint(src, encode(7, "b", 0)),
		"another source port": m.fingerprint(netip.MustParseAddrPort("10.0.0.1:1701"), encode(7, "a", 0)),
	} {
		if fp == orig {
			t.Errorf("%s has the same fingerprint", name)
		}
	}
	// Lengths that do not fit are hashed, not trusted.
	short := encode(7, "a", 0)
	short[3] = 200
	_ = m.fingerprint(src, short)
}

func TestShedMemoryForgetsAfterTwoWindowsButKeepsWaitingTickets(t *testing.T) {
	start := time.Now()
	m := newShedMemory(time.Second, 2, start)
	if m.active() {
		t.Fatal("active while empty")
	}
	m.shed(1, nil)
	waiting := &retryTicket{}
	if m.claim(2, waiting) != nil {
		t.Fatal("claim found a ticket in an empty memory")
	}
	m.shed(3, nil) // over max: not remembered
	if _, known := m.lookup(3); known {
		t.Error("remembered past its size bound")
	}
	m.expire(start.Add(time.Second))
	if _, known := m.lookup(1); !known {
		t.Error("forgot a shed packet after one window")
	}
	m.expire(start.Add(2 * time.Second))
	if _, known := m.lookup(1); known {
		t.Error("remembered a shed packet after two windows")
	}
	if got, _ := m.lookup(2); got != waiting {
		t.Error("forgot a ticket still in the retry queue")
	}
	if other := m.claim(2, &retryTicket{}); other != waiting {
		t.Error("a second claim did not find the waiting ticket")
	}
	waiting.finish()
	m.forget(2, waiting)
	if m.active() {
		t.Error("active after everything was forgotten")
	}
}

// The tighter budget holds for the router whose packets waited past
// MaxQueueDelay or stood behind the batches, not for another router whose
// packets are taken in turn ahead of that backlog: one router's storm
// does not halve every router's budget.
func TestOverloadBudgetIsTheBusyRoutersOwn(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	s := &Server{Now: func() time.Time { return now }}
	s.defaults()
	s.dedupe = newDedupeCache(s.DedupeWindow, now)
	s.shedMem = newShedMemory(time.Second, 64, now)
	s.fresh = newFreshQueue(16)
	tight, normal := s.OverloadQueueDelay, s.MaxQueueDelay
	type router struct{ queued, overloadUntil *atomic.Int64 }
	busy := router{new(atomic.Int64), new(atomic.Int64)}
	quiet := router{new(atomic.Int64), new(atomic.Int64)}
	waited := func(r router, d time.Duration) *item {
		r.queued.Add(1)
		it := &item{queued: r.queued, overloadUntil: r.overloadUntil, at: now.Add(-d),
			addr: netip.MustParseAddrPort("127.0.0.11:1000")}
		it.rec.Raw = make([]byte, 20) // a header, for the shed packet's fingerprint
		return it
	}
	between := (tight + normal) / 2

	if !s.admit(waited(quiet, between), now) || !s.admit(waited(busy, between), now) {
		t.Fatalf("a packet that waited %s was shed with no overload (budget %s)", between, normal)
	}
	if s.admit(waited(busy, normal+time.Millisecond), now) {
		t.Fatalf("the busy router's packet that waited past %s was admitted", normal)
	}
	if s.admit(waited(busy, between), now) {
		t.Fatalf("overloaded: the busy router's packet that waited %s was admitted, its budget is %s", between, tight)
	}
	if !s.admit(waited(quiet, between), now) {
		t.Fatalf("the quiet router's packet that waited %s was shed: the busy router's overload halved its budget", between)
	}
	if got := s.budget(now); got != tight {
		t.Fatalf("the listener's budget %s, want %s (its retries wait while any router is overloaded)", got, tight)
	}

	// A standing queue makes overloaded the routers whose packets stand in
	// it, and only those.
	now = now.Add(overloadHold*normal + time.Millisecond)
	if got := s.budgetOf(waited(busy, 0), now); got != normal {
		t.Fatalf("after the hold: the busy router's budget %s, want %s", got, normal)
	}
	s.fresh.push(*waited(busy, 0))
	for end := now.Add(normal + normal/5); now.Before(end); now = now.Add(normal / 10) {
		s.noteStandingQueue()
	}
	s.fresh.push(*waited(quiet, 0)) // in line at the cut, but taken in turn
	s.noteStandingQueue()
	if got := s.budgetOf(waited(busy, 0), now); got != tight {
		t.Fatalf("a router standing behind every batch for longer than %s: budget %s, want %s", normal, got, tight)
	}
	if got := s.budgetOf(waited(quiet, 0), now); got != normal {
		t.Fatalf("a router with nothing standing: budget %s, want %s", got, normal)
	}
}

// A retransmission of a shed packet goes to the quiet retry queue only
// from a router with little queued and few retransmissions waiting while
// others have packets queued: not from the busy router, not from one that
// has many retransmissions waiting (it sent a burst), and never when one
// router is alone.
func TestQuietRetryQueueIsForQuietRoutersOnly(t *testing.T) {
	s := &Server{}
	s.defaults()
	s.fresh = newFreshQueue(1000)
	s.retry, s.quietRetry = newRetryQueue(100), newRetryQueue(100)
	entry := func() *routerEntry {
		return &routerEntry{queued: new(atomic.Int64), retried: new(atomic.Int64), overloadUntil: new(atomic.Int64)}
	}
	queue := func(e *routerEntry, n int) {
		for range n {
			e.queued.Add(1)
			s.fresh.push(item{queued: e.queued, overloadUntil: e.overloadUntil})
		}
	}
	busy, quiet, bursty := entry(), entry(), entry()
	queue(quiet, 1)
	if s.retryQueueOf(quiet) != s.retry {
		t.Fatal("a router alone took the quiet retry queue")
	}
	queue(busy, 3*quietAllowance)
	if s.retryQueueOf(quiet) != s.quietRetry {
		t.Fatal("a quiet router with one packet queued beside a busy one took the retry queue")
	}
	if s.retryQueueOf(busy) != s.retry {
		t.Fatal("the busy router took the quiet retry queue")
	}
	bursty.retried.Store(quietAllowance)
	if s.retryQueueOf(bursty) != s.retry {
		t.Fatalf("a router with %d retransmissions waiting took the quiet retry queue", quietAllowance)
	}
}
