package pglocal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// ErrNotInstalled is returned by Start when no initdb/pg_ctl can be found.
// Its message is the whole instruction, because users see it verbatim.
var ErrNotInstalled = errors.New("PostgreSQL is not installed: install it with `apt-get install -y postgresql` (Debian/Ubuntu) or set DATABASE_URL")

const (
	// debianBinGlob is where Debian's postgresql-NN packages put initdb and
	// pg_ctl, which are not on PATH there.
	debianBinGlob = "/usr/lib/postgresql/*/bin"
	// maxSocketPath keeps the socket path under the 107-byte sun_path limit;
	// beyond it postgres fails with a message that does not point at TMPDIR.
	maxSocketPath = 100
	startAttempts = 3
	pgCtlWait     = 30 // seconds pg_ctl waits for start/stop
)

// Cluster is a throwaway PostgreSQL cluster made with the installed
// initdb/pg_ctl in a temporary directory. Its only role is "postgres" with
// trust authentication; it listens on 127.0.0.1:Port and on a Unix socket in
// Dir, nowhere else.
type Cluster struct {
	// URL connects to database "postgres" as "postgres" over 127.0.0.1.
	URL string
	// SocketURL is the same over the Unix socket in Dir.
	SocketURL string
	// Dir holds the data directory, the socket and postgres.log.
	Dir string
	// Port is the TCP port on 127.0.0.1 (also the socket's number).
	Port int

	pgCtl   string
	dataDir string
	cred    *syscall.Credential
	log     zerolog.Logger

	mu      sync.Mutex
	stopped bool
}

// Start creates a cluster with initdb (trust auth, UTF8, no locale) in a new
// temporary directory, starts it with pg_ctl on a free 127.0.0.1 port and a
// Unix socket in that directory, with fsync on, and returns once it accepts
// connections. PostgreSQL refuses to run as root, so as root the binaries run
// as the "postgres" system user if there is one, else as "nobody".
func Start(ctx context.Context, log zerolog.Logger) (*Cluster, error) {
	initdb, pgCtl, err := findBinaries(exec.LookPath, debianBinGlob)
	if err != nil {
		return nil, err
	}
	cred, err := runAs()
	if err != nil {
		return nil, fmt.Errorf("start cluster: %w", err)
	}
	dir, err := makeDir(cred)
	if err != nil {
		return nil, fmt.Errorf("start cluster: %w", err)
	}
	c := &Cluster{
		Dir:     dir,
		pgCtl:   pgCtl,
		dataDir: filepath.Join(dir, "data"),
		cred:    cred,
		log:     log,
	}
	if err := c.start(ctx, initdb); err != nil {
		// Stop with a fresh context: ctx may be the reason we failed, and a
		// half-started postmaster must not outlive us.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), (pgCtlWait+10)*time.Second)
		defer cancel()
		if serr := c.stopWith(sctx); serr != nil {
			err = errors.Join(err, serr)
		}
		return nil, fmt.Errorf("start cluster in %s: %w", dir, err)
	}
	log.Info().Str("dir", dir).Str("url", c.URL).Str("pg_ctl", pgCtl).Msg("throwaway PostgreSQL cluster started")
	return c, nil
}

func (c *Cluster) start(ctx context.Context, initdb string) error {
	// --no-sync only skips initdb's final flush: a crash before the server
	// starts loses a throwaway cluster nobody relies on yet. The running
	// server keeps fsync on.
	if out, err := c.run(ctx, initdb, "-D", c.dataDir, "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--no-locale", "--no-sync"); err != nil {
		return fmt.Errorf("initdb: %w: %s", err, out)
	}
	conf := fmt.Sprintf(`
# Added by nettportal pglocal.
listen_addresses = '127.0.0.1'
unix_socket_directories = '%s'
fsync = on
synchronous_commit = on
full_page_writes = on
max_connections = 200
`, strings.ReplaceAll(c.Dir, "'", "''"))
	if err := appendFile(filepath.Join(c.dataDir, "postgresql.conf"), conf); err != nil {
		return err
	}

	logFile := filepath.Join(c.Dir, "postgres.log")
	var lastErr error
	// The free port is only free until someone else takes it; a second
	// attempt with a new port covers that race.
	for attempt := 0; attempt < startAttempts; attempt++ {
		port, err := freePort()
		if err != nil {
			return err
		}
		if len(filepath.Join(c.Dir, ".s.PGSQL."+strconv.Itoa(port))) > maxSocketPath {
			return fmt.Errorf("socket path in %s is too long for a Unix socket; set TMPDIR to a shorter directory", c.Dir)
		}
		out, err := c.run(ctx, c.pgCtl, "start", "-D", c.dataDir, "-l", logFile,
			"-w", "-t", strconv.Itoa(pgCtlWait), "-o", "-p "+strconv.Itoa(port))
		if err == nil {
			c.Port = port
			c.URL = tcpURL("postgres", "127.0.0.1", port, "postgres")
			c.SocketURL = socketURL("postgres", c.Dir, port, "postgres")
			pctx, cancel := context.WithTimeout(ctx, explicitTimeout)
			defer cancel()
			if err := probe(pctx, c.URL); err != nil {
				return fmt.Errorf("connect to started server: %w", err)
			}
			return nil
		}
		tail := logTail(logFile)
		lastErr = fmt.Errorf("pg_ctl start: %w: %s\n%s", err, out, tail)
		if ctx.Err() != nil || !strings.Contains(tail, "in use") {
			return lastErr
		}
		c.log.Debug().Int("port", port).Msg("port taken, retrying with another")
	}
	return lastErr
}

// StopServer stops the server abruptly (pg_ctl stop -m immediate: no
// checkpoint, crash recovery at the next start) and keeps the data, so
// tests can take the database away and give it back with StartServer.
func (c *Cluster) StopServer() error {
	ctx, cancel := context.WithTimeout(context.Background(), (pgCtlWait+10)*time.Second)
	defer cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return fmt.Errorf("stop server: cluster in %s is removed", c.Dir)
	}
	if out, err := c.run(ctx, c.pgCtl, "stop", "-D", c.dataDir, "-m", "immediate",
		"-w", "-t", strconv.Itoa(pgCtlWait)); err != nil {
		return fmt.Errorf("stop server in %s: pg_ctl stop: %w: %s", c.Dir, err, out)
	}
	return nil
}

// StartServer starts a server stopped by StopServer on the same port and
// returns once it accepts connections (after crash recovery).
func (c *Cluster) StartServer(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return fmt.Errorf("start server: cluster in %s is removed", c.Dir)
	}
	logFile := filepath.Join(c.Dir, "postgres.log")
	if out, err := c.run(ctx, c.pgCtl, "start", "-D", c.dataDir, "-l", logFile,
		"-w", "-t", strconv.Itoa(pgCtlWait), "-o", "-p "+strconv.Itoa(c.Port)); err != nil {
		return fmt.Errorf("start server in %s: pg_ctl start: %w: %s\n%s", c.Dir, err, out, logTail(logFile))
	}
	pctx, cancel := context.WithTimeout(ctx, explicitTimeout)
	defer cancel()
	if err := probe(pctx, c.URL); err != nil {
		return fmt.Errorf("start server in %s: %w", c.Dir, err)
	}
	return nil
}

// Stop stops the server (pg_ctl stop -m fast) and removes Dir. Calling it
// again does nothing.
func (c *Cluster) Stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), (pgCtlWait+10)*time.Second)
	defer cancel()
	return c.stopWith(ctx)
}

func (c *Cluster) stopWith(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil
	}
	c.stopped = true
	var errs []error
	// No postmaster.pid means the server never started or already exited;
	// pg_ctl would only report that as an error.
	if _, err := os.Stat(filepath.Join(c.dataDir, "postmaster.pid")); err == nil {
		if out, err := c.run(ctx, c.pgCtl, "stop", "-D", c.dataDir, "-m", "fast",
			"-w", "-t", strconv.Itoa(pgCtlWait)); err != nil {
			errs = append(errs, fmt.Errorf("pg_ctl stop: %w: %s", err, out))
		}
	}
	if err := os.RemoveAll(c.Dir); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stop cluster in %s: %w", c.Dir, err)
	}
	c.log.Info().Str("dir", c.Dir).Msg("throwaway PostgreSQL cluster stopped")
	return nil
}

// run runs a PostgreSQL binary as the cluster's user and returns its output.
func (c *Cluster) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	// The unprivileged user may not be able to enter the caller's working
	// directory (often /root), and initdb complains when it cannot.
	cmd.Dir = c.Dir
	cmd.Env = childEnv(os.Environ())
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	// pg_ctl hands the postmaster the log file, not our pipes, but should a
	// child keep them open anyway, Wait must still return.
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		// "signal: killed" would hide that we gave up, not the binary.
		err = fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return tail(out), err
}

// childEnv drops PG* variables: PGDATA, PGPORT, PGHOST and friends change
// what initdb and pg_ctl do, and the cluster must not depend on the caller's
// shell.
func childEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if strings.HasPrefix(kv, "PG") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// findBinaries returns initdb and pg_ctl: from PATH when both are there,
// else from the highest-versioned directory matching glob.
func findBinaries(lookPath func(string) (string, error), glob string) (initdb, pgCtl string, err error) {
	i, err1 := lookPath("initdb")
	p, err2 := lookPath("pg_ctl")
	if err1 == nil && err2 == nil {
		return i, p, nil
	}
	dirs, err := filepath.Glob(glob)
	if err != nil {
		return "", "", fmt.Errorf("find PostgreSQL binaries: %w", err)
	}
	// Highest version first, compared numerically so 16 beats 9.6.
	sort.Slice(dirs, func(a, b int) bool {
		return versionLess(versionOf(dirs[b]), versionOf(dirs[a]))
	})
	for _, d := range dirs {
		i, p := filepath.Join(d, "initdb"), filepath.Join(d, "pg_ctl")
		if isExecutable(i) && isExecutable(p) {
			return i, p, nil
		}
	}
	return "", "", ErrNotInstalled
}

// versionOf parses the version directory above bin, e.g. "9.6" or "16".
func versionOf(binDir string) []int {
	parts := strings.Split(filepath.Base(filepath.Dir(binDir)), ".")
	v := make([]int, 0, len(parts))
	for _, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil {
			return nil
		}
		v = append(v, n)
	}
	return v
}

func versionLess(a, b []int) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return len(a) < len(b)
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// runAs returns the credential to run PostgreSQL under, or nil when the
// current user can run it directly.
func runAs() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	var lastErr error
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			lastErr = err
			continue
		}
		uid, err := strconv.ParseUint(u.Uid, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("parse uid of %s: %w", name, err)
		}
		gid, err := strconv.ParseUint(u.Gid, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("parse gid of %s: %w", name, err)
		}
		// An empty Groups drops root's supplementary groups too.
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
	}
	return nil, fmt.Errorf("running as root and no unprivileged user (postgres or nobody) to run PostgreSQL as: %w", lastErr)
}

// makeDir creates the cluster directory, owned by the user PostgreSQL runs as.
func makeDir(cred *syscall.Credential) (string, error) {
	parent := os.TempDir()
	if cred != nil && !worldSearchable(parent) {
		// The unprivileged user must be able to reach the directory; root's
		// private TMPDIR would make initdb fail with a bare EACCES.
		parent = "/tmp"
	}
	dir, err := os.MkdirTemp(parent, "nettportal-pg-")
	if err != nil {
		return "", fmt.Errorf("create temp dir: %w", err)
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return "", fmt.Errorf("chown %s: %w", dir, err)
		}
	}
	return dir, nil
}

// worldSearchable reports whether every directory from / to dir lets any user
// pass through.
func worldSearchable(dir string) bool {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		if d == filepath.Dir(d) {
			return true
		}
	}
}

// freePort asks the kernel for a free port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("append to %s: %w", path, err)
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return fmt.Errorf("append to %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("append to %s: %w", path, err)
	}
	return nil
}

// logTail returns the end of the server log, which says why a start failed
// far better than pg_ctl's exit status does.
func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return string(tail(b))
}

// tail keeps the end of a command's output or log, where the reason for a
// failure is, and keeps error messages a readable size.
func tail(b []byte) []byte {
	const max = 2000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return bytes.TrimSpace(b)
}
