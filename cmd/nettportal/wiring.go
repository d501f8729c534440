package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
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

// shutdownTimeout bounds the graceful part of stopping: committing and
// answering what is queued, and letting HTTP requests finish. What is left
// after it stays unanswered; routers retransmit to the next server.
const shutdownTimeout = 15 * time.Second

// server is the running wiring, exposed to demo and tests.
type server struct {
	cfg      serveConfig
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
	notifier    *store.Notifier
	sampler     *store.Sampler

	acctConn   net.PacketConn
	httpLn     net.Listener
	metricsLn  net.Listener
	httpSrv    *http.Server
	metricsSrv *http.Server

	// closers run in reverse order of registration by close.
	closers []func()
}

// onClose registers a release step for close.
func (srv *server) onClose(f func()) { srv.closers = append(srv.closers, f) }

// close releases everything build and start acquired, last first.
func (srv *server) close() {
	for i := len(srv.closers) - 1; i >= 0; i-- {
		srv.closers[i]()
	}
	srv.closers = nil
}

// build opens the database and makes every component and listener; it
// starts nothing. On error, what it opened is closed again.
func build(ctx context.Context, cfg serveConfig, log zerolog.Logger) (_ *server, err error) {
	srv := &server{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			srv.close()
		}
	}()
	if err := srv.openDB(ctx); err != nil {
		return nil, err
	}
	if err := srv.buildAccounting(); err != nil {
		return nil, err
	}
	srv.buildControl()
	if err := srv.listen(); err != nil {
		return nil, err
	}
	return srv, nil
}

// openDB opens and migrates the database and prepares what reads routers.
func (srv *server) openDB(ctx context.Context) error {
	cfg, log := srv.cfg, srv.log
	db, err := openMigratedDB(ctx, cfg.DB, store.Options{
		MaxConns: int32(cfg.DBConns), AccountingConns: int32(cfg.AcctConns),
		StatementTimeout: cfg.StatementTimeout, HeavyQueries: cfg.HeavyQueries,
	}, log)
	if err != nil {
		return err
	}
	srv.db = db
	srv.onClose(db.Close)
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
	db.UsageLocation = cfg.usageLocation
	db.MaxSessionAge = cfg.MaxSessionAge
	return nil
}

// buildAccounting makes the RADIUS listener, its metrics and its spool.
func (srv *server) buildAccounting() error {
	cfg, log := srv.cfg, srv.log
	srv.acct = &radius.Server{
		Addr:      cfg.AcctAddr,
		Routers:   srv.db,
		Store:     srv.db,
		Log:       log.With().Str("component", "radius").Logger(),
		QueueSize: cfg.QueueSize,
		MaxBatch:  cfg.MaxBatch,
		Limits:    radius.Limits{ClockPast: cfg.ClockPast, ClockFuture: cfg.ClockFuture},
		// The flag's 0 means no bound; the field's zero means the default.
		MaxQueueDelay:   cmp.Or(cfg.MaxQueueDelay, -1),
		BatchCommitTime: cmp.Or(cfg.BatchCommitTime, -1),
		BehindLatency:   cfg.BehindLatency,
	}
	if cfg.ViewerYield > 0 {
		srv.db.AccountingBehind, srv.db.ViewerYield = srv.acct.Behind, cfg.ViewerYield
	}
	srv.metrics = newMetrics(srv, log)
	srv.acct.OnBatch = srv.metrics.ObserveBatch
	srv.acct.OnDequeue = srv.metrics.ObserveQueueDelay
	if cfg.SpoolDir == "off" || cfg.SpoolDir == "" {
		return nil
	}
	sp, err := spool.Open(cfg.SpoolDir, log.With().Str("component", "spool").Logger())
	if err != nil {
		return fmt.Errorf("%w (set --spool-dir to a writable directory, or off)", err)
	}
	srv.onClose(func() { sp.Close() })
	srv.spool = sp
	srv.acct.Spool = sp
	srv.acct.SpoolAfter = cfg.SpoolAfter
	return nil
}

// buildControl makes disconnect/CoA, the reconciler, the live-view events,
// the traffic sampler and the web server.
func (srv *server) buildControl() {
	cfg, log, db := srv.cfg, srv.log, srv.db
	srv.apiClients = &routeros.Pool{Timeout: cfg.APITimeout, Log: log.With().Str("component", "routeros").Logger()}
	srv.onClose(srv.apiClients.Close)
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
	srv.notifier = &store.Notifier{DB: db, Log: log.With().Str("component", "events").Logger()}
	srv.reconciler = &routeros.Reconciler{
		OnChange:     srv.notifier.Announce,
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
	srv.sampler = &store.Sampler{DB: db, Log: log.With().Str("component", "samples").Logger()}
	srv.acct.OnCommit = func(recs []nettportal.AccountingRecord) {
		srv.notifier.Changed(recs)
		srv.sampler.Add(recs)
	}
	srv.web = &web.Server{
		Sessions: db, Routers: db, Accounts: db, Customers: db, Changes: db,
		Control: srv.control, Audit: db, Usage: db, PublicURL: cfg.PublicURL, Clocks: srv.acct.Clocks,
		Log: log.With().Str("component", "web").Logger(),
	}
	srv.hooks.wsClients = srv.web
	srv.hooks.wsLimited = srv.web.WSLimited
}

// listen binds the accounting socket, the HTTP listener (with TLS when
// configured) and the metrics listener, and makes their HTTP servers.
func (srv *server) listen() error {
	cfg := srv.cfg
	acctConn, err := srv.acct.Listen()
	if err != nil {
		return err
	}
	srv.acctConn = acctConn
	// Shutdown closes it once served; before that, close does.
	srv.onClose(func() { acctConn.Close() })
	srv.acctAddr = acctConn.LocalAddr().String()

	httpLn, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen for HTTP on %s: %w", cfg.HTTPAddr, err)
	}
	srv.onClose(func() { httpLn.Close() })
	srv.httpAddr = httpLn.Addr().String()
	if cfg.MetricsAddr != "" {
		if srv.metricsLn, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			return fmt.Errorf("listen for metrics on %s: %w", cfg.MetricsAddr, err)
		}
		ln := srv.metricsLn
		srv.onClose(func() { ln.Close() })
		srv.metricsAddr = ln.Addr().String()
	}

	healthz := func(w http.ResponseWriter, r *http.Request) {
		if err := srv.db.Pool.Ping(r.Context()); err != nil {
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
	mux.Handle("/", srv.web.Handler())
	metricsMux := http.NewServeMux()
	metricsMux.HandleFunc("GET /healthz", healthz)
	metricsMux.Handle("GET /metrics", srv.metrics.Handler())
	if cfg.Pprof {
		metricsMux.HandleFunc("/debug/pprof/", pprof.Index)
		metricsMux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		metricsMux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		metricsMux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		metricsMux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	srv.metricsSrv = &http.Server{Handler: metricsMux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
		IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
	// Slow clients: headers must arrive within 10s, the whole request
	// (body too) within the read timeout, and idle keep-alives end. No
	// write timeout: CSV exports stream and WebSockets live long (the hub
	// has its own write deadlines).
	srv.httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: cfg.HTTPReadTimeout,
		IdleTimeout: cfg.HTTPIdleTimeout, MaxHeaderBytes: 64 << 10}
	srv.httpLn = web.LimitListener(httpLn, cfg.HTTPConnsPerClient)
	if cfg.TLSCert != "" {
		certs, err := newCertReloader(cfg.TLSCert, cfg.TLSKey, srv.log.With().Str("component", "tls").Logger())
		if err != nil {
			return err
		}
		srv.httpSrv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.getCertificate}
		srv.httpLn = tls.NewListener(srv.httpLn, srv.httpSrv.TLSConfig)
	}
	return nil
}

// start runs the background loops and the three servers. The returned
// channel carries the first server that stops by itself.
func (srv *server) start(ctx context.Context) <-chan error {
	bgCtx, stopBackground := context.WithCancel(ctx)
	var background sync.WaitGroup
	run := func(f func(context.Context)) {
		background.Add(1)
		go func() { defer background.Done(); f(bgCtx) }()
	}
	run(srv.notifier.Run)
	run(srv.sampler.Run)
	run(srv.web.Run)
	run(func(ctx context.Context) { pruneSamples(ctx, srv.db, srv.cfg.SamplesKeep, srv.log) })
	run(srv.reconciler.Run)
	if srv.spool != nil {
		run(func(ctx context.Context) {
			srv.spool.Run(ctx, srv.db, time.Second, func(n int) {
				srv.notifier.Announce(nettportal.SessionsChanged{Records: n})
			})
		})
	}
	// Registered last, so it runs first: the loops stop before the
	// database and the API clients they use close.
	srv.onClose(func() { stopBackground(); background.Wait() })

	errc := make(chan error, 3)
	go func() { errc <- srv.acct.Serve(srv.acctConn) }()
	go func() { errc <- srv.httpSrv.Serve(srv.httpLn) }()
	if srv.metricsLn != nil {
		go func() { errc <- srv.metricsSrv.Serve(srv.metricsLn) }()
	}
	return errc
}

// shutdown answers what is queued and lets HTTP requests finish, within
// shutdownTimeout.
func (srv *server) shutdown() {
	srv.log.Info().Msg("shutting down: answering what is queued")
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.acct.Shutdown(ctx); err != nil {
		srv.log.Error().Err(err).Msg("accounting shutdown")
	}
	if err := srv.httpSrv.Shutdown(ctx); err != nil {
		srv.log.Error().Err(err).Msg("http shutdown")
	}
	if err := srv.metricsSrv.Shutdown(ctx); err != nil {
		srv.log.Error().Err(err).Msg("metrics shutdown")
	}
}
