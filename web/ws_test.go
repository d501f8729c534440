package web_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/store"
	"github.com/nettportal/nettportal/web"
)

type wsMsg struct {
	Type       string
	Seq        int64
	Offset     int
	Limit      int
	Total      int64
	Error      string
	User, Role string
	Sessions   []struct{ Username string }
	ServerTime string `json:"server_time"`
}

// dialWS opens /ws with the client's login cookie.
func dialWS(t *testing.T, e *env, c *client, origin string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	hdr := http.Header{}
	req, _ := http.NewRequest("GET", e.ts.URL, nil)
	for _, ck := range c.http.Jar.Cookies(req.URL) {
		req.AddCookie(ck)
	}
	hdr.Set("Cookie", req.Header.Get("Cookie"))
	if origin != "" {
		hdr.Set("Origin", origin)
	}
	return websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(e.ts.URL, "http")+"/ws", hdr)
}

func readMsg(t *testing.T, conn *websocket.Conn, within time.Duration) wsMsg {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(within))
	var m wsMsg
	if err := conn.ReadJSON(&m); err != nil {
		t.Fatalf("read websocket: %v", err)
	}
	return m
}

func TestWebSocketPushesChanges(t *testing.T) {
	// A long refresh, so only a change notification can explain a push.
	var listener *listening
	e := newEnv(t, func(s *web.Server) {
		s.WSRefresh = time.Hour
		listener = &listening{ChangeSource: s.Changes, ready: make(chan struct{})}
		s.Changes = listener
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	notifier := &store.Notifier{DB: e.db}
	go notifier.Run(ctx)
	recs := startRecords(e.router, "user", 3)
	if err := e.db.ApplyAccounting(ctx, recs[:2]); err != nil {
		t.Fatal(err)
	}
	op := e.login(t, "olga")
	conn, _, err := dialWS(t, e, op, e.ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if m := readMsg(t, conn, 2*time.Second); m.Type != "hello" || m.User != "olga" || m.Role != "operator" {
		t.Fatalf("first message = %+v", m)
	}
	conn.WriteJSON(map[string]any{"type": "subscribe", "sort": "username", "order": "asc", "limit": 50})
	m := readMsg(t, conn, 2*time.Second)
	if m.Type != "sessions" || m.Seq != 1 || m.Total != 2 || len(m.Sessions) != 2 || m.ServerTime == "" {
		t.Fatalf("snapshot = %+v", m)
	}
	// A window further down says which one it is: the page places the
	// rows of a snapshot by it.
	conn.WriteJSON(map[string]any{"type": "subscribe", "sort": "username", "order": "asc", "limit": 25, "offset": 1})
	if m := readMsg(t, conn, 2*time.Second); m.Type != "sessions" || m.Offset != 1 || m.Limit != 25 || m.Total != 2 ||
		len(m.Sessions) != 1 || m.Sessions[0].Username != "user0001" {
		t.Fatalf("snapshot of the window at 1 = %+v", m)
	}
	conn.WriteJSON(map[string]any{"type": "subscribe", "sort": "username", "order": "asc", "limit": 50})
	if m := readMsg(t, conn, 2*time.Second); m.Type != "sessions" || m.Offset != 0 || len(m.Sessions) != 2 {
		t.Fatalf("snapshot back at the top = %+v", m)
	}
	conn.WriteJSON(map[string]any{"type": "subscribe", "sort": "nope"})
	if m := readMsg(t, conn, 2*time.Second); m.Type != "error" || !strings.Contains(m.Error, "cannot sort") {
		t.Fatalf("bad subscribe answer = %+v", m)
	}

	// Once the hub's listener is in place, change sessions the way the
	// accounting path does.
	select {
	case <-listener.ready:
	case <-time.After(10 * time.Second):
		t.Fatal("the hub never listened for session changes")
	}
	start := time.Now()
	if err := e.db.ApplyAccounting(ctx, recs[2:]); err != nil {
		t.Fatal(err)
	}
	notifier.Changed(recs[2:])
	for {
		m := readMsg(t, conn, time.Second)
		if m.Type == "sessions" && m.Total == 3 {
			if m.Sessions[2].Username != "user0002" || m.Seq < 2 {
				t.Errorf("pushed snapshot = %+v", m)
			}
			t.Logf("change reached the client in %v", time.Since(start))
			break
		}
		if time.Since(start) > time.Second {
			t.Fatalf("no snapshot with the new session within 1s")
		}
	}
}

func TestWebSocketOriginAndAuth(t *testing.T) {
	e := newEnv(t, func(s *web.Server) { s.AllowedOrigins = []string{"https://portal.example.net"} })
	v := e.login(t, "vic")
	if _, resp, err := dialWS(t, e, v, "https://evil.example.com"); err == nil || resp == nil || resp.StatusCode != 403 {
		t.Errorf("foreign origin: %v %v", err, resp)
	}
	conn, _, err := dialWS(t, e, v, "https://portal.example.net")
	if err != nil {
		t.Fatalf("allowed origin: %v", err)
	}
	conn.Close()
	if _, resp, err := dialWS(t, e, e.anon(t), e.ts.URL); err == nil || resp.StatusCode != 401 {
		t.Errorf("no login: %v %v", err, resp)
	}
}

func TestSlowWebSocketClientIsDropped(t *testing.T) {
	e := newEnv(t, func(s *web.Server) {
		s.WSRefresh = 20 * time.Millisecond
		s.WSWriteTimeout = 300 * time.Millisecond
		s.WSSendBuffer = 2
	})
	ctx := context.Background()
	// Big snapshots fill the slow client's socket buffers quickly.
	if err := e.db.ApplyAccounting(ctx, startRecords(e.router, "subscriber-with-a-long-name-", 1000)); err != nil {
		t.Fatal(err)
	}
	v := e.login(t, "vic")
	sub := map[string]any{"type": "subscribe", "limit": 1000}
	slow, _, err := dialWS(t, e, v, "")
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	slow.WriteJSON(sub) // and never read again
	fast, _, err := dialWS(t, e, v, "")
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()
	fast.WriteJSON(sub)
	dropped := time.Time{}
	var worstGap time.Duration
	last := time.Now()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		m := readMsg(t, fast, 2*time.Second)
		if m.Type != "sessions" {
			continue
		}
		if gap := time.Since(last); gap > worstGap {
			worstGap = gap
		}
		last = time.Now()
		if dropped.IsZero() && e.srv.Clients() == 1 {
			dropped = time.Now()
		}
		if !dropped.IsZero() && time.Since(dropped) > 500*time.Millisecond {
			break
		}
	}
	if dropped.IsZero() {
		t.Fatalf("slow client not dropped (%d clients)", e.srv.Clients())
	}
	if worstGap > time.Second {
		t.Errorf("the fast client waited %v between snapshots; a slow client must not hold it up", worstGap)
	}
	t.Logf("slow client dropped; fast client's longest gap between snapshots %v", worstGap)
}

// listening is a ChangeSource that tells when its listener is in place:
// ListenSessionsChanged calls fn once, with no change, right after LISTEN.
type listening struct {
	web.ChangeSource
	once  sync.Once
	ready chan struct{}
}

func (l *listening) ListenSessionsChanged(ctx context.Context, fn func(nettportal.SessionsChanged)) error {
	return l.ChangeSource.ListenSessionsChanged(ctx, func(c nettportal.SessionsChanged) {
		fn(c)
		l.once.Do(func() { close(l.ready) })
	})
}
