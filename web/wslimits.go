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
)

// WebSocket limit defaults (Server.WSPerUser and the others).
const (
	defaultWSPerUser       = 50
	defaultWSPerAddr       = 200
	defaultWSSubscribeRate = 5
	defaultWSSnapshots     = 4
	// wsSnapshotWait is how long a subscribe waits for a snapshot slot
	// before its socket is closed as busy.
	wsSnapshotWait = 2 * time.Second
)

// WebSocket limit reasons, as counted by WSLimited.
const (
	WSLimitUser      = "per_user"
	WSLimitAddr      = "per_address"
	WSLimitSubscribe = "subscribe_rate"
	WSLimitSnapshot  = "snapshot_busy"
)

var errSnapshotBusy = errors.New("too many live views are being queried")

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

	user, addr, subscribe, snapshot atomic.Uint64
}

func newWSLimits(s *Server) *wsLimits {
	l := &wsLimits{perUser: s.WSPerUser, perAddr: s.WSPerAddr, rate: float64(s.WSSubscribesPerSecond),
		users: map[string]int{}, addrs: map[string]int{}}
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

// snapshotSlot takes one of the hub's snapshot-query slots, waiting at
// most wait (or until ctx ends).
func (l *wsLimits) snapshotSlot(ctx context.Context, wait time.Duration) (func(), error) {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case l.snapshots <- struct{}{}:
		return func() { <-l.snapshots }, nil
	case <-t.C:
		return nil, errSnapshotBusy
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// closeLimited ends a socket over a limit with a close frame saying why.
// 1008 (policy violation) for what the client asks too much of; 1013
// (try again later) when the server is busy.
func closeLimited(conn *websocket.Conn, code int, text string) {
	conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(time.Second)) //nolint:errcheck // closing anyway
	conn.Close()
}

// WSLimited returns the sockets closed for a limit, by reason (WSLimitUser,
// WSLimitAddr, WSLimitSubscribe, WSLimitSnapshot), for metrics.
func (s *Server) WSLimited() map[string]uint64 {
	s.init()
	l := s.hub.limits
	return map[string]uint64{WSLimitUser: l.user.Load(), WSLimitAddr: l.addr.Load(),
		WSLimitSubscribe: l.subscribe.Load(), WSLimitSnapshot: l.snapshot.Load()}
}

// errWSLimited: the socket was closed for a limit.
var errWSLimited = errors.New("websocket closed for a limit")

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

// subscribeSnapshot is a subscribe's first snapshot under the limits: the
// socket's subscribe rate and a hub-wide snapshot slot. Over either the
// socket is closed with the reason and errWSLimited returned.
func (h *hub) subscribeSnapshot(ctx context.Context, c *wsClient, m subscribeMsg) ([]byte, error) {
	l := h.limits
	if !c.subs.allow(l.rate, time.Now()) {
		l.subscribe.Add(1)
		h.s.Log.Info().Str("user", c.limitUser).Str("limit", WSLimitSubscribe).Msg("websocket closed: over a limit")
		closeLimited(c.conn, websocket.ClosePolicyViolation,
			"more than "+strconv.FormatFloat(l.rate, 'g', -1, 64)+" subscribes per second: subscribe when the view changes")
		h.drop(c)
		return nil, errWSLimited
	}
	release, err := l.snapshotSlot(ctx, wsSnapshotWait)
	if errors.Is(err, errSnapshotBusy) {
		l.snapshot.Add(1)
		h.s.Log.Info().Str("user", c.limitUser).Str("limit", WSLimitSnapshot).Msg("websocket closed: over a limit")
		closeLimited(c.conn, websocket.CloseTryAgainLater, "server busy: too many live views are being queried; reconnect in a moment")
		h.drop(c)
		return nil, errWSLimited
	}
	if err != nil {
		return nil, err
	}
	defer release()
	return h.snapshot(ctx, m)
}
