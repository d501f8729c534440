package store

import (
	"context"
	"fmt"
	"time"

	"github.com/nettportal/nettportal"
)

// OpenSessions lists a router's open sessions.
func (db *DB) OpenSessions(ctx context.Context, routerID int64) ([]nettportal.OpenSession, error) {
	rows, err := db.Pool.Query(ctx, `SELECT radacctid, acctuniqueid, acctsessionid, coalesce(username, ''),
		acctstarttime, coalesce(acctupdatetime, acctstarttime), coalesce(acctinterval, 0), source = 'api'
		FROM radacct WHERE nas_id = $1 AND acctstoptime IS NULL`, routerID)
	if err != nil {
		return nil, fmt.Errorf("list open sessions of router %d: %w", routerID, err)
	}
	defer rows.Close()
	var out []nettportal.OpenSession
	for rows.Next() {
		var s nettportal.OpenSession
		var interim int64
		if err := rows.Scan(&s.ID, &s.UniqueID, &s.AcctSessionID, &s.Username, &s.StartedAt, &s.UpdatedAt, &interim, &s.FromAPI); err != nil {
			return nil, fmt.Errorf("list open sessions of router %d: %w", routerID, err)
		}
		s.Interim = time.Duration(interim) * time.Second
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list open sessions of router %d: %w", routerID, err)
	}
	return out, nil
}

// CloseSessions closes the given open rows as of their last update (the
// last moment they were known alive), with cause and closedBy. Rows closed
// meanwhile are left alone. It returns the number closed.
func (db *DB) CloseSessions(ctx context.Context, ids []int64, cause, closedBy string) (int64, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	tag, err := db.Pool.Exec(ctx, `UPDATE radacct SET
		acctstoptime = coalesce(acctupdatetime, acctstarttime),
		acctterminatecause = $2, closed_by = $3
		WHERE radacctid = ANY($1) AND acctstoptime IS NULL`, ids, cause, closedBy)
	if err != nil {
		return 0, fmt.Errorf("close %d sessions (%s): %w", len(ids), closedBy, err)
	}
	return tag.RowsAffected(), nil
}

// SweepStale closes, as stale, the open sessions of routers without API
// access that had no update for two interim intervals plus grace: the
// router lost them without a Stop (reboot, power loss, lost packets). A
// session's own Acct-Interim-Interval wins over its router's.
func (db *DB) SweepStale(ctx context.Context, grace time.Duration, now time.Time) (int64, error) {
	tag, err := db.Pool.Exec(ctx, `UPDATE radacct r SET
		acctstoptime = coalesce(r.acctupdatetime, r.acctstarttime),
		acctterminatecause = $3, closed_by = $4
		FROM nas
		WHERE r.nas_id = nas.id AND r.acctstoptime IS NULL
		AND (nas.api_addr = '' OR nas.api_user = '')
		AND coalesce(r.acctupdatetime, r.acctstarttime) <
			$1::timestamptz - 2 * make_interval(secs => coalesce(nullif(r.acctinterval, 0), nas.interim_seconds)) - make_interval(secs => $2)`,
		now, grace.Seconds(), nettportal.CauseLostService, nettportal.ClosedByStale)
	if err != nil {
		return 0, fmt.Errorf("sweep stale sessions: %w", err)
	}
	return tag.RowsAffected(), nil
}

// RouterReconciled records a reconciliation pass for the routers page.
func (db *DB) RouterReconciled(ctx context.Context, routerID int64, at time.Time, apiReachable bool, result string) error {
	_, err := db.Pool.Exec(ctx, `INSERT INTO router_status (nas_id, last_reconcile_at, last_reconcile_result, api_reachable, api_checked_at)
		VALUES ($1, $2, $3, $4, $2)
		ON CONFLICT (nas_id) DO UPDATE SET last_reconcile_at = $2, last_reconcile_result = $3,
			api_reachable = $4, api_checked_at = $2`, routerID, at, result, apiReachable)
	if err != nil {
		return fmt.Errorf("record reconciliation of router %d: %w", routerID, err)
	}
	return nil
}

// RouterCoAChecked records whether the router answered a CoA/Disconnect.
func (db *DB) RouterCoAChecked(ctx context.Context, routerID int64, at time.Time, reachable bool) error {
	_, err := db.Pool.Exec(ctx, `INSERT INTO router_status (nas_id, coa_reachable, coa_checked_at) VALUES ($1, $3, $2)
		ON CONFLICT (nas_id) DO UPDATE SET coa_reachable = $3, coa_checked_at = $2`, routerID, at, reachable)
	if err != nil {
		return fmt.Errorf("record CoA reachability of router %d: %w", routerID, err)
	}
	return nil
}

// RetireSupersededAPIRows deletes a router's rows the reconciler made for
// sessions that accounting has a row for too. Accounting arriving after the
// reconciler's row retires it in the same transaction, and the reconciler
// does not insert over an accounting row; this catches the two racing in
// concurrent transactions.
func (db *DB) RetireSupersededAPIRows(ctx context.Context, routerID int64) (int64, error) {
	var n int64
	err := db.Pool.QueryRow(ctx, `WITH gone AS (
			DELETE FROM radacct a WHERE a.source = 'api' AND a.nas_id = $1
			AND EXISTS (SELECT 1 FROM radacct x WHERE x.nas_id = a.nas_id AND x.acctsessionid = a.acctsessionid AND x.source = 'radius')
			RETURNING a.acctuniqueid),
		usage AS (DELETE FROM usage_days WHERE acctuniqueid IN (SELECT acctuniqueid FROM gone))
		SELECT count(*) FROM gone`, routerID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("retire superseded api rows of router %d: %w", routerID, err)
	}
	return n, nil
}
