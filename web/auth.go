package web

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"math"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nettportal/nettportal"
)

// cookieName is the login cookie. It holds a random secret; the server
// keeps only its hash (web_sessions), so every instance knows the login.
const cookieName = "nettportal_session"

// csrfHeader carries the login's CSRF token on state-changing requests.
const csrfHeader = "X-CSRF-Token"

// identity is who made a request and how.
type identity struct {
	user nettportal.User
	csrf string // empty for bearer tokens
}

// credential is what a request authenticated with: a bearer token or a
// login cookie. A WebSocket keeps it to check it again while it is open.
type credential struct {
	token  string
	cookie string
}

// requestCredential reads the caller's credential from a request.
func requestCredential(r *http.Request) (credential, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		secret, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			return credential{}, fmt.Errorf("authorization header is not a bearer token: %w", nettportal.ErrUnauthorized)
		}
		return credential{token: strings.TrimSpace(secret)}, nil
	}
	c, err := r.Cookie(cookieName)
	if err != nil || c.Value == "" {
		return credential{}, fmt.Errorf("no login: %w", nettportal.ErrUnauthorized)
	}
	return credential{cookie: c.Value}, nil
}

// authenticate finds the caller from a bearer token or the login cookie.
func (s *Server) authenticate(r *http.Request) (identity, error) {
	cred, err := requestCredential(r)
	if err != nil {
		return identity{}, err
	}
	return s.check(r.Context(), cred)
}

// check returns who a credential belongs to now; ErrUnauthorized once the
// token is revoked, the login ended or the user deleted or disabled.
func (s *Server) check(ctx context.Context, cred credential) (identity, error) {
	if cred.token != "" {
		u, err := s.Accounts.TokenUser(ctx, cred.token)
		return identity{user: u}, err
	}
	u, csrf, err := s.Accounts.LoginUser(ctx, cred.cookie, s.LoginTTL)
	return identity{user: u, csrf: csrf}, err
}

// authedHandler answers a request of a known user. It returns the error
// that should become the answer instead (s.fail maps it to a status), so
// every handler has one error path.
type authedHandler func(w http.ResponseWriter, r *http.Request, u nettportal.User) error

// auth lets through callers with at least role min. A request made with
// the login cookie that changes anything must carry the login's CSRF
// token: the cookie is an ambient credential a foreign page could make
// the browser send. Bearer tokens are never sent by a browser on its own,
// so they need no CSRF token.
func (s *Server) auth(min nettportal.Role, h authedHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := s.authenticate(r)
		if err != nil {
			if errors.Is(err, nettportal.ErrUnauthorized) {
				writeError(w, http.StatusUnauthorized, "not logged in (log in, or send Authorization: Bearer <token>)")
				return
			}
			s.fail(w, r, err)
			return
		}
		if !id.user.Token && !safeMethod(r.Method) {
			got := r.Header.Get(csrfHeader)
			if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(id.csrf)) != 1 {
				writeError(w, http.StatusForbidden, "missing or wrong "+csrfHeader+" header")
				return
			}
		}
		if !id.user.Role.AtLeast(min) {
			writeError(w, http.StatusForbidden, fmt.Sprintf("%s %s needs the %s role; you are %s", r.Method, r.URL.Path, min, id.user.Role))
			return
		}
		if err := h(w, r, id.user); err != nil {
			s.fail(w, r, err)
		}
	})
}

// jsonContentType reports whether a Content-Type header is
// application/json, with or without parameters.
func jsonContentType(v string) bool {
	mt, _, err := mime.ParseMediaType(v)
	return err == nil && mt == "application/json"
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// clientIP is the address the request came from. X-Forwarded-For is not
// trusted: anyone could set it to dodge the login limiter.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

type meJSON struct {
	User      string          `json:"user"`
	Role      nettportal.Role `json:"role"`
	CSRFToken string          `json:"csrf_token,omitempty"`
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	// Login CSRF: a foreign page could otherwise post a text/plain form
	// (no preflight) and log the victim's browser into the attacker's
	// account. A JSON content type forces a preflight cross-site, and a
	// browser always sends Origin on a POST; clients without one are not
	// browsers.
	if !jsonContentType(r.Header.Get("Content-Type")) {
		writeError(w, http.StatusUnsupportedMediaType, "login wants Content-Type: application/json")
		return
	}
	if !s.checkOrigin(r) {
		writeError(w, http.StatusForbidden, "origin "+r.Header.Get("Origin")+" may not log in here")
		return
	}
	var req struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	if err := decodeJSON(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if req.Username == "" || req.Password == "" {
		writeError(w, http.StatusBadRequest, "username and password are required")
		return
	}
	attempt, wait := s.limiter.reserve(clientIP(r), req.Username)
	if wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		writeError(w, http.StatusTooManyRequests, "too many failed logins; try again later")
		return
	}
	// bcrypt is deliberately slow: a flood of logins must not take every
	// CPU from accounting. Waiting for a slot is bounded, then 503.
	slotCtx, cancel := context.WithTimeout(r.Context(), s.LoginSlotWait)
	select {
	case s.bcryptSlots <- struct{}{}:
		cancel()
	case <-slotCtx.Done():
		cancel()
		s.limiter.release(attempt)
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "too many logins at once; try again shortly")
		return
	}
	u, err := s.Accounts.Authenticate(r.Context(), req.Username, req.Password)
	<-s.bcryptSlots
	if errors.Is(err, nettportal.ErrUnauthorized) {
		s.Log.Info().Str("user", req.Username).Str("addr", clientIP(r)).Msg("login failed")
		writeError(w, http.StatusUnauthorized, "wrong username or password")
		return
	}
	s.limiter.release(attempt)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	cookie, csrf, err := s.Accounts.CreateLogin(r.Context(), u.ID, s.LoginTTL)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: cookie, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil || s.SecureCookies,
	})
	s.Log.Info().Str("user", u.Name).Str("addr", clientIP(r)).Msg("login")
	writeJSON(w, http.StatusOK, meJSON{User: u.Name, Role: u.Role, CSRFToken: csrf})
}

// logout ends the login. It needs no CSRF token: the worst a foreign page
// can do with it is log the operator out.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(cookieName); err == nil && c.Value != "" {
		if err := s.Accounts.DeleteLogin(r.Context(), c.Value); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil || s.SecureCookies})
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

func (s *Server) me(w http.ResponseWriter, r *http.Request, u nettportal.User) error {
	out := meJSON{User: u.Name, Role: u.Role}
	if !u.Token {
		// authenticate again only to read the CSRF token; cheap, and it
		// keeps authedHandler's signature small.
		if id, err := s.authenticate(r); err == nil {
			out.CSRFToken = id.csrf
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// loginLimiter counts login attempts in a sliding window per key. An
// attempt is counted before its password is checked (reserve, then
// verify) and forgotten again if the password was right, so parallel
// guesses cannot all slip in before the first failure is recorded.
//
// Keys: user and source address together get the strict limit, so someone
// else's guesses from elsewhere do not lock the real user out; a source
// address over all users gets four times that (spraying names); and a user
// over all sources gets a slower backoff instead of a lockout: once the
// user has many failures in the window, attempts are spaced by
// userBackoff, which slows distributed guessing without shutting the real
// user out. It is per instance: behind a load balancer each instance
// allows its own share, which still stops password guessing.
type loginLimiter struct {
	max         int
	window      time.Duration
	userMax     int
	userBackoff time.Duration
	mu          sync.Mutex
	fails       map[string][]time.Time
}

func newLoginLimiter(max int, window time.Duration, userMax int, userBackoff time.Duration) *loginLimiter {
	return &loginLimiter{max: max, window: window, userMax: userMax, userBackoff: userBackoff, fails: map[string][]time.Time{}}
}

// loginAttempt is a reserved attempt; release it when the password was
// right.
type loginAttempt struct {
	keys []string
	at   time.Time
}

// reserve counts an attempt for user from ip, or returns how long until
// one is allowed.
func (l *loginLimiter) reserve(ip, user string) (loginAttempt, time.Duration) {
	pair, src, usr := "pair:"+ip+"\x00"+user, "ip:"+ip, "user:"+user
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	var wait time.Duration
	limit := func(k string, n int) {
		if f := l.recent(k, now); len(f) >= n {
			wait = max(wait, f[len(f)-n].Add(l.window).Sub(now))
		}
	}
	limit(pair, l.max)
	limit(src, 4*l.max)
	if f := l.recent(usr, now); len(f) >= l.userMax {
		wait = max(wait, f[len(f)-1].Add(l.userBackoff).Sub(now))
	}
	if wait > 0 {
		return loginAttempt{}, wait
	}
	if len(l.fails) > 100000 {
		// An attacker spraying names must not grow the map without bound.
		for k := range l.fails {
			l.recent(k, now)
		}
	}
	a := loginAttempt{keys: []string{pair, src, usr}, at: now}
	for _, k := range a.keys {
		l.fails[k] = append(l.fails[k], now)
	}
	return a, 0
}

// release forgets a reserved attempt: the password was right.
func (l *loginLimiter) release(a loginAttempt) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range a.keys {
		f := l.fails[k]
		for i := len(f) - 1; i >= 0; i-- {
			if f[i].Equal(a.at) {
				f = append(f[:i], f[i+1:]...)
				break
			}
		}
		if len(f) == 0 {
			delete(l.fails, k)
		} else {
			l.fails[k] = f
		}
	}
}

// recent drops the failures of k older than the window.
func (l *loginLimiter) recent(k string, now time.Time) []time.Time {
	f := l.fails[k]
	i := 0
	for i < len(f) && now.Sub(f[i]) >= l.window {
		i++
	}
	f = f[i:]
	if len(f) == 0 {
		delete(l.fails, k)
		return nil
	}
	l.fails[k] = f
	return f
}
