package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/rs/zerolog"

	"github.com/nettportal/nettportal/radius"
	"github.com/nettportal/nettportal/store"
)

// serveConfig is everything `serve` is told.
type serveConfig struct {
	DB        string
	AcctAddr  string
	HTTPAddr  string
	LogLevel  string
	DBConns   int
	AcctConns int
	// StatementTimeout and HeavyQueries bound what the web page, exports,
	// the reconciler and the chart sampler may take of the database.
	StatementTimeout time.Duration
	HeavyQueries     int
	// ViewerYield bounds how long a viewer query waits for accounting
	// that is behind; 0: viewers never wait.
	ViewerYield time.Duration
	// BehindLatency is the answer time past which accounting counts as
	// behind (radius.Server.BehindLatency).
	BehindLatency time.Duration
	QueueSize     int
	MaxQueueDelay time.Duration
	MaxBatch      int
	// BatchCommitTime is radius.Server's; the flag's 0 means MaxBatch only.
	BatchCommitTime time.Duration

	ReconcileInterval time.Duration
	APIPollInterval   time.Duration
	StaleGrace        time.Duration
	MaxSessionAge     time.Duration
	APITimeout        time.Duration
	SpoolDir          string
	SpoolAfter        time.Duration
	ClockPast         time.Duration
	ClockFuture       time.Duration
	UsageTimeZone     string
	CoATimeout        time.Duration
	CoARetries        int
	SamplesKeep       time.Duration
	SecretKeyFile     string
	// SecretKey is NETTPORTAL_SECRET_KEY; it overrides SecretKeyFile.
	SecretKey string

	HTTPReadTimeout    time.Duration
	HTTPIdleTimeout    time.Duration
	HTTPConnsPerClient int
	MetricsAddr        string
	MetricsOnHTTP      bool
	Pprof              bool
	TLSCert, TLSKey    string
	PublicURL          string

	// usageLocation is UsageTimeZone, parsed by validate.
	usageLocation *time.Location

	// onSweep is a test hook, never a flag: it learns what each stale
	// sweep closed, so a test waits for a sweep instead of the clock.
	onSweep func(closed int64, err error)
}

func (c *serveConfig) register(fs interface {
	StringVar(*string, string, string, string)
	IntVar(*int, string, int, string)
	DurationVar(*time.Duration, string, time.Duration, string)
	BoolVar(*bool, string, bool, string)
}) {
	fs.StringVar(&c.DB, "db", "", "PostgreSQL URL (also DATABASE_URL)")
	fs.StringVar(&c.AcctAddr, "acct-addr", ":1813", "UDP address for RADIUS accounting")
	fs.StringVar(&c.HTTPAddr, "http-addr", ":8080", "HTTP address for the web page and API")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.IntVar(&c.DBConns, "db-conns", 8, "database connections for everything but accounting (web page, API, exports, reconciler)")
	fs.IntVar(&c.AcctConns, "acct-conns", 4, "accounting's own database connections, which the web page and exports can never take")
	fs.DurationVar(&c.ViewerYield, "viewer-yield", time.Second, "while accounting is behind (see --behind-latency), session lists, live-view snapshots, customers, usage and each export page wait up to this long before they query and then query one at a time (503 when a turn does not come within --statement-timeout), and history searches that would still find it behind are refused (503), so the CPU goes to the commits first (0: they never wait)")
	fs.DurationVar(&c.BehindLatency, "behind-latency", 50*time.Millisecond, "accounting counts as behind while packets wait longer than this for their answer (in the socket, the queue or a commit)")
	fs.DurationVar(&c.StatementTimeout, "statement-timeout", store.DefaultStatementTimeout, "longest a query of the web page, an export, the reconciler or a command may run (accounting has none)")
	fs.IntVar(&c.HeavyQueries, "heavy-queries", 1, "heavy queries (history searches, deep pages, reports) run at once, each keeping up to a core busy; more are answered 503 (raise it on a machine with cores to spare); one CSV export runs beside them")
	fs.IntVar(&c.QueueSize, "queue-size", 65536, "accounting records waiting for a batch before packets go unanswered")
	fs.DurationVar(&c.MaxQueueDelay, "max-queue-delay", 200*time.Millisecond, "longest an accounting packet may wait for its batch; older ones are dropped unanswered (shed) so answers stay inside the routers' timeout under overload (0: no bound)")
	fs.IntVar(&c.MaxBatch, "max-batch", 4096, "most accounting records per transaction")
	fs.DurationVar(&c.BatchCommitTime, "batch-commit-time", 50*time.Millisecond, "a batch is cut at the records one commit was measured to take in this long (never below 512), so no packet waits for a long commit; raise it for a database whose every commit is slow (remote, synchronous replica) (0: only --max-batch)")
	fs.DurationVar(&c.ReconcileInterval, "reconcile-interval", time.Minute, "how often routers with API access are compared with the database")
	fs.DurationVar(&c.APIPollInterval, "api-poll-interval", 10*time.Second, "how often routers fed by the API alone (no RADIUS accounting) are polled")
	fs.DurationVar(&c.StaleGrace, "stale-grace", time.Minute, "added to two interim intervals before a session without updates is closed as stale")
	fs.DurationVar(&c.MaxSessionAge, "max-session-age", 0, "close open sessions that started longer ago than this, on every router (0: no maximum; for routers that send neither interims nor Stops reliably)")
	fs.DurationVar(&c.APITimeout, "api-timeout", 5*time.Second, "RouterOS API command timeout")
	fs.StringVar(&c.UsageTimeZone, "usage-timezone", "UTC", "time zone of billing days (IANA name, e.g. Asia/Dhaka); set it once, before accounting flows")
	fs.DurationVar(&c.CoATimeout, "coa-timeout", 2*time.Second, "how long one Disconnect/CoA attempt waits for the router's answer")
	fs.IntVar(&c.CoARetries, "coa-retries", 2, "Disconnect/CoA retransmissions before the RouterOS API fallback")
	fs.StringVar(&c.SpoolDir, "spool-dir", "/var/lib/nettportal/spool", "durable spool for accounting the database cannot take in time (\"off\" disables it)")
	fs.DurationVar(&c.ClockPast, "clock-skew-past", 24*time.Hour, "how far before receive time an Event-Timestamp is still believed; an older one (a router without NTP says 1970) is replaced by receive time - Acct-Delay-Time and counted as clock skew")
	fs.DurationVar(&c.ClockFuture, "clock-skew-future", 10*time.Minute, "how far after receive time an Event-Timestamp is still believed")
	fs.DurationVar(&c.SpoolAfter, "spool-after", 2*time.Second, "how long a failing commit is retried before its batch is spooled")
	fs.DurationVar(&c.SamplesKeep, "samples-keep", 720*time.Hour, "how long the per-session traffic chart points are kept")
	fs.DurationVar(&c.HTTPReadTimeout, "http-read-timeout", time.Minute, "longest time to read one HTTP request, body included (a slow body is cut off)")
	fs.DurationVar(&c.HTTPIdleTimeout, "http-idle-timeout", 2*time.Minute, "how long an idle keep-alive HTTP connection stays open")
	fs.IntVar(&c.HTTPConnsPerClient, "http-conns-per-client", 256, "HTTP connections open at once from one client address, more are closed at once (0: no cap; behind a reverse proxy every client is the proxy, so raise it or let the proxy cap)")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "PEM certificate (chain) for HTTPS on --http-addr; reloaded when the file changes")
	fs.StringVar(&c.TLSKey, "tls-key", "", "PEM private key for --tls-cert")
	fs.StringVar(&c.PublicURL, "public-url", "", "URL browsers use, e.g. https://portal.example.net behind a TLS proxy: Origin checks use it; https makes cookies Secure and sends HSTS")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", "", "separate TCP address for /metrics (and /healthz), e.g. 127.0.0.1:9180; empty: none")
	fs.BoolVar(&c.Pprof, "pprof", false, "serve Go's profiler (/debug/pprof/) on --metrics-addr, never on --http-addr: for diagnosing load, keep that address private")
	fs.BoolVar(&c.MetricsOnHTTP, "metrics-on-http-addr", true, "also serve /metrics, without login, on --http-addr (set false once Prometheus scrapes --metrics-addr)")
	fs.StringVar(&c.SecretKeyFile, "secret-key-file", defaultSecretKeyFile, "key that encrypts RouterOS API passwords in the database; created when missing on a new database ("+secretKeyEnv+" overrides it)")
}

func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return runServeWith(ctx, args, getenv, stderr, nil, nil)
}

// runServeWith is runServe with tune, when set, changing the configuration
// the flags gave (tests set the hooks no flag reaches), and ready, when
// set, called as serve's is (tests learn the bound addresses from it).
func runServeWith(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, tune func(*serveConfig), ready func(*server)) error {
	fs := newFlagSet("serve", stderr)
	var cfg serveConfig
	cfg.register(fs)
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	cfg.SecretKey = getenv(secretKeyEnv)
	if tune != nil {
		tune(&cfg)
	}
	log, err := newLogger(stderr, cfg.LogLevel)
	if err != nil {
		return err
	}
	return serve(ctx, cfg, log, ready)
}

// serve runs until ctx ends: it checks the configuration, builds the
// wiring (database, components, listeners), starts it, and on the way out
// answers what is queued and closes everything in reverse order. ready,
// when set, is called once every listener is bound (demo and tests use
// it).
func serve(ctx context.Context, cfg serveConfig, log zerolog.Logger, ready func(*server)) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	srv, err := build(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer srv.close()
	errc := srv.start(ctx)
	// At every log level: supervisors and tests read the bound addresses
	// (a ":0" port) from this line.
	log.Log().Str("accounting", srv.acctAddr).Str("http", srv.httpAddr).Str("metrics", srv.metricsAddr).Msg("serving")
	if ready != nil {
		ready(srv)
	}
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	srv.shutdown()
	if runErr != nil && !errors.Is(runErr, radius.ErrServerClosed) && !errors.Is(runErr, http.ErrServerClosed) {
		return runErr
	}
	return nil
}

// validate checks what the flags say before anything is opened, and keeps
// the parsed time zone.
func (c *serveConfig) validate() error {
	if c.AcctConns < 1 || c.HeavyQueries < 1 || c.StatementTimeout <= 0 {
		return fmt.Errorf("--acct-conns and --heavy-queries must be at least 1 and --statement-timeout positive")
	}
	if c.BehindLatency <= 0 {
		return fmt.Errorf("--behind-latency %s must be positive", c.BehindLatency)
	}
	if c.ViewerYield < 0 {
		return fmt.Errorf("--viewer-yield %s is negative: use 0 for no wait", c.ViewerYield)
	}
	// A heavy page takes two connections (the rows and the totals run side
	// by side); two more stay for logins and the live page.
	if c.DBConns < 2*c.HeavyQueries+2 {
		return fmt.Errorf("--heavy-queries %d needs --db-conns of at least %d", c.HeavyQueries, 2*c.HeavyQueries+2)
	}
	if c.MaxSessionAge < 0 {
		return fmt.Errorf("--max-session-age %s is negative: use 0 for no maximum", c.MaxSessionAge)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return fmt.Errorf("--tls-cert and --tls-key go together")
	}
	if c.Pprof && c.MetricsAddr == "" {
		return fmt.Errorf("--pprof serves on --metrics-addr: set one (e.g. 127.0.0.1:9180)")
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("--public-url %q: want http(s)://host[:port]", c.PublicURL)
		}
	}
	loc, err := time.LoadLocation(c.UsageTimeZone)
	if err != nil {
		return fmt.Errorf("--usage-timezone %q: %w", c.UsageTimeZone, err)
	}
	c.usageLocation = loc
	return nil
}

// pruneSamples deletes old chart points every hour.
func pruneSamples(ctx context.Context, db *store.DB, keep time.Duration, log zerolog.Logger) {
	if keep <= 0 {
		return
	}
	tick := time.NewTicker(time.Hour)
	defer tick.Stop()
	for {
		n, err := db.PruneSamples(ctx, keep)
		if err != nil && ctx.Err() == nil {
			log.Warn().Err(err).Msg("prune traffic samples")
		} else if n > 0 {
			log.Info().Int64("deleted", n).Msg("pruned traffic samples")
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// coaRetries maps the flag (0 means none) to coa.Client.Retries (0 means
// the default, negative none).
func coaRetries(n int) int {
	if n <= 0 {
		return -1
	}
	return n
}
