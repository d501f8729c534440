package web_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

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
// reason; what it sent within the burst was served.
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
	if snapshots < 1 || snapshots > 4 {
		t.Errorf("%d snapshots before the close, want the burst (at most 4)", snapshots)
	}
	if got := e.srv.WSLimited()[web.WSLimitSubscribe]; got != 1 {
		t.Errorf("subscribe-rate closes counted %d, want 1", got)
	}
}
