package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nettportal/nettportal"
)

// Session page limits: the live page shows 50; a script may ask for more,
// but one answer never holds the whole table.
const (
	DefaultSessionLimit = 50
	MaxSessionLimit     = 1000
)

// scopeOf resolves f's router filter (nil when f has none).
func (db *DB) scopeOf(ctx context.Context, f nettportal.SessionFilter) (*routerScope, error) {
	if f.Router == "" {
		return nil, nil
	}
	sc, err := db.routerScope(ctx, f.Router)
	if err != nil {
		return nil, err
	}
	return &sc, nil
}

// broadSearchMatches is how many usernames a search may match (by
// username or by customer name) before sessionConds filters by a hash
// instead of probing the username index once per match.
const broadSearchMatches = 1000

// broadSearch tells whether f's search matches more usernames or
// customers than broadSearchMatches (an address search or none matches
// none).
func (db *DB) broadSearch(ctx context.Context, f nettportal.SessionFilter) (bool, error) {
	q := strings.TrimSpace(f.Query)
	if q == "" {
		return false, nil
	}
	if _, ok := ipQuery(q); ok {
		return false, nil
	}
	var n int
	err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM acct_usernames WHERE username ILIKE $1
		UNION ALL SELECT 1 FROM customers WHERE name ILIKE $1 LIMIT $2) m`,
		likePattern(q), broadSearchMatches+1).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("count usernames matching the search: %w", err)
	}
	return n > broadSearchMatches, nil
}

// readOnly runs fn in a read-only transaction without parallel workers:
// the page and the totals already run side by side, and on a small
// machine the workers' start-up costs more than they save on 100,000 rows.
func (db *DB) readOnly(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, db.Pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL max_parallel_workers_per_gather = 0"); err != nil {
			return err
		}
		return fn(tx)
	})
}

// narrowSessions is what a refused or stopped session query should narrow.
const narrowSessions = "the search (a router, a longer q, open sessions only) or page with a smaller offset"

// heavyOffset is the offset from which a page counts as a heavy query:
// Postgres reads and drops every row before it.
const heavyOffset = 10000

// heavySessions reports whether f reads history or pages deep, the queries
// whose cost grows with the table rather than with the open sessions.
func heavySessions(f nettportal.SessionFilter) bool {
	return f.Closed || f.Offset >= heavyOffset
}

// MaxHistoryRange is the longest time range a search over history
// (closed sessions with q) may span.
const MaxHistoryRange = 93 * 24 * time.Hour

// checkHistory refuses a history search without a bounded time range: a
// substring of a common name over years of sessions cannot be answered in
// the time a page has, and an operator knows roughly when to look.
func checkHistory(f nettportal.SessionFilter) error {
	if !f.From.IsZero() && !f.To.IsZero() && !f.To.After(f.From) {
		return fmt.Errorf("to (%s) must be after from (%s): %w", f.To.Format(time.RFC3339), f.From.Format(time.RFC3339), nettportal.ErrInvalid)
	}
	if !f.Closed || strings.TrimSpace(f.Query) == "" {
		return nil
	}
	if f.From.IsZero() {
		return fmt.Errorf("searching closed sessions needs a time range: add from= (and to=, at most %d days later; "+
			"dates as 2006-01-02 or RFC 3339), or search open sessions only: %w", int(MaxHistoryRange.Hours()/24), nettportal.ErrInvalid)
	}
	to := f.To
	if to.IsZero() {
		to = time.Now()
	}
	if to.Sub(f.From) > MaxHistoryRange {
		return fmt.Errorf("a search of closed sessions may span at most %d days: narrow from= and to=: %w",
			int(MaxHistoryRange.Hours()/24), nettportal.ErrInvalid)
	}
	return nil
}

// Sessions returns one page of the sessions f selects, with the total and
// the traffic of the whole selection. The page and the totals are two
// queries run at once on two connections.
func (db *DB) Sessions(ctx context.Context, f nettportal.SessionFilter) (nettportal.SessionPage, error) {
	var page nettportal.SessionPage
	switch {
	case f.Limit < 0:
		return page, fmt.Errorf("limit %d is negative: %w", f.Limit, nettportal.ErrInvalid)
	case f.Limit == 0:
		f.Limit = DefaultSessionLimit
	case f.Limit > MaxSessionLimit:
		return page, fmt.Errorf("limit %d is above %d: %w", f.Limit, MaxSessionLimit, nettportal.ErrInvalid)
	}
	if f.Offset < 0 {
		return page, fmt.Errorf("offset %d is negative: %w", f.Offset, nettportal.ErrInvalid)
	}
	order, _, err := sessionOrder(f)
	if err != nil {
		return page, err
	}
	key, dir, nulls, joins, err := sessionOrderBy(f)
	if err != nil {
		return page, err
	}
	if err := checkHistory(f); err != nil {
		return page, err
	}
	if heavySessions(f) {
		err = db.heavyYield(ctx, narrowSessions)
	} else {
		var release func()
		release, err = db.yieldToAccounting(ctx)
		if err == nil {
			defer release()
		}
	}
	if err != nil {
		return page, fmt.Errorf("list sessions: %w", err)
	}
	scope, err := db.scopeOf(ctx, f)
	if err != nil {
		return page, fmt.Errorf("list sessions: %w", err)
	}
	if heavySessions(f) {
		release, err := db.heavyQuery(ctx, narrowSessions)
		if err != nil {
			return page, fmt.Errorf("list sessions: %w", err)
		}
		defer release()
		qctx, stop := db.giveWay(ctx)
		defer stop()
		ctx = qctx
	}
	// Part of the search it shapes, so inside its heavy slot: a search
	// over the bound waits for the slot (503), not for this count.
	broad, err := db.broadSearch(ctx, f)
	if err != nil {
		return page, fmt.Errorf("list sessions: %w", gaveWay(ctx, db.overBudget(err, narrowSessions), narrowSessions))
	}
	q := sessionQuery(f, scope, broad)
	args := q.args
	// Pick the page's ids first and join the names to those rows only:
	// joining 100,000 rows to customers before the sort costs more than the
	// sort. Sorting by a joined column needs the joins inside.
	inner := q.topIDs(key, dir, nulls, joins, f.Limit, f.Offset, "")
	pageSQL := "SELECT " + sessionColumns + " FROM (" + inner + ") p JOIN radacct r ON r.radacctid = p.radacctid" +
		sessionJoins + order
	// Sums are numeric in SQL: clamped rather than overflowing bigint,
	// whatever a router stored.
	statsSQL := `SELECT count(*), least(coalesce(sum(r.acctinputoctets), 0), 9223372036854775807)::bigint,
		least(coalesce(sum(r.acctoutputoctets), 0), 9223372036854775807)::bigint,
		least(coalesce(sum(r.input_bps), 0), 9223372036854775807)::bigint,
		least(coalesce(sum(r.output_bps), 0), 9223372036854775807)::bigint FROM radacct r` + q.where("")
	if db.onSessionsSQL != nil {
		db.onSessionsSQL(pageSQL, statsSQL, args)
	}

	var statsErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		st := &page.Stats
		statsErr = db.readOnly(ctx, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, statsSQL, args...).Scan(&st.Sessions, &st.InputOctets, &st.OutputOctets, &st.InputBps, &st.OutputBps)
		})
	}()
	err = db.readOnly(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, pageSQL, args...)
		if err != nil {
			return err
		}
		page.Sessions, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (nettportal.Session, error) { return scanSession(row) })
		return err
	})
	wg.Wait()
	if err != nil {
		return page, fmt.Errorf("list sessions: %w", gaveWay(ctx, db.overBudget(err, narrowSessions), narrowSessions))
	}
	if statsErr != nil {
		return page, fmt.Errorf("count sessions: %w", gaveWay(ctx, db.overBudget(statsErr, narrowSessions), narrowSessions))
	}
	if page.Sessions == nil {
		page.Sessions = []nettportal.Session{}
	}
	page.Total = page.Stats.Sessions
	return page, nil
}

// narrowExport is what an export stopped for its time should narrow.
const narrowExport = "the export (a router, q, a time range)"

// exportPage is how many rows ExportSessions reads per query.
const exportPage = 2000

// ExportSessions hands fn every session f selects, a page at a time, in
// radacctid order (f's sort, limit and offset do not apply). Each page is
// one query that continues after the last id (keyset: linear in the
// rows, where OFFSET read every earlier page again) on the general pool;
// no connection or snapshot is held while fn writes to a slow client. It
// takes an export slot (Options.Exports) for the whole export. Rows
// written during the export show up when their id is past the page read.
func (db *DB) ExportSessions(ctx context.Context, f nettportal.SessionFilter, fn func([]nettportal.Session) error) error {
	if err := checkHistory(f); err != nil {
		return err
	}
	release, err := db.exportSlot(ctx, "the export (a router, q, open sessions only, a time range)")
	if err != nil {
		return fmt.Errorf("export sessions: %w", err)
	}
	defer release()
	f.Sort, f.Order, f.Limit, f.Offset = "", "", 0, 0
	scope, err := db.scopeOf(ctx, f)
	if err != nil {
		return fmt.Errorf("export sessions: %w", err)
	}
	broad, err := db.broadSearch(ctx, f)
	if err != nil {
		return fmt.Errorf("export sessions: %w", db.overBudget(err, narrowExport))
	}
	q := sessionQuery(f, scope, broad)
	args := q.args
	after := len(args) + 1
	ids := q.topIDs("r.radacctid", "ASC", "", false, exportPage, 0, "r.radacctid > $"+strconv.Itoa(after))
	sql := "SELECT " + sessionColumns + " FROM (" + ids + ") p JOIN radacct r ON r.radacctid = p.radacctid" +
		sessionJoins + " ORDER BY r.radacctid"

	args = append(args, int64(0))
	page := make([]nettportal.Session, 0, exportPage)
	for {
		page, err = db.exportPage(ctx, sql, args, page[:0])
		if err != nil {
			return err
		}
		if len(page) == 0 {
			return nil
		}
		if err := fn(page); err != nil {
			return err
		}
		if len(page) < exportPage {
			return nil
		}
		args[after-1] = page[len(page)-1].ID
	}
}

// exportPage reads one page of an export into page, after yielding to
// accounting; the lane, when taken, is held for the read only, never
// while the page is written to the client.
func (db *DB) exportPage(ctx context.Context, sql string, args []any, page []nettportal.Session) ([]nettportal.Session, error) {
	release, err := db.yieldToAccounting(ctx)
	if err != nil {
		return page, fmt.Errorf("export sessions: %w", err)
	}
	defer release()
	rows, err := db.Pool.Query(ctx, sql, args...)
	if err != nil {
		return page, fmt.Errorf("export sessions: %w", db.overBudget(err, narrowExport))
	}
	defer rows.Close()
	for rows.Next() {
		s, err := scanSession(rows)
		if err != nil {
			return page, fmt.Errorf("export sessions: %w", err)
		}
		page = append(page, s)
	}
	if err := rows.Err(); err != nil {
		return page, fmt.Errorf("export sessions: %w", db.overBudget(err, narrowExport))
	}
	return page, nil
}

// Session returns one session, open or closed, by radacctid.
func (db *DB) Session(ctx context.Context, id int64) (nettportal.Session, error) {
	s, err := scanSession(db.Pool.QueryRow(ctx, "SELECT "+sessionColumns+sessionFrom+" WHERE r.radacctid = $1", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return s, fmt.Errorf("session %d: %w", id, nettportal.ErrNotFound)
	}
	if err != nil {
		return s, fmt.Errorf("read session %d: %w", id, err)
	}
	return s, nil
}

// SessionAttributes returns every column of the session's radacct row, by
// column name, for the detail view: whatever a billing system added to the
// table shows up too.
func (db *DB) SessionAttributes(ctx context.Context, id int64) (nettportal.RadacctColumns, error) {
	var raw []byte
	err := db.Pool.QueryRow(ctx, "SELECT to_jsonb(r) FROM radacct r WHERE radacctid = $1", id).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("session %d: %w", id, nettportal.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read session %d attributes: %w", id, err)
	}
	var m nettportal.RadacctColumns
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("decode session %d attributes: %w", id, err)
	}
	return m, nil
}

// SessionSamples returns the chart points of a session, oldest first, with
// the rate since the point before (zero for the first point).
func (db *DB) SessionSamples(ctx context.Context, id int64) ([]nettportal.Sample, error) {
	rows, err := db.Pool.Query(ctx, `
		SELECT at, input_octets, output_octets,
			coalesce(greatest(input_octets - lag(input_octets) OVER w, 0) * 8
				/ nullif(date_part('epoch', at - lag(at) OVER w), 0), 0)::bigint,
			coalesce(greatest(output_octets - lag(output_octets) OVER w, 0) * 8
				/ nullif(date_part('epoch', at - lag(at) OVER w), 0), 0)::bigint
		FROM session_samples
		WHERE acctuniqueid = (SELECT acctuniqueid FROM radacct WHERE radacctid = $1)
		WINDOW w AS (ORDER BY at)
		ORDER BY at`, id)
	if err != nil {
		return nil, fmt.Errorf("read samples of session %d: %w", id, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (nettportal.Sample, error) {
		var s nettportal.Sample
		err := row.Scan(&s.At, &s.InputOctets, &s.OutputOctets, &s.InputBps, &s.OutputBps)
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("read samples of session %d: %w", id, err)
	}
	if len(out) == 0 {
		if _, err := db.Session(ctx, id); err != nil {
			return nil, err
		}
		out = []nettportal.Sample{}
	}
	return out, nil
}

// RouterStates returns, per router id, its open sessions, last accounting
// and what the reconciler last saw.
func (db *DB) RouterStates(ctx context.Context) (map[int64]nettportal.RouterState, error) {
	// Open rows without nas_id count for the router their address resolves
	// to (a nas row added after they were written, by SQL rather than
	// router add, which adopts them).
	rows, err := db.Pool.Query(ctx, `
		SELECT n.id, coalesce(o.open, 0), greatest(o.last_update, s.last_acct_at), s.last_reconcile_at,
			coalesce(s.last_reconcile_result, ''), s.api_reachable, s.coa_reachable, s.boot_time,
			coalesce(q.n, 0), s.interims_seen_at
		FROM nas n
		LEFT JOIN router_status s ON s.nas_id = n.id
		LEFT JOIN (SELECT nas_id, count(*) AS n FROM accounting_quarantine GROUP BY nas_id) q ON q.nas_id = n.id
		LEFT JOIN (SELECT nas_id, sum(open) AS open, max(last_update) AS last_update FROM (
			SELECT nas_id, count(*) AS open, max(acctupdatetime) AS last_update
			FROM radacct WHERE acctstoptime IS NULL AND nas_id IS NOT NULL GROUP BY nas_id
			UNION ALL
			SELECT nas_router_id(nasipaddress), count(*), max(acctupdatetime)
			FROM radacct WHERE acctstoptime IS NULL AND nas_id IS NULL GROUP BY nasipaddress) x GROUP BY nas_id) o ON o.nas_id = n.id`)
	if err != nil {
		return nil, fmt.Errorf("read router states: %w", err)
	}
	out := map[int64]nettportal.RouterState{}
	_, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (struct{}, error) {
		var s nettportal.RouterState
		err := row.Scan(&s.RouterID, &s.OpenSessions, &s.LastAccountingAt, &s.LastReconcileAt, &s.LastReconcileResult,
			&s.APIReachable, &s.CoAReachable, &s.BootTime, &s.QuarantinedRecords, &s.InterimsSeenAt)
		s.InterimsSeen = s.InterimsSeenAt != nil
		out[s.RouterID] = s
		return struct{}{}, err
	})
	if err != nil {
		return nil, fmt.Errorf("read router states: %w", err)
	}
	return out, nil
}
