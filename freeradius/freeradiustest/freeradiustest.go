// Package freeradiustest runs the real FreeRADIUS 3.2 (the Debian
// `freeradius` and `freeradius-postgresql` packages) for tests: its installed
// configuration is copied into the test's temp dir, the stock `sql` module is
// pointed at a given PostgreSQL database, and the server listens on its own
// loopback ports. Only the listeners, the run-time paths and the sql module's
// connection settings are changed; the accounting path stays stock
// (preprocess, acct_unique, sql), so the ids and rows it writes are
// FreeRADIUS's own.
package freeradiustest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/nettportal/nettportal/store/storetest"
)

// Installed locations of the Debian packages. The config dir is the truth a
// test compares against, so nothing here is a copy of it.
const (
	// ConfigDir is the installed FreeRADIUS configuration.
	ConfigDir = "/etc/freeradius/3.0"
	// Binary is the daemon's name on Debian.
	Binary = "freeradius"
	// QueriesFile is the stock rlm_sql query set for PostgreSQL.
	QueriesFile = ConfigDir + "/mods-config/sql/main/postgresql/queries.conf"
	// SchemaFile is the stock PostgreSQL schema of rlm_sql.
	SchemaFile = ConfigDir + "/mods-config/sql/main/postgresql/schema.sql"
	// postgresDriver is shipped by freeradius-postgresql, not freeradius.
	postgresDriver = "/usr/lib/freeradius/rlm_sql_postgresql.so"
)

// DefaultSecret is the shared secret of the default client.
const DefaultSecret = "testing123"

// Client is one entry of the written clients.conf.
type Client struct {
	// Addr is an address or a CIDR prefix ("127.0.0.1", "127.0.0.0/8").
	Addr string
	// Secret is the shared secret; DefaultSecret when empty.
	Secret string
	// Name is the shortname; derived from Addr when empty.
	Name string
}

// Config says how to run FreeRADIUS.
type Config struct {
	// DatabaseURL is the database the sql module reads and writes (a
	// postgres:// URL or a key=value string). Empty leaves the sql module
	// disabled, so accounting goes only to the detail file.
	DatabaseURL string
	// ReadClients makes the sql module load clients from the database's
	// `nas` table (read_clients = yes); clients.conf is then empty.
	ReadClients bool
	// Clients are written to clients.conf when ReadClients is false. Empty
	// means one client, 127.0.0.0/8 with Secret.
	Clients []Client
	// Secret is the secret of the default client and the value of
	// Server.Secret; DefaultSecret when empty.
	Secret string
	// CoA adds a CoA/Disconnect listener (the stock `coa` virtual server).
	CoA bool
	// Debug is 0 for a normal threaded server (-f, logging to stdout), 1
	// for -X and 2 for -xx. Debug output is slow: benchmarks want 0.
	Debug int
	// Addr is the loopback address to listen on; 127.0.0.1 when invalid.
	Addr netip.Addr
	// StartTimeout bounds the wait for "Ready to process requests";
	// 30 s when zero.
	StartTimeout time.Duration
}

// Server is a running FreeRADIUS, killed at test cleanup.
type Server struct {
	// Dir is the copied configuration (-d).
	Dir string
	// Secret is the default client's secret (Config.Secret).
	Secret string
	// DatabaseURL is the database its sql module uses (Config.DatabaseURL).
	DatabaseURL string

	auth, acct, coa netip.AddrPort
	cmd             *exec.Cmd
	out             *logBuffer
	exited          chan struct{}
	exitErr         error
}

// AcctAddr is the accounting listener.
func (s *Server) AcctAddr() netip.AddrPort { return s.acct }

// AuthAddr is the authentication listener (Status-Server is answered there).
func (s *Server) AuthAddr() netip.AddrPort { return s.auth }

// CoAAddr is the CoA listener; invalid unless Config.CoA was set.
func (s *Server) CoAAddr() netip.AddrPort { return s.coa }

// Logs returns everything FreeRADIUS printed so far.
func (s *Server) Logs() string { return s.out.String() }

// Available reports why FreeRADIUS cannot run here, or nil when it can.
func Available() error {
	if _, err := exec.LookPath(Binary); err != nil {
		return fmt.Errorf("%s not installed (Debian package freeradius): %w", Binary, err)
	}
	f, err := os.Open(filepath.Join(ConfigDir, "radiusd.conf"))
	if err != nil {
		// Debian makes the config readable by root and group freerad only.
		return fmt.Errorf("FreeRADIUS configuration (run as root or in group freerad): %w", err)
	}
	f.Close()
	if _, err := os.Stat(postgresDriver); err != nil {
		return fmt.Errorf("rlm_sql_postgresql missing (Debian package freeradius-postgresql): %w", err)
	}
	return nil
}

// Require fails the test when CI is set and FreeRADIUS is missing, and
// skips it otherwise: a CI run that silently skips the peer proves nothing.
func Require(tb testing.TB) {
	tb.Helper()
	if err := Available(); err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatalf("FreeRADIUS needed (CI is set, so this fails): %v", err)
		}
		tb.Skipf("FreeRADIUS needed: %v", err)
	}
}

// Radclient returns the path of FreeRADIUS's radclient (Debian package
// freeradius-utils), the RADIUS client independent of ours. Like Require,
// it fails the test when CI is set and radclient is missing, and skips it
// otherwise.
func Radclient(tb testing.TB) string {
	tb.Helper()
	path, err := exec.LookPath("radclient")
	if err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatalf("radclient needed (CI is set, so this fails; Debian package freeradius-utils): %v", err)
		}
		tb.Skipf("radclient needed (Debian package freeradius-utils; .ci/run installs it): %v", err)
	}
	return path
}

// Start copies the installed configuration, rewrites it for cfg, runs
// FreeRADIUS in the foreground and returns once it logs that it is ready.
// It is stopped in tb.Cleanup; its output is logged when the test failed.
func Start(tb testing.TB, cfg Config) *Server {
	tb.Helper()
	Require(tb)
	if !cfg.Addr.IsValid() {
		cfg.Addr = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	if cfg.Secret == "" {
		cfg.Secret = DefaultSecret
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 30 * time.Second
	}
	// Ports are found free and then handed over, so another process can
	// take one in between; a bind failure is retried with new ports.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		s, err := start(tb, cfg)
		if err == nil {
			return s
		}
		lastErr = err
		if !errors.Is(err, errBind) {
			break
		}
	}
	tb.Fatalf("start FreeRADIUS: %v", lastErr)
	return nil
}

var errBind = errors.New("port taken")

func start(tb testing.TB, cfg Config) (*Server, error) {
	tb.Helper()
	dir, err := os.MkdirTemp(tb.TempDir(), "raddb")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	s := &Server{Dir: dir, Secret: cfg.Secret, DatabaseURL: cfg.DatabaseURL, out: &logBuffer{ready: make(chan struct{})}, exited: make(chan struct{})}
	ports, err := freeUDPPorts(cfg.Addr, 3)
	if err != nil {
		return nil, err
	}
	s.auth = netip.AddrPortFrom(cfg.Addr, ports[0])
	s.acct = netip.AddrPortFrom(cfg.Addr, ports[1])
	if cfg.CoA {
		s.coa = netip.AddrPortFrom(cfg.Addr, ports[2])
	}
	if err := writeConfig(dir, cfg, s); err != nil {
		return nil, err
	}

	args := []string{"-f", "-d", dir, "-n", "radiusd"}
	switch {
	case cfg.Debug >= 2:
		args = append(args, "-xx", "-l", "stdout")
	case cfg.Debug == 1:
		args = append(args, "-X")
	default:
		args = append(args, "-l", "stdout")
	}
	s.cmd = exec.Command(Binary, args...)
	s.cmd.Dir = dir
	s.cmd.Stdout = s.out
	s.cmd.Stderr = s.out
	// Its own process group, so the kill reaches nothing else.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("run %s: %w", Binary, err)
	}
	go func() {
		s.exitErr = s.cmd.Wait()
		close(s.exited)
	}()
	// The group is the one Setpgid made for this process: the signal
	// reaches what it started (exec modules) and nothing else.
	pgid := -s.cmd.Process.Pid
	stop := func() {
		select {
		case <-s.exited:
			return // reaped: its id may be someone else's by now
		default:
		}
		_ = syscall.Kill(pgid, syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(pgid, syscall.SIGKILL)
			<-s.exited
		}
	}

	timer := time.NewTimer(cfg.StartTimeout)
	defer timer.Stop()
	select {
	case <-s.out.ready:
	case <-s.exited:
		logs := s.Logs()
		if strings.Contains(logs, "Failed binding to") || strings.Contains(logs, "Address already in use") {
			return nil, fmt.Errorf("%w: %s", errBind, tail(logs, 20))
		}
		return nil, fmt.Errorf("%s exited at start (%v):\n%s", Binary, s.exitErr, logs)
	case <-timer.C:
		stop()
		return nil, fmt.Errorf("%s not ready after %v:\n%s", Binary, cfg.StartTimeout, s.Logs())
	}
	tb.Cleanup(func() {
		stop()
		if tb.Failed() {
			tb.Logf("FreeRADIUS output (%s):\n%s", dir, s.Logs())
		}
	})
	return s, nil
}

// Exited is closed when the process ends (it should live until cleanup).
func (s *Server) Exited() <-chan struct{} { return s.exited }

func freeUDPPorts(addr netip.Addr, n int) ([]uint16, error) {
	var conns []*net.UDPConn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	var ports []uint16
	for i := 0; i < n; i++ {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)))
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		conns = append(conns, c)
		ports = append(ports, uint16(c.LocalAddr().(*net.UDPAddr).Port))
	}
	return ports, nil
}

// logBuffer keeps the output and closes ready at the line FreeRADIUS logs
// once every listener is bound.
type logBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	partial []byte
	ready   chan struct{}
	isReady bool
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	if !l.isReady {
		l.partial = append(l.partial, p...)
		sc := bufio.NewScanner(bytes.NewReader(l.partial))
		for sc.Scan() {
			if strings.Contains(sc.Text(), "Ready to process requests") {
				l.isReady = true
				close(l.ready)
				break
			}
		}
		if i := bytes.LastIndexByte(l.partial, '\n'); i >= 0 {
			l.partial = append([]byte(nil), l.partial[i+1:]...)
		}
	}
	return len(p), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// StockDatabase creates an empty database (dropped at cleanup) holding
// FreeRADIUS's own installed PostgreSQL schema, as a stock FreeRADIUS
// deployment would have it, and returns its URL.
func StockDatabase(tb testing.TB) string {
	tb.Helper()
	Require(tb)
	schema, err := os.ReadFile(SchemaFile)
	if err != nil {
		tb.Fatalf("read stock schema: %v", err)
	}
	url := storetest.MustCreateDatabase(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, url)
	if err != nil {
		tb.Fatalf("connect to stock database: %v", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, string(schema)).ReadAll(); err != nil {
		tb.Fatalf("apply stock FreeRADIUS schema: %v", err)
	}
	return url
}
