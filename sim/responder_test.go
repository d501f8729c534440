package sim

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	rad "layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2866"
)

// responder is a tiny accounting server for the simulator's own tests: it
// verifies each request with the secret, records it and answers, unless
// drop says to stay silent. The end-to-end test in cmd/nettportal uses the
// real server instead.
type responder struct {
	t      testing.TB
	conn   *net.UDPConn
	secret []byte

	mu      sync.Mutex
	drop    func(p *rad.Packet, copyNo int) bool
	got     []received
	seen    map[string]int // copies per (session id, status)
	changed chan struct{}
}

type received struct {
	p    *rad.Packet
	from netip.AddrPort
	at   time.Time
}

func newResponder(t testing.TB, secret string) *responder {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 1, 1)})
	if err != nil {
		t.Fatal(err)
	}
	r := &responder{t: t, conn: conn, secret: []byte(secret), seen: map[string]int{}, changed: make(chan struct{})}
	done := make(chan struct{})
	go r.serve(done)
	t.Cleanup(func() { conn.Close(); <-done })
	return r
}

func (r *responder) addr() string { return r.conn.LocalAddr().String() }

func (r *responder) serve(done chan struct{}) {
	defer close(done)
	buf := make([]byte, 4096)
	for {
		n, from, err := r.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		raw := buf[:n]
		if !rad.IsAuthenticRequest(raw, r.secret) {
			continue
		}
		p, err := rad.Parse(raw, r.secret)
		if err != nil {
			continue
		}
		key := rfc2866.AcctSessionID_GetString(p) + "/" + rfc2866.AcctStatusType_Get(p).String()
		r.mu.Lock()
		r.seen[key]++
		drop := r.drop != nil && r.drop(p, r.seen[key])
		r.got = append(r.got, received{p: p, from: from, at: time.Now()})
		close(r.changed)
		r.changed = make(chan struct{})
		r.mu.Unlock()
		if drop {
			continue
		}
		out, err := p.Response(rad.CodeAccountingResponse).Encode()
		if err != nil {
			r.t.Error(err)
			continue
		}
		r.conn.WriteToUDPAddrPort(out, from)
	}
}

func (r *responder) setDrop(f func(p *rad.Packet, copyNo int) bool) {
	r.mu.Lock()
	r.drop = f
	r.mu.Unlock()
}

// dropTenthOnce makes r drop every tenth packet the first time it sees
// it, so that one is answered only when retransmitted. A packet is known
// by its router, session, type and session time: r's own copy count is
// per session and type only, which routers with equal session ids and
// repeated interims share.
func (r *responder) dropTenthOnce() {
	n := 0
	seen := map[string]int{}
	r.setDrop(func(p *rad.Packet, _ int) bool {
		key := fmt.Sprint(rfc2865.NASIPAddress_Get(p), rfc2866.AcctSessionID_GetString(p), rfc2866.AcctStatusType_Get(p), rfc2866.AcctSessionTime_Get(p))
		seen[key]++
		if seen[key] > 1 {
			return false
		}
		n++
		return n%10 == 0
	})
}

// lastPackets is the newest packet r received of each session, keyed by
// its source address and Acct-Session-Id ("127.0.1.51/8100000a"); check
// sees every packet received first.
func (r *responder) lastPackets(check func(received)) map[string]*rad.Packet {
	last := map[string]*rad.Packet{}
	for _, g := range r.packets(nil) {
		check(g)
		last[g.from.Addr().String()+"/"+rfc2866.AcctSessionID_GetString(g.p)] = g.p
	}
	return last
}

// packets returns what was received so far that matches f.
func (r *responder) packets(f func(*rad.Packet) bool) []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []received
	for _, g := range r.got {
		if f == nil || f(g.p) {
			out = append(out, g)
		}
	}
	return out
}

// await waits until ok holds of what was received, checking it at every
// packet; false when it still does not hold after within.
func (r *responder) await(within time.Duration, ok func() bool) bool {
	timeout := time.After(within)
	for {
		r.mu.Lock()
		changed := r.changed
		r.mu.Unlock()
		if ok() {
			return true
		}
		select {
		case <-changed:
		case <-timeout:
			return ok()
		}
	}
}

func status(s rfc2866.AcctStatusType) func(*rad.Packet) bool {
	return func(p *rad.Packet) bool { return rfc2866.AcctStatusType_Get(p) == s }
}
