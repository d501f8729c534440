package web_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/web"
)

// awaitClosed reads until the server closes conn and returns the close
// code; it fails if that takes longer than within.
func awaitClosed(t *testing.T, conn *websocket.Conn, within time.Duration) int {
	t.Helper()
	start := time.Now()
	conn.SetReadDeadline(start.Add(within))
	for {
		_, _, err := conn.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			t.Logf("socket closed %v after the credential ended (code %d)", time.Since(start), ce.Code)
			return ce.Code
		}
		t.Fatalf("socket not closed by the server within %v: %v", within, err)
	}
}

// secondInstance is another server on the same database, as behind a load
// balancer.
func secondInstance(t *testing.T, e *env, tune func(*web.Server)) *httptest.Server {
	srv := &web.Server{Sessions: e.db, Routers: e.db, Accounts: e.db, Customers: e.db, Changes: e.db, Audit: e.db,
		Log: zerolog.Nop()}
	if tune != nil {
		tune(srv)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return ts
}

func dialURL(t *testing.T, base string, hdr http.Header) *websocket.Conn {
	t.Helper()
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(base, "http")+"/ws", hdr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if m := readMsg(t, conn, 2*time.Second); m.Type != "hello" {
		t.Fatalf("first message = %+v", m)
	}
	return conn
}

func cookieHeader(e *env, c *client) http.Header {
	req, _ := http.NewRequest("GET", e.ts.URL, nil)
	for _, ck := range c.http.Jar.Cookies(req.URL) {
		req.AddCookie(ck)
	}
	return http.Header{"Cookie": {req.Header.Get("Cookie")}}
}

// TestWebSocketClosedWhenCredentialEnds: REST answers 401 the moment a
// token is revoked, a login ends or a user is deleted; an open socket must
// not keep streaming live data on that credential. The periodic re-check
// is an hour here, so only the notification (which crosses instances) can
// close the sockets in time.
func TestWebSocketClosedWhenCredentialEnds(t *testing.T) {
	e := newEnv(t, func(s *web.Server) { _ = s })
	other := secondInstance(t, e, nil)
	admin := e.login(t, "ada")
	sub := map[string]any{"type": "subscribe", "limit": 10}

	t.Run("logout", func(t *testing.T) {
		v := e.login(t, "vic")
		conn := dialURL(t, other.URL, cookieHeader(e, v))
		conn.WriteJSON(sub)
		if s, b := v.do("POST", "/api/logout", nil); s != 200 {
			t.Fatalf("logout: %d %s", s, b)
		}
		if code := awaitClosed(t, conn, 5*time.Second); code != 4001 {
			t.Errorf("close code %d, want 4001", code)
		}
	})

	t.Run("token revoked", func(t *testing.T) {
		s, b := admin.do("POST", "/api/tokens", map[string]string{"name": "wall", "role": "viewer"})
		if s != 201 {
			t.Fatalf("create token: %d %s", s, b)
		}
		secret := strings.Split(strings.Split(string(b), `"token":"`)[1], `"`)[0]
		conn := dialURL(t, other.URL, http.Header{"Authorization": {"Bearer " + secret}})
		conn.WriteJSON(sub)
		if s, b := admin.do("DELETE", "/api/tokens/wall", nil); s != 200 && s != 204 {
			t.Fatalf("revoke: %d %s", s, b)
		}
		awaitClosed(t, conn, 5*time.Second)
	})

	t.Run("user deleted", func(t *testing.T) {
		if _, err := e.db.CreateUser(context.Background(), "temp", "password-temp", nettportal.RoleOperator); err != nil {
			t.Fatal(err)
		}
		tmp := e.login(t, "temp")
		conn := dialURL(t, other.URL, cookieHeader(e, tmp))
		if s, b := admin.do("DELETE", "/api/users/temp", nil); s != 200 && s != 204 {
			t.Fatalf("delete user: %d %s", s, b)
		}
		awaitClosed(t, conn, 5*time.Second)
	})

	t.Run("others stay", func(t *testing.T) {
		o := e.login(t, "olga")
		conn := dialURL(t, other.URL, cookieHeader(e, o))
		conn.WriteJSON(sub)
		if m := readMsg(t, conn, 2*time.Second); m.Type != "sessions" {
			t.Fatalf("snapshot = %+v", m)
		}
		// Another user's logout must not close this socket.
		x := e.login(t, "vic")
		x.do("POST", "/api/logout", nil)
		conn.WriteJSON(sub)
		if m := readMsg(t, conn, 2*time.Second); m.Type != "sessions" {
			t.Fatalf("after another user's logout = %+v", m)
		}
	})
}

// accountsOnly hides the store's notifications, as with an Accounts that
// has none.
type accountsOnly struct{ web.Accounts }

// TestWebSocketSubscribeRechecksCredential: without any notification, the
// next subscribe on a socket whose login ended closes it instead of
// answering with data.
func TestWebSocketSubscribeRechecksCredential(t *testing.T) {
	e := newEnv(t, func(s *web.Server) { _ = s })
	other := secondInstance(t, e, func(s *web.Server) { s.Accounts = accountsOnly{e.db} })
	v := e.login(t, "vic")
	conn := dialURL(t, other.URL, cookieHeader(e, v))
	conn.WriteJSON(map[string]any{"type": "subscribe", "limit": 10})
	if m := readMsg(t, conn, 2*time.Second); m.Type != "sessions" {
		t.Fatalf("snapshot = %+v", m)
	}
	if s, _ := v.do("POST", "/api/logout", nil); s != 200 {
		t.Fatal("logout failed")
	}
	conn.WriteJSON(map[string]any{"type": "subscribe", "limit": 20})
	if code := awaitClosed(t, conn, 5*time.Second); code != 4001 {
		t.Errorf("close code %d, want 4001", code)
	}
}
