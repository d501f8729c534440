package store_test

import (
	"context"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/store"
	"github.com/nettportal/nettportal/store/storetest"
)

// stockFreeRADIUSDB returns the URL of a new database with FreeRADIUS
// 3.2.1's stock PostgreSQL schema (Debian 12's freeradius-postgresql,
// copied into testdata) and nothing of ours.
func stockFreeRADIUSDB(t *testing.T) string {
	t.Helper()
	url := storetest.MustCreateDatabase(t)
	schema, err := os.ReadFile("testdata/freeradius-3.2/schema.sql")
	if err != nil {
		t.Fatal(err)
	}
	c := mustConn(t, url)
	if _, err := c.PgConn().Exec(context.Background(), string(schema)).ReadAll(); err != nil {
		t.Fatalf("stock schema: %v", err)
	}
	return url
}

func execAll(t *testing.T, db *store.DB, sql string) {
	t.Helper()
	c, err := db.Pool.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	if _, err := c.Conn().PgConn().Exec(context.Background(), sql).ReadAll(); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// nas data FreeRADIUS accepts and this server cannot use as routers
// (duplicate names, ranges, hostnames, shared addresses) never fails the
// migration; such rows are kept, listed with the reason and skipped.
// FreeRADIUS's open rows get their router, as do the rows it writes later.
func TestStockFreeRADIUSDatabaseWithOddNAS(t *testing.T) {
	t.Parallel()
	url := stockFreeRADIUSDB(t)
	db := openUnmigrated(t, url)
	ctx := context.Background()
	execAll(t, db, `
		INSERT INTO nas (nasname, shortname, secret) VALUES
			('10.0.0.1', 'r1', 's'), ('10.0.0.2', 'r1', 's'), ('10.1.0.0/24', 'range', 's'),
			('nas.example.net', 'host', 's'), ('10.0.0.3', 'a', 's'), ('10.0.0.3', 'b', 's');
		INSERT INTO radacct (acctsessionid, acctuniqueid, username, nasipaddress, acctstarttime, acctupdatetime,
			acctstoptime, acctinputoctets, acctoutputoctets) VALUES
			('s1', 'open-1', 'alice', '10.0.0.1', now() - interval '1 hour', now(), NULL, 10, 20),
			('s2', 'closed-1', 'bob', '10.0.0.1', now() - interval '2 hour', now(), now(), 30, 40),
			('s3', 'open-shared', 'carol', '10.0.0.3', now(), now(), NULL, 0, 0);`)
	if err := db.Migrate(ctx); err != nil {
		t.Fatalf("migrate a stock FreeRADIUS database with odd nas rows: %v", err)
	}
	routers, err := db.Routers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(routers) != 1 || routers[0].Name != "r1" || routers[0].IP != netip.MustParseAddr("10.0.0.1") {
		t.Fatalf("routers %+v", routers)
	}
	skipped, err := db.SkippedNAS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]string{}
	for _, s := range skipped {
		reasons[s.NASName+" "+s.ShortName] = s.Reason
	}
	for key, want := range map[string]string{
		"10.0.0.2 r1":          "name shared with router id",
		"10.1.0.0/24 range":    "CIDR range",
		"nas.example.net host": "hostname: add the address with router add",
		"10.0.0.3 a":           "address shared by nas rows",
		"10.0.0.3 b":           "address shared by nas rows",
	} {
		if !strings.Contains(reasons[key], want) {
			t.Errorf("skipped %s: reason %q, want %q", key, reasons[key], want)
		}
	}
	if len(skipped) != 5 {
		t.Errorf("skipped %+v", skipped)
	}
	owner := func(uid string) *int64 {
		var id *int64
		if err := db.Pool.QueryRow(ctx, "SELECT nas_id FROM radacct WHERE acctuniqueid = $1", uid).Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	if id := owner("open-1"); id == nil || *id != routers[0].ID {
		t.Errorf("open FreeRADIUS row's router %v, want %d", id, routers[0].ID)
	}
	if id := owner("open-shared"); id != nil {
		t.Errorf("row from an address two nas rows share got router %d", *id)
	}
	// FreeRADIUS's stock Start (queries.conf's column list) after the migration.
	execAll(t, db, `INSERT INTO radacct (AcctSessionId, AcctUniqueId, UserName, NASIPAddress, AcctStartTime,
		AcctUpdateTime, AcctInputOctets, AcctOutputOctets) VALUES ('s4', 'fr-new', 'dave', '10.0.0.1', now(), now(), 0, 0)`)
	if id := owner("fr-new"); id == nil || *id != routers[0].ID {
		t.Errorf("row FreeRADIUS wrote after the migration: router %v, want %d", id, routers[0].ID)
	}
	states, err := db.RouterStates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := states[routers[0].ID].OpenSessions; got != 2 {
		t.Errorf("routers page counts %d open sessions on r1, want 2 (FreeRADIUS's)", got)
	}
	// A router added later takes the open sessions of its address.
	execAll(t, db, `INSERT INTO radacct (acctsessionid, acctuniqueid, username, nasipaddress, acctstarttime)
		VALUES ('s5', 'before-add', 'erin', '10.0.0.9', now())`)
	r9 := nettportal.Router{Name: "r9", IP: netip.MustParseAddr("10.0.0.9"), Secret: "x"}
	if err := db.CreateRouter(ctx, &r9); err != nil {
		t.Fatal(err)
	}
	if id := owner("before-add"); id == nil || *id != r9.ID {
		t.Errorf("open row from a router added later: router %v, want %d", id, r9.ID)
	}
	// Nothing of FreeRADIUS's was lost.
	var n int
	if err := db.Pool.QueryRow(ctx, "SELECT count(*) FROM nas").Scan(&n); err != nil || n != 7 {
		t.Errorf("nas rows %d, %v", n, err)
	}
	for _, table := range []string{"radcheck", "radreply", "radgroupcheck", "radgroupreply", "radusergroup", "radpostauth", "nasreload"} {
		var exists bool
		if err := db.Pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&exists); err != nil || !exists {
			t.Errorf("table %s: %v %v", table, exists, err)
		}
	}
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
}

// An open row FreeRADIUS wrote before its router existed (the nas row then
// added by plain SQL, so neither the trigger nor router add claimed it) is
// the router's for the reconciler, the stale sweep and Accounting-On.
func TestUnownedOpenRowsAdoptedBeforeRouterCloses(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	insert := func(uid, ip string) {
		t.Helper()
		execAll(t, db, `INSERT INTO radacct (acctsessionid, acctuniqueid, username, nasipaddress, acctstarttime, acctupdatetime,
			acctinputoctets, acctoutputoctets) VALUES ('`+uid+`', '`+uid+`', 'fr-user', '`+ip+`', now() - interval '1 hour', now() - interval '1 hour', 10, 20)`)
	}
	insert("fr-a", "127.0.0.41")
	insert("fr-b", "127.0.0.42")
	var r41, r42 int64
	if err := db.Pool.QueryRow(ctx, `INSERT INTO nas (nasname, shortname, secret) VALUES ('127.0.0.41', 'r41', 's') RETURNING id`).Scan(&r41); err != nil {
		t.Fatal(err)
	}
	if err := db.Pool.QueryRow(ctx, `INSERT INTO nas (nasname, shortname, secret) VALUES ('127.0.0.42', 'r42', 's') RETURNING id`).Scan(&r42); err != nil {
		t.Fatal(err)
	}
	owner := func(uid string) (id *int64, closedBy *string) {
		t.Helper()
		if err := db.Pool.QueryRow(ctx, `SELECT nas_id, closed_by FROM radacct WHERE acctuniqueid = $1`, uid).Scan(&id, &closedBy); err != nil {
			t.Fatal(err)
		}
		return id, closedBy
	}
	if id, _ := owner("fr-a"); id != nil {
		t.Fatalf("fr-a owned by %d before any pass", *id)
	}
	open, err := db.OpenSessions(ctx, r41)
	if err != nil {
		t.Fatal(err)
	}
	if len(open) != 1 || open[0].UniqueID != "fr-a" {
		t.Fatalf("reconciler's open sessions of r41: %+v", open)
	}
	if err := db.ApplyAccounting(ctx, []nettportal.AccountingRecord{{Status: nettportal.StatusAccountingOn,
		RouterID: r42, EventTime: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	if id, closedBy := owner("fr-b"); id == nil || *id != r42 || closedBy == nil || *closedBy != "nas-reboot" {
		t.Errorf("fr-b after r42's Accounting-On: owner %v, closed_by %v", id, closedBy)
	}
	// As written by a FreeRADIUS whose rows the trigger cannot place yet.
	execAll(t, db, `ALTER TABLE radacct DISABLE TRIGGER radacct_nas_id`)
	insert("fr-c", "127.0.0.41")
	execAll(t, db, `ALTER TABLE radacct ENABLE TRIGGER radacct_nas_id`)
	if _, err := db.SweepStale(ctx, time.Hour, time.Now()); err != nil {
		t.Fatal(err)
	}
	if id, _ := owner("fr-c"); id == nil || *id != r41 {
		t.Errorf("fr-c after a sweep: owner %v, want %d", id, r41)
	}
}
