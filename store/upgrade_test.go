package store_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/store"
	"github.com/nettportal/nettportal/store/storetest"
)

// freeRADIUSRadacctColumns are the columns of FreeRADIUS 3.2's radacct, the
// ones its billing queries and tools read: an upgrade must leave every
// value of them as it was.
const freeRADIUSRadacctColumns = `radacctid, acctsessionid, acctuniqueid, username, realm, nasipaddress,
	nasportid, nasporttype, acctstarttime, acctupdatetime, acctstoptime, acctinterval, acctsessiontime,
	acctauthentic, connectinfo_start, connectinfo_stop, acctinputoctets, acctoutputoctets,
	calledstationid, callingstationid, acctterminatecause, servicetype, framedprotocol,
	framedipaddress, framedipv6address, framedipv6prefix, framedinterfaceid, delegatedipv6prefix, class`

// pgDumpPath finds pg_dump, preferring the newest installed major version
// (pg_dump reads servers older than itself, not newer ones). Missing, the
// test fails under CI and skips otherwise.
func pgDumpPath(t *testing.T) string {
	t.Helper()
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_dump")
	sort.Slice(dirs, func(i, j int) bool { return versionOfPath(dirs[i]) > versionOfPath(dirs[j]) })
	if len(dirs) > 0 {
		return dirs[0]
	}
	p, err := exec.LookPath("pg_dump")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("pg_dump not found (CI is set, so this fails): %v", err)
		}
		t.Skipf("pg_dump not found: %v", err)
	}
	return p
}

func versionOfPath(p string) int {
	var v int
	fmt.Sscanf(filepath.Base(filepath.Dir(filepath.Dir(p))), "%d", &v)
	return v
}

var dumpNoise = regexp.MustCompile(`^(--|SET |SELECT pg_catalog\.set_config|\\restrict |\\unrestrict )`)

// schemaDump returns the database's schema as pg_dump prints it, without
// what differs between equal schemas: comments, session settings, blank
// lines, ownership and grants, the order of statements, and the order of
// a table's columns (ADD COLUMN appends, so a column a newer schema put
// earlier in CREATE TABLE sits at the end of an upgraded table; every query
// names its columns, so their order is no part of the schema's meaning).
func schemaDump(t *testing.T, pgDump, url string) []string {
	t.Helper()
	out, err := exec.Command(pgDump, "--schema-only", "--no-owner", "--no-privileges", "--no-comments",
		"--dbname", url).CombinedOutput()
	if err != nil {
		t.Fatalf("pg_dump: %v\n%s", err, out)
	}
	var stmts []string
	var cur []string
	flush := func() {
		if len(cur) == 0 {
			return
		}
		if strings.HasPrefix(cur[0], "CREATE TABLE ") && len(cur) > 2 {
			cols := cur[1 : len(cur)-1]
			for i, c := range cols {
				cols[i] = strings.TrimSuffix(c, ",")
			}
			sort.Strings(cols)
		}
		stmts = append(stmts, strings.Join(cur, "\n"))
		cur = nil
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(line) == "" || dumpNoise.MatchString(line) {
			continue
		}
		cur = append(cur, line)
		if strings.HasSuffix(line, ";") && !strings.HasPrefix(strings.TrimSpace(cur[0]), "CREATE FUNCTION") {
			flush()
		} else if strings.HasPrefix(cur[0], "CREATE FUNCTION") && strings.HasSuffix(line, "$$;") {
			flush()
		}
	}
	flush()
	sort.Strings(stmts)
	return stmts
}

// diffDumps returns the statements only in got and only in want.
func diffDumps(got, want []string) (extra, missing []string) {
	in := func(s []string) map[string]bool {
		m := map[string]bool{}
		for _, x := range s {
			m[x] = true
		}
		return m
	}
	g, w := in(got), in(want)
	for _, x := range got {
		if !w[x] {
			extra = append(extra, x)
		}
	}
	for _, x := range want {
		if !g[x] {
			missing = append(missing, x)
		}
	}
	return extra, missing
}

// tableDigest is what a table held before the upgrade: its row count and
// an md5 over its rows' columns of the time.
type tableDigest struct {
	rows int64
	cols string
	md5  string
}

// digestTables reads every table of the public schema. Columns in skip
// (table.column) are left out of the checksum: the ones a migration is
// meant to fill (radacct.nas_id of open rows).
func digestTables(t *testing.T, c *pgx.Conn, cols map[string]string, skip map[string]bool) map[string]tableDigest {
	t.Helper()
	ctx := context.Background()
	if cols == nil {
		cols = map[string]string{}
		rows, err := c.Query(ctx, `SELECT table_name::text, string_agg(quote_ident(column_name), ', ' ORDER BY column_name)
			FROM information_schema.columns WHERE table_schema = 'public'
				AND table_name IN (SELECT tablename FROM pg_tables WHERE schemaname = 'public')
				AND (table_name || '.' || column_name) <> ALL ($1)
			GROUP BY table_name`, keys(skip))
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var table, list string
			if err := rows.Scan(&table, &list); err != nil {
				t.Fatal(err)
			}
			cols[table] = list
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	}
	out := map[string]tableDigest{}
	for table, list := range cols {
		var d tableDigest
		d.cols = list
		q := fmt.Sprintf(`SELECT count(*), coalesce(md5(string_agg(r::text, E'\n' ORDER BY r::text COLLATE "C")), '')
			FROM (SELECT ROW(%s) AS r FROM %s) s`, list, pgx.Identifier{table}.Sanitize())
		if err := c.QueryRow(ctx, q).Scan(&d.rows, &d.md5); err != nil {
			t.Fatalf("digest %s: %v", table, err)
		}
		out[table] = d
	}
	return out
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func radacctChecksum(t *testing.T, c *pgx.Conn) (n int64, sum string) {
	t.Helper()
	err := c.QueryRow(context.Background(), `SELECT count(*), md5(string_agg(ROW(`+freeRADIUSRadacctColumns+`)::text, E'\n' ORDER BY radacctid))
		FROM radacct`).Scan(&n, &sum)
	if err != nil {
		t.Fatal(err)
	}
	return n, sum
}

// freshSchema is the schema of a new install, dumped the same way.
func freshSchema(t *testing.T, pgDump string) []string {
	t.Helper()
	url := storetest.MustCreateDatabase(t)
	db := openUnmigrated(t, url)
	if err := db.Migrate(context.Background()); err != nil {
		t.Fatalf("migrate a new database: %v", err)
	}
	dump := schemaDump(t, pgDump, url)
	if !strings.Contains(strings.Join(dump, "\n"), "CREATE TABLE public.radacct (") {
		t.Fatalf("pg_dump of a fresh install has no radacct:\n%s", strings.Join(dump, "\n"))
	}
	return dump
}

// upgradeCase is one database as an earlier release (or FreeRADIUS) left it.
type upgradeCase struct {
	name  string
	files []string
	// Statements the upgraded schema may have beyond a fresh install's
	// (the database's own objects, which the upgrade keeps) and may lack
	// (what its data does not allow), matched by substring.
	extraOK, missingOK []string
	// check looks at the upgraded database through the store.
	check func(t *testing.T, db *store.DB)
}

func runUpgradeCase(t *testing.T, pgDump string, fresh []string, uc upgradeCase) {
	ctx := context.Background()
	url := storetest.MustCreateDatabase(t)
	c := mustConn(t, url)
	for _, f := range uc.files {
		sql, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.PgConn().Exec(ctx, string(sql)).ReadAll(); err != nil {
			t.Fatalf("load %s: %v", f, err)
		}
	}
	skip := map[string]bool{"radacct.nas_id": true}
	before := digestTables(t, c, nil, skip)
	cols := map[string]string{}
	for table, d := range before {
		cols[table] = d.cols
	}
	nBefore, sumBefore := radacctChecksum(t, c)
	// Closed rows without a router (all of FreeRADIUS's, which has no
	// nas_id column) stay so: history is not rewritten.
	unownedClosed := func() (n int64) {
		q := `SELECT count(*) FROM radacct WHERE acctstoptime IS NOT NULL`
		var has bool
		if err := c.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM information_schema.columns
			WHERE table_name = 'radacct' AND column_name = 'nas_id')`).Scan(&has); err != nil {
			t.Fatal(err)
		}
		if has {
			q += ` AND nas_id IS NULL`
		}
		if err := c.QueryRow(ctx, q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	closedBefore := unownedClosed()

	// The path `nettportal migrate` takes, twice: the second is a no-op.
	db := openUnmigrated(t, url)
	for i := 0; i < 2; i++ {
		if err := db.Migrate(ctx); err != nil {
			t.Fatalf("migrate (run %d): %v", i+1, err)
		}
	}
	if err := db.CheckSchema(ctx); err != nil {
		t.Fatalf("after migrate: %v", err)
	}

	extra, missing := diffDumps(schemaDump(t, pgDump, url), fresh)
	allowed := func(stmt string, ok []string) bool {
		for _, s := range ok {
			if strings.Contains(stmt, s) {
				return true
			}
		}
		return false
	}
	for _, s := range extra {
		if !allowed(s, uc.extraOK) {
			t.Errorf("upgraded schema has, a fresh one does not:\n%s", s)
		}
	}
	for _, s := range missing {
		if !allowed(s, uc.missingOK) {
			t.Errorf("upgraded schema lacks, a fresh one has:\n%s", s)
		}
	}

	after := digestTables(t, c, cols, nil)
	for table, b := range before {
		if table == "schema_version" {
			// The baseline records the legacy versions 1-5 there too.
			continue
		}
		if a := after[table]; a != b {
			t.Errorf("table %s: %d rows (md5 %s) before the upgrade, %d (md5 %s) after", table, b.rows, b.md5, a.rows, a.md5)
		}
	}
	nAfter, sumAfter := radacctChecksum(t, c)
	if nAfter != nBefore || sumAfter != sumBefore {
		t.Errorf("radacct FreeRADIUS columns: %d rows md5 %s before, %d rows md5 %s after", nBefore, sumBefore, nAfter, sumAfter)
	}
	if after := unownedClosed(); after != closedBefore {
		t.Errorf("closed rows without nas_id: %d before the upgrade, %d after (history rewritten)", closedBefore, after)
	}
	if uc.check != nil {
		uc.check(t, db)
	}
}

// Every schema this project shipped before numbered migrations (versions
// 1-5, from git history, with rows), upgraded by the migrate path, has the
// schema of a fresh install and every row and value it had.
func TestUpgradeFromEveryEarlierSchema(t *testing.T) {
	t.Parallel()
	pgDump := pgDumpPath(t)
	fresh := freshSchema(t, pgDump)
	for _, name := range []string{"v1-first", "v1", "v2", "v3", "v4", "v5"} {
		uc := upgradeCase{name: name, files: []string{"testdata/upgrade/schema-" + name + ".sql"},
			check: func(t *testing.T, db *store.DB) {
				// FreeRADIUS's rows of the fixture: carol open, dave closed.
				got := routerOf(t, db, nettportal.SessionFilter{Closed: true})
				if got["alice"] != "r1" || got["bob"] != "r1" || got["carol"] != "r2" || got["dave"] != "r2" {
					t.Errorf("routers after the upgrade: %v", got)
				}
				if u := usage(t, db, nettportal.UsageFilter{From: day("2026-11-01"), To: day("2026-11-30")}); u["dave 2026-11-18"] != [2]int64{5555, 66666} {
					t.Errorf("usage after the upgrade: %v", u)
				}
			}}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			runUpgradeCase(t, pgDump, fresh, uc)
		})
	}
}

// A stock FreeRADIUS 3.2 database with data, nas rows this server cannot
// use as routers included, upgraded in place: a fresh install's schema plus
// FreeRADIUS's own indexes, every row and value as it was.
func TestUpgradeFromFreeRADIUS(t *testing.T) {
	t.Parallel()
	pgDump := pgDumpPath(t)
	fresh := freshSchema(t, pgDump)
	runUpgradeCase(t, pgDump, fresh, upgradeCase{
		name:  "freeradius-3.2",
		files: []string{"testdata/freeradius-3.2/schema.sql", "testdata/upgrade/freeradius-3.2-data.sql"},
		extraOK: []string{
			// FreeRADIUS's own indexes stay: a FreeRADIUS still writing
			// beside this server uses them (radacct_bulk_close for its
			// Accounting-On, radacct_active_session_idx for its updates).
			"INDEX radacct_active_session_idx ", "INDEX radacct_bulk_close ", "INDEX radacct_calss_idx ",
			"INDEX nas_nasname ",
		},
		// Two nas rows share a shortname, which FreeRADIUS accepts.
		missingOK: []string{"INDEX nas_shortname_key "},
		check: func(t *testing.T, db *store.DB) {
			// Every row shows its router: open ones owned by the migration
			// (a range's NAS too, the most specific range), closed ones
			// resolved when read.
			got := routerOf(t, db, nettportal.SessionFilter{Closed: true})
			for user, want := range map[string]string{"alice": "core1", "bob": "core1", "carol": "core1",
				"dave": "pop-a-hi", "erin": "pop-a", "frank": "core1", "grace": "", "heidi": ""} {
				if got[user] != want {
					t.Errorf("%s: router %q, want %q", user, got[user], want)
				}
			}
			var dave *int64
			if err := db.Pool.QueryRow(context.Background(), `SELECT nas_id FROM radacct WHERE username = 'dave'`).Scan(&dave); err != nil || dave == nil {
				t.Errorf("open row of a range's NAS has no nas_id after the upgrade (%v)", err)
			}
			if got := userSet(routerOf(t, db, nettportal.SessionFilter{Router: "pop-a", Closed: true})); got != "erin" {
				t.Errorf("router=pop-a: %s, want erin", got)
			}
			// FreeRADIUS's usernames are in the search's dictionary: a
			// substring finds its open and closed rows.
			history := nettportal.SessionFilter{Closed: true, From: day("2026-10-01"), To: day("2026-12-31")}
			for q, want := range map[string]string{"AVE": "dave", "ri": "erin", "rank": "frank"} {
				history.Query = q
				if got := userSet(routerOf(t, db, history)); got != want {
					t.Errorf("search %q: %s, want %s", q, got, want)
				}
			}
			// FreeRADIUS's traffic is in usage.
			u := usage(t, db, nettportal.UsageFilter{From: day("2026-11-01"), To: day("2026-11-30")})
			if u["carol 2026-11-19"] != [2]int64{3000, 4000} || u["bob 2026-11-20"] != [2]int64{123456789, 987654321} ||
				u["erin 2026-11-18"] != [2]int64{7777, 8888} {
				t.Errorf("usage after the upgrade: %v", u)
			}
		},
	})
}
