package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/store"
)

// README's rollback: the previous binary on a database a newer one
// migrated refuses to migrate it, but serve and the other commands run on
// it (migrations only add).
func TestRollbackRunsOnNewerSchema(t *testing.T) {
	t.Parallel()
	dbURL := migratedDB(t)
	migs, err := nettportal.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(context.Background(), dbURL, 2, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// What a newer binary leaves: a migration this one does not know.
	if _, err := db.Pool.Exec(context.Background(), `INSERT INTO schema_migrations (version, name) VALUES ($1, 'from_a_newer_binary')`,
		len(migs)+1); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	err = run(context.Background(), []string{"migrate", "--db", dbURL}, noEnv, &out, &errOut)
	if !errors.Is(err, store.ErrSchemaNewer) {
		t.Fatalf("migrate on a newer database: %v", err)
	}
	addRouter(t, dbURL, "core-1", "127.0.0.42", "s")
	if out := mustRun(t, "router", "list", "--db", dbURL); !strings.Contains(out, "core-1") {
		t.Fatalf("router list: %q", out)
	}
	srv := startServe(t, dbURL)
	if !strings.Contains(srv.Log.String(), "database schema is newer than this binary") {
		t.Errorf("serve on a newer database did not say so:\n%s", srv.Log.String())
	}
}
