// Package storetest gives tests a real, empty PostgreSQL database with the
// schema applied. It never mocks the database.
package storetest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/nettportal/nettportal/store"
	"github.com/nettportal/nettportal/store/pglocal"
)

// ServerURL returns the URL of a PostgreSQL server for tests:
// NETTPORTAL_TEST_DATABASE_URL, else DATABASE_URL, else the local server.
// Without one the test is skipped, or fails when CI is set, because a test
// suite that silently skips its database tests proves nothing in CI.
//
// Tests are the one place outside cmd that reads the environment: `go test`
// has no other way to be told where the database is.
func ServerURL(tb testing.TB) string {
	tb.Helper()
	explicit := os.Getenv("NETTPORTAL_TEST_DATABASE_URL")
	if explicit == "" {
		explicit = os.Getenv("DATABASE_URL")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	url, err := pglocal.Find(ctx, explicit)
	if err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatalf("no PostgreSQL for tests (CI is set, so this fails): %v", err)
		}
		tb.Skipf("no PostgreSQL for tests: %v (set DATABASE_URL, or run `make test`)", err)
	}
	return url
}

// MustCreateDatabase creates an empty database for this test, dropped at
// cleanup, and returns its URL.
func MustCreateDatabase(tb testing.TB) string {
	tb.Helper()
	base := ServerURL(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url, drop, err := pglocal.CreateDatabase(ctx, base, "nettportal_test_")
	if err != nil {
		tb.Fatalf("create test database: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := drop(ctx); err != nil {
			tb.Logf("drop test database: %v", err)
		}
	})
	return url
}

// MustOpenDB returns a store on a new database with the schema applied,
// closed and dropped at cleanup.
func MustOpenDB(tb testing.TB) *store.DB {
	tb.Helper()
	url := MustCreateDatabase(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := store.Open(ctx, url, 8, zerolog.Nop())
	if err != nil {
		tb.Fatalf("open test database: %v", err)
	}
	tb.Cleanup(db.Close)
	if err := db.Migrate(ctx); err != nil {
		tb.Fatalf("migrate test database: %v", err)
	}
	return db
}

// MustLockTable holds an exclusive lock on table in a transaction of its
// own, so a query that reads it waits inside PostgreSQL; the test rolls
// it back to let go, or cleanup does.
func MustLockTable(tb testing.TB, db *store.DB, table string) pgx.Tx {
	tb.Helper()
	ctx := context.Background()
	locker, err := db.Pool.Begin(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { locker.Rollback(ctx) }) //nolint:errcheck // may be rolled back already
	if _, err := locker.Exec(ctx, "LOCK TABLE "+pgx.Identifier{table}.Sanitize()+" IN ACCESS EXCLUSIVE MODE"); err != nil {
		tb.Fatal(err)
	}
	return locker
}

// WatchSlots sets db.OnSlot and returns a function that waits until db
// has handed out the slots of kinds (store.SlotHeavy, store.SlotExport;
// one each per mention) since WatchSlots, failing tb after 10s. Set it
// before the queries it watches start; it keeps the last 64 slots given
// out and not yet waited for.
func WatchSlots(tb testing.TB, db *store.DB) (await func(kinds ...string)) {
	taken := make(chan string, 64)
	db.OnSlot = func(kind string) {
		select {
		case taken <- kind:
		default:
		}
	}
	return func(kinds ...string) {
		tb.Helper()
		want := map[string]int{}
		for _, k := range kinds {
			want[k]++
		}
		timeout := time.NewTimer(10 * time.Second)
		defer timeout.Stop()
		for len(want) > 0 {
			select {
			case k := <-taken:
				if want[k]--; want[k] <= 0 {
					delete(want, k)
				}
			case <-timeout.C:
				tb.Fatalf("slots %v not taken after 10s", want)
			}
		}
	}
}
