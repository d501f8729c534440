package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/coa"
	"github.com/nettportal/nettportal/metrics"
	"github.com/nettportal/nettportal/radius"
	"github.com/nettportal/nettportal/routeros"
	"github.com/nettportal/nettportal/spool"
	"github.com/nettportal/nettportal/store"
	"github.com/nettportal/nettportal/web"
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
	QueueSize        int
	MaxQueueDelay    time.Duration
	MaxBatch         int

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
	TLSCert, TLSKey    string
	PublicURL          string

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
	fs.DurationVar(&c.StatementTimeout, "statement-timeout", store.DefaultStatementTimeout, "longest a query of the web page, an export, the reconciler or a command may run (accounting has none)")
	fs.IntVar(&c.HeavyQueries, "heavy-queries", 1, "heavy queries (history searches, deep pages, reports) run at once, each keeping up to a core busy; more are answered 503 (raise it on a machine with cores to spare); one CSV export runs beside them")
	fs.IntVar(&c.QueueSize, "queue-size", 65536, "accounting records waiting for a batch before packets go unanswered")
	fs.DurationVar(&c.MaxQueueDelay, "max-queue-delay", 200*time.Millisecond, "longest an accounting packet may wait for its batch; older ones are dropped unanswered (shed) so answers stay inside the routers' timeout under overload (0: no bound)")
	fs.IntVar(&c.MaxBatch, "max-batch", 4096, "accounting records per transaction")
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
	fs.BoolVar(&c.MetricsOnHTTP, "metrics-on-http-addr", true, "also serve /metrics, without login, on --http-addr (set false once Prometheus scrapes --metrics-addr)")
	fs.StringVar(&c.SecretKeyFile, "secret-key-file", defaultSecretKeyFile, "key that encrypts RouterOS API passwords in the database; created when missing on a new database ("+secretKeyEnv+" overrides it)")
}

func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return runServeWith(ctx, args, getenv, stderr, nil)
}

// runServeWith is runServe with tune, when set, changing the configuration
// the flags gave (tests set the hooks no flag reaches).
func runServeWith(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, tune func(*serveConfig)) error {
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
	return serve(ctx, cfg, log, nil)
}

// serve runs until ctx ends. ready, when set, is called once every listener
// is bound (demo and tests use it).
func serve(ctx context.Context, cfg serveConfig, log zerolog.Logger, ready func(*server)) error {
	if cfg.AcctConns < 1 || cfg.HeavyQueries < 1 || cfg.StatementTimeout <= 0 {
		return fmt.Errorf("--acct-conns and --heavy-queries must be at least 1 and --statement-timeout positive")
	}
	// A heavy page takes two connections (the rows and the totals run side
	// by side); two more stay for logins and the live page.
	if cfg.DBConns < 2*cfg.HeavyQueries+2 {
		return fmt.Errorf("--heavy-queries %d needs --db-conns of at least %d", cfg.HeavyQueries, 2*cfg.HeavyQueries+2)
	}
	db, err := openMigratedDB(ctx, cfg.DB, store.Options{
		MaxConns: int32(cfg.DBConns), AccountingConns: int32(cfg.AcctConns),
		StatementTimeout: cfg.StatementTimeout, HeavyQueries: cfg.HeavyQueries,
	}, log)
	if err != nil {
		return err
	}
	defer db.Close()
	// Before anything reads a router: their secrets are encrypted.
	if err := useSecretKey(ctx, db, cfg.SecretKeyFile, cfg.SecretKey); err != nil {
		return err
	}
	// FreeRADIUS accepts nas rows that are not one router (ranges,
	// hostnames, shared names): they are skipped, not fatal.
	skipped, err := db.SkippedNAS(ctx)
	if err != nil {
		return err
	}
	for _, n := range skipped {
		log.Warn().Int64("nas_id", n.ID).Str("shortname", n.ShortName).Str("nasname", n.NASName).
			Str("reason", n.Reason).Msg("nas row skipped: not a router here")
	}

	loc, err := time.LoadLocation(cfg.UsageTimeZone)
	if err != nil {
		return fmt.Errorf("--usage-timezone %q: %w", cfg.UsageTimeZone, err)
	}
	db.UsageLocation = loc
	if cfg.MaxSessionAge < 0 {
		return fmt.Errorf("--max-session-age %s is negative: use 0 for no maximum", cfg.MaxSessionAge)
	}
	db.MaxSessionAge = cfg.MaxSessionAge
	srv := &server{db: db, log: log}
	srv.acct = &radius.Server{
		Addr:      cfg.AcctAddr,
		Routers:   db,
		Store:     db,
		Log:       log.With().Str("component", "radius").Logger(),
		QueueSize: cfg.QueueSize,
		MaxBatch:  cfg.MaxBatch,
		Limits:    radius.Limits{ClockPast: cfg.ClockPast, ClockFuture: cfg.ClockFuture},
		// The flag's 0 means no bound; the field's zero means the default.
		MaxQueueDelay: cmp.Or(cfg.MaxQueueDelay, -1),
	}
	srv.metrics = newMetrics(srv, log)
	srv.acct.OnBatch = srv.metrics.ObserveBatch
	srv.acct.OnDequeue = srv.metrics.ObserveQueueDelay
	if cfg.SpoolDir != "off" && cfg.SpoolDir != "" {
		sp, err := spool.Open(cfg.SpoolDir, log.With().Str("component", "spool").Logger())
		if err != nil {
			return fmt.Errorf("%w (set --spool-dir to a writable directory, or off)", err)
		}
		defer sp.Close()
		srv.spool = sp
		srv.acct.Spool = sp
		srv.acct.SpoolAfter = cfg.SpoolAfter
	}
	acctConn, err := srv.acct.Listen()
	if err != nil {
		return err
	}
	httpLn, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		acctConn.Close()
		return fmt.Errorf("listen for HTTP on %s: %w", cfg.HTTPAddr, err)
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		acctConn.Close()
		httpLn.Close()
		return fmt.Errorf("--tls-cert and --tls-key go together")
	}
	if cfg.PublicURL != "" {
		if u, err := url.Parse(cfg.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			acctConn.Close()
			httpLn.Close()
			return fmt.Errorf("--public-url %q: want http(s)://host[:port]", cfg.PublicURL)
		}
	}
	srv.acctAddr = acctConn.LocalAddr().String()
	srv.httpAddr = httpLn.Addr().String()
	var metricsLn net.Listener
	if cfg.MetricsAddr != "" {
		if metricsLn, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			acctConn.Close()
			httpLn.Close()
			return fmt.Errorf("listen for metrics on %s: %w", cfg.MetricsAddr, err)
		}
		srv.metricsAddr = metricsLn.Addr().String()
	}
	healthz := func(w http.ResponseWriter, r *http.Request) {
		if err := db.Pool.Ping(r.Context()); err != nil {
			http.Error(w, "database unreachable", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", healthz)
	if cfg.MetricsOnHTTP {
		mux.Handle("GET /metrics", srv.metrics.Handler())
	}
	metricsMux := http.NewServeMux()
	metricsMux.HandleFunc("GET /healthz", healthz)
	metricsMux.Handle("GET /metrics", srv.metrics.Handler())
	metricsSrv := &http.Server{Handler: metricsMux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
		IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
	// Slow clients: headers must arrive within 10s, the whole request
	// (body too) within the read timeout, and idle keep-alives end. No
	// write timeout: CSV exports stream and WebSockets live long (the hub
	// has its own write deadlines).
	httpSrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: cfg.HTTPReadTimeout,
		IdleTimeout: cfg.HTTPIdleTimeout, MaxHeaderBytes: 64 << 10}
	httpLn = web.LimitListener(httpLn, cfg.HTTPConnsPerClient)
	if cfg.TLSCert != "" {
		certs, err := newCertReloader(cfg.TLSCert, cfg.TLSKey, log.With().Str("component", "tls").Logger())
		if err != nil {
			acctConn.Close()
			httpLn.Close()
			return err
		}
		httpSrv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.getCertificate}
		httpLn = tls.NewListener(httpLn, httpSrv.TLSConfig)
	}

	srv.apiClients = &routeros.Pool{Timeout: cfg.APITimeout, Log: log.With().Str("component", "routeros").Logger()}
	defer srv.apiClients.Close()
	srv.control = &coa.Controller{
		Sessions: db,
		Routers:  db,
		Audit:    srv.metrics.WrapAudit(db),
		Disconnector: coa.Disconnector{Client: &coa.Client{
			Timeout: cfg.CoATimeout, Retries: coaRetries(cfg.CoARetries), Log: log.With().Str("component", "coa").Logger(),
		}},
		API: func(r nettportal.Router) coa.Remover { return srv.apiClients.Client(r) },
		OnResult: func(routerID int64, answered bool) {
			if err := db.RouterCoAChecked(context.Background(), routerID, time.Now(), answered); err != nil {
				log.Warn().Err(err).Msg("record CoA reachability")
			}
		},
		Log: log.With().Str("component", "coa").Logger(),
	}
	// Committed changes wake the live view (through NOTIFY, so every
	// instance on the database sees them).
	notifier := &store.Notifier{DB: db, Log: log.With().Str("component", "events").Logger()}
	srv.reconciler = &routeros.Reconciler{
		OnChange:     notifier.Announce,
		Store:        db,
		Clients:      srv.apiClients,
		Interval:     cfg.ReconcileInterval,
		FastInterval: cfg.APIPollInterval,
		StaleGrace:   cfg.StaleGrace,
		OnResult:     observeReconcile(srv.metrics),
		OnSweep:      cfg.onSweep,
		Log:          log.With().Str("component", "reconciler").Logger(),
	}
	// Committed batches also feed the traffic chart.
	sampler := &store.Sampler{DB: db, Log: log.With().Str("component", "samples").Logger()}
	srv.acct.OnCommit = func(recs []nettportal.AccountingRecord) {
		notifier.Changed(recs)
		sampler.Add(recs)
	}
	srv.web = &web.Server{
		Sessions: db, Routers: db, Accounts: db, Customers: db, Changes: db,
		Control: srv.control, Audit: db, Usage: db, PublicURL: cfg.PublicURL, Clocks: srv.acct.Clocks,
		Log: log.With().Str("component", "web").Logger(),
	}
	srv.hooks.wsClients = srv.web
	srv.hooks.wsLimited = srv.web.WSLimited
	mux.Handle("/", srv.web.Handler())

	bgCtx, stopBackground := context.WithCancel(ctx)
	var background sync.WaitGroup
	background.Add(4)
	go func() { defer background.Done(); notifier.Run(bgCtx) }()
	go func() { defer background.Done(); sampler.Run(bgCtx) }()
	go func() { defer background.Done(); srv.web.Run(bgCtx) }()
	go func() { defer background.Done(); pruneSamples(bgCtx, db, cfg.SamplesKeep, log) }()
	background.Add(1)
	go func() { defer background.Done(); srv.reconciler.Run(bgCtx) }()
	if srv.spool != nil {
		background.Add(1)
		go func() {
			defer background.Done()
			srv.spool.Run(bgCtx, db, time.Second, func(n int) {
				notifier.Announce(nettportal.SessionsChanged{Records: n})
			})
		}()
	}
	defer func() { stopBackground(); background.Wait() }()

	errc := make(chan error, 3)
	go func() { errc <- srv.acct.Serve(ctx, acctConn) }()
	go func() { errc <- httpSrv.Serve(httpLn) }()
	if metricsLn != nil {
		go func() { errc <- metricsSrv.Serve(metricsLn) }()
	}
	log.Info().Str("accounting", srv.acctAddr).Str("http", srv.httpAddr).Str("metrics", srv.metricsAddr).Msg("serving")
	if ready != nil {
		ready(srv)
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	log.Info().Msg("shutting down: answering what is queued")
	shutCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.acct.Shutdown(shutCtx); err != nil {
		log.Error().Err(err).Msg("accounting shutdown")
	}
	if err := httpSrv.Shutdown(shutCtx); err != nil {
		log.Error().Err(err).Msg("http shutdown")
	}
	if err := metricsSrv.Shutdown(shutCtx); err != nil {
		log.Error().Err(err).Msg("metrics shutdown")
	}
	if runErr != nil && !errors.Is(runErr, radius.ErrServerClosed) && !errors.Is(runErr, http.ErrServerClosed) {
		return runErr
	}
	return nil
}

// server is the running wiring, exposed to demo and tests.
type server struct {
	db       *store.DB
	log      zerolog.Logger
	acct     *radius.Server
	acctAddr string
	httpAddr string
	// metricsAddr is the --metrics-addr listener's address, if any.
	metricsAddr string
	apiClients  *routeros.Pool
	control     *coa.Controller
	reconciler  *routeros.Reconciler
	metrics     *metrics.Metrics
	hooks       metricsHooks
	web         *web.Server
	spool       *spool.Spool
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
