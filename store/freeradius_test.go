package store_test

import (
	"context"
	"net/netip"
	"os"
	"strings"
	"testing"

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
