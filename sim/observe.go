package sim

import (
	"context"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/nettportal/nettportal"
)

// AckedPacket is one acknowledged accounting request.
type AckedPacket struct {
	Router       string
	NASIP        netip.Addr
	Username     string // empty for Accounting-On
	SessionID    string
	Status       nettportal.StatusType
	InputOctets  uint64
	OutputOctets uint64
	SessionTime  uint32 // seconds
	EventTime    time.Time
	Cause        string // Acct-Terminate-Cause of a Stop
	// Attempts is the number of datagrams it took (1 without retransmit).
	Attempts int
}

// SessionInfo is a session as the simulated router has it.
type SessionInfo struct {
	Username  string
	SessionID string // Acct-Session-Id, e.g. "8100000c"
	NASPort   uint32 // the same number as SessionID
	IP        netip.Addr
	MAC       string // Calling-Station-Id, upper case
	Interface string // NAS-Port-Id, the PPPoE server interface
	Started   time.Time
	// The counters as of the last interim (or Stop): what the last
	// accounting packet reported and what the fake API shows.
	SessionTime   uint32
	InputOctets   uint64 // upload, interface rx-byte
	OutputOctets  uint64 // download, interface tx-byte
	InputPackets  uint32
	OutputPackets uint32
	// RateLimit is the Mikrotik-Rate-Limit applied by the last CoA.
	RateLimit string
	Up        bool
	// StartAcked reports that the server acknowledged the Start.
	StartAcked bool
	// LastAcked is the newest acknowledged packet of the session.
	LastAcked AckedPacket
}

// Stats counts what a router did.
type Stats struct {
	Requests      uint64 // accounting requests made (Start, Interim, Stop, On)
	Transmissions uint64 // datagrams sent or lost on the way, retransmissions included
	Retransmits   uint64
	Acked         uint64
	Lost          uint64 // datagrams the simulated loss ate, both directions
	GivenUp       uint64 // requests without an answer after every retry
	Abandoned     uint64 // requests in flight when the router rebooted or closed
	LostStops     uint64 // Stops never sent (LoseStops)
	Stale         uint64 // answers matching nothing in flight, or not authentic
	CoAACKs       uint64
	CoANAKs       uint64
	CoAIgnored    uint64 // requests ignored by IgnoreCoA
	CoADropped    uint64 // requests dropped for a bad authenticator or Message-Authenticator
}

// counters lists every field of s, for what is done to each of them alike.
func (s *Stats) counters() []*uint64 {
	return []*uint64{&s.Requests, &s.Transmissions, &s.Retransmits, &s.Acked, &s.Lost, &s.GivenUp, &s.Abandoned,
		&s.LostStops, &s.Stale, &s.CoAACKs, &s.CoANAKs, &s.CoAIgnored, &s.CoADropped}
}

func (s *Stats) add(o Stats) {
	sum := s.counters()
	for i, c := range o.counters() {
		*sum[i] += *c
	}
}

type stats struct {
	requests, transmissions, retransmits, acked, lost, givenUp, abandoned, lostStops, stale atomic.Uint64
	coaACKs, coaNAKs, coaIgnored, coaDropped                                                atomic.Uint64
}

func (s *session) info() SessionInfo {
	return SessionInfo{
		Username: s.sub.name, SessionID: FormatSessionID(s.id), NASPort: s.id, IP: s.sub.ip, MAC: s.sub.mac,
		Interface: s.sub.iface, Started: s.start, SessionTime: s.sessionTime, InputOctets: s.in, OutputOctets: s.out,
		InputPackets: packetsOf(s.in, avgUpPacket), OutputPackets: packetsOf(s.out, avgDownPacket),
		RateLimit: s.rateLimit, Up: s.up, StartAcked: s.startAcked, LastAcked: s.lastAcked,
	}
}

// Sessions returns the sessions that are up, ordered by username.
func (r *Router) Sessions() []SessionInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]SessionInfo, 0, len(r.sessions))
	for _, sub := range r.subs {
		if s, ok := r.sessions[sub.name]; ok {
			out = append(out, s.info())
		}
	}
	return out
}

// Session returns the subscriber's current session, or its last one (Up
// false) when it is offline; false when the router never had that user.
func (r *Router) Session(username string) (SessionInfo, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.sessions[username]; ok {
		return s.info(), true
	}
	if s, ok := r.ended[username]; ok {
		return s.info(), true
	}
	return SessionInfo{}, false
}

// Stats returns the router's counters.
func (r *Router) Stats() Stats {
	return Stats{
		Requests: r.st.requests.Load(), Transmissions: r.st.transmissions.Load(), Retransmits: r.st.retransmits.Load(),
		Acked: r.st.acked.Load(), Lost: r.st.lost.Load(), GivenUp: r.st.givenUp.Load(), Abandoned: r.st.abandoned.Load(),
		LostStops: r.st.lostStops.Load(), Stale: r.st.stale.Load(), CoAACKs: r.st.coaACKs.Load(),
		CoANAKs: r.st.coaNAKs.Load(), CoAIgnored: r.st.coaIgnored.Load(), CoADropped: r.st.coaDropped.Load(),
	}
}

// await waits until cond, evaluated under the router's lock, holds.
func (r *Router) await(ctx context.Context, what string, cond func() bool) error {
	for {
		r.mu.Lock()
		ok, ch, closed := cond(), r.notify, r.closed
		r.mu.Unlock()
		if ok {
			return nil
		}
		if closed {
			return fmt.Errorf("router %s: await %s: router closed", r.cfg.Name, what)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("router %s: await %s: %w", r.cfg.Name, what, ctx.Err())
		}
	}
}

// AwaitAcked waits until n accounting requests in total have been
// acknowledged.
func (r *Router) AwaitAcked(ctx context.Context, n uint64) error {
	return r.await(ctx, fmt.Sprintf("%d acks", n), func() bool { return r.st.acked.Load() >= n })
}

// AwaitAllStarted waits until the Start of every session that is up has
// been acknowledged.
func (r *Router) AwaitAllStarted(ctx context.Context) error {
	return r.await(ctx, "all Starts acknowledged", func() bool {
		for _, s := range r.sessions {
			if !s.startAcked {
				return false
			}
		}
		return len(r.sessions) >= r.target
	})
}

// AwaitIdle waits until no accounting request is in flight (each was
// acknowledged, given up or abandoned).
func (r *Router) AwaitIdle(ctx context.Context) error {
	return r.await(ctx, "idle", func() bool { return r.acct.outstanding.Load() == 0 })
}
