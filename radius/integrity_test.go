package radius_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	rad "layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2866"
	"layeh.com/radius/rfc2869"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/radius"
	"github.com/nettportal/nettportal/radius/radiustest"
	"github.com/nettportal/nettportal/spool"
	"github.com/nettportal/nettportal/store/storetest"
)

// packet builds an Accounting-Request; set adds attributes.
func packet(t *testing.T, status rfc2866.AcctStatusType, user []byte, sid string, set func(p *rad.Packet)) []byte {
	t.Helper()
	return radiustest.Request{Status: status, User: string(user), SessionID: sid, Set: set}.Encode(t, secret)
}

// Hostile input from one router (NUL and Latin-1 bytes in strings,
// Gigawords >= 2^31, writes to another router's session) interleaved with
// a second router's ordinary traffic, through real UDP and PostgreSQL:
// every packet of the second router is answered and in radacct; the bad
// strings are stored escaped and answered, counters that cannot be a
// session total are malformed (unanswered), the foreign ones refused and
// unanswered, nothing is spooled, and no stored counter is negative.
// (Records PostgreSQL refuses even so are quarantined: store's
// TestBadRecordsQuarantinedGoodOnesCommit and the spool replay test below.)
func TestHostileRouterCannotHurtAnother(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	ordinary := nettportal.Router{Name: "core-2", IP: netip.MustParseAddr("127.0.0.2"), Secret: secret}
	if err := db.CreateRouter(ctx, &ordinary); err != nil {
		t.Fatal(err)
	}
	sp, err := spool.Open(t.TempDir(), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	commits := make(chan struct{}, 1)
	srv := startServer(t, db, func(s *radius.Server) {
		s.Spool = sp
		s.SpoolAfter = 300 * time.Millisecond
		// After a batch's outcomes are counted: what the test waits on.
		s.OnCommit = func([]nettportal.AccountingRecord) {
			select {
			case commits <- struct{}{}:
			default:
			}
		}
	})
	hostile := newClient(t, srv) // from 127.0.0.1: core-1
	conn, err := net.DialUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)}, srv.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	good := &client{t: t, conn: conn}

	// The ordinary router's session that the hostile one will try to change.
	victimStart := packet(t, rfc2866.AcctStatusType_Value_Start, []byte("victim"), "91000001", func(p *rad.Packet) {
		rfc2865.NASIPAddress_Set(p, net.IPv4(127, 0, 0, 2))
	})
	good.send(victimStart)
	if n := good.answers([][]byte{victimStart}, 2*time.Second); n != 1 {
		t.Fatal("the victim's Start was not answered")
	}
	var bad, giga, foreign, ordinaryReqs [][]byte
	for i := range 30 {
		var h []byte
		switch i % 4 {
		case 0:
			h = packet(t, rfc2866.AcctStatusType_Value_Start, []byte(fmt.Sprintf("nul%d\x00x", i)), fmt.Sprintf("8100%04x", i), nil)
			bad = append(bad, h)
		case 1:
			h = packet(t, rfc2866.AcctStatusType_Value_Start, []byte(fmt.Sprintf("caf\xe9%d", i)), fmt.Sprintf("8100%04x", i), func(p *rad.Packet) {
				rfc2865.CallingStationID_Set(p, []byte{0xff, 0xfe, 0})
			})
			bad = append(bad, h)
		case 2:
			h = packet(t, rfc2866.AcctStatusType_Value_InterimUpdate, []byte("giga"), fmt.Sprintf("8100%04x", i), func(p *rad.Packet) {
				rfc2866.AcctInputOctets_Set(p, 0xffffffff)
				rfc2869.AcctInputGigawords_Set(p, 1<<31)
				rfc2866.AcctOutputOctets_Set(p, 1)
				rfc2869.AcctOutputGigawords_Set(p, 0xffffffff)
				rfc2866.AcctSessionTime_Set(p, rfc2866.AcctSessionTime(i))
			})
			giga = append(giga, h)
		case 3:
			h = packet(t, rfc2866.AcctStatusType_Value_Stop, []byte("victim"), "91000001", func(p *rad.Packet) {
				rfc2865.NASIPAddress_Set(p, net.IPv4(127, 0, 0, 2))
				rfc2866.AcctInputOctets_Set(p, rfc2866.AcctInputOctets(999999+i)) // distinct bytes: not deduplicated
			})
			foreign = append(foreign, h)
		}
		hostile.send(h)
		o := packet(t, rfc2866.AcctStatusType_Value_InterimUpdate, []byte(fmt.Sprintf("calm-%d", i)), fmt.Sprintf("9200%04x", i), func(p *rad.Packet) {
			rfc2866.AcctInputOctets_Set(p, rfc2866.AcctInputOctets(1000+i))
			rfc2866.AcctOutputOctets_Set(p, 2000)
			rfc2866.AcctSessionTime_Set(p, 60)
		})
		ordinaryReqs = append(ordinaryReqs, o)
		good.send(o)
	}
	if n := good.answers(ordinaryReqs, 2*time.Second); n != len(ordinaryReqs) {
		t.Fatalf("the ordinary router got %d of %d answers within 2 s", n, len(ordinaryReqs))
	}
	var calm int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM radacct WHERE username LIKE 'calm-%' AND acctinputoctets >= 1000`).Scan(&calm); err != nil || calm != len(ordinaryReqs) {
		t.Fatalf("%d of the ordinary router's %d acknowledged packets in radacct (%v)", calm, len(ordinaryReqs), err)
	}
	// One read loop for all of the hostile router's answers: answers() drops
	// the ones it is not asked about.
	if n := hostile.answers(append(append([][]byte{}, bad...), giga...), 2*time.Second); n != len(bad) {
		t.Errorf("%d of the hostile router's packets answered, want the %d with bad strings (stored escaped) and none of the %d with huge counters", n, len(bad), len(giga))
	}
	if got := srv.Stats.Outcome(nettportal.OutcomeMalformed); got != uint64(len(giga)) {
		t.Errorf("malformed = %d, want %d (the counter totals at or above 2^63)", got, len(giga))
	}
	// Each packet has one outcome.
	if starts, interims := srv.Stats.Starts.Load(), srv.Stats.Interims.Load(); starts != uint64(1+len(bad)) || interims != 30 {
		t.Errorf("ok outcomes: %d Starts, %d Interims; want %d (the victim's and the escaped ones), 30 (the ordinary ones)", starts, interims, 1+len(bad))
	}
	var escaped int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM radacct WHERE username LIKE 'nul%\\x00x' OR username LIKE 'caf\\xe9%'`).Scan(&escaped); err != nil || escaped != len(bad) {
		t.Errorf("%d of %d rows with escaped user names (%v)", escaped, len(bad), err)
	}
	// Refused packets get no answer; the router retransmits and is refused again.
	deadline := time.After(2 * time.Second)
	for srv.Stats.Outcome(nettportal.OutcomeForeignSession) < uint64(len(foreign)) {
		select {
		case <-commits:
		case <-deadline:
			t.Fatalf("%d of %d foreign packets counted within 2 s", srv.Stats.Outcome(nettportal.OutcomeForeignSession), len(foreign))
		}
	}
	if got := srv.Stats.Outcome(nettportal.OutcomeForeignSession); got != uint64(len(foreign)) {
		t.Errorf("Stats.ForeignSession = %d, want %d", got, len(foreign))
	}
	if n := hostile.answers(foreign, 300*time.Millisecond); n != 0 {
		t.Errorf("%d packets for another router's session were acknowledged", n)
	}
	var stop *time.Time
	var in *int64
	if err := db.Pool.QueryRow(ctx, `SELECT acctstoptime, acctinputoctets FROM radacct WHERE username = 'victim'`).Scan(&stop, &in); err != nil {
		t.Fatal(err)
	}
	if stop != nil || (in != nil && *in != 0) { // a Start stores 0 counters
		t.Errorf("the hostile router changed the victim's session: stop %v, input %v", stop, in)
	}
	var negative int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM radacct WHERE acctinputoctets < 0 OR acctoutputoctets < 0 OR input_bps < 0 OR output_bps < 0`).
		Scan(&negative); err != nil {
		t.Fatal(err)
	}
	if negative != 0 {
		t.Errorf("%d rows with negative counters", negative)
	}
	if sp.Depth() != 0 || srv.Stats.Spooled.Load() != 0 {
		t.Errorf("spool depth %d, %d spooled: a bad record must not send batches to the spool", sp.Depth(), srv.Stats.Spooled.Load())
	}
	if _, err := db.Sessions(ctx, nettportal.SessionFilter{Limit: 1000, Closed: true}); err != nil {
		t.Errorf("sessions API query: %v", err)
	}
	if _, err := db.Pool.Exec(ctx, `SELECT * FROM usage_daily`); err != nil {
		t.Errorf("usage_daily: %v", err)
	}
}

// A record the database refuses, already in the spool (spooled during an
// outage), is quarantined on replay and the replay goes on: the spool
// drains to 0 and the good records behind it land. So does a record for
// another router's session.
func TestSpoolReplayQuarantinesAndDrains(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	r := nettportal.Router{Name: "core-1", IP: netip.MustParseAddr("127.0.0.1"), Secret: secret}
	if err := db.CreateRouter(ctx, &r); err != nil {
		t.Fatal(err)
	}
	sp, err := spool.Open(t.TempDir(), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	mk := func(user, sid string) nettportal.AccountingRecord {
		return nettportal.AccountingRecord{Status: nettportal.StatusStart, RouterID: r.ID, EventTime: time.Now().Truncate(time.Second),
			UniqueID: nettportal.AcctUniqueID(user, sid, "127.0.0.1", "", "", ""), SessionID: sid, Username: user, NASIP: r.IP}
	}
	var recs []nettportal.AccountingRecord
	for i := range 10 {
		recs = append(recs, mk(fmt.Sprintf("ok-%d", i), fmt.Sprintf("8100000%d", i)))
	}
	recs[4] = mk("nul\x00", "8100ffff")
	// Another router's record for recs[1]'s session: acknowledged when
	// spooled, so on replay it cannot be refused; it is quarantined.
	other := nettportal.Router{Name: "core-2", IP: netip.MustParseAddr("127.0.0.2"), Secret: secret}
	if err := db.CreateRouter(ctx, &other); err != nil {
		t.Fatal(err)
	}
	recs[7] = recs[1]
	recs[7].RouterID = other.ID
	recs[7].Status = nettportal.StatusStop
	if err := sp.Append(recs[:6]); err != nil {
		t.Fatal(err)
	}
	if err := sp.Append(recs[6:]); err != nil {
		t.Fatal(err)
	}
	if _, err := sp.Replay(ctx, db, 0); err != nil {
		t.Fatalf("replay stalled on a bad record: %v", err)
	}
	if sp.Depth() != 0 {
		t.Fatalf("spool depth %d after replay", sp.Depth())
	}
	var rows, quarantined int
	if err := db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM radacct), (SELECT count(*) FROM accounting_quarantine)`).Scan(&rows, &quarantined); err != nil {
		t.Fatal(err)
	}
	if rows != 8 || quarantined != 2 {
		t.Fatalf("%d rows, %d quarantined after replay; want 8, 2", rows, quarantined)
	}
	var stop *time.Time
	if err := db.Pool.QueryRow(ctx, `SELECT acctstoptime FROM radacct WHERE acctuniqueid = $1`, recs[1].UniqueID).Scan(&stop); err != nil || stop != nil {
		t.Fatalf("another router's replayed Stop closed the session (%v, %v)", stop, err)
	}
}

// A refused record that the router sends again with the same bytes once
// the dedupe window has passed is processed again (answered from the
// quarantine, not the cache) and kept once: one quarantine row counting
// two copies.
func TestQuarantinedRetransmissionAfterDedupeWindowKeptOnce(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	// A value this site's database refuses whatever decode did.
	if _, err := db.Pool.Exec(ctx, `ALTER TABLE radacct ADD CONSTRAINT site_refuses CHECK (username <> 'refused')`); err != nil {
		t.Fatal(err)
	}
	var ahead atomic.Int64
	srv := startServer(t, db, func(s *radius.Server) {
		s.Now = func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
	})
	c := newClient(t, srv)
	req := packet(t, rfc2866.AcctStatusType_Value_Start, []byte("refused"), "81000001", nil)
	c.send(req)
	if c.answers([][]byte{req}, 2*time.Second) != 1 {
		t.Fatal("the refused Start was not answered (it is durable in the quarantine)")
	}
	// Past the window: two expiry passes drop both generations.
	ahead.Store(int64(11 * time.Second))
	radius.ExpireDedupe(srv.Server, srv.Now())
	ahead.Store(int64(22 * time.Second))
	radius.ExpireDedupe(srv.Server, srv.Now())
	c.send(req)
	if c.answers([][]byte{req}, 2*time.Second) != 1 {
		t.Fatal("the retransmission after the dedupe window was not answered")
	}
	if q, d := srv.Stats.Outcome(nettportal.OutcomeQuarantined), srv.Stats.Outcome(nettportal.OutcomeDuplicate); q != 2 || d != 0 {
		t.Errorf("quarantined %d, duplicate %d; want 2, 0 (the copy was processed again)", q, d)
	}
	recs, err := db.Quarantine(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Repeats != 2 || recs[0].SQLState != "23514" {
		t.Fatalf("quarantine %+v, want one row with 2 copies", recs)
	}
}
