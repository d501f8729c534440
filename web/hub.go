package web

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/nettportal/nettportal"
)

// WebSocket protocol (web/ui codes against it):
//
//	client -> server  {"type":"subscribe","router":"","q":"","sort":"started_at","order":"desc","limit":50,"offset":0}
//	server -> client  {"type":"hello","user":"alice","role":"operator"}  once, first
//	                  {"type":"sessions","seq":N,"offset":o,"limit":l,"total":n,"sessions":[...],"stats":{...},"server_time":"RFC3339"}
//	                  {"type":"error","error":"message"}  a subscribe the server cannot serve
//
// A snapshot of the client's view follows each subscribe at once, then
// every change (at most one per WSMinInterval) and every WSRefresh.
// "offset" and "limit" repeat the subscribe's: a page that scrolls through all rows
// subscribes to the window it shows and places each snapshot where it
// belongs even when it answers an older subscribe.

const (
	wsPingEvery = 20 * time.Second
	// wsReadTimeout: a client that answers no ping for this long is gone.
	wsReadTimeout = 60 * time.Second
	wsMaxMessage  = 64 << 10
)

type subscribeMsg struct {
	Type   string `json:"type"`
	Router string `json:"router"`
	Q      string `json:"q"`
	Sort   string `json:"sort"`
	Order  string `json:"order"`
	Limit  int    `json:"limit"`
	Offset int    `json:"offset"`
}

// key identifies a view: clients with equal keys share one query.
func (m subscribeMsg) key() string {
	b, _ := json.Marshal([]any{m.Router, strings.TrimSpace(m.Q), m.Sort, strings.ToLower(m.Order), m.Limit, m.Offset})
	return string(b)
}

func (m subscribeMsg) filter() nettportal.SessionFilter {
	return nettportal.SessionFilter{Router: m.Router, Query: m.Q, Sort: m.Sort, Order: m.Order, Limit: m.Limit, Offset: m.Offset}
}

// wsOut is one message for a socket: a snapshot shared by every socket
// with its view, written after the socket's own sequence number, or (seq
// 0) a whole message. The snapshot is not copied per socket: with
// thousands of sockets on one view, a copy each was the hub's largest
// allocation.
type wsOut struct {
	seq  int64
	body []byte
}

type wsClient struct {
	conn *websocket.Conn
	cred credential
	user nettportal.User // as of the last check; guarded by mu
	send chan wsOut
	done chan struct{}

	mu     sync.Mutex
	sub    *subscribeMsg
	key    string
	seq    int64
	closed bool
	// pending is the latest subscribe not served yet; wake tells the
	// socket's subscribeLoop of it.
	pending *subscribeMsg
	wake    chan struct{}

	// limitUser and limitAddr are what the hub's limits counted this
	// socket under; subs is its subscribe budget (read loop only).
	limitUser, limitAddr string
	subs                 wsBucket
}

type hub struct {
	s       *Server
	limits  *wsLimits
	mu      sync.Mutex
	clients map[*wsClient]struct{}
	changed chan struct{}
	// authChanged wakes the re-check of every socket's credential.
	authChanged chan struct{}
}

func newHub(s *Server) *hub {
	return &hub{s: s, limits: newWSLimits(s), clients: map[*wsClient]struct{}{}, changed: make(chan struct{}, 1), authChanged: make(chan struct{}, 1)}
}

// run pushes snapshots: on changes (coalesced to one push per
// WSMinInterval) and every WSRefresh, so uptimes and rates stay fresh.
func (h *hub) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); h.recheckLoop(ctx) }()
	defer wg.Wait()
	if h.s.Changes != nil {
		go func() {
			err := h.s.Changes.ListenSessionsChanged(ctx, func(nettportal.SessionsChanged) {
				select {
				case h.changed <- struct{}{}:
				default:
				}
			})
			if err != nil {
				h.s.Log.Error().Err(err).Msg("session change listener stopped")
			}
		}()
	}
	refresh := time.NewTicker(h.s.WSRefresh)
	defer refresh.Stop()
	var last time.Time
	// gap is the least time from one push to the next: WSMinInterval, or
	// what the last push's bytes take at WSPushRate.
	gap := h.s.WSMinInterval
	push := func() {
		last = time.Now()
		queued := h.push(ctx)
		gap = h.pushGap(queued)
		if h.s.OnPush != nil {
			h.s.OnPush(queued, gap)
		}
	}
	var pending <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			h.closeAll()
			return
		case <-h.changed:
			if pending != nil {
				continue
			}
			wait := gap - time.Since(last)
			if wait <= 0 {
				push()
				continue
			}
			pending = time.After(wait)
		case <-pending:
			pending = nil
			push()
		case <-refresh.C:
			if pending == nil && time.Since(last) >= gap {
				push()
			}
		}
	}
}

// pushGap is how long after a push of n bytes the next may start: the
// hub's pushes together stay within WSPushRate, so thousands of sockets
// on a large view get their snapshots less often instead of taking the
// CPU that accounting needs (copying them to the sockets is most of a
// push's cost). Counted when it is longer than WSMinInterval.
func (h *hub) pushGap(n int64) time.Duration {
	gap := time.Duration(float64(n) / float64(h.s.WSPushRate) * float64(time.Second))
	if gap <= h.s.WSMinInterval {
		return h.s.WSMinInterval
	}
	h.limits.pushRate.Add(1)
	return gap
}

func (h *hub) closeAll() {
	h.mu.Lock()
	clients := make([]*wsClient, 0, len(h.clients))
	for c := range h.clients {
		clients = append(clients, c)
	}
	h.mu.Unlock()
	for _, c := range clients {
		c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down"), //nolint:errcheck // closing anyway
			time.Now().Add(time.Second))
		h.drop(c)
	}
}

// push sends every subscribed client a fresh snapshot of its view, one
// query per distinct view, and returns the bytes it queued.
func (h *hub) push(ctx context.Context) int64 {
	groups := map[string][]*wsClient{}
	subs := map[string]subscribeMsg{}
	h.mu.Lock()
	for c := range h.clients {
		c.mu.Lock()
		if c.sub != nil {
			groups[c.key] = append(groups[c.key], c)
			subs[c.key] = *c.sub
		}
		c.mu.Unlock()
	}
	h.mu.Unlock()
	// A query that began before this push may miss the change it is for.
	began := time.Now()
	var wg sync.WaitGroup
	var queued atomic.Int64
	for key, clients := range groups {
		// The hub-wide slots bound the push's queries together with the
		// subscribes', and a view queried since the push began (for a
		// subscribe) answers the push too.
		wg.Add(1)
		go func() {
			defer wg.Done()
			body, err := h.sharedSnapshot(subs[key], key, began, ctx.Done(), nil)
			if err != nil {
				if ctx.Err() == nil {
					h.s.Log.Warn().Err(err).Str("view", key).Msg("websocket snapshot")
				}
				return
			}
			for _, c := range clients {
				if h.deliver(c, key, body) {
					queued.Add(int64(len(body)))
				}
			}
		}()
	}
	wg.Wait()
	return queued.Load()
}

// snapshot returns the shared part of a sessions message: everything
// after "seq", which differs per client.
func (h *hub) snapshot(ctx context.Context, sub subscribeMsg) ([]byte, error) {
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	page, err := h.s.Sessions.Sessions(qctx, sub.filter())
	if err != nil {
		return nil, err
	}
	now := time.Now()
	p := toPageJSON(page, now)
	b, err := json.Marshal(struct {
		Offset     int           `json:"offset"`
		Limit      int           `json:"limit"`
		Total      int64         `json:"total"`
		Sessions   []sessionJSON `json:"sessions"`
		Stats      statsJSON     `json:"stats"`
		ServerTime string        `json:"server_time"`
	}{sub.Offset, sub.Limit, p.Total, p.Sessions, p.Stats, now.UTC().Format(time.RFC3339)})
	if err != nil {
		return nil, err
	}
	return b[1:], nil // without "{"
}

// deliver queues a snapshot for c if c still has the view key (true when
// queued). A client whose queue is full is too slow and is dropped, so it
// never holds up the others.
func (h *hub) deliver(c *wsClient, key string, body []byte) bool {
	c.mu.Lock()
	if c.closed || c.key != key {
		c.mu.Unlock()
		return false
	}
	c.seq++
	var full bool
	select {
	case c.send <- wsOut{seq: c.seq, body: body}:
	default:
		full = true
	}
	name := c.user.Name
	c.mu.Unlock()
	if full {
		h.s.Log.Info().Str("user", name).Msg("websocket client too slow, dropped")
		h.drop(c)
	}
	return !full
}

func (h *hub) sendJSON(c *wsClient, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	c.mu.Lock()
	var full bool
	if !c.closed {
		select {
		case c.send <- wsOut{body: b}:
		default:
			full = true
		}
	}
	c.mu.Unlock()
	if full {
		h.drop(c)
	}
}

// drop forgets a client and closes its connection; its goroutines end.
func (h *hub) drop(c *wsClient) {
	h.mu.Lock()
	delete(h.clients, c)
	h.mu.Unlock()
	c.mu.Lock()
	first := !c.closed
	if first {
		c.closed = true
		close(c.done)
		if c.limitUser != "" || c.limitAddr != "" {
			h.limits.release(c.limitUser, c.limitAddr)
		}
	}
	c.mu.Unlock()
	c.conn.Close()
	if first && h.s.OnSocketClosed != nil {
		h.s.OnSocketClosed()
	}
}

// clientCount is for tests and metrics.
func (h *hub) clientCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients)
}
