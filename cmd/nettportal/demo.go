package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/sim"
	"github.com/nettportal/nettportal/store"
	"github.com/nettportal/nettportal/store/pglocal"
)

// demoDatabaseName is the database demo uses on a server it finds, so it
// never writes into the server's `postgres` database.
const demoDatabaseName = "nettportal_demo"

// demoSecret is the RADIUS secret of the demo fleet, fixed so a user can
// point radclient at the demo too.
const demoSecret = "nettportal-demo"

func runDemo(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", stderr)
	dbURL := fs.String("db", "", "PostgreSQL URL (also DATABASE_URL); default: a local server, else a throwaway cluster")
	httpAddr := fs.String("http-addr", "127.0.0.1:8080", "HTTP address (a free port is picked when it is busy)")
	acctAddr := fs.String("acct-addr", "127.0.0.1:1813", "UDP accounting address (a free port is picked when it is busy)")
	routers := fs.Int("routers", 5, "simulated routers")
	sessions := fs.Int("sessions", 60, "sessions per router")
	interim := fs.Duration("interim", 10*time.Second, "interim-update interval of the simulated routers")
	logLevel := fs.String("log-level", "warn", "debug, info, warn or error")
	keyFile := fs.String("secret-key-file", "", "key that encrypts RouterOS API passwords; default: demo-secret.key in the user's cache directory, created when missing")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	if *keyFile == "" {
		// Not serve's /var/lib default: the demo runs as anyone, and its
		// database outlives one run, so the key must too.
		dir, err := os.UserCacheDir()
		if err != nil {
			return fmt.Errorf("demo: no cache directory for the secret key: %w (pass --secret-key-file)", err)
		}
		*keyFile = filepath.Join(dir, "nettportal", "demo-secret.key")
	}
	log, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	dbu, cleanup, err := demoDatabase(ctx, *dbURL, log)
	if err != nil {
		return err
	}
	defer cleanup()

	var cfg serveConfig
	cfg.register(flag.NewFlagSet("defaults", flag.ContinueOnError)) // serve's defaults
	cfg.DB, cfg.LogLevel = dbu, *logLevel
	cfg.SecretKeyFile, cfg.SecretKey = *keyFile, getenv(secretKeyEnv)
	// Not serve's /var/lib default either, for the same reasons as the key.
	cfg.SpoolDir = filepath.Join(filepath.Dir(*keyFile), "demo-spool")
	cfg.AcctAddr = freeOr(*acctAddr, "udp")
	cfg.HTTPAddr = freeOr(*httpAddr, "tcp")
	password := randomPassword()

	// The routers go into the database before serve loads its router list,
	// so their first packets are not dropped as coming from strangers.
	fleet, err := demoFleet(ctx, cfg, *routers, *sessions, *interim, log)
	if err != nil {
		return err
	}
	defer fleet.Close()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ready := func(srv *server) {
		if err := fleet.Start(ctx); err != nil {
			cancel(fmt.Errorf("start the simulated routers: %w (is another demo or sim running?)", err))
			return
		}
		// A new password every run; the demo database may outlive a run.
		_, err := srv.db.CreateUser(ctx, "admin", password, nettportal.RoleAdmin)
		if errors.Is(err, nettportal.ErrConflict) {
			err = srv.db.SetPassword(ctx, "admin", password)
		}
		if err != nil {
			cancel(fmt.Errorf("create the admin login: %w", err))
			return
		}
		fmt.Fprintf(stdout, "NettPortal demo: open http://%s and log in as admin / %s\n", srv.httpAddr, password)
		fmt.Fprintf(stdout, "%d simulated routers from %s with %d sessions each, accounting on %s (secret %q). Ctrl-C stops.\n",
			*routers, sim.DefaultBaseIP(), *sessions, srv.acctAddr, demoSecret)
	}
	err = serve(ctx, cfg, log, ready)
	fleet.Close()
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return fmt.Errorf("demo: %w", cause)
	}
	return err
}

// demoFleet makes the demo's routers and registers them in the database.
func demoFleet(ctx context.Context, cfg serveConfig, routers, sessions int, interim time.Duration, log zerolog.Logger) (*sim.Fleet, error) {
	fleet, err := sim.NewFleet(sim.FleetConfig{
		Routers: routers, Secret: demoSecret, Server: loopbackAddr(cfg.AcctAddr), Sessions: sessions,
		Interim: interim, Churn: 0.05, APIUser: "admin", APIPassword: "admin", AccountingOnAtBoot: true, Seed: 1,
		// The demo database outlives a run; like a rebooted router, each
		// run's session ids differ from the last run's.
		BootDigit: uint8(1 + mrand.IntN(15)), FirstSession: mrand.Uint32N(1 << 23),
		// CPEs redial seconds after a disconnect; a day passes in ten
		// minutes so the charts show evening peaks and quiet nights.
		Redial: 5 * time.Second, Plans: sim.DemoPlans(), DayLength: 10 * time.Minute,
		Configure: demoRouterMix(routers),
	}, log.With().Str("component", "sim").Logger())
	if err != nil {
		return nil, fmt.Errorf("demo fleet: %w", err)
	}
	db, err := openMigratedDB(ctx, cfg.DB, store.Options{MaxConns: 2, AccountingConns: 1}, log)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	if err := useSecretKey(ctx, db, cfg.SecretKeyFile, cfg.SecretKey); err != nil {
		return nil, err
	}
	if err := fleet.Register(ctx, db); err != nil {
		return nil, fmt.Errorf("demo fleet: %w", err)
	}
	if routers >= 3 {
		// The last router drops CoA, so the health states show one whose
		// disconnects go through the API fallback.
		fleet.Routers[routers-1].IgnoreCoA(true)
	}
	names := make([]string, len(fleet.Routers))
	for i, r := range fleet.Routers {
		names[i] = r.Name()
	}
	if err := saveDemoCustomers(ctx, db.SaveCustomer, demoCustomers(names, sessions, sim.DemoPlans(), 1)); err != nil {
		return nil, fmt.Errorf("demo fleet: %w", err)
	}
	return fleet, nil
}

// demoRouterMix varies the demo routers as a real network does: every
// other one is RADIUS-authenticated and sends Mikrotik-Group, the others
// serve local /ppp/secret profiles over the API, and with four or more
// routers the fourth has no API access.
func demoRouterMix(routers int) func(int, *sim.RouterConfig) {
	return func(i int, c *sim.RouterConfig) {
		c.GroupAttr = i%2 == 0
		if routers >= 4 && i == 3 {
			c.APIPort = -1
		}
	}
}

// demoDatabase returns the URL demo uses: the explicit one as given, else
// the nettportal_demo database on a local server or on a throwaway
// cluster, which cleanup removes.
func demoDatabase(ctx context.Context, explicit string, log zerolog.Logger) (string, func(), error) {
	if explicit != "" {
		return explicit, func() {}, nil
	}
	base, stop, err := pglocal.Open(ctx, "", log)
	if err != nil {
		// pglocal's ErrNotInstalled says what to install.
		return "", nil, fmt.Errorf("demo needs PostgreSQL: %w", err)
	}
	cleanup := func() {
		if err := stop(); err != nil {
			log.Error().Err(err).Msg("stop the throwaway PostgreSQL cluster")
		}
	}
	u, err := ensureDatabase(ctx, base, demoDatabaseName)
	if err != nil {
		cleanup()
		return "", nil, err
	}
	return u, cleanup, nil
}

// ensureDatabase creates database name on the server at base when missing
// and returns its URL.
func ensureDatabase(ctx context.Context, base, name string) (string, error) {
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return "", fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", fmt.Errorf("look for database %s: %w", name, err)
	}
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
			return "", fmt.Errorf("create database %s: %w", name, err)
		}
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("database URL %q is not a postgres:// URL", base)
	}
	u.Path, u.RawPath = "/"+name, ""
	return u.String(), nil
}

// freeOr returns addr when it can be bound now, else the same host with a
// port that was free a moment ago, so a demo starts even when 8080 or 1813
// is taken, and the routers know where to send before serve starts.
func freeOr(addr, network string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	for _, try := range []string{addr, net.JoinHostPort(host, "0")} {
		if network == "udp" {
			if c, err := net.ListenPacket("udp", try); err == nil {
				defer c.Close()
				return c.LocalAddr().String()
			}
		} else if l, err := net.Listen("tcp", try); err == nil {
			defer l.Close()
			return l.Addr().String()
		}
	}
	return addr
}

// loopbackAddr turns a wildcard listen address into one the simulated
// routers can send to.
func loopbackAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func randomPassword() string {
	return strings.ToLower(rand.Text()[:16])
}
