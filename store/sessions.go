package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
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

// sessionSort maps an API sort name to SQL. Nothing from the request
// reaches the SQL text except through this switch. Indexed columns keep
// PostgreSQL's default NULLS placement so a partial index can serve the
// ORDER BY ... LIMIT; the others put empty values last in both directions.
// joins tells whether the expression needs the nas and customers joins.
func sessionSort(name string) (expr string, indexed, joins, ok bool) {
	switch name {
	case "username":
		return "r.username", true, false, true
	case "customer":
		return "c.name", false, true, true
	case "router":
		return "n.shortname", false, true, true
	case "ip":
		return "r.framedipaddress", true, false, true
	case "profile":
		return "coalesce(r.profile, c.profile, '')", false, true, true
	case "started_at":
		return "r.acctstarttime", true, false, true
	case "uptime":
		return "coalesce(r.acctstoptime, now()) - r.acctstarttime", false, false, true
	case "input_octets":
		return "r.acctinputoctets", false, false, true
	case "output_octets":
		return "r.acctoutputoctets", false, false, true
	case "input_bps":
		return "r.input_bps", false, false, true
	case "output_bps":
		return "r.output_bps", false, false, true
	}
	return "", false, false, false
}

// SessionSorts lists the sort names Sessions accepts.
func SessionSorts() []string {
	return []string{"username", "customer", "router", "ip", "profile", "started_at", "uptime",
		"input_octets", "output_octets", "input_bps", "output_bps"}
}

const sessionColumns = `r.radacctid, r.acctsessionid, r.acctuniqueid, coalesce(r.username, ''), coalesce(c.name, ''),
	coalesce(r.nas_id, n.id, 0), coalesce(n.shortname, ''), host(r.nasipaddress), coalesce(host(r.framedipaddress), ''),
	coalesce(r.callingstationid, ''), coalesce(r.profile, c.profile, ''), coalesce(r.calledstationid, ''),
	coalesce(r.nasportid, ''), r.acctstarttime, r.acctupdatetime, r.acctstoptime, coalesce(r.acctsessiontime, 0),
	coalesce(r.acctinputoctets, 0), coalesce(r.acctoutputoctets, 0), coalesce(r.input_bps, 0), coalesce(r.output_bps, 0),
	coalesce(r.acctterminatecause, ''), coalesce(r.closed_by, ''), r.has_start, coalesce(r.acctinterval, 0)`

// sessionJoins names a row's router and customer. A row without nas_id
// shows the router its address resolves to (see ownership.go); the
// function runs only for such rows, and only for the rows shown.
const sessionJoins = `
	LEFT JOIN nas n ON n.id = ` + rowRouterSQL + `
	LEFT JOIN customers c ON c.username = r.username`

const sessionFrom = ` FROM radacct r` + sessionJoins

func scanSession(row pgx.Row) (nettportal.Session, error) {
	var s nettportal.Session
	var nasIP, ip string
	var start, update *time.Time
	err := row.Scan(&s.ID, &s.AcctSessionID, &s.UniqueID, &s.Username, &s.Customer, &s.RouterID, &s.Router,
		&nasIP, &ip, &s.MAC, &s.Profile, &s.Service, &s.Interface, &start, &update, &s.StoppedAt,
		&s.SessionTime, &s.InputOctets, &s.OutputOctets, &s.InputBps, &s.OutputBps, &s.TerminateCause,
		&s.ClosedBy, &s.HasStart, &s.InterimSeconds)
	if err != nil {
		return s, err
	}
	// Addresses come as text: host() drops the /32 that inet would carry.
	s.NASIP, _ = netip.ParseAddr(nasIP)
	s.IP, _ = netip.ParseAddr(ip)
	if start != nil {
		s.StartedAt = *start
	}
	if update != nil {
		s.UpdatedAt = *update
	}
	return s, nil
}

// likePattern makes a substring pattern that matches q literally.
func likePattern(q string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(q) + "%"
}

// ipQuery reads q as an address, a prefix, or a dotted prefix of whole
// octets ("100.64" is 100.64.0.0/16), which is how operators type a subnet.
func ipQuery(q string) (netip.Prefix, bool) {
	if p, err := netip.ParsePrefix(q); err == nil {
		return p.Masked(), true
	}
	if a, err := netip.ParseAddr(q); err == nil {
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	parts := strings.Split(strings.TrimSuffix(q, "."), ".")
	if len(parts) < 2 || len(parts) > 3 {
		return netip.Prefix{}, false
	}
	var b [4]byte
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 8)
		if err != nil || p == "" || (len(p) > 1 && p[0] == '0') {
			return netip.Prefix{}, false
		}
		b[i] = byte(n)
	}
	return netip.PrefixFrom(netip.AddrFrom4(b), 8*len(parts)), true
}

// sessionWhere builds the WHERE clause of f without its router (plan
// tests); args are numbered from 1.
func sessionWhere(f nettportal.SessionFilter) (string, []any) {
	q := sessionQuery(f, nil)
	return q.where(""), q.args
}

// sessionSQL is the selection of a session query: conds on radacct r, and
// the router filter as alternatives (owners), each one index scan.
type sessionSQL struct {
	owners []string
	conds  []string
	args   []any
}

// sessionQuery builds the selection of f, its router resolved to scope.
func sessionQuery(f nettportal.SessionFilter, scope *routerScope) sessionSQL {
	var a argList
	owners := scope.ownerConds(a.add)
	conds := sessionConds(f, &a)
	return sessionSQL{owners: owners, conds: conds, args: a.args}
}

// where is the WHERE clause of the rows of one owner alternative ("": of
// any of them, or of all rows when there is no router filter).
func (q sessionSQL) where(owner string) string {
	conds := q.conds
	if owner != "" {
		conds = append([]string{owner}, conds...)
	} else if len(q.owners) > 0 {
		conds = append([]string{"(" + strings.Join(q.owners, " OR ") + ")"}, conds...)
	}
	if len(conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(conds, " AND ")
}

// topIDs selects the radacctids of the rows [offset, offset+limit) in the
// order of key and dir (then radacctid); joins adds sessionJoins for a key
// that needs them, and extra is ANDed to the conditions. With two owner
// alternatives (a router's own rows and its unowned ones) each is ordered
// and cut on its own and the two merged: an OR would make PostgreSQL read
// the router's whole history to sort it, where each half alone walks its
// (nas_id, acctstarttime) or (nasipaddress, acctstarttime) index and stops
// at the limit.
func (q sessionSQL) topIDs(key, dir, nulls string, joins bool, limit, offset int, extra string) string {
	from := " FROM radacct r"
	if joins {
		from += sessionJoins
	}
	order := func(k, id string) string { return " ORDER BY " + k + " " + dir + nulls + ", " + id + " " + dir }
	page := func(l, o int) string {
		out := " LIMIT " + strconv.Itoa(l)
		if o > 0 {
			out += " OFFSET " + strconv.Itoa(o)
		}
		return out
	}
	if len(q.owners) < 2 {
		where := q.where("")
		if extra != "" {
			where = andWhere(where, extra)
		}
		return "SELECT r.radacctid" + from + where + order(key, "r.radacctid") + page(limit, offset)
	}
	var parts []string
	for _, o := range q.owners {
		where := q.where(o)
		if extra != "" {
			where = andWhere(where, extra)
		}
		parts = append(parts, "(SELECT r.radacctid, "+key+" AS k"+from+where+order(key, "r.radacctid")+page(limit+offset, 0)+")")
	}
	return "SELECT u.radacctid FROM (" + strings.Join(parts, " UNION ALL ") + ") u" + order("u.k", "u.radacctid") + page(limit, offset)
}

func andWhere(where, cond string) string {
	if where == "" {
		return " WHERE " + cond
	}
	return where + " AND " + cond
}

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

func sessionConds(f nettportal.SessionFilter, al *argList) []string {
	var conds []string
	arg := al.add
	if !f.Closed {
		conds = append(conds, "r.acctstoptime IS NULL")
	}
	if q := strings.TrimSpace(f.Query); q != "" {
		if p, ok := ipQuery(q); ok {
			conds = append(conds, "r.framedipaddress <<= "+arg(p.String())+"::inet")
		} else {
			// ANY(ARRAY(...)) rather than a join or IN: it keeps both sides
			// of the OR indexable (trigram on username, btree on username).
			match := func(a string) string {
				return "(r.username ILIKE " + a + " OR r.username = ANY(ARRAY(SELECT username FROM customers WHERE name ILIKE " + a + ")))"
			}
			pattern := likePattern(q)
			if !f.Closed {
				conds = append(conds, match(arg(pattern)))
			} else {
				// Open and closed rows have their own trigram indexes
				// (partial): the planner uses one only where the query
				// states its predicate, so say it for each half. The
				// halves take the pattern as two parameters, or the planner
				// factors the match out of the OR and no index applies.
				conds = append(conds, "((r.acctstoptime IS NULL AND "+match(arg(pattern))+") OR (r.acctstoptime IS NOT NULL AND "+match(arg(pattern))+"))")
			}
		}
	}
	if f.IDs != nil {
		conds = append(conds, "r.radacctid = ANY("+arg(f.IDs)+"::bigint[])")
	}
	if !f.From.IsZero() {
		conds = append(conds, "r.acctstarttime >= "+arg(f.From))
	}
	if !f.To.IsZero() {
		conds = append(conds, "r.acctstarttime < "+arg(f.To))
	}
	return conds
}

// sessionOrder returns the ORDER BY clause for f, whether it needs the
// nas and customers joins, or an ErrInvalid error.
func sessionOrder(f nettportal.SessionFilter) (string, bool, error) {
	key, dir, nulls, joins, err := sessionOrderBy(f)
	if err != nil {
		return "", false, err
	}
	return " ORDER BY " + key + " " + dir + nulls + ", r.radacctid " + dir, joins, nil
}

// sessionOrderBy returns f's sort key, direction and NULLS placement.
func sessionOrderBy(f nettportal.SessionFilter) (key, dir, nulls string, joins bool, err error) {
	sortName, order := f.Sort, strings.ToLower(f.Order)
	if sortName == "" {
		sortName = "started_at"
		if order == "" {
			order = "desc"
		}
	}
	if order == "" {
		order = "asc"
	}
	if order != "asc" && order != "desc" {
		return "", "", "", false, fmt.Errorf("order %q is not asc or desc: %w", f.Order, nettportal.ErrInvalid)
	}
	expr, indexed, joins, ok := sessionSort(sortName)
	if !ok {
		return "", "", "", false, fmt.Errorf("cannot sort by %q (one of %s): %w", sortName, strings.Join(SessionSorts(), ", "), nettportal.ErrInvalid)
	}
	if sortName == "uptime" && !f.Closed {
		// Open sessions only: the longest up is the earliest started, and
		// the start index serves that order.
		expr, indexed = "r.acctstarttime", true
		if order == "asc" {
			order = "desc"
		} else {
			order = "asc"
		}
	}
	dir = strings.ToUpper(order)
	if !indexed {
		nulls = " NULLS LAST"
	}
	return expr, dir, nulls, joins, nil
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
	scope, err := db.scopeOf(ctx, f)
	if err != nil {
		return page, fmt.Errorf("list sessions: %w", err)
	}
	q := sessionQuery(f, scope)
	args := q.args
	if heavySessions(f) {
		release, err := db.heavyQuery(ctx, narrowSessions)
		if err != nil {
			return page, fmt.Errorf("list sessions: %w", err)
		}
		defer release()
	}
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
		return page, fmt.Errorf("list sessions: %w", db.overBudget(err, narrowSessions))
	}
	if statsErr != nil {
		return page, fmt.Errorf("count sessions: %w", db.overBudget(statsErr, narrowSessions))
	}
	if page.Sessions == nil {
		page.Sessions = []nettportal.Session{}
	}
	page.Total = page.Stats.Sessions
	return page, nil
}

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
	q := sessionQuery(f, scope)
	args := q.args
	after := len(args) + 1
	ids := q.topIDs("r.radacctid", "ASC", "", false, exportPage, 0, "r.radacctid > $"+strconv.Itoa(after))
	sql := "SELECT " + sessionColumns + " FROM (" + ids + ") p JOIN radacct r ON r.radacctid = p.radacctid" +
		sessionJoins + " ORDER BY r.radacctid"

	args = append(args, int64(0))
	page := make([]nettportal.Session, 0, exportPage)
	for {
		rows, err := db.Pool.Query(ctx, sql, args...)
		if err != nil {
			return fmt.Errorf("export sessions: %w", db.overBudget(err, "the export (a router, q, a time range)"))
		}
		page = page[:0]
		for rows.Next() {
			s, err := scanSession(rows)
			if err != nil {
				rows.Close()
				return fmt.Errorf("export sessions: %w", err)
			}
			page = append(page, s)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("export sessions: %w", db.overBudget(err, "the export (a router, q, a time range)"))
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
func (db *DB) SessionAttributes(ctx context.Context, id int64) (map[string]any, error) {
	var raw []byte
	err := db.Pool.QueryRow(ctx, "SELECT to_jsonb(r) FROM radacct r WHERE radacctid = $1", id).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("session %d: %w", id, nettportal.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read session %d attributes: %w", id, err)
	}
	var m map[string]any
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
