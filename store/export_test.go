package store

import (
	"context"

	"github.com/nettportal/nettportal"
)

// SetFullUpsertOnly makes db send every record through the full upsert, so
// tests can compare it with the narrow update.
func SetFullUpsertOnly(db *DB, v bool) { db.fullUpsertOnly = v }

// NarrowApplied is how many records db applied through the narrow update.
func NarrowApplied(db *DB) int64 { return db.narrowApplied.Load() }

// SetMigrations replaces the embedded migration list of db.
func SetMigrations(db *DB, m []nettportal.Migration) { db.migrations = m }

// OnMigrationLockWait is called at each lock wait of db's migrations.
func OnMigrationLockWait(db *DB, fn func(attempt int)) { db.onLockWait = fn }

// SessionWhere is the WHERE clause Sessions builds for f, for plan tests.
func SessionWhere(f nettportal.SessionFilter) (string, []any) { return sessionWhere(f, false) }

// SessionWhereBroad is SessionWhere for a search that matches many
// customers by name.
func SessionWhereBroad(f nettportal.SessionFilter) (string, []any) { return sessionWhere(f, true) }

// BroadSearchMatches is broadSearchMatches.
const BroadSearchMatches = broadSearchMatches

// OnSessionsSQL is called with the page and totals statements of each
// Sessions call on db, for plan tests.
func OnSessionsSQL(db *DB, fn func(page, stats string, args []any)) { db.onSessionsSQL = fn }

// BroadSearch is broadSearch.
func (db *DB) BroadSearch(ctx context.Context, f nettportal.SessionFilter) (bool, error) {
	return db.broadSearch(ctx, f)
}
