package main

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"layeh.com/radius/rfc2866"
)

// TestWebLiveViewAcrossInstances runs two serve instances on one database:
// a browser watches the live view on instance B while a router sends its
// accounting to instance A. The new session must reach the browser through
// LISTEN/NOTIFY within a second. Users and tokens come from the real
// `user add` and `token create` commands.
func TestWebLiveViewAcrossInstances(t *testing.T) {
	const secret = "web-e2e"
	dbURL := migratedDBWithRouter(t, "core-web", "127.0.0.41", secret)
	mustRun(t, "user", "add", "--db", dbURL, "--name", "olga", "--password", "operator-pw", "--role", "operator")
	if out := mustRun(t, "user", "list", "--db", dbURL); !strings.Contains(out, "olga") || !strings.Contains(out, "operator") {
		t.Errorf("user list:\n%s", out)
	}
	token := strings.TrimSpace(mustRun(t, "token", "create", "--db", dbURL, "--name", "billing", "--role", "viewer"))
	a := startServe(t, dbURL)
	b := startServe(t, dbURL)

	// Log in on B like the page does, then open the WebSocket there.
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	resp, err := browser.Post(b.HTTPURL+"/api/login", "application/json", strings.NewReader(`{"username":"olga","password":"operator-pw"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	u, _ := url.Parse(b.HTTPURL)
	hdr := http.Header{"Origin": {b.HTTPURL}}
	for _, c := range jar.Cookies(u) {
		hdr.Add("Cookie", c.Name+"="+c.Value)
	}
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+u.Host+"/ws", hdr)
	if err != nil {
		t.Fatalf("websocket: %v", err)
	}
	defer ws.Close()
	type msg struct {
		Type     string
		Total    int64
		Sessions []struct {
			Username, Router string
		}
	}
	read := func(within time.Duration) msg {
		ws.SetReadDeadline(time.Now().Add(within))
		var m msg
		if err := ws.ReadJSON(&m); err != nil {
			t.Fatalf("read websocket: %v", err)
		}
		return m
	}
	if m := read(5 * time.Second); m.Type != "hello" {
		t.Fatalf("first message %+v", m)
	}
	ws.WriteJSON(map[string]any{"type": "subscribe", "sort": "started_at", "order": "desc", "limit": 50})
	if m := read(5 * time.Second); m.Type != "sessions" || m.Total != 0 {
		t.Fatalf("first snapshot %+v", m)
	}

	conn := udpFrom(t, "127.0.0.41", a.AcctAddr)
	start := acctPacket{User: "webuser", SessionID: "81000042", Status: rfc2866.AcctStatusType_Value_Start, NASIP: net.ParseIP("127.0.0.41")}
	sent := time.Now()
	if !exchange(t, conn, start.encode(t, secret), secret, 5*time.Second) {
		t.Fatal("instance A did not acknowledge the Start")
	}
	for {
		m := read(2 * time.Second)
		if m.Type == "sessions" && m.Total == 1 {
			if m.Sessions[0].Username != "webuser" || m.Sessions[0].Router != "core-web" {
				t.Errorf("pushed session %+v", m.Sessions[0])
			}
			lat := time.Since(sent)
			t.Logf("accounting on A reached the browser on B in %v", lat)
			if lat > time.Second {
				t.Errorf("change took %v to reach the other instance's browser; want < 1s", lat)
			}
			break
		}
	}

	// The token from `token create` reads the API of either instance.
	req, _ := http.NewRequest("GET", a.HTTPURL+"/api/sessions?q=webuser", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var page struct{ Total int64 }
	json.NewDecoder(resp.Body).Decode(&page)
	resp.Body.Close()
	if resp.StatusCode != 200 || page.Total != 1 {
		t.Errorf("token API: %d total %d", resp.StatusCode, page.Total)
	}
	mustRun(t, "token", "revoke", "--db", dbURL, "--name", "billing")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("revoked token: %d", resp.StatusCode)
	}
}
