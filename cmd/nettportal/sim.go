package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/nettportal/nettportal/sim"
)

// simFlags are the fleet settings `sim` and `demo` share.
type simFlags struct {
	server, secret, apiUser, apiPassword, baseIP string
	routers, sessions, coaPort, apiPort          int
	interim, timeout, redial, dayLength          time.Duration
	churn, loss                                  float64
	accountingOn, plans                          bool
	seed                                         int64
}

func (f *simFlags) fleetConfig() (sim.FleetConfig, error) {
	base, err := netip.ParseAddr(f.baseIP)
	if err != nil || !base.Is4() || !base.IsLoopback() {
		return sim.FleetConfig{}, fmt.Errorf("--base-ip %q must be an address in 127.0.0.0/8", f.baseIP)
	}
	cfg := sim.FleetConfig{
		Routers: f.routers, BaseIP: base, Secret: f.secret, Server: f.server, Sessions: f.sessions,
		Interim: f.interim, Churn: f.churn, Loss: f.loss, CoAPort: f.coaPort, APIPort: f.apiPort,
		APIUser: f.apiUser, APIPassword: f.apiPassword, AccountingOnAtBoot: f.accountingOn, Seed: f.seed,
		Timeout: f.timeout, Redial: f.redial, DayLength: f.dayLength,
	}
	if f.plans {
		cfg.Plans = sim.DemoPlans()
		// Every other router sends Mikrotik-Group, the others serve the
		// plan as a /ppp/secret profile, as demo's routers do.
		cfg.Configure = func(i int, c *sim.RouterConfig) { c.GroupAttr = i%2 == 0 }
	}
	return cfg, nil
}

func runSim(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("sim", stderr)
	var f simFlags
	fs.StringVar(&f.server, "server", "127.0.0.1:1813", "accounting server host:port (on loopback: the routers' sockets are)")
	fs.StringVar(&f.secret, "secret", "testing123", "RADIUS shared secret of every simulated router")
	fs.IntVar(&f.routers, "routers", 5, "number of simulated routers")
	fs.IntVar(&f.sessions, "sessions", 60, "PPPoE sessions per router")
	fs.DurationVar(&f.interim, "interim", time.Minute, "interim-update interval")
	keyFile := fs.String("secret-key-file", defaultSecretKeyFile, "with --db: the key serve uses, so the routers' API passwords are stored encrypted ("+secretKeyEnv+" overrides it)")
	fs.Float64Var(&f.churn, "churn", 0.02, "fraction of sessions replaced per interim")
	fs.Float64Var(&f.loss, "loss", 0, "probability that a packet is lost, either direction")
	fs.StringVar(&f.baseIP, "base-ip", "127.0.0.11", "address of the first router; the others follow")
	fs.IntVar(&f.coaPort, "coa-port", 3799, "the routers' Disconnect/CoA port (-1: none)")
	fs.IntVar(&f.apiPort, "api-port", 8728, "the routers' fake RouterOS API port (-1: none)")
	fs.StringVar(&f.apiUser, "api-user", "admin", "RouterOS API user of the fakes")
	fs.StringVar(&f.apiPassword, "api-password", "admin", "RouterOS API password of the fakes")
	fs.BoolVar(&f.accountingOn, "accounting-on", false, "send Accounting-On at boot")
	fs.Int64Var(&f.seed, "seed", 1, "seed for usernames, MACs and traffic")
	fs.DurationVar(&f.timeout, "timeout", time.Second, "accounting retransmission timeout")
	fs.DurationVar(&f.redial, "redial", 5*time.Second, "how soon a CPE dials again after a disconnect by the operator (0: stays offline)")
	fs.DurationVar(&f.dayLength, "day-length", 10*time.Minute, "a day's traffic curve compressed into this period (0: flat rates)")
	fs.BoolVar(&f.plans, "plans", true, "spread subscribers over service plans with rate limits (profiles via Mikrotik-Group and /ppp/secret)")
	dbURL := fs.String("db", "", "register the routers in this database's nas table (also DATABASE_URL)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	log, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	cfg, err := f.fleetConfig()
	if err != nil {
		return err
	}
	fleet, err := sim.NewFleet(cfg, log)
	if err != nil {
		return err
	}
	if *dbURL != "" {
		db, err := openDB(ctx, *dbURL, 2, log)
		if err != nil {
			return err
		}
		err = useSecretKey(ctx, db, *keyFile, getenv(secretKeyEnv))
		if err == nil {
			err = fleet.Register(ctx, db)
		}
		db.Close()
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "sim: %d routers registered in the database\n", f.routers)
	}
	if err := fleet.Start(ctx); err != nil {
		return err
	}
	defer fleet.Close()
	fmt.Fprintf(stdout, "sim: %d routers from %s with %d sessions each, accounting to %s, CoA on port %d, API on port %d\n",
		f.routers, cfg.BaseIP, f.sessions, f.server, f.coaPort, f.apiPort)
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			printSimSummary(stdout, fleet)
			return nil
		case <-t.C:
			printSimSummary(stdout, fleet)
		}
	}
}

func printSimSummary(w io.Writer, f *sim.Fleet) {
	s := f.Stats()
	fmt.Fprintf(w, "sim: %d sessions up; requests %d, acked %d, retransmits %d, given up %d, lost %d; CoA ack %d nak %d dropped %d\n",
		f.SessionCount(), s.Requests, s.Acked, s.Retransmits, s.GivenUp, s.Lost, s.CoAACKs, s.CoANAKs, s.CoADropped)
}
