// Package routeros is NettPortal's client for the MikroTik RouterOS API:
// it reads active PPPoE sessions with their interface counters (for the
// reconciler), removes sessions (the disconnect fallback when a router
// NAKs or ignores a RADIUS Disconnect-Request), and reads secrets, identity
// and resource data. It wraps github.com/go-routeros/routeros/v3.
package routeros

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	ros "github.com/go-routeros/routeros/v3"
	"github.com/rs/zerolog"
)

// ErrClosed is returned by calls on a closed Client.
var ErrClosed = errors.New("routeros client closed")

// DefaultTimeout bounds each command (including a dial and login it needs)
// when Config.Timeout is zero.
const DefaultTimeout = 5 * time.Second

// Reconnect backoff bounds. A router that is down is retried at most every
// maxBackoff, so a fleet of dead routers does not keep the reconciler busy.
const (
	defaultMinBackoff = 500 * time.Millisecond
	defaultMaxBackoff = 30 * time.Second
)

// Config is how to reach one router's API.
type Config struct {
	// Addr is host:port; without a port, 8728 (8729 with TLS) is used.
	Addr, Username, Password string
	// TLS selects the api-ssl service.
	TLS bool
	// TLSConfig, when set, is used with TLS as it is. Otherwise the
	// router's certificate is verified: against TLSFingerprint (hex
	// SHA-256 of the certificate, for RouterOS's self-signed one), else
	// against TLSCAFile's CAs, else against the system roots; TLSInsecure
	// skips the check (and is logged as a warning at every connect).
	TLSConfig      *tls.Config
	TLSFingerprint string
	TLSCAFile      string
	TLSInsecure    bool
	// Timeout bounds each command; zero means DefaultTimeout.
	Timeout time.Duration
}

// ActiveSession joins /ppp/active with the <pppoe-NAME> interface counters.
type ActiveSession struct {
	ID       string // .id in /ppp/active, for /ppp/active/remove
	Name     string
	Service  string
	CallerID string
	Address  string
	Uptime   time.Duration
	// SessionID is 8 lowercase hex digits without 0x, the same as the
	// Acct-Session-Id of the session's accounting packets.
	SessionID string
	Radius    bool
	// InputOctets and OutputOctets are rx-byte (upload from the
	// subscriber) and tx-byte (download) of the session's interface; valid
	// only when HasCounters (the interface may be missing for a moment
	// while a session comes up or goes down).
	InputOctets, OutputOctets uint64
	HasCounters               bool
}

// Secret is a local /ppp/secret entry. Passwords are never read.
type Secret struct{ Name, Profile, Service string }

// Resource is the part of /system/resource the reconciler needs: uptime
// detects reboots that RouterOS does not announce over RADIUS.
type Resource struct {
	Uptime             time.Duration
	Version, BoardName string
}

// Client talks to one router. It keeps one API connection, redials after
// errors with capped exponential backoff, and runs one command at a time
// (the v3 library's synchronous mode cannot share a connection). A command
// that outlives its timeout closes the connection, so the next call
// redials instead of reading a stale reply.
type Client struct {
	cfg     Config
	log     zerolog.Logger
	timeout time.Duration

	// sem is held while a command (and any dial it needs) runs; a channel
	// rather than a mutex so waiting for it honours the context.
	sem chan struct{}

	// Guarded by sem.
	failures   int
	retryAt    time.Time
	lastErr    error
	minBackoff time.Duration
	maxBackoff time.Duration

	mu     sync.Mutex // guards conn and closed, so Close can abort a command
	conn   *apiConn
	closed bool
}

type apiConn struct {
	nc net.Conn
	rc *ros.Client
}

func (a *apiConn) close() { a.rc.Close() }

// NewClient returns a client for cfg; it connects on first use.
func NewClient(cfg Config, log zerolog.Logger) *Client {
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil && cfg.Addr != "" {
		port := "8728"
		if cfg.TLS {
			port = "8729"
		}
		cfg.Addr = net.JoinHostPort(cfg.Addr, port)
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &Client{
		cfg:        cfg,
		log:        log.With().Str("router_api", cfg.Addr).Logger(),
		timeout:    timeout,
		sem:        make(chan struct{}, 1),
		minBackoff: defaultMinBackoff,
		maxBackoff: defaultMaxBackoff,
	}
}

// Close closes the connection, aborting a running command; later calls
// return ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.conn != nil {
		c.conn.close()
		c.conn = nil
	}
	return nil
}

// dropConn forgets a connection that failed, unless it was replaced.
func (c *Client) dropConn(a *apiConn, err error) {
	c.mu.Lock()
	if c.conn == a {
		c.conn = nil
	}
	c.mu.Unlock()
	a.close()
	c.log.Warn().Err(err).Msg("routeros connection dropped")
}

// connect returns the live connection or dials one. Called with sem held.
func (c *Client) connect(ctx context.Context) (*apiConn, error) {
	c.mu.Lock()
	closed, conn := c.closed, c.conn
	c.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if conn != nil {
		return conn, nil
	}
	if wait := time.Until(c.retryAt); wait > 0 {
		if dl, ok := ctx.Deadline(); ok && c.retryAt.After(dl) {
			return nil, fmt.Errorf("connect %s: next attempt in %s after: %w", c.cfg.Addr, wait.Round(time.Millisecond), c.lastErr)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("connect %s: %w", c.cfg.Addr, ctx.Err())
		}
	}
	a, err := c.dial(ctx)
	if err != nil {
		c.failures++
		c.lastErr = err
		c.retryAt = time.Now().Add(c.backoff())
		c.log.Warn().Err(err).Int("failures", c.failures).Time("retry_at", c.retryAt).Msg("routeros connect failed")
		return nil, err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		a.close()
		return nil, ErrClosed
	}
	c.conn = a
	c.mu.Unlock()
	if c.failures > 0 {
		c.log.Info().Int("after_failures", c.failures).Msg("routeros reconnected")
	} else {
		c.log.Debug().Msg("routeros connected")
	}
	c.failures, c.lastErr, c.retryAt = 0, nil, time.Time{}
	return a, nil
}

// backoff is the wait before the next dial: doubling per consecutive
// failure up to maxBackoff, with jitter so routers that failed together
// (a shared uplink) are not redialed in lockstep.
func (c *Client) backoff() time.Duration {
	d := c.minBackoff
	for i := 1; i < c.failures && d < c.maxBackoff; i++ {
		d *= 2
	}
	d = min(d, c.maxBackoff)
	return d/2 + rand.N(d/2+1)
}

func (c *Client) dial(ctx context.Context) (*apiConn, error) {
	var nc net.Conn
	var err error
	if c.cfg.TLS {
		cfg, cerr := c.cfg.tlsConfig()
		if cerr != nil {
			return nil, fmt.Errorf("dial %s: %w", c.cfg.Addr, cerr)
		}
		if c.cfg.TLSInsecure && c.cfg.TLSConfig == nil && c.cfg.TLSFingerprint == "" && c.cfg.TLSCAFile == "" {
			c.log.Warn().Msg("RouterOS API TLS certificate NOT verified (--api-tls-insecure): anyone on the path can take the API password; pin it with router trust")
		}
		nc, err = (&tls.Dialer{Config: cfg}).DialContext(ctx, "tcp", c.cfg.Addr)
	} else {
		nc, err = new(net.Dialer).DialContext(ctx, "tcp", c.cfg.Addr)
	}
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", c.cfg.Addr, err)
	}
	rc, err := ros.NewClient(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("new api client %s: %w", c.cfg.Addr, err)
	}
	rc.SetLogHandler(zerologHandler{log: c.log})
	a := &apiConn{nc: nc, rc: rc}
	if _, err := a.do(ctx, func() (*ros.Reply, error) {
		return nil, rc.Login(c.cfg.Username, c.cfg.Password)
	}); err != nil {
		a.close()
		return nil, fmt.Errorf("login %s as %q: %w", c.cfg.Addr, c.cfg.Username, err)
	}
	return a, nil
}

// do runs f, a blocking exchange on the connection, within ctx. The v3
// client ignores contexts in its synchronous mode, so ctx is enforced by
// moving the socket deadline into the past when it ends.
func (a *apiConn) do(ctx context.Context, f func() (*ros.Reply, error)) (*ros.Reply, error) {
	stop := context.AfterFunc(ctx, func() { a.nc.SetDeadline(time.Unix(1, 0)) })
	r, err := f()
	if !stop() {
		// The deadline fired, maybe mid-sentence: the stream can no longer
		// be trusted even if f happened to finish.
		if err == nil {
			err = errPoisoned
		}
		return nil, fmt.Errorf("%w (%w)", ctx.Err(), err)
	}
	return r, err
}

var errPoisoned = errors.New("connection deadline fired")

// isTrap tells a command-level error (the connection is fine) from a
// broken connection.
func isTrap(err error) (*ros.DeviceError, bool) {
	var de *ros.DeviceError
	if errors.As(err, &de) && de.Sentence != nil && de.Sentence.Word == "!trap" {
		return de, true
	}
	return nil, false
}

// run sends one read-only command and returns its !re rows as maps. A
// connection that turns out dead when reused (the router rebooted or
// dropped an idle connection) is redialed once, as nothing was changed.
func (c *Client) run(ctx context.Context, words ...string) ([]map[string]string, error) {
	return c.exec(ctx, true, words...)
}

// exec runs one command; retry allows a second attempt on a fresh
// connection and must be false for commands that change the router,
// since a lost reply does not tell whether the change happened.
func (c *Client) exec(ctx context.Context, retry bool, words ...string) ([]map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: wait for connection: %w", words[0], ctx.Err())
	}
	defer func() { <-c.sem }()
	for {
		c.mu.Lock()
		reused := c.conn != nil
		c.mu.Unlock()
		a, err := c.connect(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", words[0], err)
		}
		r, err := a.do(ctx, func() (*ros.Reply, error) { return a.rc.RunArgs(words) })
		if err == nil {
			rows := make([]map[string]string, 0, len(r.Re))
			for _, re := range r.Re {
				rows = append(rows, re.Map)
			}
			return rows, nil
		}
		if _, ok := isTrap(err); ok && ctx.Err() == nil {
			return nil, fmt.Errorf("%s: %w", words[0], err)
		}
		c.dropConn(a, err)
		if !retry || !reused || ctx.Err() != nil {
			return nil, fmt.Errorf("%s on %s: %w", words[0], c.cfg.Addr, err)
		}
		retry = false
	}
}
