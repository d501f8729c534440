package store

import (
	"context"
	"fmt"
	"time"

	"github.com/nettportal/nettportal"
)

// OpenSessions lists a router's open sessions.
func (db *DB) OpenSessions(ctx context.Context, routerID int64) ([]nettportal.OpenSession, error) {
	if _, err := db.Pool.Exec(ctx, adoptRouterSessionsSQL, routerID); err != nil {
		return nil, fmt.Errorf("adopt open sessions of router %d: %w", routerID, err)
	}
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

// Open rows without nas_id (FreeRADIUS wrote them, or came with a migrated
// database) are a router's once nas_router_id says so: the trigger sets
// nas_id when a row is written, but a row whose router was added later by
// plain SQL, and that FreeRADIUS no longer updates, keeps NULL. The sweep,
// the reconciler and Accounting-On close a router's sessions by nas_id,
// so each first takes such rows over. radacct_open_unowned_idx holds only
// those rows: with none, each statement is one probe of an empty index.
const (
	adoptUnownedSessionsSQL = `UPDATE radacct SET nas_id = nas_router_id(nasipaddress)
		WHERE acctstoptime IS NULL AND nas_id IS NULL AND nas_router_id(nasipaddress) IS NOT NULL`
	adoptRouterSessionsSQL = `UPDATE radacct SET nas_id = $1
		WHERE acctstoptime IS NULL AND nas_id IS NULL AND nas_router_id(nasipaddress) = $1`
	// adoptNamedSessionsSQL is an Accounting-On's addition: rows whose
	// nasipaddress is the address the packet names ($2, a NAS-IPv6-Address
	// beside an IPv4 registration) when no nas row covers it, as the
	// accounting upsert claims them and FreeRADIUS's accounting_onoff_query
	// closes them.
	adoptNamedSessionsSQL = `UPDATE radacct r SET nas_id = $1
		WHERE r.acctstoptime IS NULL AND r.nas_id IS NULL AND r.nasipaddress = $2::inet
			AND NOT EXISTS (SELECT 1 FROM nas n WHERE n.nasname_prefix >>= r.nasipaddress)`
)

// closeChunk is how many rows one close transaction takes: short
// transactions keep accounting batches waiting for at most one chunk.
const closeChunk = 1000

// closeInChunks closes the open rows that pick (a query of radacctid over
// radacct r, with its own WHERE) selects, as of their last update, in
// chunks. Rows are locked in acctuniqueid order, the order accounting
// batches lock in, so the two never deadlock; rows a batch holds right now
// are skipped: accounting is updating them, and the next pass decides.
func (db *DB) closeInChunks(ctx context.Context, what, pick string, args []any, cause, closedBy string) (int64, error) {
	n := len(args)
	q := `WITH picked AS (` + pick + ` ORDER BY r.acctuniqueid LIMIT ` + fmt.Sprint(closeChunk) + ` FOR UPDATE OF r SKIP LOCKED),
		closed AS (
			UPDATE radacct r SET acctstoptime = coalesce(r.acctupdatetime, r.acctstarttime),
				acctterminatecause = $` + fmt.Sprint(n+1) + `, closed_by = $` + fmt.Sprint(n+2) + `,
				input_bps = 0, output_bps = 0
			FROM picked WHERE r.radacctid = picked.radacctid AND r.acctstoptime IS NULL
			RETURNING r.*)` + closedMarksSQL
	args = append(args, cause, closedBy)
	var total int64
	for {
		var closed int64
		if err := db.Pool.QueryRow(ctx, q, args...).Scan(&closed); err != nil {
			return total, fmt.Errorf("%s: %w", what, err)
		}
		total += closed
		if closed < closeChunk {
			return total, nil
		}
	}
}

// CloseSessions closes the given open rows as of their last update (the
// last moment they were known alive), with cause and closedBy. Rows closed
// meanwhile are left alone. It returns the number closed.
func (db *DB) CloseSessions(ctx context.Context, ids []int64, cause, closedBy string) (int64, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	return db.closeInChunks(ctx, fmt.Sprintf("close %d sessions (%s)", len(ids), closedBy),
		`SELECT r.radacctid FROM radacct r WHERE r.radacctid = ANY($1) AND r.acctstoptime IS NULL`,
		[]any{ids}, cause, closedBy)
}

// SweepStale closes, as stale, the open sessions of routers without API
// access that had no update for two interim intervals plus grace: the
// router lost them without a Stop (reboot, power loss, lost packets). A
// session's own Acct-Interim-Interval wins over its router's. Only sessions
// that are expected to send interims are swept: their router has been seen
// sending Interim-Updates, or the session carried a non-zero
// Acct-Interim-Interval. RouterOS's default is `/ppp aaa interim-update=0`,
// and the sessions of such a router would otherwise all be closed minutes
// after they started. With MaxSessionAge set, sessions that started longer
// ago than that are closed too, on any router (closed_by max-age).
func (db *DB) SweepStale(ctx context.Context, grace time.Duration, now time.Time) (int64, error) {
	if _, err := db.Pool.Exec(ctx, adoptUnownedSessionsSQL); err != nil {
		return 0, fmt.Errorf("adopt open sessions without a router: %w", err)
	}
	n, err := db.closeInChunks(ctx, "sweep stale sessions", `SELECT r.radacctid FROM radacct r JOIN nas ON r.nas_id = nas.id
		LEFT JOIN router_status rs ON rs.nas_id = nas.id
		WHERE r.acctstoptime IS NULL AND (nas.api_addr = '' OR nas.api_user = '')
		AND (rs.interims_seen_at IS NOT NULL OR r.acctinterval > 0)
		AND coalesce(r.acctupdatetime, r.acctstarttime) <
			$1::timestamptz - 2 * make_interval(secs => coalesce(nullif(r.acctinterval, 0), nas.interim_seconds)) - make_interval(secs => $2)`,
		[]any{now, grace.Seconds()}, nettportal.CauseLostService, nettportal.ClosedByStale)
	if err != nil || db.MaxSessionAge <= 0 {
		return n, err
	}
	aged, err := db.closeInChunks(ctx, "close sessions past the maximum age", `SELECT r.radacctid FROM radacct r
		WHERE r.acctstoptime IS NULL AND r.acctstarttime < $1::timestamptz - make_interval(secs => $2)`,
		[]any{now, db.MaxSessionAge.Seconds()}, CauseSessionTimeout, ClosedByMaxAge)
	return n + aged, err
}

// A session closed for being older than MaxSessionAge: RFC 2866's
// Session-Timeout cause, and closed_by max-age (an inferred close, undone
// by a later Interim like the others).
const (
	CauseSessionTimeout = "Session-Timeout"
	ClosedByMaxAge      = "max-age"
)

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
