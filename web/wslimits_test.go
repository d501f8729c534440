package web_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/web"
)

// readClose reads until the server's close frame and returns it.
func readClose(t *testing.T, conn *websocket.Conn) *websocket.CloseError {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := conn.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("socket ended without a close frame: %v", err)
		}
		return ce
	}
}

// One user may hold WSPerUser sockets: the next is closed with the reason
// and counted; another user is unaffected; a closed socket frees its place.
func TestWebSocketsPerUserBound(t *testing.T) {
	closed := make(chan struct{}, 16)
	e := newEnv(t, func(s *web.Server) {
		s.WSPerUser = 3
		s.OnSocketClosed = func() { closed <- struct{}{} }
	})
	v := e.login(t, "vic")
	var open []*websocket.Conn
	for i := 0; i < 3; i++ {
		conn, _, err := dialWS(t, e, v, "")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if m := readMsg(t, conn, 2*time.Second); m.Type != "hello" {
			t.Fatalf("socket %d: first message %+v", i, m)
		}
		open = append(open, conn)
	}
	extra, _, err := dialWS(t, e, v, "")
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	ce := readClose(t, extra)
	if ce.Code != websocket.ClosePolicyViolation || !strings.Contains(ce.Text, "for this user") {
		t.Fatalf("4th socket closed with %d %q, want 1008 naming the per-user limit", ce.Code, ce.Text)
	}
	if got := e.srv.WSLimited()[web.WSLimitUser]; got != 1 {
		t.Errorf("per-user closes counted %d, want 1", got)
	}
	// Another user from the same address is not held to vic's count.
	o := e.login(t, "olga")
	other, _, err := dialWS(t, e, o, "")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if m := readMsg(t, other, 2*time.Second); m.Type != "hello" {
		t.Fatalf("another user's socket: %+v", m)
	}
	// Closing one of vic's frees a place.
	open[0].Close()
	// The hub notices the closed socket on its own read. No socket was let
	// go before (the refused one never counted), so the first is this one.
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the hub never let the closed socket go")
	}
	if n := e.srv.Clients(); n != 3 {
		t.Fatalf("%d clients after one closed, want 3", n)
	}
	again, _, err := dialWS(t, e, v, "")
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if m := readMsg(t, again, 2*time.Second); m.Type != "hello" {
		t.Fatalf("socket after one closed: %+v", m)
	}
}

// The per-address bound holds whatever the users.
func TestWebSocketsPerAddressBound(t *testing.T) {
	e := newEnv(t, func(s *web.Server) { s.WSPerAddr = 2 })
	for i, name := range []string{"vic", "olga"} {
		conn, _, err := dialWS(t, e, e.login(t, name), "")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if m := readMsg(t, conn, 2*time.Second); m.Type != "hello" {
			t.Fatalf("socket %d: %+v", i, m)
		}
	}
	extra, _, err := dialWS(t, e, e.login(t, "ada"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	if ce := readClose(t, extra); ce.Code != websocket.ClosePolicyViolation || !strings.Contains(ce.Text, "from this address") {
		t.Fatalf("3rd socket from one address closed with %d %q", ce.Code, ce.Text)
	}
	if got := e.srv.WSLimited()[web.WSLimitAddr]; got != 1 {
		t.Errorf("per-address closes counted %d, want 1", got)
	}
}

// A socket that subscribes faster than its budget is closed with the
// reason; nothing beyond the burst was served.
func TestWebSocketSubscribeRateBound(t *testing.T) {
	e := newEnv(t, func(s *web.Server) { s.WSSubscribesPerSecond = 2; s.WSRefresh = time.Hour })
	conn, _, err := dialWS(t, e, e.login(t, "vic"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	readMsg(t, conn, 2*time.Second) // hello
	for i := 0; i < 20; i++ {
		if err := conn.WriteJSON(map[string]any{"type": "subscribe", "limit": 10}); err != nil {
			break // closed under us: the limit took effect
		}
	}
	snapshots := 0
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var ce *websocket.CloseError
	for {
		var m map[string]any
		err := conn.ReadJSON(&m)
		if err != nil {
			if !errors.As(err, &ce) {
				t.Fatalf("socket ended without a close frame: %v", err)
			}
			break
		}
		if m["type"] == "sessions" {
			snapshots++
		}
	}
	if ce.Code != websocket.ClosePolicyViolation || !strings.Contains(ce.Text, "subscribes per second") {
		t.Fatalf("closed with %d %q, want 1008 naming the subscribe rate", ce.Code, ce.Text)
	}
	if snapshots > 4 {
		t.Errorf("%d snapshots before the close, want at most the burst (4)", snapshots)
	}
	if got := e.srv.WSLimited()[web.WSLimitSubscribe]; got != 1 {
		t.Errorf("subscribe-rate closes counted %d, want 1", got)
	}
}

// gatedSessions is the real store with its Sessions queries held at a
// gate: the test decides when a snapshot query may run, and counts them.
type gatedSessions struct {
	web.SessionSource
	gate    chan struct{}
	started chan nettportal.SessionFilter
	queries atomic.Int64
}

func (g *gatedSessions) Sessions(ctx context.Context, f nettportal.SessionFilter) (nettportal.SessionPage, error) {
	g.queries.Add(1)
	g.started <- f
	select {
	case <-g.gate:
	case <-ctx.Done():
		return nettportal.SessionPage{}, ctx.Err()
	}
	return g.SessionSource.Sessions(ctx, f)
}

// While every snapshot slot is busy a subscribe waits, it is not closed:
// a newer subscribe of the same socket replaces its older pending one, the
// socket gets the newer view when a slot frees, and sockets subscribing to
// a view being queried share that query.
func TestWebSocketSubscribeWaitsForASnapshotSlot(t *testing.T) {
	var gated *gatedSessions
	e := newEnv(t, func(s *web.Server) {
		gated = &gatedSessions{SessionSource: s.Sessions, gate: make(chan struct{}), started: make(chan nettportal.SessionFilter, 16)}
		s.Sessions = gated
		s.WSSnapshotQueries = 1
		s.WSRefresh = time.Hour
	})
	v := e.login(t, "vic")
	dial := func() *websocket.Conn {
		conn, _, err := dialWS(t, e, v, "")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		if m := readMsg(t, conn, 2*time.Second); m.Type != "hello" {
			t.Fatalf("first message %+v", m)
		}
		return conn
	}
	// a's query takes the only slot and is held at the gate.
	a := dial()
	if err := a.WriteJSON(map[string]any{"type": "subscribe", "limit": 5}); err != nil {
		t.Fatal(err)
	}
	if f := <-gated.started; f.Limit != 5 {
		t.Fatalf("first query for limit %d", f.Limit)
	}
	// b asks for one view, then another, while the slot is busy; an
	// unknown message after them says when the server has read both.
	b := dial()
	for _, limit := range []int{10, 20} {
		if err := b.WriteJSON(map[string]any{"type": "subscribe", "limit": limit}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.WriteJSON(map[string]any{"type": "ping"}); err != nil {
		t.Fatal(err)
	}
	if m := readMsg(t, b, 5*time.Second); m.Type != "error" {
		t.Fatalf("b: %+v, want the error for the unknown message (no snapshot while the slot is busy)", m)
	}
	// c asks for a's view: it waits for a's query, not for a slot.
	c := dial()
	if err := c.WriteJSON(map[string]any{"type": "subscribe", "limit": 5}); err != nil {
		t.Fatal(err)
	}
	close(gated.gate)
	for name, conn := range map[string]*websocket.Conn{"a": a, "c": c} {
		if m := readMsg(t, conn, 5*time.Second); m.Type != "sessions" || m.Limit != 5 {
			t.Fatalf("%s: %+v, want its view (limit 5)", name, m)
		}
	}
	if m := readMsg(t, b, 5*time.Second); m.Type != "sessions" || m.Limit != 20 {
		t.Fatalf("b: %+v, want its latest view (limit 20), not the one it replaced", m)
	}
	b.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	var extra wsMsg
	if err := b.ReadJSON(&extra); err == nil {
		t.Fatalf("b got a second message %+v: its replaced subscribe was served too", extra)
	}
	// a's query and b's latest; c shared a's query (it may have come once
	// a's had ended, then it ran its own).
	if n := gated.queries.Load(); n < 2 || n > 3 {
		t.Errorf("%d snapshot queries, want a's and b's latest (and perhaps c's)", n)
	}
	limited := e.srv.WSLimited()
	if limited[web.WSLimitSnapshot] < 1 {
		t.Errorf("subscribes that waited for a slot counted %d, want at least b's", limited[web.WSLimitSnapshot])
	}
	if e.srv.WSLimited()[web.WSLimitSubscribe] != 0 {
		t.Errorf("a socket was closed for its subscribe rate")
	}
}

// Pushes together stay within WSPushRate: after a push of n bytes the
// next waits n/WSPushRate, counted as push_rate; below the rate the next
// waits only WSMinInterval.
func TestWebSocketPushesKeepToThePushRate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		rate    int64
		limited bool
	}{{"over the rate", 1000, true}, {"within the rate", 1 << 30, false}} {
		t.Run(tc.name, func(t *testing.T) {
			pushes := make(chan [2]int64, 16)
			e := newEnv(t, func(s *web.Server) {
				s.WSRefresh, s.WSMinInterval, s.WSPushRate = 10*time.Millisecond, 5*time.Millisecond, tc.rate
				s.OnPush = func(queued int64, next time.Duration) {
					select {
					case pushes <- [2]int64{queued, int64(next)}:
					default:
					}
				}
			})
			if err := e.db.ApplyAccounting(context.Background(), startRecords(e.router, "user", 3)); err != nil {
				t.Fatal(err)
			}
			conn, _, err := dialWS(t, e, e.login(t, "vic"), e.ts.URL)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			readMsg(t, conn, 2*time.Second) // hello
			conn.WriteJSON(map[string]any{"type": "subscribe", "limit": 50})
			if m := readMsg(t, conn, 2*time.Second); m.Type != "sessions" || m.Total != 3 {
				t.Fatalf("snapshot = %+v", m)
			}
			// The first push that reached the socket.
			var p [2]int64
			for p[0] == 0 {
				select {
				case p = <-pushes:
				case <-time.After(5 * time.Second):
					t.Fatal("no push")
				}
			}
			queued, next := p[0], time.Duration(p[1])
			want := 5 * time.Millisecond
			if tc.limited {
				want = time.Duration(float64(queued) / float64(tc.rate) * float64(time.Second))
			}
			if next != want {
				t.Errorf("after a push of %d bytes the next waits %v, want %v", queued, next, want)
			}
			if got := e.srv.WSLimited()[web.WSLimitPushRate]; (got > 0) != tc.limited {
				t.Errorf("push_rate counted %d", got)
			}
		})
	}
}
