package store_test

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/store/storetest"
)

// FuzzApplyAccounting feeds arbitrary decoded records (any strings,
// including invalid UTF-8 and NUL, any counters and times) through the
// real ApplyAccounting on PostgreSQL, each beside an ordinary record of
// another router: it never fails except through the quarantine, the
// ordinary record always commits, and no stored counter is negative.
func FuzzApplyAccounting(f *testing.F) {
	db := storetest.MustOpenDB(f)
	ctx := context.Background()
	r1, r2 := twoRouters(f, db)
	f.Add(uint32(3), "alice", "81000001", "AA:BB", "r1", "", uint64(1000), uint64(2000), uint32(60), int64(1764000000), uint32(300), false)
	f.Add(uint32(1), "bad\x00", "\xff\xfe", "caf\xe9", "", "ai:0", uint64(math.MaxUint64), uint64(1<<63), uint32(math.MaxUint32), int64(0), uint32(0), true)
	f.Add(uint32(2), "", "", "", "", "", uint64(0), uint64(0), uint32(0), int64(4102444800), uint32(0), false)
	f.Add(uint32(3), "x", "81000002", "", "", "", uint64(1<<62), uint64(1<<62), uint32(1), int64(-62135596800), uint32(1), true)
	f.Add(uint32(7), "", "", "", "", "", uint64(0), uint64(0), uint32(0), int64(1764000000), uint32(0), false)
	n := 0
	f.Fuzz(func(t *testing.T, status uint32, user, sid, calling, ident, class string, in, out uint64, sessionTime uint32,
		eventSec int64, interim uint32, withRaw bool) {
		n++
		x := nettportal.AccountingRecord{
			Status: nettportal.StatusType(status), RouterID: r1.ID, EventTime: time.Unix(eventSec, 0),
			UniqueID: nettportal.AcctUniqueID(user, sid, "127.0.0.11", ident, "", ""), SessionID: sid, Username: user,
			NASIP: r1.IP, NASIdent: ident, CallingStation: calling, Class: class, Profile: class,
			InputOctets: &in, OutputOctets: &out, SessionTime: &sessionTime, InterimSeconds: &interim,
			TerminateCause: calling, ConnectInfo: ident,
		}
		if withRaw {
			x.Raw = []byte(user + sid)
		}
		// The same session again, later, so the update paths (rates,
		// reopen, usage marks) see the values too.
		y := x
		y.EventTime = x.EventTime.Add(time.Duration(sessionTime%7200+1) * time.Second)
		in2, out2 := in/2+in/3, out|1
		y.InputOctets, y.OutputOctets = &in2, &out2
		y.Status = nettportal.StatusInterimUpdate
		good := withCounters(rec(nettportal.StatusInterimUpdate, "good", fmt.Sprintf("%08x", n), 0), 60, 100, 200)
		good.RouterID = r2.ID
		good.EventTime = time.Now()
		good.UniqueID = nettportal.AcctUniqueID("good", good.SessionID, "127.0.0.12", "", "", fmt.Sprint(n))
		outs := make([]nettportal.RecordOutcome, 3)
		if err := db.ApplyAccountingOutcomes(ctx, []nettportal.AccountingRecord{x, good, y}, outs); err != nil {
			t.Fatalf("apply failed outside the quarantine: %v", err)
		}
		if outs[1] != nettportal.RecordStored {
			t.Fatalf("the ordinary batch-mate's outcome is %v", outs[1])
		}
		var in1 int64
		if err := db.Pool.QueryRow(ctx, `SELECT acctinputoctets FROM radacct WHERE acctuniqueid = $1`, good.UniqueID).Scan(&in1); err != nil || in1 != 100 {
			t.Fatalf("the ordinary batch-mate is not in radacct: %d %v", in1, err)
		}
		var negative int
		if err := db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM radacct WHERE acctinputoctets < 0 OR acctoutputoctets < 0
				OR acctsessiontime < 0 OR input_bps < 0 OR output_bps < 0 OR acctinputpackets < 0 OR acctoutputpackets < 0)
			+ (SELECT count(*) FROM usage_days WHERE input_octets < 0 OR output_octets < 0)`).Scan(&negative); err != nil || negative != 0 {
			t.Fatalf("%d negative stored counters (%v)", negative, err)
		}
		if _, err := db.Pool.Exec(ctx, `SELECT * FROM usage_daily`); err != nil {
			t.Fatalf("usage_daily fails on what was stored: %v", err)
		}
		if _, err := db.Sessions(ctx, nettportal.SessionFilter{Limit: 10, Closed: true, Query: "good",
			From: time.Now().AddDate(0, 0, -90), To: time.Now().Add(time.Hour)}); err != nil {
			t.Fatalf("sessions query fails on what was stored: %v", err)
		}
	})
}
