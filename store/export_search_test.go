package store_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/store"
	"github.com/nettportal/nettportal/store/storetest"
)

// seedSessions inserts n sessions in SQL: user<i>, started i minutes
// before base, every third one still open.
func seedSessions(t *testing.T, db *store.DB, n int, base time.Time) {
	t.Helper()
	// The accounting pool has no statement timeout: on a loaded machine
	// the fill can outlast the web pool's 10 s, and it is setup, not a
	// query under test.
	_, err := db.AccountingPool().Exec(context.Background(), `INSERT INTO radacct (acctsessionid, acctuniqueid, username,
		nasipaddress, acctstarttime, acctupdatetime, acctstoptime)
		SELECT to_hex(2164260864 + i), md5('seed' || i), 'user' || lpad(i::text, 6, '0'), '10.0.0.1',
			$2::timestamptz - make_interval(mins => i), $2::timestamptz - make_interval(mins => i),
			CASE WHEN i % 3 = 0 THEN NULL ELSE $2::timestamptz END
		FROM generate_series(0, $1 - 1) i`, n, base)
	if err != nil {
		t.Fatal(err)
	}
}

// The export hands over every matching row once, in id order, across
// pages, and holds no connection (of either pool) while the caller writes.
func TestExportSessionsStreamsEveryRowWithoutHoldingConnections(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	const n = 4500 // more than two export pages
	seedSessions(t, db, n, time.Now())
	var ids []int64
	calls := 0
	err := db.ExportSessions(ctx, nettportal.SessionFilter{Closed: true, Sort: "username", Limit: 10, Offset: 7}, func(page []nettportal.Session) error {
		calls++
		if got := db.Pool.Stat().AcquiredConns(); got != 0 {
			t.Errorf("page %d: %d general connections held while the caller writes", calls, got)
		}
		if got := db.AccountingPool().Stat().AcquiredConns(); got != 0 {
			t.Errorf("page %d: %d accounting connections held by an export", calls, got)
		}
		for _, s := range page {
			ids = append(ids, s.ID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != n || calls < 3 {
		t.Fatalf("exported %d rows in %d pages, want %d in at least 3", len(ids), calls, n)
	}
	for i := 1; i < len(ids); i++ {
		if ids[i] <= ids[i-1] {
			t.Fatalf("ids out of order at %d: %d after %d", i, ids[i], ids[i-1])
		}
	}
	// Open sessions only, and a caller error ends the export with it.
	open := 0
	err = db.ExportSessions(ctx, nettportal.SessionFilter{}, func(page []nettportal.Session) error {
		for _, s := range page {
			if s.StoppedAt != nil {
				t.Errorf("closed session %d in an open-only export", s.ID)
			}
		}
		open += len(page)
		return nil
	})
	if err != nil || open != n/3 {
		t.Fatalf("open export: %d rows, %v; want %d", open, err, n/3)
	}
	stop := errors.New("client went away")
	if err := db.ExportSessions(ctx, nettportal.SessionFilter{Closed: true}, func([]nettportal.Session) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("export with a failing writer: %v", err)
	}
}

// A substring search over history needs a time range of bounded span;
// with one it finds closed rows.
func TestHistorySearchNeedsATimeRange(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	base := time.Now().Truncate(time.Second)
	seedSessions(t, db, 300, base)
	_, err := db.Sessions(ctx, nettportal.SessionFilter{Closed: true, Query: "ser00"})
	if !errors.Is(err, nettportal.ErrInvalid) || !strings.Contains(err.Error(), "time range") {
		t.Fatalf("history search without a range: %v, want ErrInvalid asking for a time range", err)
	}
	if err := db.ExportSessions(ctx, nettportal.SessionFilter{Closed: true, Query: "ser00"}, func([]nettportal.Session) error { return nil }); !errors.Is(err, nettportal.ErrInvalid) {
		t.Errorf("history export without a range: %v", err)
	}
	_, err = db.Sessions(ctx, nettportal.SessionFilter{Closed: true, Query: "ser00", From: base.Add(-200 * 24 * time.Hour)})
	if !errors.Is(err, nettportal.ErrInvalid) || !strings.Contains(err.Error(), "at most") {
		t.Errorf("history search over 200 days: %v, want ErrInvalid", err)
	}
	_, err = db.Sessions(ctx, nettportal.SessionFilter{From: base, To: base.Add(-time.Hour)})
	if !errors.Is(err, nettportal.ErrInvalid) {
		t.Errorf("to before from: %v", err)
	}
	// Sessions 100-109 started 100-109 minutes before base; user00010x
	// matches them and only them (of which 102, 105 and 108 are open).
	page, err := db.Sessions(ctx, nettportal.SessionFilter{Closed: true, Query: "user00010",
		From: base.Add(-110 * time.Minute), To: base.Add(-99 * time.Minute), Sort: "username", Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	closed := 0
	for _, s := range page.Sessions {
		got = append(got, s.Username)
		if s.StoppedAt != nil {
			closed++
		}
	}
	want := make([]string, 0, 10)
	for i := 100; i <= 109; i++ {
		want = append(want, fmt.Sprintf("user%06d", i))
	}
	if strings.Join(got, ",") != strings.Join(want, ",") || closed != 7 || page.Total != 10 {
		t.Errorf("history search = %v (closed %d, total %d), want %v with 7 closed", got, closed, page.Total, want)
	}
	// A range narrows open views too.
	page, err = db.Sessions(ctx, nettportal.SessionFilter{From: base.Add(-10 * time.Minute)})
	if err != nil || page.Total != 4 { // 0, 3, 6, 9
		t.Errorf("open sessions started in the last 10 minutes: %d, %v; want 4", page.Total, err)
	}
}

// Many bad lines: the answer holds the first MaxImportErrors by line and
// counts them all; duplicates count as errors of their earlier lines.
func TestImportCustomersBoundsItsAnswer(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	var b strings.Builder
	b.WriteString("name,username\n")
	line := 1
	good := 0
	for i := 0; i < 2500; i++ {
		line++
		switch {
		case i%10 == 0:
			b.WriteString("Nameless user,\n") // no username
		case i == 5:
			b.WriteString("Dup First,dup\n")
		case i == 2495:
			b.WriteString("Dup Last,dup\n")
		default:
			fmt.Fprintf(&b, "Customer %d,cust%d\n", i, i)
			good++
		}
	}
	res, err := db.ImportCustomersCSV(ctx, strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if res.ErrorCount != 251 || len(res.Errors) != nettportal.MaxImportErrors {
		t.Fatalf("error count %d, %d listed; want 251 and %d listed", res.ErrorCount, len(res.Errors), nettportal.MaxImportErrors)
	}
	// Line 2 (i=0) is the first nameless line; line 7 (i=5) is the
	// overridden duplicate, between lines 2 and 12.
	if res.Errors[0].Line != 2 || res.Errors[1].Line != 7 || !strings.Contains(res.Errors[1].Error, "appears again on line 2497") ||
		res.Errors[2].Line != 12 {
		t.Errorf("first errors = %+v", res.Errors[:3])
	}
	if res.Created != good+1 || res.Updated != 0 {
		t.Errorf("created %d updated %d, want %d and 0", res.Created, res.Updated, good+1)
	}
	list, _, err := db.Customers(ctx, "dup", 10, 0)
	if err != nil || len(list) != 1 || list[0].Name != "Dup Last" {
		t.Errorf("the last line of a repeated username wins: %+v %v", list, err)
	}
}

// The history search's condition is served by indexes throughout: the
// usernames it matches come from the dictionary's trigram index, and
// radacct is probed by username through its btrees on open and closed
// rows, each half through its own partial index. radacct itself has no
// trigram index: Starts and Stops would pay for one.
func TestHistorySearchUsesIndexes(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	seedSessions(t, db, 30000, time.Now())
	if _, err := db.Pool.Exec(ctx, "ANALYZE radacct; ANALYZE acct_usernames"); err != nil {
		t.Fatal(err)
	}
	where, args := store.SessionWhere(nettportal.SessionFilter{Closed: true, Query: "ser01234"})
	plan := explain(t, db, "SELECT count(*) FROM radacct r"+where, args...)
	for _, idx := range []string{"acct_usernames_trgm_idx", "radacct_closed_user_idx", "radacct_open_user_idx"} {
		if !strings.Contains(plan, "Index Scan on "+idx+" ") {
			t.Errorf("plan does not use %s:\n%s", idx, plan)
		}
	}
	var trigram []string
	rows, err := db.Pool.Query(ctx, "SELECT indexname FROM pg_indexes WHERE tablename = 'radacct' AND indexdef LIKE '%gin_trgm_ops%'")
	if err == nil {
		trigram, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil || len(trigram) != 0 {
		t.Errorf("radacct's trigram indexes: %v (%v), want none", trigram, err)
	}
}

// A search that matches more customers by name than the broad threshold
// filters through IN (a hash, or a join probing the username index)
// instead of an array compared element by element (which took minutes
// with 50,000 matching customers), and finds the same sessions as the
// array form.
func TestBroadSearchFiltersByHash(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	seedSessions(t, db, 6000, time.Now())
	// Customers for every other seeded username, more than the threshold.
	n := store.BroadSearchMatches + 500
	if _, err := db.AccountingPool().Exec(ctx, `INSERT INTO customers (name, username)
		SELECT 'Customer ' || i, 'user' || lpad((2 * i)::text, 6, '0') FROM generate_series(0, $1 - 1) i`, n); err != nil {
		t.Fatal(err)
	}
	f := nettportal.SessionFilter{Query: "ustomer"}
	for q, want := range map[string]bool{"ustomer": true, "Customer 12": false, "10.0.0.1": false, "": false} {
		if got, err := db.BroadSearch(ctx, nettportal.SessionFilter{Query: q}); err != nil || got != want {
			t.Errorf("search %q broad = %v (%v), want %v", q, got, err, want)
		}
	}
	page, err := db.Sessions(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	// Open rows are every third seeded one (i % 3 == 0); those with a
	// customer are the even ones below 2n: i % 6 == 0, i < 2n.
	want := int64(0)
	for i := 0; i < 6000; i++ {
		if i%6 == 0 && i < 2*n {
			want++
		}
	}
	if page.Total != want {
		t.Errorf("broad search found %d open sessions, want %d", page.Total, want)
	}
	count := func(where string, args []any) (n int64, plan string) {
		t.Helper()
		if err := db.Pool.QueryRow(ctx, "SELECT count(*) FROM radacct r"+where, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n, explain(t, db, "SELECT count(*) FROM radacct r"+where, args...)
	}
	narrowN, _ := count(store.SessionWhere(f))
	broadN, plan := count(store.SessionWhereBroad(f))
	if narrowN != want || broadN != want {
		t.Errorf("array form counts %d, hash form %d; want %d", narrowN, broadN, want)
	}
	// A hash (a hashed subplan or a semi-join), or a join that probes
	// the username index per match: anything but the array form.
	if strings.Contains(plan, "ANY (") {
		t.Errorf("the broad form compares against an array:\n%s", plan)
	}
	// History (open and closed rows) too, in one condition: an IN under
	// an OR of the two halves would be a subplan run for every row.
	history := nettportal.SessionFilter{Query: "ustomer", Closed: true}
	narrowN, _ = count(store.SessionWhere(history))
	broadN, plan = count(store.SessionWhereBroad(history))
	if want := int64(n); narrowN != want || broadN != want {
		t.Errorf("history: array form counts %d, hash form %d; want %d", narrowN, broadN, want)
	}
	if strings.Contains(plan, "ANY (") || strings.Contains(plan, " OR ") {
		t.Errorf("the broad history form compares against an array or splits in halves:\n%s", plan)
	}
}

// Every writer of radacct fills the search's username dictionary: this
// server's upsert, a plain INSERT as FreeRADIUS's rlm_sql makes it, and an
// update that gives a row its username later; a search then finds each.
func TestUsernameDictionaryFollowsEveryWriter(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	router := nettportal.Router{Name: "r1", IP: netip.MustParseAddr("127.0.0.11"), Secret: "s1"}
	if err := db.CreateRouter(ctx, &router); err != nil {
		t.Fatal(err)
	}
	r := rec(nettportal.StatusStart, "Ingest-Alice", "81000001", 0)
	r.RouterID = router.ID
	if err := db.ApplyAccounting(ctx, []nettportal.AccountingRecord{r}); err != nil {
		t.Fatal(err)
	}
	pool := db.AccountingPool()
	if _, err := pool.Exec(ctx, `INSERT INTO radacct (acctsessionid, acctuniqueid, username, nasipaddress, acctstarttime)
		VALUES ('f1', md5('f1'), 'radius-bob', '10.9.9.9', now())`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO radacct (acctsessionid, acctuniqueid, username, nasipaddress, acctstarttime)
		VALUES ('f2', md5('f2'), NULL, '10.9.9.9', now())`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE radacct SET username = 'later-carol' WHERE acctsessionid = 'f2'`); err != nil {
		t.Fatal(err)
	}
	for q, want := range map[string]string{"alice": "Ingest-Alice", "DIUS-B": "radius-bob", "r-car": "later-carol"} {
		page, err := db.Sessions(ctx, nettportal.SessionFilter{Query: q})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Sessions) != 1 || page.Sessions[0].Username != want {
			t.Errorf("search %q found %+v, want %s", q, page.Sessions, want)
		}
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM acct_usernames`).Scan(&n); err != nil || n != 3 {
		t.Errorf("dictionary has %d usernames (%v), want 3", n, err)
	}
}

// A writer granted what FreeRADIUS's setup.sql grants its radius role
// (radacct, its sequence, nas to read) still writes radacct: the
// dictionary's triggers run as their owner. And they write the dictionary,
// not a temporary table of the writer's that has its name (which would
// run the writer's own triggers with the owner's rights).
func TestUsernameDictionaryNeedsNoGrantForOtherWriters(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	pool := db.AccountingPool()
	var database string
	if err := pool.QueryRow(ctx, "SELECT current_database()").Scan(&database); err != nil {
		t.Fatal(err)
	}
	role := pgx.Identifier{database + "_radius"}.Sanitize() // roles are the cluster's: one per test database
	for _, stmt := range []string{
		"CREATE ROLE " + role,
		"GRANT SELECT, INSERT, UPDATE ON radacct TO " + role,
		"GRANT SELECT ON nas TO " + role,
		"GRANT USAGE, SELECT ON SEQUENCE radacct_radacctid_seq TO " + role,
	} {
		if _, err := pool.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	t.Cleanup(func() {
		pool.Exec(context.Background(), "DROP OWNED BY "+role) //nolint:errcheck // best effort
		pool.Exec(context.Background(), "DROP ROLE "+role)     //nolint:errcheck // best effort
	})
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+role); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "CREATE TEMP TABLE acct_usernames (username text PRIMARY KEY) ON COMMIT DROP"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO radacct (acctsessionid, acctuniqueid, username, nasipaddress, acctstarttime)
			VALUES ('f1', md5('f1'), 'granted-dave', '10.9.9.9', now())`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE radacct SET username = 'granted-erin' WHERE acctsessionid = 'f1'`)
		return err
	})
	if err != nil {
		t.Fatalf("FreeRADIUS's role writes radacct: %v", err)
	}
	var names []string
	rows, err := pool.Query(ctx, "SELECT username FROM acct_usernames ORDER BY 1")
	if err == nil {
		names, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil || strings.Join(names, ",") != "granted-dave,granted-erin" {
		t.Errorf("dictionary %v (%v), want granted-dave and granted-erin", names, err)
	}
}
