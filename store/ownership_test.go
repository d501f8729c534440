package store_test

import (
	"context"
	"errors"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/store"
	"github.com/nettportal/nettportal/store/storetest"
)

// freeRADIUSStart is stock queries.conf's Start (its column list, 0
// counters), as FreeRADIUS writes it: no nas_id.
const freeRADIUSStart = `INSERT INTO radacct (AcctSessionId, AcctUniqueId, UserName, Realm, NASIPAddress, NASPortId,
	NASPortType, AcctStartTime, AcctUpdateTime, AcctStopTime, AcctSessionTime, AcctAuthentic, ConnectInfo_start,
	ConnectInfo_stop, AcctInputOctets, AcctOutputOctets, CalledStationId, CallingStationId, AcctTerminateCause,
	ServiceType, FramedProtocol, FramedIPAddress)
	VALUES ($1, $2, $3, NULL, $4, '1', 'Ethernet', $5, $5, NULL, 0, 'RADIUS', '', NULL, 0, 0, '', '', NULL,
	'Framed-User', 'PPP', NULL)`

// freeRADIUSStop is stock queries.conf's Stop.
const freeRADIUSStop = `UPDATE radacct SET AcctStopTime = $2, AcctUpdateTime = $2, AcctSessionTime = $3,
	AcctInputOctets = $4, AcctOutputOctets = $5, AcctTerminateCause = 'User-Request', ConnectInfo_stop = ''
	WHERE AcctUniqueId = $1 AND AcctStopTime IS NULL`

// freeRADIUSInterim is stock queries.conf's Interim-Update.
const freeRADIUSInterim = `UPDATE radacct SET AcctUpdateTime = $2, AcctInterval = 300, AcctSessionTime = $3,
	AcctInputOctets = $4, AcctOutputOctets = $5 WHERE AcctUniqueId = $1 AND AcctStopTime IS NULL`

func ts(s string) time.Time {
	t, err := time.Parse(time.DateTime, s)
	if err != nil {
		panic(err)
	}
	return t
}

func frStart(t *testing.T, db *store.DB, uid, user, nasip, at string) {
	t.Helper()
	if _, err := db.Pool.Exec(context.Background(), freeRADIUSStart, "s-"+uid, uid, user, nasip, ts(at)); err != nil {
		t.Fatalf("FreeRADIUS Start %s: %v", uid, err)
	}
}

func frStop(t *testing.T, db *store.DB, uid, at string, secs, in, out int64) {
	t.Helper()
	tag, err := db.Pool.Exec(context.Background(), freeRADIUSStop, uid, ts(at), secs, in, out)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("FreeRADIUS Stop %s: %v (%d rows)", uid, err, tag.RowsAffected())
	}
}

// routerOf maps usernames to the router the sessions API shows.
func routerOf(t *testing.T, db *store.DB, f nettportal.SessionFilter) map[string]string {
	t.Helper()
	if f.Limit == 0 {
		f.Limit = 100
	}
	page, err := db.Sessions(context.Background(), f)
	if err != nil {
		t.Fatalf("sessions %+v: %v", f, err)
	}
	out := map[string]string{}
	for _, s := range page.Sessions {
		out[s.Username] = s.Router
		if (s.Router == "") != (s.RouterID == 0) {
			t.Errorf("%s: router %q with id %d", s.Username, s.Router, s.RouterID)
		}
	}
	if page.Total != int64(len(page.Sessions)) {
		t.Errorf("sessions %+v: total %d, page %d", f, page.Total, len(page.Sessions))
	}
	return out
}

func userSet(m map[string]string) string {
	var out []string
	for u := range m {
		out = append(out, u)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// Rows without nas_id (FreeRADIUS history the migration does not rewrite,
// open rows written before their nas row existed) are first-class when
// read: shown with their router, selected by ?router= (open and closed,
// searches too), counted per router. The router is the nas row whose
// address or range holds nasipaddress, the most specific one; none when
// two rows tie. FreeRADIUS rows from a range's NAS are owned when written.
func TestRowsWithoutRouterResolvedByAddress(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	// History first, while no nas row exists: nas_id stays NULL, as on a
	// migrated database.
	frStart(t, db, "h-alice", "alice", "10.0.0.1", "2026-11-18 08:00:00")
	frStop(t, db, "h-alice", "2026-11-18 09:00:00", 3600, 100, 1000)
	frStart(t, db, "h-bob", "bob", "10.1.0.7", "2026-11-18 08:00:00")
	frStop(t, db, "h-bob", "2026-11-18 09:00:00", 3600, 200, 2000)
	frStart(t, db, "h-carol", "carol", "10.1.0.200", "2026-11-18 08:00:00")
	frStop(t, db, "h-carol", "2026-11-18 09:00:00", 3600, 300, 3000)
	frStart(t, db, "h-dave", "dave", "10.0.0.3", "2026-11-18 08:00:00")
	frStop(t, db, "h-dave", "2026-11-18 09:00:00", 3600, 1, 1)
	frStart(t, db, "h-erin", "erin", "192.0.2.9", "2026-11-18 08:00:00")
	frStop(t, db, "h-erin", "2026-11-18 09:00:00", 3600, 1, 1)
	frStart(t, db, "o-frank", "frank", "10.1.0.9", "2026-11-20 08:00:00")

	r1 := mustRouter(t, db, "r1", "10.0.0.1")
	execAll(t, db, `INSERT INTO nas (nasname, shortname, secret) VALUES
		('10.1.0.0/24', 'pop-a', 's'), ('10.1.0.130/25', 'pop-a-hi', 's'),
		('10.0.0.3', 'twin-a', 's'), ('10.0.0.3/32', 'twin-b', 's'), ('bras.example.net', 'bras', 's')`)
	// Written now: the trigger resolves a range's NAS too.
	frStart(t, db, "o-grace", "grace", "10.1.0.130", "2026-11-20 08:00:00")
	frStart(t, db, "o-heidi", "heidi", "10.0.0.1", "2026-11-20 08:00:00")
	var graceNAS, hiID int64
	if err := db.Pool.QueryRow(ctx, `SELECT (SELECT nas_id FROM radacct WHERE acctuniqueid = 'o-grace'),
		(SELECT id FROM nas WHERE shortname = 'pop-a-hi')`).Scan(&graceNAS, &hiID); err != nil || graceNAS != hiID {
		t.Fatalf("FreeRADIUS row from a /25's NAS: nas_id %d, want %d (%v)", graceNAS, hiID, err)
	}
	var unowned int64
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM radacct WHERE nas_id IS NULL AND acctstoptime IS NOT NULL`).Scan(&unowned); err != nil || unowned != 5 {
		t.Fatalf("closed rows without nas_id: %d (%v), want 5: history is not rewritten", unowned, err)
	}

	from, to := ts("2026-11-01 00:00:00"), ts("2026-12-01 00:00:00")
	all := routerOf(t, db, nettportal.SessionFilter{Closed: true, From: from, To: to})
	want := map[string]string{"alice": "r1", "bob": "pop-a", "carol": "pop-a-hi", "dave": "", "erin": "",
		"frank": "pop-a", "grace": "pop-a-hi", "heidi": "r1"}
	for u, r := range want {
		if got, ok := all[u]; !ok || got != r {
			t.Errorf("%s shown with router %q (listed %v), want %q", u, got, ok, r)
		}
	}
	for _, c := range []struct {
		router string
		closed bool
		q      string
		want   string
	}{
		{"r1", true, "", "alice,heidi"},
		{"r1", false, "", "heidi"},
		{"10.0.0.1", true, "", "alice,heidi"},
		{"pop-a", true, "", "bob,frank"},
		{"pop-a", false, "", "frank"},
		{"pop-a-hi", true, "", "carol,grace"},
		{"pop-a-hi", true, "car", "carol"},
		{"twin-a", true, "", ""},
		{"bras", true, "", ""},
		{"nonesuch", true, "", ""},
	} {
		f := nettportal.SessionFilter{Router: c.router, Closed: c.closed, Query: c.q}
		if c.closed {
			f.From, f.To = from, to
		}
		if got := userSet(routerOf(t, db, f)); got != c.want {
			t.Errorf("router=%s closed=%v q=%q: %s, want %s", c.router, c.closed, c.q, got, c.want)
		}
		// The export selects the same rows.
		var exported []string
		if err := db.ExportSessions(ctx, f, func(ss []nettportal.Session) error {
			for _, s := range ss {
				exported = append(exported, s.Username)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		sort.Strings(exported)
		if got := strings.Join(exported, ","); got != c.want {
			t.Errorf("export router=%s closed=%v q=%q: %s, want %s", c.router, c.closed, c.q, got, c.want)
		}
	}
	// Paging one row at a time through a router's own and unowned rows,
	// in every sort, gives each row once.
	for _, sortName := range store.SessionSorts() {
		for _, order := range []string{"asc", "desc"} {
			var users []string
			for off := 0; off < 3; off++ {
				page, err := db.Sessions(ctx, nettportal.SessionFilter{Router: "r1", Closed: true, Sort: sortName, Order: order, Limit: 1, Offset: off})
				if err != nil {
					t.Fatal(err)
				}
				for _, s := range page.Sessions {
					users = append(users, s.Username)
				}
			}
			sort.Strings(users)
			if got := strings.Join(users, ","); got != "alice,heidi" {
				t.Errorf("router=r1 sort=%s %s, one row a page: %s, want alice,heidi", sortName, order, got)
			}
		}
	}
	// One session's detail names its router too.
	var bobID int64
	if err := db.Pool.QueryRow(ctx, `SELECT radacctid FROM radacct WHERE acctuniqueid = 'h-bob'`).Scan(&bobID); err != nil {
		t.Fatal(err)
	}
	if s, err := db.Session(ctx, bobID); err != nil || s.Router != "pop-a" {
		t.Errorf("session %d: router %q (%v), want pop-a", bobID, s.Router, err)
	}
	// Counted per router: open rows, resolved or owned.
	states, err := db.RouterStates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var popA int64
	if err := db.Pool.QueryRow(ctx, `SELECT id FROM nas WHERE shortname = 'pop-a'`).Scan(&popA); err != nil {
		t.Fatal(err)
	}
	if states[r1.ID].OpenSessions != 1 || states[popA].OpenSessions != 1 || states[hiID].OpenSessions != 1 {
		t.Errorf("open per router: r1 %d, pop-a %d, pop-a-hi %d, want 1 each",
			states[r1.ID].OpenSessions, states[popA].OpenSessions, states[hiID].OpenSessions)
	}
	counts, err := db.OpenSessionCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, c := range counts {
		got[c.Router] = c.Open
	}
	if got["r1"] != 1 || got["pop-a"] != 1 || got["pop-a-hi"] != 1 {
		t.Errorf("open session counts %v", got)
	}
	// A range is no router to disconnect through: not found, not a failure.
	if _, err := db.Router(ctx, "pop-a"); !errors.Is(err, nettportal.ErrNotFound) {
		t.Errorf("Router(pop-a) = %v, want ErrNotFound", err)
	}
	// A router added for an address inside a range takes the open rows the
	// range had, as it takes unowned ones.
	mustRouter(t, db, "r-grace", "10.1.0.130")
	if got := userSet(routerOf(t, db, nettportal.SessionFilter{Router: "r-grace", Closed: true, From: from, To: to})); got != "grace" {
		t.Errorf("router added inside a range: %s, want grace", got)
	}
	if got := userSet(routerOf(t, db, nettportal.SessionFilter{Router: "pop-a-hi", Closed: true, From: from, To: to})); got != "carol" {
		t.Errorf("range after a router took an address of it: %s, want carol", got)
	}
}

// FreeRADIUS's traffic is in usage: its own sessions (open and closed,
// which have no marks of this server's), and a session this server started
// that FreeRADIUS stopped (it vanished before).
func TestUsageIncludesFreeRADIUSRows(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	mustRouter(t, db, "r1", "127.0.0.11")
	// FreeRADIUS's closed session, and an open one after an interim.
	frStart(t, db, "fr-closed", "bob", "127.0.0.11", "2026-11-20 08:00:00")
	frStop(t, db, "fr-closed", "2026-11-20 09:00:00", 3600, 111, 2222)
	frStart(t, db, "fr-open", "carol", "10.9.9.9", "2026-11-21 08:00:00")
	if _, err := db.Pool.Exec(ctx, freeRADIUSInterim, "fr-open", ts("2026-11-21 08:05:00"), 300, 5, 50); err != nil {
		t.Fatal(err)
	}
	frStart(t, db, "fr-idle", "dave", "10.9.9.9", "2026-11-21 08:00:00") // no traffic yet: no usage
	// Ours on the 22nd and 23rd, FreeRADIUS's Stop on the 24th.
	mustApply(t, db, []nettportal.AccountingRecord{at(nettportal.StatusStart, "81000001", "2026-11-22 10:00:00", 0, 0)})
	mustApply(t, db, []nettportal.AccountingRecord{at(nettportal.StatusInterimUpdate, "81000001", "2026-11-22 23:00:00", 10, 100)})
	mustApply(t, db, []nettportal.AccountingRecord{at(nettportal.StatusInterimUpdate, "81000001", "2026-11-23 12:00:00", 30, 300)})
	uid := at(nettportal.StatusStart, "81000001", "2026-11-22 10:00:00", 0, 0).UniqueID
	frStop(t, db, uid, "2026-11-24 01:00:00", 3600*39, 70, 700)

	f := nettportal.UsageFilter{From: day("2026-11-01"), To: day("2026-11-30")}
	want := map[string][2]int64{
		"bob 2026-11-20":   {111, 2222},
		"carol 2026-11-21": {5, 50},
		// The row's mark of the 23rd had its counters overwritten by
		// FreeRADIUS's Stop: what this server had not flushed to
		// usage_days counts on the stop's day.
		"alice 2026-11-22": {10, 100},
		"alice 2026-11-24": {60, 600},
	}
	got := usage(t, db, f)
	if len(got) != len(want) {
		t.Errorf("usage %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("usage %s = %v, want %v (all %v)", k, got[k], v, got)
		}
	}
	months := usage(t, db, nettportal.UsageFilter{From: f.From, To: f.To, Period: nettportal.PeriodMonth})
	if months["alice 2026-11-01"] != [2]int64{70, 700} || months["bob 2026-11-01"] != [2]int64{111, 2222} {
		t.Errorf("usage by month %v", months)
	}
	// The SQL a billing system calls directly agrees.
	var in, out int64
	if err := db.Pool.QueryRow(ctx, `SELECT sum(input_octets), sum(output_octets) FROM usage_by_day('2026-11-01', '2026-11-30')`).Scan(&in, &out); err != nil || in != 70+111+5 || out != 700+2222+50 {
		t.Errorf("usage_by_day totals %d %d (%v)", in, out, err)
	}
	if err := db.Pool.QueryRow(ctx, `SELECT sum(input_octets), sum(output_octets) FROM usage_daily`).Scan(&in, &out); err != nil || in != 70+111+5 {
		t.Errorf("usage_daily totals %d %d (%v)", in, out, err)
	}
	// A range that holds only the stop day.
	if got := usage(t, db, nettportal.UsageFilter{From: day("2026-11-24"), To: day("2026-11-24")}); len(got) != 1 || got["alice 2026-11-24"] != [2]int64{60, 600} {
		t.Errorf("usage of the stop day alone %v", got)
	}
}

// The day of a FreeRADIUS row's traffic is its billing day in
// --usage-timezone, like this server's marks.
func TestUsageOfFreeRADIUSRowsInBillingTimeZone(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	loc, err := time.LoadLocation("Asia/Dhaka") // UTC+6
	if err != nil {
		t.Skip(err)
	}
	db.UsageLocation = loc
	frStart(t, db, "fr-late", "bob", "10.9.9.9", "2026-11-20 17:00:00")
	frStop(t, db, "fr-late", "2026-11-20 19:00:00", 7200, 1, 2) // 01:00 on the 21st in Dhaka
	got := usage(t, db, nettportal.UsageFilter{From: day("2026-11-01"), To: day("2026-11-30")})
	if len(got) != 1 || got["bob 2026-11-21"] != [2]int64{1, 2} {
		t.Errorf("usage in Asia/Dhaka %v, want bob on 2026-11-21", got)
	}
}

// explain returns the plan of sql as Sessions runs it (no parallel workers).
func explain(t *testing.T, db *store.DB, sql string, args ...any) string {
	t.Helper()
	ctx := context.Background()
	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read only
	if _, err := tx.Exec(ctx, "SET LOCAL max_parallel_workers_per_gather = 0"); err != nil {
		t.Fatal(err)
	}
	rows, err := tx.Query(ctx, "EXPLAIN "+sql, args...)
	if err != nil {
		t.Fatalf("explain %s: %v", sql, err)
	}
	var plan strings.Builder
	for rows.Next() {
		var l string
		if err := rows.Scan(&l); err != nil {
			t.Fatal(err)
		}
		plan.WriteString(l + "\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("explain %s: %v", sql, err)
	}
	return plan.String()
}

// Resolving rows without nas_id at read time scans no radacct: on 200,000
// rows (40,000 of them FreeRADIUS history without nas_id, 20 routers and a
// range), a router's live page, its history and a search in it, and usage
// of a month, are index scans.
func TestRouterFilterAndUsagePlansOnLargeHistory(t *testing.T) {
	t.Parallel()
	url := storetest.MustCreateDatabase(t)
	db := openUnmigrated(t, url)
	ctx := context.Background()
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	base := ts("2026-11-28 00:00:00")
	// Seeded on a connection of its own: the store's statement timeout is
	// for pages, not for a 200,000-row insert.
	if _, err := mustConn(t, url).PgConn().Exec(ctx, `INSERT INTO radacct (acctsessionid, acctuniqueid, username, nasipaddress, acctstarttime,
		acctupdatetime, acctstoptime, acctinputoctets, acctoutputoctets)
		SELECT to_hex(i), 'fr' || i, 'user' || lpad((i % 5000)::text, 5, '0'),
			CASE WHEN i % 4 = 0 THEN ('10.1.0.' || (i % 250))::inet ELSE ('10.0.0.' || (1 + i % 20))::inet END,
			timestamptz '2026-11-28' - make_interval(mins => i * 5), timestamptz '2026-11-28' - make_interval(mins => i * 5 - 30),
			timestamptz '2026-11-28' - make_interval(mins => i * 5 - 30), i, i
		FROM generate_series(1, 40000) i;
		INSERT INTO nas (nasname, shortname, secret) SELECT '10.0.0.' || i, 'r' || i, 's' FROM generate_series(1, 20) i;
		INSERT INTO nas (nasname, shortname, secret) VALUES ('10.1.0.0/24', 'pop', 's');
		INSERT INTO radacct (acctsessionid, acctuniqueid, username, nasipaddress, acctstarttime, acctupdatetime,
			acctstoptime, acctinputoctets, acctoutputoctets, nas_id, closed_by, mark_at, mark_day)
		SELECT to_hex(100000 + i), 'np' || i, 'user' || lpad((i % 5000)::text, 5, '0'), ('10.0.0.' || (1 + i % 20))::inet,
			timestamptz '2026-11-28' - make_interval(secs => i * 10), timestamptz '2026-11-28' - make_interval(secs => i * 10 - 600),
			CASE WHEN i % 40 <> 0 THEN timestamptz '2026-11-28' - make_interval(secs => i * 10 - 1200) END, i, i,
			1 + i % 20, CASE WHEN i % 40 <> 0 THEN 'stop' END,
			timestamptz '2026-11-28' - make_interval(secs => i * 10 - 600), (timestamptz '2026-11-28' - make_interval(secs => i * 10 - 600))::date
		FROM generate_series(1, 160000) i;
		INSERT INTO usage_days (acctuniqueid, day, username, nas_id, input_octets, output_octets)
		SELECT acctuniqueid, mark_day, username, nas_id, acctinputoctets, acctoutputoctets FROM radacct WHERE closed_by = 'stop';
		ANALYZE radacct; ANALYZE usage_days; ANALYZE nas;`).ReadAll(); err != nil {
		t.Fatalf("seed: %v", err)
	}
	var seen []string
	var seenArgs [][]any
	store.OnSessionsSQL(db, func(page, stats string, args []any) {
		seen = append(seen, page, stats)
		seenArgs = append(seenArgs, args, args)
	})
	from, to := base.Add(-30*24*time.Hour), base
	for _, f := range []nettportal.SessionFilter{
		{Router: "r3"},
		{Router: "r3", Closed: true},
		{Router: "r3", Closed: true, Query: "user0012", From: from, To: to},
		{Router: "pop", Closed: true},
		{Router: "r3", Sort: "username"},
	} {
		seen, seenArgs = nil, nil
		page, err := db.Sessions(ctx, f)
		if err != nil {
			t.Fatalf("%+v: %v", f, err)
		}
		if f.Closed && f.Query == "" && page.Total < 1000 {
			t.Errorf("%+v: %d sessions, want the router's history", f, page.Total)
		}
		for i, sql := range seen {
			plan := explain(t, db, sql, seenArgs[i]...)
			if strings.Contains(plan, "Seq Scan on radacct") {
				t.Errorf("%+v scans radacct:\n%s\n%s", f, sql, plan)
			}
			// A router's history page walks both of its indexes from the
			// newest row, each half cut at the page.
			if i == 0 && f.Router == "r3" && f.Closed && f.Query == "" && (!strings.Contains(plan, "Index Scan Backward using radacct_nas_start_idx") ||
				!strings.Contains(plan, "Index Scan Backward using radacct_unowned_idx")) {
				t.Errorf("%+v: the history page does not walk the indexes newest first:\n%s", f, plan)
			}
		}
	}
	// usage_by_day's body, its parameters bound.
	var body string
	if err := db.Pool.QueryRow(ctx, `SELECT prosrc FROM pg_proc WHERE proname = 'usage_by_day' AND pronargs = 3`).Scan(&body); err != nil {
		t.Fatal(err)
	}
	body = regexp.MustCompile(`\bfrom_day\b`).ReplaceAllString(body, "$$1::date")
	body = regexp.MustCompile(`\bto_day\b`).ReplaceAllString(body, "$$2::date")
	body = regexp.MustCompile(`\btz\b`).ReplaceAllString(body, "$$3::text")
	if plan := explain(t, db, body, day("2026-11-01"), day("2026-11-07"), "UTC"); strings.Contains(plan, "Seq Scan on radacct") ||
		!strings.Contains(plan, "radacct_foreign_closed_idx") {
		t.Errorf("usage_by_day scans radacct or skips the index of FreeRADIUS-closed rows:\n%s", plan)
	}
}
