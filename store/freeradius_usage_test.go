package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/store/storetest"
)

// Rows FreeRADIUS writes carry no billing marks; usage_by_day counts them
// anyway: its open sessions on the day of their last update, its closed ones
// on their stop day (also when this server closed them), and a session this
// server started and FreeRADIUS stopped with the Stop's counters (only the
// part not yet on an earlier day).
func TestUsageCountsRowsFreeRADIUSWrote(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	ours := []nettportal.AccountingRecord{
		at(nettportal.StatusStart, "81000001", "2026-11-24 23:50:00", 0, 0),
		at(nettportal.StatusInterimUpdate, "81000001", "2026-11-24 23:55:00", 100, 1000),
		at(nettportal.StatusInterimUpdate, "81000001", "2026-11-25 00:05:00", 300, 3000),
	}
	for _, r := range ours {
		mustApply(t, db, []nettportal.AccountingRecord{r})
	}
	// FreeRADIUS's stock stop query on the same row (same acctuniqueid).
	if _, err := db.Pool.Exec(ctx, `UPDATE radacct SET acctstoptime = '2026-11-25 00:20:00+00', acctupdatetime = '2026-11-25 00:20:00+00',
		acctinputoctets = 500, acctoutputoctets = 5000, acctterminatecause = 'User-Request' WHERE acctuniqueid = $1`, ours[0].UniqueID); err != nil {
		t.Fatal(err)
	}
	// Rows FreeRADIUS wrote itself, as its stock queries leave them.
	for _, q := range []string{
		`INSERT INTO radacct (acctsessionid, acctuniqueid, username, nasipaddress, acctstarttime, acctupdatetime, acctstoptime, acctinputoctets, acctoutputoctets)
			VALUES ('b1', 'fr-bob', 'bob', '127.0.0.11', '2026-11-25 10:00+00', '2026-11-25 12:00+00', '2026-11-25 12:00+00', 70, 700)`,
		`INSERT INTO radacct (acctsessionid, acctuniqueid, username, nasipaddress, acctstarttime, acctupdatetime, acctinputoctets, acctoutputoctets)
			VALUES ('c1', 'fr-carol', 'carol', '127.0.0.11', '2026-11-25 22:00+00', '2026-11-26 08:00+00', 5, 50)`,
		`INSERT INTO radacct (acctsessionid, acctuniqueid, username, nasipaddress, acctstarttime, acctupdatetime, acctstoptime, acctinputoctets, acctoutputoctets)
			VALUES ('d1', 'fr-dave', 'dave', '127.0.0.11', '2026-11-25 19:00+00', '2026-11-25 20:00+00', '2026-11-25 20:00+00', 9, 90)`,
		// FreeRADIUS's session that this server closed (Accounting-On).
		`INSERT INTO radacct (acctsessionid, acctuniqueid, username, nasipaddress, acctstarttime, acctupdatetime, acctstoptime, closed_by, acctinputoctets, acctoutputoctets)
			VALUES ('e1', 'fr-erin', 'erin', '127.0.0.11', '2026-11-27 01:00+00', '2026-11-27 02:00+00', '2026-11-27 03:00+00', 'nas-reboot', 3, 30)`,
	} {
		if _, err := db.Pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	f := nettportal.UsageFilter{From: day("2026-11-01"), To: day("2026-11-30")}
	want := map[string][2]int64{
		"alice 2026-11-24": {100, 1000}, "alice 2026-11-25": {400, 4000},
		"bob 2026-11-25": {70, 700}, "carol 2026-11-26": {5, 50}, "dave 2026-11-25": {9, 90},
		"erin 2026-11-27": {3, 30},
	}
	check := func(what string, want map[string][2]int64) {
		t.Helper()
		got := usage(t, db, f)
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: %s = %v, want %v (all: %v)", what, k, got[k], v, got)
			}
		}
		if len(got) != len(want) {
			t.Errorf("%s: %d rows, want %d: %v", what, len(got), len(want), got)
		}
	}
	check("UTC", want)

	// serve's --usage-timezone decides FreeRADIUS rows' days too.
	dhaka, err := time.LoadLocation("Asia/Dhaka")
	if err != nil {
		t.Fatal(err)
	}
	db.UsageLocation = dhaka
	delete(want, "dave 2026-11-25")
	want["dave 2026-11-26"] = [2]int64{9, 90}
	check("Asia/Dhaka", want)
}
