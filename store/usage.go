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
	var q string
	switch f.Period {
	case "", nettportal.PeriodDay:
		q = `SELECT username, day, input_octets, output_octets, sessions FROM usage_by_day($1, $2)`
	case nettportal.PeriodMonth:
		q = `SELECT username, month, input_octets, output_octets, 0::bigint FROM usage_by_month($1, $2)`
	default:
		return nil, fmt.Errorf("usage period %q is not day or month: %w", f.Period, nettportal.ErrInvalid)
	}
	args := []any{f.From, f.To}
	if f.Username != "" {
		q = "SELECT * FROM (" + q + ") u WHERE username = $3"
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

// usageTimeZoneSetting names the settings row holding the billing time zone,
// which usage_by_day uses for rows FreeRADIUS wrote.
const usageTimeZoneSetting = "usage_timezone"

// RecordUsageTimeZone stores the billing time zone (serve's
// --usage-timezone) where usage_by_day reads it, so the counters of rows
// FreeRADIUS wrote fall on the same billing days as this server's. A name
// PostgreSQL does not know is an error.
func (db *DB) RecordUsageTimeZone(ctx context.Context, name string) error {
	if err := db.ensureSettings(ctx); err != nil {
		return fmt.Errorf("record usage time zone: %w", err)
	}
	var known bool
	if err := db.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = $1)
		OR EXISTS (SELECT 1 FROM pg_timezone_abbrevs WHERE abbrev = $1)`, name).Scan(&known); err != nil {
		return fmt.Errorf("record usage time zone: %w", err)
	}
	if !known {
		return fmt.Errorf("record usage time zone: PostgreSQL does not know the time zone %q", name)
	}
	if _, err := db.Pool.Exec(ctx, `INSERT INTO settings (name, value) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, updated_at = now()
		WHERE settings.value IS DISTINCT FROM EXCLUDED.value`, usageTimeZoneSetting, name); err != nil {
		return fmt.Errorf("record usage time zone: %w", err)
	}
	return nil
}
