package store

import (
	"context"
	"fmt"
	"time"

	"github.com/nettportal/nettportal"
)

// Usage reads billing usage per username and day or month from the
// usage_by_day / usage_by_month SQL functions (the same that billing systems
// can call directly).
func (db *DB) Usage(ctx context.Context, f nettportal.UsageFilter) ([]nettportal.UsageRow, error) {
	if f.From.IsZero() || f.To.IsZero() || f.To.Before(f.From) {
		return nil, fmt.Errorf("usage needs from <= to: %w", nettportal.ErrInvalid)
	}
	release, err := db.yieldToAccounting(ctx)
	if err != nil {
		return nil, fmt.Errorf("usage: %w", err)
	}
	defer release()
	var q string
	switch f.Period {
	case "", nettportal.PeriodDay:
		q = `SELECT username, day, input_octets, output_octets, sessions FROM usage_by_day($1, $2, coalesce($3, current_setting('TimeZone')))`
	case nettportal.PeriodMonth:
		q = `SELECT username, month, input_octets, output_octets, 0::bigint FROM usage_by_month($1, $2, coalesce($3, current_setting('TimeZone')))`
	default:
		return nil, fmt.Errorf("usage period %q is not day or month: %w", f.Period, nettportal.ErrInvalid)
	}
	// The billing days' time zone, for rows whose day the SQL reads off a
	// time (FreeRADIUS's rows carry no marks of ours). Go's "Local" has no
	// name PostgreSQL knows: the session's TimeZone is the closest.
	var tz *string
	if name := db.usageLocation().String(); name != "Local" {
		tz = &name
	}
	args := []any{f.From, f.To, tz}
	if f.Username != "" {
		q = "SELECT * FROM (" + q + ") u WHERE username = $4"
		args = append(args, f.Username)
	}
	rows, err := db.Pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read usage: %w", err)
	}
	defer rows.Close()
	var out []nettportal.UsageRow
	for rows.Next() {
		var r nettportal.UsageRow
		if err := rows.Scan(&r.Username, &r.Day, &r.InputOctets, &r.OutputOctets, &r.Sessions); err != nil {
			return nil, fmt.Errorf("read usage: %w", err)
		}
		r.Day = time.Date(r.Day.Year(), r.Day.Month(), r.Day.Day(), 0, 0, 0, 0, time.UTC)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read usage: %w", err)
	}
	return out, nil
}
