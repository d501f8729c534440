package pglocal

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"
)

// localServer returns the local server's URL, skipping when there is none
// unless CI is set (DESIGN.md, Testing). The test reads CI itself because
// the house rule about getenv is for library code, not for tests.
func localServer(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	u, err := Find(ctx, "")
	if errors.Is(err, ErrNotFound) && os.Getenv("CI") == "" {
		t.Skipf("no local PostgreSQL: %v", err)
	}
	if err != nil {
		t.Fatalf("Find: %v", err)
	}
	return u
}

func testLogger(t *testing.T) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t))
}

func TestFindLocal(t *testing.T) {
	t.Parallel()
	u := localServer(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatalf("connect to %s: %v", u, err)
	}
	defer conn.Close(ctx)
	var db string
	if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
		t.Fatal(err)
	}
	if db != "postgres" {
		t.Errorf("current_database() = %q, want postgres", db)
	}

	// The found URL, given explicitly, is used as is.
	got, err := Find(ctx, u)
	if err != nil || got != u {
		t.Errorf("Find(ctx, %q) = %q, %v; want it back", u, got, err)
	}
}

func TestFindExplicitUnreachable(t *testing.T) {
	t.Parallel()
	// Port 1 on loopback refuses at once; the test proves Find does not
	// fall through to the local server that does answer on this machine.
	explicit := "postgres://postgres:secret@127.0.0.1:1/postgres?sslmode=disable"
	start := time.Now()
	got, err := Find(context.Background(), explicit)
	if err == nil {
		t.Fatalf("Find = %q, want an error", got)
	}
	if errors.Is(err, ErrNotFound) {
		t.Errorf("err = %v; an unreachable explicit URL is not ErrNotFound", err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error leaks the password: %v", err)
	}
	if d := time.Since(start); d > 6*time.Second {
		t.Errorf("Find took %v", d)
	}

	// Open must not start a cluster for an explicit URL either.
	if _, _, err := Open(context.Background(), explicit, testLogger(t)); err == nil {
		t.Error("Open with an unreachable explicit URL succeeded")
	}
}

func TestOpenFindsLocal(t *testing.T) {
	t.Parallel()
	want := localServer(t)
	got, stop, err := Open(context.Background(), "", testLogger(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if got != want {
		t.Errorf("Open = %q, want the local server %q", got, want)
	}
	if err := stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
}

func TestStartStop(t *testing.T) {
	t.Parallel()
	if _, _, err := findBinaries(exec.LookPath, debianBinGlob); errors.Is(err, ErrNotInstalled) && os.Getenv("CI") == "" {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Start(ctx, testLogger(t))
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			c.Stop()
		}
	})

	if !strings.Contains(c.URL, "127.0.0.1:") {
		t.Errorf("URL = %q, want 127.0.0.1", c.URL)
	}
	for _, u := range []string{c.URL, c.SocketURL} {
		conn, err := pgx.Connect(ctx, u)
		if err != nil {
			t.Fatalf("connect to %s: %v", u, err)
		}
		var fsync, listen, sockets, encoding string
		err = conn.QueryRow(ctx, `SELECT current_setting('fsync'), current_setting('listen_addresses'),
			current_setting('unix_socket_directories'), current_setting('server_encoding')`).
			Scan(&fsync, &listen, &sockets, &encoding)
		if err != nil {
			t.Fatal(err)
		}
		if fsync != "on" || listen != "127.0.0.1" || sockets != c.Dir || encoding != "UTF8" {
			t.Errorf("fsync=%s listen_addresses=%s unix_socket_directories=%s encoding=%s; want on, 127.0.0.1, %s, UTF8",
				fsync, listen, sockets, encoding, c.Dir)
		}
		conn.Close(ctx)
	}

	conn, err := pgx.Connect(ctx, c.URL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE t (id int PRIMARY KEY, s text)`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO t VALUES (1, 'æøå')`); err != nil {
		t.Fatal(err)
	}
	var s string
	if err := conn.QueryRow(ctx, `SELECT s FROM t WHERE id = 1`).Scan(&s); err != nil || s != "æøå" {
		t.Errorf("read back %q, %v", s, err)
	}

	if os.Geteuid() == 0 {
		fi, err := os.Stat(filepath.Join(c.Dir, "data"))
		if err != nil {
			t.Fatal(err)
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid == 0 {
			t.Errorf("data dir owned by root; the server must run unprivileged")
		}
	}

	// An outage and a recovery: the data survives an immediate stop.
	conn.Close(ctx)
	if err := c.StopServer(); err != nil {
		t.Fatalf("StopServer: %v", err)
	}
	if err := probe(ctx, c.URL); err == nil {
		t.Fatal("server answers after StopServer")
	}
	if err := c.StartServer(ctx); err != nil {
		t.Fatalf("StartServer: %v", err)
	}
	conn, err = pgx.Connect(ctx, c.URL)
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, `SELECT s FROM t WHERE id = 1`).Scan(&s); err != nil || s != "æøå" {
		t.Errorf("after restart: read back %q, %v", s, err)
	}

	// Left open on purpose: fast shutdown must not wait for clients.
	stopped = true
	if err := c.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := os.Stat(c.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Dir %s still there after Stop: %v", c.Dir, err)
	}
	if err := c.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if err := probe(ctx, c.URL); err == nil {
		t.Error("server still answers after Stop")
	}
}

func TestLocalURLs(t *testing.T) {
	t.Parallel()
	if got, want := socketURL("postgres", "/var/run/postgresql", 5432, "postgres"),
		"postgres://postgres@/postgres?host=/var/run/postgresql&port=5432"; got != want {
		t.Errorf("socketURL = %q, want %q", got, want)
	}
	if got, want := tcpURL("postgres", "127.0.0.1", 5432, "postgres"),
		"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"; got != want {
		t.Errorf("tcpURL = %q, want %q", got, want)
	}
}

func TestFindBinaries(t *testing.T) {
	t.Parallel()
	notOnPath := func(string) (string, error) { return "", errors.New("not found") }

	empty := t.TempDir()
	_, _, err := findBinaries(notOnPath, filepath.Join(empty, "*", "bin"))
	if !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("err = %v, want ErrNotInstalled", err)
	}
	const msg = "PostgreSQL is not installed: install it with `apt-get install -y postgresql` (Debian/Ubuntu) or set DATABASE_URL"
	if err.Error() != msg {
		t.Errorf("message = %q", err.Error())
	}

	root := t.TempDir()
	for _, v := range []string{"9.6", "16", "15", "junk"} {
		bin := filepath.Join(root, v, "bin")
		if err := os.MkdirAll(bin, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"initdb", "pg_ctl"} {
			if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	// 17 has no pg_ctl, so it must be passed over.
	if err := os.MkdirAll(filepath.Join(root, "17", "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	initdb, pgCtl, err := findBinaries(notOnPath, filepath.Join(root, "*", "bin"))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, "16", "bin", "initdb"); initdb != want {
		t.Errorf("initdb = %q, want %q", initdb, want)
	}
	if want := filepath.Join(root, "16", "bin", "pg_ctl"); pgCtl != want {
		t.Errorf("pg_ctl = %q, want %q", pgCtl, want)
	}

	onPath := func(name string) (string, error) { return "/opt/pg/" + name, nil }
	if i, p, err := findBinaries(onPath, filepath.Join(root, "*", "bin")); err != nil || i != "/opt/pg/initdb" || p != "/opt/pg/pg_ctl" {
		t.Errorf("with PATH: %q %q %v", i, p, err)
	}
}
