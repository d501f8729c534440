package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/nettportal/nettportal"
)

// ErrSchemaBehind is returned by CheckSchema when the database needs
// `nettportal migrate` before this binary can use it.
var ErrSchemaBehind = errors.New("database schema is behind")

// ErrSchemaNewer is returned by Migrate for a database that a newer binary
// migrated: this one does not know those migrations and will not touch them.
var ErrSchemaNewer = errors.New("database schema is newer than this binary")

// Defaults for the migration settings on DB.
const (
	DefaultMigrateLockTimeout = 5 * time.Second
	DefaultMigrateAttempts    = 12
)

// migrationsTable records each applied migration. It is made by the
// runner, not by a migration, so reading the version never needs a lock.
const migrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    integer PRIMARY KEY,
	name       text NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
)`

// SchemaState returns the database's migration version (0 when it never
// had one: empty, FreeRADIUS's own, or ours from before numbered
// migrations) and the version this binary brings. It reads only
// schema_migrations, so it never waits behind a query on radacct.
func (db *DB) SchemaState(ctx context.Context) (current, latest int, err error) {
	migs, err := db.migrationList()
	if err != nil {
		return 0, 0, err
	}
	current, err = readVersion(ctx, db.Pool)
	return current, len(migs), err
}

type queryRower interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func readVersion(ctx context.Context, q queryRower) (int, error) {
	var v int
	err := q.QueryRow(ctx, `SELECT CASE WHEN to_regclass('schema_migrations') IS NULL THEN 0
		ELSE (SELECT coalesce(max(version), 0) FROM schema_migrations) END`).Scan(&v)
	if err != nil {
		// to_regclass resolves the name before the CASE runs, but the
		// subquery is planned with the table: on a database without it
		// the statement fails, and that means version 0.
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42P01" {
			return 0, nil
		}
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

// SchemaVersion returns the highest applied migration.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	v, _, err := db.SchemaState(ctx)
	return v, err
}

// CheckSchema fails unless the database has every migration this binary
// needs. Commands other than migrate and serve call it instead of
// migrating, so they never lock a table of a live database. A database a
// newer binary migrated is accepted: migrations add (0010's index drops
// only slow an older binary's searches), so an older binary keeps working
// on it (a rollback).
func (db *DB) CheckSchema(ctx context.Context) error {
	current, latest, err := db.SchemaState(ctx)
	if err != nil {
		return err
	}
	if current < latest {
		return fmt.Errorf("database schema is at %d, this binary needs %d: run nettportal migrate: %w",
			current, latest, ErrSchemaBehind)
	}
	return nil
}

func (db *DB) migrationList() ([]nettportal.Migration, error) {
	if db.migrations != nil {
		return db.migrations, nil
	}
	return nettportal.Migrations()
}

// Migrate applies the migrations the database does not have yet, in
// order, each once. A database that has them all is left alone without a
// lock (a second serve, a restart). Instances migrating at the same time
// take turns on an advisory lock. Every lock a migration waits for is
// bounded by MigrateLockTimeout, so a long report holding radacct does not
// queue the accounting of a running instance behind the migration; the
// migration gives way, says so in the log, and tries again.
func (db *DB) Migrate(ctx context.Context) error {
	migs, err := db.migrationList()
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	current, err := readVersion(ctx, db.Pool)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if current > len(migs) {
		return fmt.Errorf("migrate: database schema is at %d, this binary knows only up to %d: use the newer nettportal: %w",
			current, len(migs), ErrSchemaNewer)
	}
	if current == len(migs) {
		return nil
	}
	// A connection of its own: its session settings (lock_timeout, no
	// statement_timeout) and the advisory lock end with it.
	conn, err := pgx.ConnectConfig(ctx, db.Pool.Config().ConnConfig.Copy())
	if err != nil {
		return fmt.Errorf("migrate: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	lockTimeout := db.MigrateLockTimeout
	if lockTimeout <= 0 {
		lockTimeout = DefaultMigrateLockTimeout
	}
	if _, err := conn.Exec(ctx, fmt.Sprintf("SET lock_timeout = %d; SET statement_timeout = 0", lockTimeout.Milliseconds())); err != nil {
		return fmt.Errorf("migrate: session settings: %w", err)
	}
	if err := db.schemaLock(ctx, conn); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := conn.Exec(ctx, migrationsTable); err != nil {
		return fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	// Another instance may have migrated while this one waited.
	if current, err = readVersion(ctx, conn); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if current > len(migs) {
		return fmt.Errorf("migrate: database schema is at %d, this binary knows only up to %d: %w",
			current, len(migs), ErrSchemaNewer)
	}
	for _, m := range migs[current:] {
		start := time.Now()
		if err := db.applyMigration(ctx, conn, m); err != nil {
			return fmt.Errorf("migrate: %04d_%s: %w", m.Version, m.Name, err)
		}
		db.log.Info().Int("version", m.Version).Str("name", m.Name).Dur("took", time.Since(start)).Msg("schema migration applied")
	}
	return nil
}

// schemaLock takes the advisory lock that serializes migrating instances.
// It polls instead of waiting in pg_advisory_lock: a session blocked in
// that call holds a snapshot, and the CREATE INDEX CONCURRENTLY of the
// instance holding the lock would wait for it, a deadlock.
func (db *DB) schemaLock(ctx context.Context, conn *pgx.Conn) error {
	wait := 20 * time.Millisecond
	for logged := false; ; {
		var ok bool
		if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", schemaLockID).Scan(&ok); err != nil {
			return fmt.Errorf("schema lock: %w", err)
		}
		if ok {
			return nil
		}
		if !logged {
			db.log.Info().Msg("another nettportal is migrating this database; waiting for it")
			logged = true
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for another instance's migration: %w", ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

func (db *DB) applyMigration(ctx context.Context, conn *pgx.Conn, m nettportal.Migration) error {
	what := fmt.Sprintf("migration %04d_%s", m.Version, m.Name)
	record := func(q interface {
		Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
	}) error {
		_, err := q.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.Version, m.Name)
		return err
	}
	if !m.NoTransaction {
		return db.withLockRetry(ctx, what, func() error {
			return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				// Simple protocol: a migration is many statements.
				if _, err := tx.Conn().PgConn().Exec(ctx, m.SQL).ReadAll(); err != nil {
					return err
				}
				return record(tx)
			})
		})
	}
	for _, stmt := range nettportal.SplitStatements(m.SQL) {
		err := db.withLockRetry(ctx, what, func() error {
			if err := dropInvalidIndex(ctx, conn, stmt); err != nil {
				return err
			}
			_, err := conn.PgConn().Exec(ctx, stmt).ReadAll()
			return err
		})
		if err != nil {
			return fmt.Errorf("%.80q: %w", stmt, err)
		}
	}
	return record(conn)
}

var concurrentIndexRE = regexp.MustCompile(`(?is)^\s*(?:--[^\n]*\n\s*)*CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+IF\s+NOT\s+EXISTS\s+([a-z_][a-z0-9_]*)`)

// dropInvalidIndex removes what a CREATE INDEX CONCURRENTLY that failed
// (a lock timeout, a cancel) left behind: an invalid index of that name,
// which IF NOT EXISTS would otherwise take for done.
func dropInvalidIndex(ctx context.Context, conn *pgx.Conn, stmt string) error {
	m := concurrentIndexRE.FindStringSubmatch(stmt)
	if m == nil {
		return nil
	}
	var invalid bool
	err := conn.QueryRow(ctx, `SELECT coalesce((SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)), false)`, m[1]).Scan(&invalid)
	if err != nil || !invalid {
		return err
	}
	_, err = conn.Exec(ctx, "DROP INDEX CONCURRENTLY IF EXISTS "+pgx.Identifier{m[1]}.Sanitize())
	return err
}

// withLockRetry runs fn again while it fails on lock_timeout, up to
// MigrateAttempts times, logging each wait.
func (db *DB) withLockRetry(ctx context.Context, what string, fn func() error) error {
	attempts := db.MigrateAttempts
	if attempts <= 0 {
		attempts = DefaultMigrateAttempts
	}
	lockTimeout := db.MigrateLockTimeout
	if lockTimeout <= 0 {
		lockTimeout = DefaultMigrateLockTimeout
	}
	for attempt := 1; ; attempt++ {
		err := fn()
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "55P03" {
			return err
		}
		if attempt >= attempts {
			return fmt.Errorf("%s: gave up after %d waits of %s for a lock (a long query or an open transaction holds the table; see pg_stat_activity): %w",
				what, attempts, lockTimeout, err)
		}
		db.log.Warn().Str("migration", what).Int("attempt", attempt).Dur("lock_timeout", lockTimeout).
			Msg("schema migration waits for a lock held by another session (a long report?); giving way to accounting and retrying")
		if db.onLockWait != nil {
			db.onLockWait(attempt)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-time.After(time.Duration(attempt) * time.Second / 2):
		}
	}
}
