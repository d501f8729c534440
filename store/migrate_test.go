package store_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/store"
	"github.com/nettportal/nettportal/store/storetest"
)

func openUnmigrated(t *testing.T, url string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), url, 4, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db
}

func mustConn(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func TestCheckSchemaBehindAndMigrate(t *testing.T) {
	t.Parallel()
	url := storetest.MustCreateDatabase(t)
	db := openUnmigrated(t, url)
	ctx := context.Background()
	err := db.CheckSchema(ctx)
	migs, _ := nettportal.Migrations()
	want := "database schema is at 0, this binary needs " + strconv.Itoa(len(migs)) + ": run nettportal migrate"
	if !errors.Is(err, store.ErrSchemaBehind) || !strings.Contains(err.Error(), want) {
		t.Fatalf("check on an empty database: %v, want %q", err, want)
	}
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.CheckSchema(ctx); err != nil {
		t.Fatal(err)
	}
	var n, distinct int
	if err := db.Pool.QueryRow(ctx, "SELECT count(*), count(DISTINCT version) FROM schema_migrations").Scan(&n, &distinct); err != nil {
		t.Fatal(err)
	}
	if n != len(migs) || distinct != n {
		t.Fatalf("schema_migrations has %d rows (%d versions), want %d", n, distinct, len(migs))
	}
}

// A current database is not touched: migrate and serve start while a
// report holds an exclusive lock on radacct and return at once.
func TestMigrateCurrentTakesNoLock(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	url := db.Pool.Config().ConnString()
	holder := mustConn(t, url)
	ctx := context.Background()
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	if _, err := tx.Exec(ctx, "LOCK TABLE radacct, nas IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	again := openUnmigrated(t, url)
	again.MigrateLockTimeout = 50 * time.Millisecond
	again.MigrateAttempts = 1
	tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := again.Migrate(tctx); err != nil {
		t.Fatalf("migrate of a current database: %v", err)
	}
	if err := again.CheckSchema(tctx); err != nil {
		t.Fatalf("check of a current database: %v", err)
	}
}

// A migration that needs radacct while a report reads it gives way after
// lock_timeout (so accounting queued behind it is not held up), says so,
// and succeeds once the report ends; with the report never ending it gives
// up with a clear error and leaves nothing recorded.
func TestMigrateGivesWayToALongReport(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	url := db.Pool.Config().ConnString()
	ctx := context.Background()
	migs, err := nettportal.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	next := nettportal.Migration{Version: len(migs) + 1, Name: "test_column",
		SQL: "ALTER TABLE radacct ADD COLUMN IF NOT EXISTS test_col integer"}
	for _, noTx := range []bool{false, true} {
		next.NoTransaction = noTx
		holder := mustConn(t, url)
		tx, err := holder.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "SELECT count(*) FROM radacct"); err != nil {
			t.Fatal(err)
		}
		m := openUnmigrated(t, url)
		m.MigrateLockTimeout = 50 * time.Millisecond
		m.MigrateAttempts = 2
		store.SetMigrations(m, append(append([]nettportal.Migration{}, migs...), next))
		err = m.Migrate(ctx)
		if err == nil || !strings.Contains(err.Error(), "gave up after 2 waits") || !strings.Contains(err.Error(), "test_column") {
			t.Fatalf("noTx=%v: migrate behind a report that never ends: %v", noTx, err)
		}
		if v, _ := m.SchemaVersion(ctx); v != len(migs) {
			t.Fatalf("noTx=%v: version %d after a failed migration, want %d", noTx, v, len(migs))
		}
		// Accounting is not stuck behind the waiting migration: it had given up.
		if _, err := db.Pool.Exec(ctx, "UPDATE radacct SET username = username WHERE false"); err != nil {
			t.Fatal(err)
		}
		m.MigrateAttempts = 0
		var once sync.Once
		store.OnMigrationLockWait(m, func(int) { once.Do(func() { tx.Rollback(ctx) }) }) //nolint:errcheck
		if err := m.Migrate(ctx); err != nil {
			t.Fatalf("noTx=%v: migrate after the report ended: %v", noTx, err)
		}
		if v, _ := m.SchemaVersion(ctx); v != next.Version {
			t.Fatalf("noTx=%v: version %d, want %d", noTx, v, next.Version)
		}
		if _, err := db.Pool.Exec(ctx, "ALTER TABLE radacct DROP COLUMN test_col; DELETE FROM schema_migrations WHERE version = $1", next.Version); err != nil {
			// The extended protocol takes one statement: do them apart.
			if _, err := db.Pool.Exec(ctx, "ALTER TABLE radacct DROP COLUMN test_col"); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Pool.Exec(ctx, "DELETE FROM schema_migrations WHERE version = $1", next.Version); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestMigrateRefusesNewerDatabase(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES (9999, 'future')"); err != nil {
		t.Fatal(err)
	}
	err := db.Migrate(ctx)
	if !errors.Is(err, store.ErrSchemaNewer) || !strings.Contains(err.Error(), "database schema is at 9999") {
		t.Fatalf("migrate a newer database: %v", err)
	}
	// An older binary still runs on it (rollback): migrations only add.
	if err := db.CheckSchema(ctx); err != nil {
		t.Fatalf("check a newer database: %v", err)
	}
}

func TestMigrateConcurrentInstances(t *testing.T) {
	t.Parallel()
	url := storetest.MustCreateDatabase(t)
	ctx := context.Background()
	errs := make(chan error, 3)
	for range 3 {
		db := openUnmigrated(t, url)
		go func() { errs <- db.Migrate(ctx) }()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	db := openUnmigrated(t, url)
	var n int
	if err := db.Pool.QueryRow(ctx, "SELECT count(*) FROM schema_migrations").Scan(&n); err != nil {
		t.Fatal(err)
	}
	migs, _ := nettportal.Migrations()
	if n != len(migs) {
		t.Fatalf("%d migrations recorded, want %d", n, len(migs))
	}
}

// A failed CREATE INDEX CONCURRENTLY leaves an invalid index; the next run
// rebuilds it instead of taking it for done.
func TestMigrateRebuildsInvalidIndex(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	migs, _ := nettportal.Migrations()
	next := nettportal.Migration{Version: len(migs) + 1, Name: "idx", NoTransaction: true,
		SQL: "-- nettportal:no-transaction\nCREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS test_uniq_idx ON radacct (username);"}
	if _, err := db.Pool.Exec(ctx, `INSERT INTO radacct (acctsessionid, acctuniqueid, username, nasipaddress)
		VALUES ('a', 'u1', 'same', '10.0.0.1'), ('b', 'u2', 'same', '10.0.0.1')`); err != nil {
		t.Fatal(err)
	}
	store.SetMigrations(db, append(append([]nettportal.Migration{}, migs...), next))
	if err := db.Migrate(ctx); err == nil {
		t.Fatal("unique index over duplicates built")
	}
	if _, err := db.Pool.Exec(ctx, "DELETE FROM radacct WHERE acctuniqueid = 'u2'"); err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var valid bool
	if err := db.Pool.QueryRow(ctx, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'test_uniq_idx'::regclass").Scan(&valid); err != nil || !valid {
		t.Fatalf("index valid %v, %v", valid, err)
	}
}
