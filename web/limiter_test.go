package web_test

import (
	"context"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/web"
)

// countingAccounts counts password checks and how many run at once.
type countingAccounts struct {
	web.Accounts
	checks, inFlight, maxInFlight atomic.Int64
}

func (c *countingAccounts) Authenticate(ctx context.Context, name, password string) (nettportal.User, error) {
	c.checks.Add(1)
	n := c.inFlight.Add(1)
	defer c.inFlight.Add(-1)
	for {
		m := c.maxInFlight.Load()
		if n <= m || c.maxInFlight.CompareAndSwap(m, n) {
			break
		}
	}
	return c.Accounts.Authenticate(ctx, name, password)
}

// fromAddr is a client whose connections come from a given loopback
// address, as another source on the network would.
func fromAddr(t *testing.T, e *env, ip string) *client {
	jar, _ := cookiejar.New(nil)
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return &client{t: t, base: e.ts.URL, http: &http.Client{Jar: jar, Transport: tr}}
}

// TestLoginLimiterHoldsInParallel: 400 wrong passwords sent at once for
// one user are counted before they are checked, so only the first five
// reach bcrypt and the rest get 429.
func TestLoginLimiterHoldsInParallel(t *testing.T) {
	var acc *countingAccounts
	e := newEnv(t, func(s *web.Server) {
		acc = &countingAccounts{Accounts: s.Accounts}
		s.Accounts = acc
	})
	var wg sync.WaitGroup
	var status sync.Map
	tr := &http.Transport{MaxConnsPerHost: 100}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	for i := 0; i < 400; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", e.ts.URL+"/api/login", strings.NewReader(`{"username":"olga","password":"guess-`+strconv.Itoa(i)+`"}`))
			req.Header.Set("Content-Type", "application/json")
			resp, err := hc.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			v, _ := status.LoadOrStore(resp.StatusCode, new(atomic.Int64))
			v.(*atomic.Int64).Add(1)
		}()
	}
	wg.Wait()
	counts := map[any]int64{}
	status.Range(func(k, v any) bool { counts[k] = v.(*atomic.Int64).Load(); return true })
	t.Logf("answers %v, %d passwords checked", counts, acc.checks.Load())
	if n := acc.checks.Load(); n > 5 {
		t.Errorf("%d passwords checked; the limit is 5 per minute", n)
	}
	if counts[429] < 395 {
		t.Errorf("%d answers 429, want at least 395", counts[429])
	}
}

// TestLoginConcurrencyBounded: logins for many users at once (each under
// its own limit) run at most LoginConcurrency bcrypt checks at a time.
func TestLoginConcurrencyBounded(t *testing.T) {
	var acc *countingAccounts
	e := newEnv(t, func(s *web.Server) {
		acc = &countingAccounts{Accounts: s.Accounts}
		s.Accounts = acc
		s.LoginConcurrency = 2
		// The bound under test is concurrency; on a loaded machine 24
		// bcrypt checks two at a time can outlast the default wait.
		s.LoginSlotWait = time.Hour
		s.LoginFailures = 10 // one source, many names: under its 4x limit
	})
	var wg sync.WaitGroup
	for i := 0; i < 24; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := e.anon(t)
			c.do("POST", "/api/login", map[string]string{"username": "nobody-" + strconv.Itoa(i), "password": "guess"})
		}()
	}
	wg.Wait()
	if acc.checks.Load() != 24 {
		t.Errorf("%d checks, want 24", acc.checks.Load())
	}
	if m := acc.maxInFlight.Load(); m > 2 {
		t.Errorf("%d password checks ran at once; LoginConcurrency is 2", m)
	}
}

// TestLoginLockoutPerSource: someone guessing olga's password from another
// address is locked out; olga, from her own address, still logs in. Many
// addresses guessing slow olga's logins down (UserBackoff) but do not
// lock her out for longer than that.
func TestLoginLockoutPerSource(t *testing.T) {
	e := newEnv(t, func(s *web.Server) { s.UserFailures = 12; s.UserBackoff = 3 * time.Second })
	attacker := fromAddr(t, e, "127.0.0.2")
	for i := 0; i < 5; i++ {
		if s, _ := attacker.do("POST", "/api/login", map[string]string{"username": "olga", "password": "guess"}); s != 401 {
			t.Fatalf("attempt %d: %d", i, s)
		}
	}
	if s, _ := attacker.do("POST", "/api/login", map[string]string{"username": "olga", "password": "password-olga"}); s != 429 {
		t.Errorf("attacker's 6th attempt: %d, want 429", s)
	}
	olga := fromAddr(t, e, "127.0.0.1")
	if s, b := olga.do("POST", "/api/login", map[string]string{"username": "olga", "password": "password-olga"}); s != 200 {
		t.Errorf("olga from her own address after someone else's failures: %d %s", s, b)
	}
	// Two more addresses bring olga's failures over all sources to 12.
	for _, ip := range []string{"127.0.0.3", "127.0.0.4"} {
		a := fromAddr(t, e, ip)
		for i := 0; i < 5; i++ {
			a.do("POST", "/api/login", map[string]string{"username": "olga", "password": "guess"})
		}
	}
	fresh := fromAddr(t, e, "127.0.0.5")
	for i := 0; i < 2; i++ {
		fresh.do("POST", "/api/login", map[string]string{"username": "olga", "password": "guess"})
	}
	req, _ := http.NewRequest("POST", e.ts.URL+"/api/login", strings.NewReader(`{"username":"olga","password":"password-olga"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := olga.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	wait, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
	if resp.StatusCode != 429 || wait < 1 || wait > 3 {
		t.Errorf("olga after 12 failures from elsewhere: %d, Retry-After %q; want 429 for at most UserBackoff (3s)", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

// TestLoginCSRF: a cross-site form (text/plain, no preflight) or a
// foreign page's fetch must not log the victim's browser into an
// account; scripts without Origin still log in.
func TestLoginCSRF(t *testing.T) {
	e := newEnv(t, func(s *web.Server) { s.AllowedOrigins = []string{"https://portal.example.net"} })
	body := `{"username":"olga","password":"password-olga"}`
	cases := []struct {
		ctype, origin string
		status        int
	}{
		{"text/plain", "", 415},
		{"text/plain", "https://evil.example.com", 415},
		{"application/x-www-form-urlencoded", "", 415},
		{"", "", 415},
		{"application/json", "https://evil.example.com", 403},
		{"application/json", "null", 403},
		{"application/json", "", 200},
		{"application/json; charset=utf-8", e.ts.URL, 200},
		{"application/json", "https://portal.example.net", 200},
	}
	for _, tc := range cases {
		c := e.anon(t)
		hdr := map[string]string{"Content-Type": tc.ctype}
		if tc.origin != "" {
			hdr["Origin"] = tc.origin
		}
		s, b := c.doHeaders("POST", "/api/login", body, hdr)
		if s != tc.status {
			t.Errorf("Content-Type %q Origin %q: %d %s, want %d", tc.ctype, tc.origin, s, b, tc.status)
		}
		if tc.status != 200 && len(c.http.Jar.Cookies(mustURL(e.ts.URL))) != 0 {
			t.Errorf("Content-Type %q Origin %q: a login cookie was set", tc.ctype, tc.origin)
		}
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}
