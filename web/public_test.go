package web_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/nettportal/nettportal/web"
)

// TestPublicURLBehindTLSProxy: behind a TLS proxy (--public-url https://)
// the login cookie is Secure, HSTS is sent, and only pages of the public
// origin may log in or open the WebSocket, even when the proxy passes the
// backend's own Host. The CSP lets the page connect to this origin only.
func TestPublicURLBehindTLSProxy(t *testing.T) {
	e := newEnv(t, func(s *web.Server) { s.PublicURL = "https://portal.example.net" })
	body := `{"username":"olga","password":"password-olga"}`
	post := func(origin string) *http.Response {
		req, _ := http.NewRequest("POST", e.ts.URL+"/api/login", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", origin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	resp := post("https://portal.example.net")
	if resp.StatusCode != 200 {
		t.Fatalf("login from the public origin: %d", resp.StatusCode)
	}
	if sc := resp.Header.Get("Set-Cookie"); !strings.Contains(sc, "Secure") || !strings.Contains(sc, "HttpOnly") {
		t.Errorf("cookie %q, want Secure and HttpOnly", sc)
	}
	if h := resp.Header.Get("Strict-Transport-Security"); !strings.Contains(h, "max-age=") {
		t.Errorf("no HSTS: %q", h)
	}
	// The backend's own address is not the public origin.
	if resp := post(e.ts.URL); resp.StatusCode != 403 {
		t.Errorf("login from %s (not the public origin): %d, want 403", e.ts.URL, resp.StatusCode)
	}
	if resp := post("http://portal.example.net"); resp.StatusCode != 403 {
		t.Errorf("login from the http origin: %d, want 403", resp.StatusCode)
	}
	v := e.login(t, "vic")
	if _, resp, err := dialWS(t, e, v, e.ts.URL); err == nil || resp == nil || resp.StatusCode != 403 {
		t.Errorf("websocket from the backend origin: %v %v, want 403", err, resp)
	}
	conn, _, err := dialWS(t, e, v, "https://portal.example.net")
	if err != nil {
		t.Fatalf("websocket from the public origin: %v", err)
	}
	conn.Close()

	page, err := http.Get(e.ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	page.Body.Close()
	csp := page.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "connect-src 'self';") || strings.Contains(csp, "ws:") || strings.Contains(csp, "wss:") {
		t.Errorf("CSP %q lets the page connect elsewhere", csp)
	}
}
