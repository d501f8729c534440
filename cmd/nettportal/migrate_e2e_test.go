package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/store"
	"github.com/nettportal/nettportal/store/storetest"
)

// Only migrate (and serve) change the schema: the other commands on a
// database that is behind say what to do and touch nothing.
func TestCommandsCheckSchemaVersion(t *testing.T) {
	t.Parallel()
	dbURL := storetest.MustCreateDatabase(t)
	for _, args := range [][]string{
		{"user", "list", "--db", dbURL},
		{"router", "list", "--db", dbURL},
	} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), args, noEnv, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), "database schema is at 0, this binary needs") ||
			!strings.Contains(err.Error(), "run nettportal migrate") {
			t.Fatalf("%v on an empty database: %v", args, err)
		}
	}
	if out := mustRun(t, "migrate", "--db", dbURL); !strings.Contains(out, "schema migrated from version 0 to") {
		t.Fatalf("migrate: %q", out)
	}
	if out := mustRun(t, "migrate", "--db", dbURL); !strings.Contains(out, "schema is current") {
		t.Fatalf("second migrate: %q", out)
	}
	mustRun(t, "router", "list", "--db", dbURL)
}

// FreeRADIUS nas rows that are not routers here never stop serve: router
// list and GET /api/routers name them with the reason.
func TestOddNASRowsAreListedAndSkipped(t *testing.T) {
	t.Parallel()
	dbURL := migratedDBWithRouter(t, "core-1", "127.0.0.41", "s")
	db, err := store.Open(context.Background(), dbURL, 2, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Pool.Exec(context.Background(), `INSERT INTO nas (nasname, shortname, secret)
		VALUES ('10.1.0.0/24', 'pop-range', 's'), ('bras.example.net', 'bras', 's')`); err != nil {
		t.Fatal(err)
	}
	out := mustRun(t, "router", "list", "--db", dbURL)
	for _, want := range []string{"core-1", "skipped nas rows", "10.1.0.0/24", "CIDR range", "bras.example.net",
		"hostname: add the address with router add"} {
		if !strings.Contains(out, want) {
			t.Errorf("router list lacks %q:\n%s", want, out)
		}
	}
	srv := startServe(t, dbURL)
	token := strings.TrimSpace(mustRun(t, "token", "create", "--db", dbURL, "--name", "t", "--role", "viewer"))
	var got struct {
		Routers []struct{ Name string } `json:"routers"`
		Skipped []nettportal.SkippedNAS `json:"skipped"`
	}
	if code := (tokenClient{t: t, base: srv.HTTPURL, token: token}).do("GET", "/api/routers", nil, &got); code != 200 {
		t.Fatalf("GET /api/routers: %d", code)
	}
	if len(got.Routers) != 1 || got.Routers[0].Name != "core-1" || len(got.Skipped) != 2 ||
		!strings.HasPrefix(got.Skipped[1].Reason, "hostname") {
		t.Fatalf("GET /api/routers: %+v", got)
	}
	if !strings.Contains(srv.Log.String(), "nas row skipped") {
		t.Errorf("serve did not log the skipped rows")
	}
}
