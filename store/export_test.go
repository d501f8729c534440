package store

import "github.com/nettportal/nettportal"

// SetFullUpsertOnly makes db send every record through the full upsert, so
// tests can compare it with the narrow update.
func SetFullUpsertOnly(db *DB, v bool) { db.fullUpsertOnly = v }

// NarrowApplied is how many records db applied through the narrow update.
func NarrowApplied(db *DB) int64 { return db.narrowApplied.Load() }

// SessionWhere is the WHERE clause Sessions builds for f, for plan tests.
func SessionWhere(f nettportal.SessionFilter) (string, []any) { return sessionWhere(f) }
