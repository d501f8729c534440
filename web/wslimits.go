package web

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/nettportal/nettportal"
)

// WebSocket limit defaults (Server.WSPerUser and the others).
const (
	defaultWSPerUser       = 50
	defaultWSPerAddr       = 200
	defaultWSSubscribeRate = 5
	// Each snapshot is two queries (the page and its totals): two at once
	// leave most of the general pool (8) to the API and heavy queries, and
	// most of a small machine's CPU to accounting.
	defaultWSSnapshots = 2
)

// WebSocket limit reasons, as counted by WSLimited. Sockets over the
// first three are closed; WSLimitSnapshot counts subscribes that waited
// for a snapshot query to free, WSLimitPushRate pushes that delayed the
// next past WSMinInterval to keep within WSPushRate (the sockets stay
// open: a busy page is slow, not broken).
const (
	WSLimitUser      = "per_user"
	WSLimitAddr      = "per_address"
	WSLimitSubscribe = "subscribe_rate"
	WSLimitSnapshot  = "snapshot_busy"
	WSLimitPushRate  = "push_rate"
)

// wsLimits bounds what one user, one address and one socket may ask of
// the hub, so that a script opening thousands of sockets on one viewer
// token slows only itself: the live page can be slow under abuse,
// accounting never is.
type wsLimits struct {
	perUser, perAddr int
	rate             float64
	snapshots        chan struct{}

	mu    sync.Mutex
	users map[string]int
	addrs map[string]int

	user, addr, subscribe, snapshot, pushRate atomic.Uint64

	// flights are the subscribe snapshots being queried, by view key:
	// a subscribe to a view being queried waits for that answer instead of
	// taking a slot of its own, so a thousand sockets opening the same
	// view cost one query.
	flightMu sync.Mutex
	flights  map[string]*snapshotFlight
}

// snapshotFlight is one snapshot query; body and err are set before done
// is closed.
type snapshotFlight struct {
	started time.Time
	done    chan struct{}
	body    []byte
	err     error
}

func newWSLimits(s *Server) *wsLimits {
	l := &wsLimits{perUser: s.WSPerUser, perAddr: s.WSPerAddr, rate: float64(s.WSSubscribesPerSecond),
		users: map[string]int{}, addrs: map[string]int{}, flights: map[string]*snapshotFlight{}}
	if l.perUser <= 0 {
		l.perUser = defaultWSPerUser
	}
	if l.perAddr <= 0 {
		l.perAddr = defaultWSPerAddr
	}
	if l.rate <= 0 {
		l.rate = defaultWSSubscribeRate
	}
	n := s.WSSnapshotQueries
	if n <= 0 {
		n = defaultWSSnapshots
	}
	l.snapshots = make(chan struct{}, n)
	return l
}

// remoteHost is the address part of r.RemoteAddr.
func remoteHost(remoteAddr string) string {
	if host, _, err := net.SplitHostPort(remoteAddr); err == nil {
		return host
	}
	return remoteAddr
}

// admit counts a new socket of user from addr; over a bound it returns
// the reason and the close text, and counts nothing.
func (l *wsLimits) admit(user, addr string) (reason, text string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.users[user] >= l.perUser:
		l.user.Add(1)
		return WSLimitUser, "more than " + strconv.Itoa(l.perUser) + " live views open for this user: close some"
	case l.addrs[addr] >= l.perAddr:
		l.addr.Add(1)
		return WSLimitAddr, "more than " + strconv.Itoa(l.perAddr) + " live views open from this address: close some"
	}
	l.users[user]++
	l.addrs[addr]++
	return "", ""
}

// release forgets an admitted socket.
func (l *wsLimits) release(user, addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.users[user]--; l.users[user] <= 0 {
		delete(l.users, user)
	}
	if l.addrs[addr]--; l.addrs[addr] <= 0 {
		delete(l.addrs, addr)
	}
}

// wsBucket is one socket's subscribe budget: rate per second, bursts of
// twice that.
type wsBucket struct {
	tokens float64
	at     time.Time
}

func (b *wsBucket) allow(rate float64, now time.Time) bool {
	burst := 2 * rate
	if b.at.IsZero() {
		b.tokens = burst
	} else {
		b.tokens = min(burst, b.tokens+now.Sub(b.at).Seconds()*rate)
	}
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// closeLimited ends a socket over a limit with a close frame saying why.
// 1008 (policy violation) for what the client asks too much of; 1013
// (try again later) when the server is busy.
func closeLimited(conn *websocket.Conn, code int, text string) {
	conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(time.Second)) //nolint:errcheck // closing anyway
	conn.Close()
}

// WSLimited returns, for metrics, the sockets closed for a limit by reason
// (WSLimitUser, WSLimitAddr, WSLimitSubscribe), the subscribes that
// waited for a snapshot query (WSLimitSnapshot) and the pushes that
// slowed the next (WSLimitPushRate).
func (s *Server) WSLimited() map[string]uint64 {
	s.init()
	l := s.hub.limits
	return map[string]uint64{WSLimitUser: l.user.Load(), WSLimitAddr: l.addr.Load(),
		WSLimitSubscribe: l.subscribe.Load(), WSLimitSnapshot: l.snapshot.Load(), WSLimitPushRate: l.pushRate.Load()}
}

// admit applies the per-user and per-address bounds to a new socket; a
// socket over one is closed with the reason and admit returns false.
func (h *hub) admit(c *wsClient, r *http.Request) bool {
	user, addr := c.user.Actor(), remoteHost(r.RemoteAddr)
	if reason, text := h.limits.admit(user, addr); reason != "" {
		h.s.Log.Info().Str("user", user).Str("address", addr).Str("limit", reason).Msg("websocket refused: over a limit")
		closeLimited(c.conn, websocket.ClosePolicyViolation, text)
		return false
	}
	c.limitUser, c.limitAddr = user, addr
	return true
}

// allowSubscribe applies the socket's subscribe rate: over it the socket
// is closed with the reason and allowSubscribe returns false.
func (h *hub) allowSubscribe(c *wsClient) bool {
	l := h.limits
	if c.subs.allow(l.rate, time.Now()) {
		return true
	}
	l.subscribe.Add(1)
	h.s.Log.Info().Str("user", c.limitUser).Str("limit", WSLimitSubscribe).Msg("websocket closed: over a limit")
	closeLimited(c.conn, websocket.ClosePolicyViolation,
		"more than "+strconv.FormatFloat(l.rate, 'g', -1, 64)+" subscribes per second: subscribe when the view changes")
	h.drop(c)
	return false
}

// queueSubscribe makes m the socket's pending subscribe, replacing one not
// served yet (the page shows only the latest view it asked for), and wakes
// the socket's subscribeLoop.
func (h *hub) queueSubscribe(c *wsClient, m subscribeMsg) {
	c.mu.Lock()
	c.pending = &m
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default: // already woken: it will find m
	}
}

// subscribeLoop serves c's subscribes, each time the latest pending one: its
// first snapshot when a hub-wide snapshot slot is free (or the answer of
// the same view's query already running), then it becomes the socket's
// view. The socket reads on meanwhile, so a subscribe waiting for a slot
// is replaced by a newer one rather than queued behind it; no socket is
// closed because the slots are busy.
func (h *hub) subscribeLoop(c *wsClient) {
	for {
		select {
		case <-c.done:
			return
		case <-c.wake:
		}
		for {
			c.mu.Lock()
			m := c.pending
			c.mu.Unlock()
			if m == nil {
				break
			}
			// Any running query of the view will do: it began before the
			// subscribe at most by one query's time, and the pushes after
			// it bring what changed since.
			body, err := h.sharedSnapshot(*m, m.key(), time.Time{}, c.done, c.wake)
			if errors.Is(err, errSuperseded) {
				continue
			}
			if errors.Is(err, errWSClosed) {
				return
			}
			c.mu.Lock()
			if c.pending != m {
				c.mu.Unlock()
				continue // a newer subscribe came while this one was queried
			}
			c.pending = nil
			key := m.key()
			if err == nil {
				c.sub, c.key = m, key
			}
			c.mu.Unlock()
			if err != nil {
				msg := "internal error"
				if errors.Is(err, nettportal.ErrInvalid) || errors.Is(err, nettportal.ErrBusy) {
					msg = publicMessage(err)
				} else {
					h.s.Log.Warn().Err(err).Msg("websocket subscribe")
				}
				h.sendJSON(c, map[string]string{"type": "error", "error": msg})
				break
			}
			h.deliver(c, key, body)
			break
		}
	}
}

var (
	// errSuperseded: a newer subscribe of the socket came while this one
	// waited.
	errSuperseded = errors.New("superseded by a newer subscribe")
	// errWSClosed: the socket closed while its subscribe waited.
	errWSClosed = errors.New("websocket closed")
)

// sharedSnapshot queries m's view (key) under the hub-wide bound on
// snapshot queries: it shares the answer of the same view's query when one
// that started at notBefore or later is running (a subscribe's or a
// push's), else runs one when a slot frees. It waits as long as that
// takes, unless done closes (errWSClosed) or superseded receives
// (errSuperseded); a nil channel never does.
func (h *hub) sharedSnapshot(m subscribeMsg, key string, notBefore time.Time, done, superseded <-chan struct{}) ([]byte, error) {
	l := h.limits
	waited := false
	fresh := func() *snapshotFlight {
		l.flightMu.Lock()
		defer l.flightMu.Unlock()
		if f := l.flights[key]; f != nil && !f.started.Before(notBefore) {
			return f
		}
		return nil
	}
	for {
		if f := fresh(); f != nil {
			select {
			case <-f.done:
				return f.body, f.err
			case <-done:
				return nil, errWSClosed
			case <-superseded:
				return nil, errSuperseded
			}
		}
		select {
		case l.snapshots <- struct{}{}:
		default:
			if !waited && superseded != nil {
				waited = true
				l.snapshot.Add(1) // a subscribe's wait; the push's are not counted
			}
			select {
			case l.snapshots <- struct{}{}:
			case <-done:
				return nil, errWSClosed
			case <-superseded:
				return nil, errSuperseded
			}
		}
		l.flightMu.Lock()
		if f := l.flights[key]; f != nil && !f.started.Before(notBefore) {
			// Started by another asker while this one waited: share it.
			l.flightMu.Unlock()
			<-l.snapshots
			continue
		}
		// One too old for this asker (a push after a change) is replaced
		// for those who come next; its own askers still get its answer.
		f := &snapshotFlight{started: time.Now(), done: make(chan struct{})}
		l.flights[key] = f
		l.flightMu.Unlock()
		// Not the asker's context: others may share this answer.
		f.body, f.err = h.snapshot(context.Background(), m)
		<-l.snapshots
		l.flightMu.Lock()
		if l.flights[key] == f {
			delete(l.flights, key)
		}
		l.flightMu.Unlock()
		close(f.done)
		return f.body, f.err
	}
}
