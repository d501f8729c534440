// Package web is NettPortal's HTTP side: the JSON API, the WebSocket hub
// that pushes the live sessions view, logins and API tokens, and the
// embedded browser UI (web/ui).
package web

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/nettportal/nettportal"
)

// SessionSource is what the page reads about sessions.
type SessionSource interface {
	nettportal.SessionStore
	SessionAttributes(ctx context.Context, id int64) (nettportal.RadacctColumns, error)
	SessionSamples(ctx context.Context, id int64) ([]nettportal.Sample, error)
}

// RouterSource reads and changes routers and their health.
type RouterSource interface {
	nettportal.RouterStore
	RouterStates(ctx context.Context) (map[int64]nettportal.RouterState, error)
	// SkippedNAS lists the nas rows that are not routers here, and why.
	SkippedNAS(ctx context.Context) ([]nettportal.SkippedNAS, error)
}

// Accounts keeps users, API tokens and web logins.
type Accounts interface {
	CreateUser(ctx context.Context, name, password string, role nettportal.Role) (nettportal.User, error)
	Authenticate(ctx context.Context, name, password string) (nettportal.User, error)
	Users(ctx context.Context) ([]nettportal.User, error)
	DeleteUser(ctx context.Context, nameOrID string) error
	CreateToken(ctx context.Context, name string, role nettportal.Role) (string, error)
	TokenUser(ctx context.Context, secret string) (nettportal.User, error)
	RevokeToken(ctx context.Context, nameOrID string) error
	Tokens(ctx context.Context) ([]nettportal.Token, error)
	CreateLogin(ctx context.Context, userID int64, ttl time.Duration) (cookie, csrf string, err error)
	LoginUser(ctx context.Context, cookie string, ttl time.Duration) (nettportal.User, string, error)
	DeleteLogin(ctx context.Context, cookie string) error
}

// CustomerSource keeps customers.
type CustomerSource interface {
	Customers(ctx context.Context, q string, limit, offset int) ([]nettportal.Customer, int64, error)
	SaveCustomer(ctx context.Context, c *nettportal.Customer) (created bool, err error)
	UpdateCustomer(ctx context.Context, c *nettportal.Customer) error
	DeleteCustomer(ctx context.Context, id int64) error
	ImportCustomersCSV(ctx context.Context, r io.Reader) (nettportal.ImportResult, error)
}

// ChangeSource announces session changes, from every instance on the
// database, and an empty change whenever changes may have been missed.
type ChangeSource interface {
	ListenSessionsChanged(ctx context.Context, fn func(nettportal.SessionsChanged)) error
}

// AuthChangeSource announces, from every instance on the database, that a
// token, login or user ended or changed, and once after each (re)connection.
type AuthChangeSource interface {
	ListenAuthChanged(ctx context.Context, fn func()) error
}

// Server serves the API, the WebSocket and the UI. Set the fields, then use
// Handler and run Run for the live updates.
type Server struct {
	Sessions  SessionSource
	Routers   RouterSource
	Accounts  Accounts
	Customers CustomerSource
	Changes   ChangeSource
	// AuthChanges makes open WebSockets re-check their credential as soon
	// as any instance ends one. Nil: Accounts if it is an AuthChangeSource;
	// otherwise sockets are re-checked only every WSRecheck.
	AuthChanges AuthChangeSource
	// Clocks, when set, says what the accounting listener last saw of each
	// router's clock, for the routers page's "router clock is off by ...".
	Clocks func() []nettportal.RouterClock
	// Control disconnects sessions and changes their speed; nil answers
	// 503 until it is configured.
	Control nettportal.SessionControl
	// Audit is the control audit; nil answers 503.
	Audit nettportal.AuditStore
	// Usage is billing usage; nil answers 503.
	Usage UsageSource
	Log   zerolog.Logger
	// OnSocketClosed, when set, learns that a WebSocket was let go: it is
	// no longer counted and its place under the socket limits is free.
	// Tests wait on it; it must be quick.
	OnSocketClosed func()
	// OnPush, when set, learns of each push: the snapshot bytes it queued
	// and how long the next must wait (see WSPushRate).
	OnPush func(queued int64, next time.Duration)

	// AllowedOrigins are extra origins (scheme://host[:port]) whose pages
	// may open the WebSocket, e.g. behind a proxy that rewrites Host.
	AllowedOrigins []string
	// SecureCookies marks the login cookie Secure even on plain HTTP (TLS
	// terminated by a proxy). On TLS connections it is always Secure.
	SecureCookies bool
	// PublicURL is where browsers reach the server (scheme://host[:port]),
	// e.g. https://portal.example.net behind a TLS proxy. When set, the
	// login and WebSocket Origin checks use it instead of the request's
	// Host, and an https PublicURL makes cookies Secure and sends HSTS.
	// Empty: the request's own Host, HSTS only on TLS connections.
	PublicURL string
	// LoginTTL is how long a login lasts without use. Zero: 12h.
	LoginTTL time.Duration
	// LoginFailures per LoginWindow per client address and per user name
	// before logins answer 429. Zero: 5 per minute.
	LoginFailures int
	LoginWindow   time.Duration
	// UserFailures failed logins for one user within LoginWindow, from any
	// addresses, space further attempts for that user by UserBackoff.
	// Zero: 4*LoginFailures and 10s.
	UserFailures int
	UserBackoff  time.Duration
	// LoginConcurrency bounds password checks (bcrypt) running at once;
	// more wait up to 5s, then get 503. Zero: the number of CPUs.
	LoginConcurrency int
	// LoginSlotWait bounds how long a login waits for one of those
	// checks before it is answered 503. Zero: 5s.
	LoginSlotWait time.Duration

	// WebSocket tuning; zero values are the defaults in parentheses.
	WSRefresh      time.Duration // periodic snapshot without changes (5s)
	WSMinInterval  time.Duration // shortest time between pushes on changes (500ms)
	WSWriteTimeout time.Duration // a client slower than this is dropped (10s)
	WSSendBuffer   int           // snapshots queued per client before it is dropped (8)
	WSRecheck      time.Duration // re-check of every socket's credential without notifications (30s)
	// WebSocket limits; over one of the first three the socket is closed
	// with a reason and counted (WSLimited); a subscribe over the fourth
	// waits for a query to free (counted too). Zero values are the
	// defaults in parentheses.
	WSPerUser             int // sockets one user or token may hold open (50)
	WSPerAddr             int // sockets one client address may hold open (200)
	WSSubscribesPerSecond int // subscribes per second per socket, bursts of twice that (5)
	WSSnapshotQueries     int // snapshot queries running at once for all sockets (2)
	// WSPushRate bounds the snapshot bytes per second that pushes send
	// to all sockets together: after a push of n bytes the next waits
	// n/WSPushRate (when longer than WSMinInterval). Zero: 32 MiB/s, a
	// page of 250 sessions to over 300 sockets a second.
	WSPushRate int64

	publicOrigin string // from PublicURL, "" when unset
	publicHTTPS  bool
	limiter      *loginLimiter
	bcryptSlots  chan struct{}
	hub          *hub
}

// maxBody is the largest request body, except customer imports.
const maxBody = 1 << 20

// maxImportBody bounds a customer CSV import: a billing export of a large
// ISP is several MiB.
const maxImportBody = 64 << 20

func (s *Server) init() {
	if s.limiter != nil {
		return
	}
	orDefault(&s.LoginTTL, 12*time.Hour)
	orDefault(&s.LoginFailures, 5)
	orDefault(&s.LoginWindow, time.Minute)
	orDefault(&s.WSRefresh, 5*time.Second)
	orDefault(&s.WSMinInterval, 500*time.Millisecond)
	orDefault(&s.WSPushRate, 32<<20)
	orDefault(&s.WSWriteTimeout, 10*time.Second)
	orDefault(&s.WSSendBuffer, 8)
	if u, err := url.Parse(s.PublicURL); s.PublicURL != "" && err == nil && u.Host != "" {
		s.publicOrigin = strings.ToLower(u.Scheme + "://" + u.Host)
		s.publicHTTPS = u.Scheme == "https"
		s.SecureCookies = s.SecureCookies || s.publicHTTPS
	}
	orDefault(&s.WSRecheck, 30*time.Second)
	if s.AuthChanges == nil {
		s.AuthChanges, _ = s.Accounts.(AuthChangeSource)
	}
	orDefault(&s.UserFailures, 4*s.LoginFailures)
	orDefault(&s.UserBackoff, 10*time.Second)
	orDefault(&s.LoginSlotWait, 5*time.Second)
	orDefault(&s.LoginConcurrency, runtime.NumCPU())
	s.bcryptSlots = make(chan struct{}, s.LoginConcurrency)
	s.limiter = newLoginLimiter(s.LoginFailures, s.LoginWindow, s.UserFailures, s.UserBackoff)
	s.hub = newHub(s)
}

// orDefault sets a setting left zero (or negative) to its default.
func orDefault[T int | int64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Handler returns the HTTP handler: API, WebSocket and UI. Call it once.
func (s *Server) Handler() http.Handler {
	s.init()
	mux := http.NewServeMux()
	v, op, ad := nettportal.RoleViewer, nettportal.RoleOperator, nettportal.RoleAdmin

	mux.HandleFunc("POST /api/login", s.login)
	mux.HandleFunc("POST /api/logout", s.logout)
	mux.Handle("GET /api/me", s.auth(v, s.me))

	mux.Handle("GET /api/sessions", s.auth(v, s.listSessions))
	mux.Handle("GET /api/sessions.csv", s.auth(v, s.exportSessions))
	mux.Handle("GET /api/sessions/{id}", s.auth(v, s.getSession))
	mux.Handle("GET /api/sessions/{id}/samples", s.auth(v, s.getSamples))
	mux.Handle("POST /api/sessions/{id}/disconnect", s.auth(op, s.disconnect))
	mux.Handle("POST /api/sessions/{id}/coa", s.auth(op, s.changeRate))
	mux.Handle("POST /api/disconnect", s.auth(op, s.disconnectMany))
	mux.Handle("GET /api/audit", s.auth(op, s.listAudit))
	mux.Handle("GET /api/usage", s.auth(v, s.listUsage))
	mux.Handle("GET /api/usage.csv", s.auth(v, s.exportUsage))
	mux.Handle("GET /api/throughput", s.auth(v, s.throughput))

	mux.Handle("GET /api/routers", s.auth(v, s.listRouters))
	mux.Handle("GET /api/quarantine", s.auth(v, s.listQuarantine))
	mux.Handle("POST /api/routers", s.auth(ad, s.createRouter))
	mux.Handle("PUT /api/routers/{id}", s.auth(ad, s.updateRouter))
	mux.Handle("DELETE /api/routers/{id}", s.auth(ad, s.deleteRouter))

	mux.Handle("GET /api/customers", s.auth(v, s.listCustomers))
	mux.Handle("POST /api/customers", s.auth(op, s.saveCustomer))
	mux.Handle("PUT /api/customers/{id}", s.auth(op, s.updateCustomer))
	mux.Handle("DELETE /api/customers/{id}", s.auth(op, s.deleteCustomer))
	mux.Handle("POST /api/customers/import", s.auth(ad, s.importCustomers))

	mux.Handle("GET /api/users", s.auth(ad, s.listUsers))
	mux.Handle("POST /api/users", s.auth(ad, s.createUser))
	mux.Handle("DELETE /api/users/{name}", s.auth(ad, s.deleteUser))
	mux.Handle("GET /api/tokens", s.auth(ad, s.listTokens))
	mux.Handle("POST /api/tokens", s.auth(ad, s.createToken))
	mux.Handle("DELETE /api/tokens/{name}", s.auth(ad, s.revokeToken))

	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such API endpoint: "+r.Method+" "+r.URL.Path)
	})
	mux.HandleFunc("GET /ws", s.serveWS)
	ui := uiHandler()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, r.Method+" is not allowed here")
			return
		}
		ui.ServeHTTP(w, r)
	})
	return s.recoverer(s.hsts(s.limitBody(mux)))
}

// Run pushes session changes to WebSocket clients until ctx ends.
func (s *Server) Run(ctx context.Context) {
	s.init()
	s.hub.run(ctx)
}

// hsts tells browsers to use only HTTPS from now on, when they reached us
// over TLS or the public URL is https.
func (s *Server) hsts(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil || s.publicHTTPS {
			w.Header().Set("Strict-Transport-Security", "max-age=31536000")
		}
		next.ServeHTTP(w, r)
	})
}

// recoverer turns a panic in a handler into a logged 500, so one bad
// request never takes the server down.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.Log.Error().Str("method", r.Method).Str("path", r.URL.Path).Interface("panic", v).Msg("handler panicked")
				writeError(w, http.StatusInternalServerError, "internal error")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func (s *Server) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit := int64(maxBody)
		if r.URL.Path == "/api/customers/import" {
			limit = maxImportBody
		}
		// A declared length over the limit is refused before reading; a
		// chunked body is cut off by MaxBytesReader as it is read.
		if r.ContentLength > limit {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", limit))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		next.ServeHTTP(w, r)
	})
}

// Clients returns how many WebSocket clients are connected (for metrics).
func (s *Server) Clients() int {
	if s.hub == nil {
		return 0
	}
	return s.hub.clientCount()
}
