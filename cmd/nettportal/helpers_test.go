package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/nettportal/nettportal/store"
	"github.com/nettportal/nettportal/store/storetest"
)

// lockedBuffer is an io.Writer safe for the server's goroutines; await
// waits on its writes.
type lockedBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	written chan struct{} // closed and replaced at every write
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.written != nil {
		close(l.written)
		l.written = nil
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// await waits until found, checked after every write, reports a match in
// what was written so far, and returns it; false after within or once
// stop is closed (a process that exited).
func (l *lockedBuffer) await(within time.Duration, stop <-chan struct{}, found func(log string) (string, bool)) (string, bool) {
	timeout := time.After(within)
	for {
		l.mu.Lock()
		log := l.b.String()
		if l.written == nil {
			l.written = make(chan struct{})
		}
		written := l.written
		l.mu.Unlock()
		if m, ok := found(log); ok {
			return m, true
		}
		select {
		case <-written:
		case <-stop:
			return "", false
		case <-timeout:
			return "", false
		}
	}
}

// servingLine finds serve's "serving" log line (written at every level)
// after offset and returns the addresses it names.
func servingLine(log string, offset int) (acct, httpAddr, metrics string, ok bool) {
	for _, line := range strings.Split(log[offset:], "\n") {
		var l struct{ Message, Accounting, HTTP, Metrics string }
		if json.Unmarshal([]byte(line), &l) == nil && l.Message == "serving" {
			return l.Accounting, l.HTTP, l.Metrics, true
		}
	}
	return "", "", "", false
}

// mustRun runs a one-shot command through the real run().
func mustRun(t testing.TB, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if err := run(context.Background(), args, noEnv, &out, &errOut); err != nil {
		t.Fatalf("nettportal %v: %v\n%s", args, err, errOut.String())
	}
	return out.String()
}

// noEnv is an empty environment but for the secret key, so in-process
// serve and router commands never create the default /var/lib key file and
// all agree on one key.
func noEnv(name string) string {
	if name == secretKeyEnv {
		return testSecretKey
	}
	return ""
}

// migratedDB is a new database for the test, migrated by the real
// migrate command.
func migratedDB(t testing.TB) string {
	t.Helper()
	dbURL := storetest.MustCreateDatabase(t)
	mustRun(t, "migrate", "--db", dbURL)
	return dbURL
}

// migratedDBWithRouter is migratedDB with one router added (addRouter).
func migratedDBWithRouter(t testing.TB, name, ip, secret string) string {
	t.Helper()
	dbURL := migratedDB(t)
	addRouter(t, dbURL, name, ip, secret)
	return dbURL
}

// addRouter registers a router (name, ip, RADIUS secret) with the real
// router add command.
func addRouter(t testing.TB, dbURL, name, ip, secret string) {
	t.Helper()
	mustRun(t, "router", "add", "--db", dbURL, "--name", name, "--ip", ip, "--secret", secret)
}

// openTestDB opens dbURL with 2 connections; it is closed at cleanup.
func openTestDB(t testing.TB, dbURL string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), dbURL, 2, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db
}

// tokenAPI creates an API token (name, role) with the real token command
// and returns a client of srv's API that sends it.
func tokenAPI(t testing.TB, dbURL string, srv *testServer, name, role string) tokenClient {
	t.Helper()
	token := strings.TrimSpace(mustRun(t, "token", "create", "--db", dbURL, "--name", name, "--role", role))
	return tokenClient{t: t, base: srv.HTTPURL, token: token}
}

// testSecretKey is the in-process tests' key (base64 of 32 bytes).
const testSecretKey = "bmV0dHBvcnRhbC10ZXN0LWtleS0wMTIzNDU2Nzg5YWI="

// testServer is `nettportal serve` running in-process on loopback ports.
type testServer struct {
	AcctAddr string
	HTTPURL  string
	// MetricsURL is the --metrics-addr listener's; empty without one.
	MetricsURL string
	Log        *lockedBuffer
	stop       func()
}

// startServe runs `serve` with args on loopback ports it binds itself
// (":0") and returns once every listener is bound and serving. It stops at
// cleanup.
func startServe(t testing.TB, dbURL string, extra ...string) *testServer {
	t.Helper()
	return startServeAt(t, dbURL, "127.0.0.1:0", "127.0.0.1:0", extra...)
}

// startServeAt is startServe on given addresses, so a test can restart the
// server where the browser and the routers expect it.
func startServeAt(t testing.TB, dbURL, acct, httpAddr string, extra ...string) *testServer {
	t.Helper()
	return startServeTuned(t, dbURL, acct, httpAddr, nil, extra...)
}

// startServeTuned is startServeAt with tune, when set, changing serve's
// configuration after the flags (for the hooks no flag reaches).
func startServeTuned(t testing.TB, dbURL, acct, httpAddr string, tune func(*serveConfig), extra ...string) *testServer {
	t.Helper()
	ts := &testServer{Log: &lockedBuffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	bound := make(chan *testServer, 1)
	args := append([]string{"--db", dbURL, "--acct-addr", acct, "--http-addr", httpAddr, "--log-level", "debug",
		"--spool-dir", t.TempDir()}, extra...)
	go func() {
		done <- runServeWith(ctx, args, noEnv, ts.Log, tune, func(srv *server) {
			b := &testServer{AcctAddr: srv.acctAddr, HTTPURL: "http://" + srv.httpAddr}
			if srv.metricsAddr != "" {
				b.MetricsURL = "http://" + srv.metricsAddr
			}
			bound <- b
		})
	}()
	var once sync.Once
	ts.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("serve: %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Errorf("serve did not stop")
			}
		})
	}
	t.Cleanup(ts.stop)
	select {
	case b := <-bound:
		ts.AcctAddr, ts.HTTPURL, ts.MetricsURL = b.AcctAddr, b.HTTPURL, b.MetricsURL
		return ts
	case err := <-done:
		t.Fatalf("serve exited: %v\n%s", err, ts.Log.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("serve not ready after 30s\n%s", ts.Log.String())
	}
	return nil
}

// eventually checks cond every tick until it holds, and fails the test
// with what (and the last state cond described) after within. It is the
// last resort, for state only another process shows (PostgreSQL rows
// through the API, a child process's /metrics, a browser's page); state
// inside the test binary has events to wait on.
func eventually(t testing.TB, within, tick time.Duration, what string, cond func() (state string, ok bool)) {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	for {
		state, ok := cond()
		if ok {
			return
		}
		select {
		case <-deadline.C:
			t.Fatalf("%s: not so after %v (%s)", what, within, state)
		case <-ticker.C:
		}
	}
}

// routerClock is simulated routers' clock (sim's Now), which a test moves
// on so that an interim comes "a second later" without sleeping; the
// server believes a router clock this little ahead of its own.
type routerClock struct{ ahead atomic.Int64 }

func (c *routerClock) Now() time.Time { return time.Now().Add(time.Duration(c.ahead.Load())) }

func (c *routerClock) Advance(d time.Duration) { c.ahead.Add(int64(d)) }
