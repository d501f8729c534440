// Package store keeps NettPortal's state in PostgreSQL through pgx/v5: the
// schema, the batched accounting upsert, routers, and the queries the web
// page and the reconciler need.
package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
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
	// Pool serves everything but accounting: the web API, WebSocket views,
	// exports, the reconciler, the chart sampler and commands. Its
	// connections carry a statement timeout (Options.StatementTimeout).
	Pool *pgxpool.Pool
	// acct is accounting's own pool: whatever the web page does, a batch
	// never waits for one of Pool's connections.
	acct *pgxpool.Pool
	// probe is one connection for PingAccounting: a liveness check must
	// not queue behind the commits whose slowness it is asked to judge.
	probe *pgxpool.Pool
	// heavy bounds the concurrent heavy queries (searches over history,
	// exports, reports); a slot is a token in the channel.
	heavy     chan struct{}
	heavyWait time.Duration
	// exports bounds the CSV exports running at once, apart from heavy:
	// an export is a run of cheap keyset pages on one connection, and
	// queued behind history searches that loop on 503 it never ran.
	exports chan struct{}
	// behindLane is the turn of the viewer queries that waited for
	// accounting (yieldToAccounting): one runs at a time, so the commits
	// share the CPU with one such query (a session list's page and
	// totals), not with every socket's.
	behindLane chan struct{}
	stmtLimit  time.Duration
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
	// onSessionsSQL sees the statements of each Sessions call (plan tests).
	onSessionsSQL func(page, stats string, args []any)
	// OnSlot, when set, is called with SlotHeavy or SlotExport each time
	// a heavy query or an export has taken its slot, before it sends a
	// statement (tests learn that this process holds the slot). Nil, the
	// default: nothing is called. Set it before the DB is used.
	OnSlot func(kind string)

	// AccountingBehind, when set, says whether accounting is behind its
	// load (radius.Server.Behind). Session lists and live-view snapshots,
	// customers, usage, heavy queries and each page of an export then wait
	// while it says so, ViewerYield at most each time, before they query,
	// and those that waited then query one at a time (a turn not had
	// within ViewerTurn is refused as busy): on a small machine the
	// database's CPU goes to the commits first and the viewers get what
	// is left. A heavy query that would still find it behind is
	// refused as busy (nettportal.ErrBusy). Nil, the default: they never
	// wait. Set it before the DB is used.
	AccountingBehind func() bool
	// ViewerYield bounds one such wait. Zero: 1s.
	ViewerYield time.Duration
	// ViewerTurn bounds the wait for a turn after it: as long as a
	// statement may run, for the waits are what keeps the viewers' load
	// off the commits (answered at once, their clients would ask again).
	// Zero: the statement timeout (Options.StatementTimeout), or its
	// default when statements have none.
	ViewerTurn time.Duration
	// Viewers counts those waits.
	Viewers ViewerStats

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

// ViewerStats count the viewer queries that waited for accounting
// (DB.AccountingBehind); read them at any time.
type ViewerStats struct {
	Yields     atomic.Uint64 // waits
	YieldNanos atomic.Uint64 // their total length
	Refused    atomic.Uint64 // queries refused as busy: heavy ones with accounting still behind after the wait, or behind for heavyGiveWay while one ran; others that waited past ViewerTurn for their turn
}

// schemaLockID serializes schema application between instances starting
// at the same time on one database.
const schemaLockID = 0x6e657474 // "nett"

// Options size Open's pools. Zero values take the documented defaults.
type Options struct {
	// MaxConns bounds the general pool (everything but accounting). Zero:
	// pgx's default.
	MaxConns int32
	// AccountingConns is the size of accounting's own pool. Zero: 4 (the
	// accounting listener's three workers and the spool's replay).
	AccountingConns int32
	// StatementTimeout ends any statement of the general pool that runs
	// longer. Zero: 10s; negative: none.
	StatementTimeout time.Duration
	// HeavyQueries bounds the heavy queries (history searches, deep pages,
	// reports) running at once. Zero: 1; negative: no bound. Each is two
	// statements at once (a page and its totals) that can keep a core busy
	// for the statement timeout: on a small machine one is what leaves
	// accounting its CPU beside the live page's snapshot queries.
	HeavyQueries int
	// HeavyWait is how long a heavy query or an export waits for a slot
	// before it is refused as busy. Zero: 1s.
	HeavyWait time.Duration
	// Exports bounds the CSV exports running at once. Zero: 1; negative:
	// no bound.
	Exports int
}

// DefaultStatementTimeout is Options.StatementTimeout's default.
const DefaultStatementTimeout = 10 * time.Second

// Open connects to the database at url with the default Options and
// maxConns for the general pool (zero keeps pgx's default).
func Open(ctx context.Context, url string, maxConns int32, log zerolog.Logger) (*DB, error) {
	return OpenWith(ctx, url, Options{MaxConns: maxConns}, log)
}

// OpenWith connects to the database at url with two pools: accounting's
// own and a general one whose statements time out. Connections open on
// first use, so a command that never writes accounting never opens one.
func OpenWith(ctx context.Context, url string, opt Options, log zerolog.Logger) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "nettportal"
	acctCfg := cfg.Copy()
	acctCfg.ConnConfig.RuntimeParams["application_name"] = "nettportal-accounting"
	acctCfg.MaxConns = 4
	if opt.AccountingConns > 0 {
		acctCfg.MaxConns = opt.AccountingConns
	}
	probeCfg := cfg.Copy()
	probeCfg.ConnConfig.RuntimeParams["application_name"] = "nettportal-probe"
	probeCfg.MaxConns = 1
	if opt.MaxConns > 0 {
		cfg.MaxConns = opt.MaxConns
	}
	stmt := opt.StatementTimeout
	if stmt == 0 {
		stmt = DefaultStatementTimeout
	}
	if stmt > 0 {
		cfg.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(max(stmt.Milliseconds(), 1), 10)
	}
	db := &DB{log: log, heavyWait: opt.HeavyWait, stmtLimit: max(stmt, 0), behindLane: make(chan struct{}, 1)}
	if db.heavyWait <= 0 {
		db.heavyWait = time.Second
	}
	switch {
	case opt.HeavyQueries == 0:
		db.heavy = make(chan struct{}, 1)
	case opt.HeavyQueries > 0:
		db.heavy = make(chan struct{}, opt.HeavyQueries)
	}
	switch {
	case opt.Exports == 0:
		db.exports = make(chan struct{}, 1)
	case opt.Exports > 0:
		db.exports = make(chan struct{}, opt.Exports)
	}
	if db.Pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	if db.acct, err = pgxpool.NewWithConfig(ctx, acctCfg); err != nil {
		db.Pool.Close()
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	if db.probe, err = pgxpool.NewWithConfig(ctx, probeCfg); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.Pool.Ping(pingCtx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to database %s: %w", redactURL(url), err)
	}
	return db, nil
}

// The kinds of slot DB.OnSlot is called with.
const (
	SlotHeavy  = "heavy"
	SlotExport = "export"
)

// heavyQuery takes one of the heavy-query slots, waiting at most
// HeavyWait; the error (nettportal.ErrBusy) says what to narrow.
func (db *DB) heavyQuery(ctx context.Context, what string) (release func(), err error) {
	return db.slot(ctx, db.heavy, SlotHeavy, "heavy queries (searches over history, deep pages, reports)", what)
}

// exportSlot takes one of the export slots, as heavyQuery does.
func (db *DB) exportSlot(ctx context.Context, what string) (release func(), err error) {
	return db.slot(ctx, db.exports, SlotExport, "exports", what)
}

func (db *DB) slot(ctx context.Context, slots chan struct{}, slot, kind, what string) (release func(), err error) {
	if slots == nil {
		db.slotTaken(slot)
		return func() {}, nil
	}
	t := time.NewTimer(db.heavyWait)
	defer t.Stop()
	select {
	case slots <- struct{}{}:
		db.slotTaken(slot)
		return func() { <-slots }, nil
	case <-t.C:
		return nil, fmt.Errorf("%d %s are running already: try again in a moment, or narrow %s: %w",
			cap(slots), kind, what, nettportal.ErrBusy)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// viewerPollInterval is how often a waiting viewer query asks again
// whether accounting caught up (a cheap in-process check).
const viewerPollInterval = 5 * time.Millisecond

// yieldToAccounting waits while accounting is behind, ViewerYield at
// most (see AccountingBehind). A query that had to wait then runs in the
// behind lane, one at a time, whether or not accounting caught up: the
// waiting queries must not all start together the moment it does, and
// fall on the commits' CPU at once. A turn not had within ViewerTurn is
// refused as busy (nettportal.ErrBusy), so no viewer waits without bound
// behind the others. release ends the turn.
func (db *DB) yieldToAccounting(ctx context.Context) (release func(), err error) {
	waited, _, err := db.awaitAccounting(ctx)
	if err != nil {
		return nil, err
	}
	if !waited {
		return func() {}, nil
	}
	turn := time.NewTimer(db.viewerTurn())
	defer turn.Stop()
	select {
	case db.behindLane <- struct{}{}:
		return func() { <-db.behindLane }, nil
	case <-turn.C:
		db.Viewers.Refused.Add(1)
		return nil, fmt.Errorf("accounting is behind its load and comes first, and the viewer queries that waited for it run one at a time: try again in a moment: %w", nettportal.ErrBusy)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// heavyYield is yieldToAccounting for a heavy query: one that would still
// find accounting behind after the wait is refused as busy, for a
// history search can keep a core busy for seconds that the commits need.
func (db *DB) heavyYield(ctx context.Context, what string) error {
	_, behind, err := db.awaitAccounting(ctx)
	if err != nil {
		return err
	}
	if behind {
		db.Viewers.Refused.Add(1)
		return fmt.Errorf("accounting is behind its load and comes first: try again in a moment, or narrow %s: %w", what, nettportal.ErrBusy)
	}
	return nil
}

// heavyGiveWay is how long accounting may stay behind, without a break,
// while a heavy query runs before the query is stopped: the yield before
// it starts cannot foresee that a search will hold a core for seconds
// just as the routers' load rises.
const heavyGiveWay = 250 * time.Millisecond

// errGaveWay is the cause of a heavy query's context ended by giveWay.
var errGaveWay = errors.New("accounting fell behind while the query ran")

// giveWay returns ctx for a heavy query, ended (cause errGaveWay) once
// accounting has been behind for heavyGiveWay without a break; stop ends
// the watch.
func (db *DB) giveWay(ctx context.Context) (qctx context.Context, stop func()) {
	if db.AccountingBehind == nil {
		return ctx, func() {}
	}
	qctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		poll := time.NewTicker(viewerPollInterval)
		defer poll.Stop()
		var since time.Time
		for {
			select {
			case <-qctx.Done():
				return
			case now := <-poll.C:
				switch {
				case !db.AccountingBehind():
					since = time.Time{}
				case since.IsZero():
					since = now
				case now.Sub(since) >= heavyGiveWay:
					db.Viewers.Refused.Add(1)
					cancel(errGaveWay)
					return
				}
			}
		}
	}()
	return qctx, func() { cancel(nil); <-done }
}

// gaveWay turns the error of a query whose context giveWay ended into an
// ErrBusy that says what to narrow; other errors pass unchanged.
func gaveWay(qctx context.Context, err error, what string) error {
	if err != nil && errors.Is(context.Cause(qctx), errGaveWay) {
		return fmt.Errorf("%w and comes first: try again in a moment, or narrow %s: %w", errGaveWay, what, nettportal.ErrBusy)
	}
	return err
}

// awaitAccounting waits while accounting is behind, ViewerYield at most,
// and says whether it waited and whether accounting still is behind.
func (db *DB) awaitAccounting(ctx context.Context) (waited, behind bool, err error) {
	if db.AccountingBehind == nil || !db.AccountingBehind() {
		return false, false, nil
	}
	began := time.Now()
	defer func() {
		db.Viewers.Yields.Add(1)
		db.Viewers.YieldNanos.Add(uint64(time.Since(began)))
	}()
	deadline := time.NewTimer(db.viewerYield())
	defer deadline.Stop()
	poll := time.NewTicker(viewerPollInterval)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return true, true, ctx.Err()
		case <-deadline.C:
			return true, true, nil
		case <-poll.C:
			if !db.AccountingBehind() {
				return true, false, nil
			}
		}
	}
}

// viewerTurn is ViewerTurn or its default.
func (db *DB) viewerTurn() time.Duration {
	switch {
	case db.ViewerTurn > 0:
		return db.ViewerTurn
	case db.stmtLimit > 0:
		return db.stmtLimit
	}
	return DefaultStatementTimeout
}

// viewerYield is ViewerYield or its default.
func (db *DB) viewerYield() time.Duration {
	if db.ViewerYield <= 0 {
		return time.Second
	}
	return db.ViewerYield
}

func (db *DB) slotTaken(kind string) {
	if db.OnSlot != nil {
		db.OnSlot(kind)
	}
}

// overBudget turns a statement cancelled by the statement timeout into an
// ErrBusy that says what to narrow; other errors pass unchanged.
func (db *DB) overBudget(err error, what string) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "57014" {
		return fmt.Errorf("the query ran longer than %s and was stopped: narrow %s: %w", db.stmtLimit, what, nettportal.ErrBusy)
	}
	return err
}

func (db *DB) usageLocation() *time.Location {
	if db.UsageLocation == nil {
		return time.UTC
	}
	return db.UsageLocation
}

// Close closes every connection.
func (db *DB) Close() {
	db.Pool.Close()
	if db.acct != nil {
		db.acct.Close()
	}
	if db.probe != nil {
		db.probe.Close()
	}
}

// PingAccounting says whether the database answers at all: an empty
// statement on a connection of its own (opened on first use, opened again
// after it broke), never one of accounting's. The accounting listener asks
// it when a commit is slow, to tell a busy database, which it waits for,
// from one that is gone, whose batches it spools.
func (db *DB) PingAccounting(ctx context.Context) error {
	if err := db.probe.Ping(ctx); err != nil {
		return fmt.Errorf("ping the database: %w", err)
	}
	return nil
}

// AccountingPool is accounting's own pool, for its metrics and tests;
// nothing else may query through it.
func (db *DB) AccountingPool() *pgxpool.Pool { return db.acct }

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
