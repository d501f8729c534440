package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
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
	QueueSize int
	MaxBatch  int
}

func (c *serveConfig) register(fs interface {
	StringVar(*string, string, string, string)
	IntVar(*int, string, int, string)
}) {
	fs.StringVar(&c.DB, "db", "", "PostgreSQL URL (also DATABASE_URL)")
	fs.StringVar(&c.AcctAddr, "acct-addr", ":1813", "UDP address for RADIUS accounting")
	fs.StringVar(&c.HTTPAddr, "http-addr", ":8080", "HTTP address for the web page and API")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.IntVar(&c.DBConns, "db-conns", 8, "database connections")
	fs.IntVar(&c.QueueSize, "queue-size", 65536, "accounting records waiting for a batch before packets go unanswered")
	fs.IntVar(&c.MaxBatch, "max-batch", 4096, "accounting records per transaction")
}

func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", stderr)
	var cfg serveConfig
	cfg.register(fs)
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
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
	db, err := openDB(ctx, cfg.DB, int32(cfg.DBConns), log)
	if err != nil {
		return err
	}
	defer db.Close()

	srv := &server{db: db, log: log}
	srv.acct = &radius.Server{
		Addr:      cfg.AcctAddr,
		Routers:   db,
		Store:     db,
		Log:       log.With().Str("component", "radius").Logger(),
		QueueSize: cfg.QueueSize,
		MaxBatch:  cfg.MaxBatch,
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
	srv.acctAddr = acctConn.LocalAddr().String()
	srv.httpAddr = httpLn.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := db.Pool.Ping(r.Context()); err != nil {
			http.Error(w, "database unreachable", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	httpSrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	errc := make(chan error, 2)
	go func() { errc <- srv.acct.Serve(ctx, acctConn) }()
	go func() { errc <- httpSrv.Serve(httpLn) }()
	log.Info().Str("accounting", srv.acctAddr).Str("http", srv.httpAddr).Msg("serving")
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
}
