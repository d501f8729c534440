package store

import (
	"context"
	"fmt"

	"github.com/nettportal/nettportal"
)

// RecordAudit appends one control attempt and sets e.ID and e.At.
func (db *DB) RecordAudit(ctx context.Context, e *nettportal.AuditEntry) error {
	var cause *int64
	if e.ErrorCause != 0 {
		c := int64(e.ErrorCause)
		cause = &c
	}
	var nasID *int64
	if e.RouterID != 0 {
		nasID = &e.RouterID
	}
	err := db.Pool.QueryRow(ctx, `INSERT INTO control_audit (actor, action, radacctid, username, nas_id, router,
		method, result, ok, detail, error_cause, rate_limit)
		VALUES ($1, $2, nullif($3, 0), $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id, at`,
		e.Actor, e.Action, e.SessionID, e.Username, nasID, e.Router, e.Method, e.Result, e.OK, e.Detail, cause,
		e.RateLimit).Scan(&e.ID, &e.At)
	if err != nil {
		return fmt.Errorf("record audit: %w", err)
	}
	return nil
}

// Audit lists control attempts, newest first.
func (db *DB) Audit(ctx context.Context, limit, offset int) ([]nettportal.AuditEntry, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	rows, err := db.Pool.Query(ctx, `SELECT id, at, actor, action, coalesce(radacctid, 0), username,
		coalesce(nas_id, 0), router, method, result, ok, detail, coalesce(error_cause, 0), rate_limit
		FROM control_audit ORDER BY at DESC, id DESC LIMIT $1 OFFSET $2`, limit, max(offset, 0))
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	defer rows.Close()
	var out []nettportal.AuditEntry
	for rows.Next() {
		var e nettportal.AuditEntry
		var cause int64
		if err := rows.Scan(&e.ID, &e.At, &e.Actor, &e.Action, &e.SessionID, &e.Username, &e.RouterID, &e.Router,
			&e.Method, &e.Result, &e.OK, &e.Detail, &cause, &e.RateLimit); err != nil {
			return nil, fmt.Errorf("list audit: %w", err)
		}
		e.ErrorCause = uint32(cause)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	return out, nil
}
