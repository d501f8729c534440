package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nettportal/nettportal/sim"
	"github.com/nettportal/nettportal/store"
)

// buildBinary builds the real nettportal binary into a temporary directory.
// Crash and outage tests need a separate process: kill -9 of the test binary
// would end the test too.
func buildBinary(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "nettportal")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// writeTestKey writes a fresh secret key file and returns its path.
func writeTestKey(t testing.TB) string {
	t.Helper()
	key, err := store.NewSecretKey()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "secret.key")
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// serveProc is `nettportal serve` as its own process.
type serveProc struct {
	t        testing.TB
	bin      string
	args     []string
	AcctAddr string
	HTTPURL  string
	// MetricsURL is the --metrics-addr listener's; empty without one.
	MetricsURL string
	Log        *lockedBuffer // stderr of every start, appended
	cmd        *exec.Cmd
	done       chan error
}

// newServeProc prepares serve on loopback ports it binds itself (":0"),
// with its own spool directory and key file; Start runs it. It is stopped
// at cleanup.
func newServeProc(t testing.TB, bin, dbURL string, extra ...string) *serveProc {
	t.Helper()
	p := &serveProc{t: t, bin: bin, Log: &lockedBuffer{}}
	p.args = append([]string{"serve", "--db", dbURL, "--acct-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--spool-dir", filepath.Join(t.TempDir(), "spool"), "--secret-key-file", writeTestKey(t)}, extra...)
	t.Cleanup(p.Stop)
	return p
}

// Start runs the process and waits until it logs that it is serving; it
// learns the bound addresses from that line. A restart binds the same
// addresses, where the routers and the test expect the server.
func (p *serveProc) Start() {
	p.t.Helper()
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout = p.Log
	cmd.Stderr = p.Log
	// Only the variables the child needs: the tests' own NETTPORTAL_* and
	// DATABASE_URL must not leak into its flags.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TMPDIR=" + os.TempDir()}
	offset := len(p.Log.String())
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start serve: %v", err)
	}
	p.cmd = cmd
	done := make(chan error, 1)
	exited := make(chan struct{})
	go func() { done <- cmd.Wait(); close(exited) }()
	p.done = done
	var acct, httpAddr, metricsAddr string
	_, ok := p.Log.await(30*time.Second, exited, func(log string) (string, bool) {
		var ok bool
		acct, httpAddr, metricsAddr, ok = servingLine(log, offset)
		return "", ok
	})
	if !ok {
		select {
		case err := <-done:
			p.done = nil
			p.t.Fatalf("serve exited: %v\n%s", err, p.Log.String())
		default:
			p.t.Fatalf("serve not serving after 30s\n%s", p.Log.String())
		}
	}
	p.AcctAddr, p.HTTPURL = acct, "http://"+httpAddr
	if metricsAddr != "" {
		p.MetricsURL = "http://" + metricsAddr
	}
	for i, a := range p.args {
		switch a {
		case "--acct-addr":
			p.args[i+1] = acct
		case "--http-addr":
			p.args[i+1] = httpAddr
		}
	}
}

// Kill sends SIGKILL: no shutdown, no flushing, like a power cut to the
// process (the kernel still has what was written).
func (p *serveProc) Kill() {
	p.t.Helper()
	if p.done == nil {
		return
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		p.t.Fatalf("kill -9 serve: %v", err)
	}
	<-p.done
	p.done = nil
}

// Stop asks serve to shut down (SIGTERM) and waits.
func (p *serveProc) Stop() {
	if p.done == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		p.t.Errorf("serve did not stop on SIGTERM")
	}
	p.done = nil
}

// PID is the running process's id.
func (p *serveProc) PID() int { return p.cmd.Process.Pid }

// metric reads a series from /metrics: the sum of every sample of name
// whose labels contain each of labels (e.g. `outcome="ok"`).
func metric(url, name string, labels ...string) (float64, error) {
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var sum float64
	found := false
lines:
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest == "" || (rest[0] != ' ' && rest[0] != '{')) {
			continue
		}
		i := strings.LastIndexByte(rest, ' ')
		for _, l := range labels {
			if !strings.Contains(rest[:i], l) {
				continue lines
			}
		}
		v, err := strconv.ParseFloat(rest[i+1:], 64)
		if err != nil {
			return 0, fmt.Errorf("metric %s: %w", name, err)
		}
		sum += v
		found = true
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	if !found {
		return 0, fmt.Errorf("metric %s not found", name)
	}
	return sum, nil
}

// openMigrated opens the database at url (2 connections) and migrates it;
// it is closed at cleanup.
func openMigrated(t testing.TB, url string) *store.DB {
	t.Helper()
	db := openTestDB(t, url)
	if err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return db
}

// loadOutcome is what a load that goLoad runs ended with.
type loadOutcome struct {
	res sim.LoadResult
	err error
}

// goLoad runs load in the background; its outcome arrives on the channel.
func goLoad(ctx context.Context, load sim.LoadConfig) <-chan loadOutcome {
	done := make(chan loadOutcome, 1)
	go func() {
		res, err := sim.RunLoad(ctx, load)
		done <- loadOutcome{res, err}
	}()
	return done
}

// registerLoad puts the load routers of cfg into the database.
func registerLoad(t testing.TB, db *store.DB, cfg sim.LoadConfig) {
	t.Helper()
	for _, r := range cfg.NASRouters() {
		if err := db.CreateRouter(context.Background(), &r); err != nil {
			t.Fatal(err)
		}
	}
}

// checkNoDuplicates fails when radacct has two rows for one session.
func checkNoDuplicates(t testing.TB, db *store.DB) {
	t.Helper()
	var rows, unique, sessions int
	err := db.Pool.QueryRow(context.Background(), `SELECT count(*), count(DISTINCT acctuniqueid),
		count(DISTINCT (host(nasipaddress), username, acctsessionid)) FROM radacct`).Scan(&rows, &unique, &sessions)
	if err != nil {
		t.Fatal(err)
	}
	if rows != unique || rows != sessions {
		t.Fatalf("radacct has %d rows for %d unique ids and %d sessions: duplicates", rows, unique, sessions)
	}
}
