package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/store"
	"github.com/nettportal/nettportal/store/storetest"
)

func day(s string) time.Time {
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return d
}

// at builds a record of alice's session at a wall-clock UTC time.
func at(status nettportal.StatusType, sid string, ts string, in, out uint64) nettportal.AccountingRecord {
	r := rec(status, "alice", sid, 0)
	r.EventTime, _ = time.Parse(time.DateTime, ts)
	if status != nettportal.StatusStart {
		r = withCounters(r, 0, in, out)
	}
	return r
}

func usage(t *testing.T, db interface {
	Usage(context.Context, nettportal.UsageFilter) ([]nettportal.UsageRow, error)
}, f nettportal.UsageFilter) map[string][2]int64 {
	t.Helper()
	rows, err := db.Usage(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][2]int64{}
	for _, r := range rows {
		m[r.Username+" "+r.Day.Format(time.DateOnly)] = [2]int64{r.InputOctets, r.OutputOctets}
	}
	return m
}

// A session crossing midnight, applied in every order of its packets and
// twice over: the day split is the same, and nothing is lost or doubled.
func TestUsageAcrossMidnightIsOrderIndependent(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	packets := []nettportal.AccountingRecord{
		at(nettportal.StatusStart, "81000001", "2026-11-24 23:50:00", 0, 0),
		at(nettportal.StatusInterimUpdate, "81000001", "2026-11-24 23:55:00", 100, 1000),
		at(nettportal.StatusInterimUpdate, "81000001", "2026-11-25 00:05:00", 300, 3000),
		stop(at(nettportal.StatusStop, "81000001", "2026-11-25 00:20:00", 500, 5000), "User-Request"),
	}
	want := map[string][2]int64{"alice 2026-11-24": {100, 1000}, "alice 2026-11-25": {400, 4000}}
	f := nettportal.UsageFilter{From: day("2026-11-01"), To: day("2026-11-30")}
	orders := permutations(len(packets))
	for i, order := range orders {
		sid := "8200" + string(rune('a'+i/16)) + string(rune('a'+i%16)) + "00"
		for _, k := range order {
			p := packets[k]
			p.SessionID = sid
			p.UniqueID = nettportal.AcctUniqueID("alice", sid, "127.0.0.11", "r1", "", "")
			p.Username = "alice-" + sid
			mustApply(t, db, []nettportal.AccountingRecord{p})
		}
		// A replay of the whole session changes nothing.
		for _, p := range packets {
			p.SessionID = sid
			p.UniqueID = nettportal.AcctUniqueID("alice", sid, "127.0.0.11", "r1", "", "")
			p.Username = "alice-" + sid
			mustApply(t, db, []nettportal.AccountingRecord{p})
		}
		got := usage(t, db, nettportal.UsageFilter{From: f.From, To: f.To, Username: "alice-" + sid})
		for k, v := range want {
			k = "alice-" + sid + k[len("alice"):]
			if got[k] != v {
				t.Fatalf("order %v: %s = %v, want %v (all: %v)", order, k, got[k], v, got)
			}
		}
	}
}

func permutations(n int) [][]int {
	if n == 1 {
		return [][]int{{0}}
	}
	var out [][]int
	for _, p := range permutations(n - 1) {
		for i := 0; i <= len(p); i++ {
			q := append(append(append([]int{}, p[:i]...), n-1), p[i:]...)
			out = append(out, q)
		}
	}
	return out
}

// FreeRADIUS's data_usage_by_period adds each packet's delta when it
// arrives and loses a Stop that comes after the period row moved on; here
// the late Stop raises the day's mark instead.
func TestUsageLateStopIsNotLost(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	mustApply(t, db,
		[]nettportal.AccountingRecord{at(nettportal.StatusStart, "81000001", "2026-11-25 08:00:00", 0, 0)},
		[]nettportal.AccountingRecord{at(nettportal.StatusInterimUpdate, "81000001", "2026-11-25 08:05:00", 10, 20)},
		// A second session of the same user the next day...
		[]nettportal.AccountingRecord{at(nettportal.StatusStart, "81000002", "2026-11-26 09:00:00", 0, 0)},
		[]nettportal.AccountingRecord{at(nettportal.StatusInterimUpdate, "81000002", "2026-11-26 09:05:00", 7, 7)},
		// ...and only then the first session's Stop, from the 25th.
		[]nettportal.AccountingRecord{stop(at(nettportal.StatusStop, "81000001", "2026-11-25 10:00:00", 1000, 2000), "Lost-Carrier")},
	)
	got := usage(t, db, nettportal.UsageFilter{From: day("2026-11-25"), To: day("2026-11-26")})
	if got["alice 2026-11-25"] != [2]int64{1000, 2000} || got["alice 2026-11-26"] != [2]int64{7, 7} {
		t.Fatalf("usage %v", got)
	}
	months := usage(t, db, nettportal.UsageFilter{From: day("2026-11-01"), To: day("2026-12-31"), Period: nettportal.PeriodMonth})
	if months["alice 2026-11-01"] != [2]int64{1007, 2007} {
		t.Fatalf("monthly %v", months)
	}
	// Plain SQL, as a billing system reads it.
	var in, out int64
	if err := db.Pool.QueryRow(context.Background(), `SELECT sum(input_octets), sum(output_octets) FROM usage_daily
		WHERE username = 'alice' AND day BETWEEN '2026-11-01' AND '2026-11-30'`).Scan(&in, &out); err != nil {
		t.Fatal(err)
	}
	if in != 1007 || out != 2007 {
		t.Fatalf("usage_daily: %d %d", in, out)
	}
}

func TestUsageDaysFollowTheBillingTimeZone(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	dhaka, err := time.LoadLocation("Asia/Dhaka") // UTC+6
	if err != nil {
		t.Skip("no time zone data:", err)
	}
	db.UsageLocation = dhaka
	mustApply(t, db, []nettportal.AccountingRecord{
		at(nettportal.StatusInterimUpdate, "81000001", "2026-11-25 17:00:00", 100, 100), // 23:00 local
		at(nettportal.StatusInterimUpdate, "81000001", "2026-11-25 19:00:00", 250, 250), // 01:00 the 26th
	})
	got := usage(t, db, nettportal.UsageFilter{From: day("2026-11-25"), To: day("2026-11-26")})
	if got["alice 2026-11-25"] != [2]int64{100, 100} || got["alice 2026-11-26"] != [2]int64{150, 150} {
		t.Fatalf("usage %v", got)
	}
}

func TestRetiredStandInTakesItsUsageAlong(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	fromAPI := at(nettportal.StatusInterimUpdate, "81000001", "2026-11-25 08:00:00", 100, 100)
	fromAPI.UniqueID, fromAPI.FromAPI = "api-made-id", true
	mustApply(t, db, []nettportal.AccountingRecord{fromAPI})
	mustApply(t, db, []nettportal.AccountingRecord{at(nettportal.StatusInterimUpdate, "81000001", "2026-11-25 08:05:00", 150, 150)})
	got := usage(t, db, nettportal.UsageFilter{From: day("2026-11-25"), To: day("2026-11-25")})
	if got["alice 2026-11-25"] != [2]int64{150, 150} {
		t.Fatalf("usage %v: counted twice or lost", got)
	}
}

// usageDays counts a session's rows in usage_days.
func usageDays(t *testing.T, db *store.DB, uniqueID string) int {
	t.Helper()
	var n int
	if err := db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM usage_days WHERE acctuniqueid = $1`, uniqueID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// An open session's current mark stays on its radacct row: interims on one
// day write no usage row, and each day the session crosses leaves exactly
// one. Closes that only infer the end (Accounting-On, the stale sweep, the
// reconciler) move the last mark to usage_days, so usage stays the same
// once the session is closed.
func TestOpenSessionMarksLiveOnTheRow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, close := range []string{"accounting-on", "close-sessions"} {
		t.Run(close, func(t *testing.T) {
			db := storetest.MustOpenDB(t)
			s := at(nettportal.StatusStart, "83000001", "2026-11-24 22:00:00", 0, 0)
			mustApply(t, db, []nettportal.AccountingRecord{s},
				[]nettportal.AccountingRecord{at(nettportal.StatusInterimUpdate, "83000001", "2026-11-24 22:30:00", 10, 100)},
				[]nettportal.AccountingRecord{at(nettportal.StatusInterimUpdate, "83000001", "2026-11-24 23:00:00", 20, 200)})
			if n := usageDays(t, db, s.UniqueID); n != 0 {
				t.Fatalf("interims of an open session on one day wrote %d usage rows", n)
			}
			f := nettportal.UsageFilter{From: day("2026-11-01"), To: day("2026-11-30")}
			if got := usage(t, db, f); got["alice 2026-11-24"] != [2]int64{20, 200} {
				t.Fatalf("open session usage %v", got)
			}
			// Past midnight, then two interims in one batch across the next.
			mustApply(t, db, []nettportal.AccountingRecord{at(nettportal.StatusInterimUpdate, "83000001", "2026-11-25 00:30:00", 50, 500)},
				[]nettportal.AccountingRecord{
					at(nettportal.StatusInterimUpdate, "83000001", "2026-11-25 23:30:00", 70, 700),
					at(nettportal.StatusInterimUpdate, "83000001", "2026-11-26 00:30:00", 90, 900),
				})
			if n := usageDays(t, db, s.UniqueID); n != 2 {
				t.Fatalf("a session open over three days has %d usage rows, want 2 (the days it left)", n)
			}
			want := map[string][2]int64{"alice 2026-11-24": {20, 200}, "alice 2026-11-25": {50, 500}, "alice 2026-11-26": {20, 200}}
			check := func(when string) {
				t.Helper()
				got := usage(t, db, f)
				for k, v := range want {
					if got[k] != v {
						t.Fatalf("%s: %s = %v, want %v (all %v)", when, k, got[k], v, got)
					}
				}
				// Asking for one day only still subtracts the day before.
				one := usage(t, db, nettportal.UsageFilter{From: day("2026-11-26"), To: day("2026-11-26")})
				if one["alice 2026-11-26"] != want["alice 2026-11-26"] {
					t.Fatalf("%s: the 26th alone: %v", when, one)
				}
			}
			check("open")

			switch close {
			case "accounting-on":
				on := rec(nettportal.StatusAccountingOn, "", "", 0)
				on.EventTime = time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)
				mustApply(t, db, []nettportal.AccountingRecord{on})
			case "close-sessions":
				var id int64
				if err := db.Pool.QueryRow(ctx, `SELECT radacctid FROM radacct WHERE acctuniqueid = $1`, s.UniqueID).Scan(&id); err != nil {
					t.Fatal(err)
				}
				if n, err := db.CloseSessions(ctx, []int64{id}, nettportal.CauseLostService, nettportal.ClosedByStale); err != nil || n != 1 {
					t.Fatalf("close: %d %v", n, err)
				}
			}
			if n := usageDays(t, db, s.UniqueID); n != 3 {
				t.Fatalf("a closed session has %d usage rows, want 3 (its last mark kept)", n)
			}
			check("closed")
			// A late interim from the 25th after the close raises nothing
			// that was right, and a real Stop after an inferred close
			// raises the last day.
			mustApply(t, db, []nettportal.AccountingRecord{at(nettportal.StatusInterimUpdate, "83000001", "2026-11-25 12:00:00", 60, 600)},
				[]nettportal.AccountingRecord{stop(at(nettportal.StatusStop, "83000001", "2026-11-26 01:00:00", 95, 950), "User-Request")})
			want["alice 2026-11-26"] = [2]int64{25, 250}
			check("stopped")
		})
	}
}
