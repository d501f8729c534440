// Package store keeps NettPortal's state in PostgreSQL through pgx/v5: the
// schema, the batched accounting upsert, routers, and the queries the web
// page and the reconciler need.
package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/nettportal/nettportal"
)

// DB is the PostgreSQL store. Create it with Open.
type DB struct {
	Pool *pgxpool.Pool
	// UsageLocation is the time zone of billing days; nil means UTC. Set
	// it once, before accounting flows: days already written keep theirs.
	UsageLocation *time.Location
	log           zerolog.Logger
	// sealer encrypts router credentials; nil until UseSecretKey, and then
	// credentials are written in plaintext (tools and tests without a key).
	sealer *sealer
	// fullUpsertOnly sends every record through the full upsert (tests
	// compare it with the narrow update).
	fullUpsertOnly bool
	// narrowApplied counts records the narrow update applied (tests check
	// that it ran).
	narrowApplied atomic.Int64

	// MigrateLockTimeout bounds each wait of a migration for a table lock
	// (radacct behind a long report, say), so accounting is not queued
	// behind it; zero means DefaultMigrateLockTimeout. A wait that times
	// out is logged and tried again, MigrateAttempts times in all (zero
	// means DefaultMigrateAttempts).
	MigrateLockTimeout time.Duration
	MigrateAttempts    int
	// migrations replaces the embedded list (tests).
	migrations []nettportal.Migration
	// onLockWait is called at each lock wait of a migration (tests).
	onLockWait func(attempt int)

	// MaxSessionAge, when positive, makes SweepStale close open sessions
	// that started longer ago than this, on every router (closed_by
	// max-age). Zero: sessions have no maximum age.
	MaxSessionAge time.Duration

	// Stats counts what accounting did beyond storing records.
	Stats AccountingStats
	// interimsSeen: router id -> unix second router_status.interims_seen_at
	// was last written, so it is written about once a minute per router.
	interimsSeen sync.Map
	foreignLog   logLimiter
}

// AccountingStats are the store's accounting counters; read them at any time.
type AccountingStats struct {
	Quarantined    atomic.Uint64 // records moved to accounting_quarantine (live and replayed)
	ForeignSession atomic.Uint64 // records refused: the session belongs to another router
	Reopened       atomic.Uint64 // inferred closes undone by a later Interim
}

// schemaLockID serializes schema application between instances starting
// at the same time on one database.
const schemaLockID = 0x6e657474 // "nett"

// Open connects to the database at url. maxConns of zero keeps pgx's default.
func Open(ctx context.Context, url string, maxConns int32, log zerolog.Logger) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "nettportal"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database %s: %w", redactURL(url), err)
	}
	return &DB{Pool: pool, log: log}, nil
}

func (db *DB) usageLocation() *time.Location {
	if db.UsageLocation == nil {
		return time.UTC
	}
	return db.UsageLocation
}

// Close closes every connection.
func (db *DB) Close() { db.Pool.Close() }

// retryable reports whether a transaction failed only because it raced
// another one (deadlock, serialization), so running it again is right.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "40P01" || pgErr.Code == "40001"
	}
	return false
}

// inTx runs fn in a transaction, retrying races a few times.
func (db *DB) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return retryRaces(func() error { return pgx.BeginFunc(ctx, db.Pool, fn) })
}

// retryRaces runs a transaction again, a few times, while it loses a race
// (deadlock, serialization failure).
func retryRaces(tx func() error) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		err = tx()
		if err == nil || !retryable(err) {
			return err
		}
		time.Sleep(time.Duration(attempt+1) * 5 * time.Millisecond)
	}
	return err
}

func redactURL(url string) string {
	cfg, err := pgconn.ParseConfig(url)
	if err != nil {
		return "(unparsable url)"
	}
	return fmt.Sprintf("host=%s port=%d user=%s database=%s", cfg.Host, cfg.Port, cfg.User, cfg.Database)
}
