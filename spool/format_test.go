package spool_test

import (
	"context"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/store/storetest"
)

// fixtureRecords are the records in testdata/v0, written by the spool
// before its format was versioned (the JSON of AccountingRecord).
func fixtureRecords() []nettportal.AccountingRecord {
	u32 := func(v uint32) *uint32 { return &v }
	u64 := func(v uint64) *uint64 { return &v }
	nas := netip.MustParseAddr("192.0.2.11")
	start := nettportal.AccountingRecord{Status: nettportal.StatusStart, RouterID: 1, EventTime: t0,
		UniqueID:  nettportal.AcctUniqueID("alice", "81000001", "192.0.2.11", "core-1", "<pppoe-alice>", "2164260865"),
		SessionID: "81000001", Username: "alice", NASIP: nas, NASIdent: "core-1", NASPortID: "<pppoe-alice>",
		NASPort: u32(2164260865), NASPortTyp: "Ethernet", Authentic: "RADIUS", ConnectInfo: "1Gbps",
		CalledStation: "service1", CallingStation: "AA:BB:CC:DD:EE:01", ServiceType: "Framed-User",
		FramedProtocol: "PPP", FramedIP: netip.MustParseAddr("100.64.0.1"), FramedIPv6Addr: netip.MustParseAddr("2001:db8::1"),
		FramedIPv6Pfx: "2001:db8:1::/64", DelegatedPfx: "2001:db8:100::/56", FramedIfaceID: "02:00:00:ff:fe:00:00:01",
		Class: "0x61693a", InterimSeconds: u32(300), Profile: "gold"}
	interim := start
	interim.Status = nettportal.StatusInterimUpdate
	interim.EventTime = t0.Add(5 * time.Minute)
	interim.SessionTime, interim.InputOctets, interim.OutputOctets = u32(300), u64(5<<32|1234), u64(77)
	interim.InputPackets, interim.OutputPackets = u32(10), u32(20)
	stop := interim
	stop.Status = nettportal.StatusStop
	stop.EventTime = t0.Add(10 * time.Minute)
	stop.SessionTime, stop.InputOctets, stop.OutputOctets = u32(600), u64(6<<32|1), u64(99)
	stop.TerminateCause = "User-Request"
	bare := nettportal.AccountingRecord{Status: nettportal.StatusStop, RouterID: 2, EventTime: t0.Add(time.Minute),
		UniqueID: nettportal.AcctUniqueID("bob", "82000001", "", "", "", ""), SessionID: "82000001", Username: "bob",
		NASIP: netip.MustParseAddr("192.0.2.12")}
	api := nettportal.AccountingRecord{Status: nettportal.StatusInterimUpdate, RouterID: 2, EventTime: t0.Add(2 * time.Minute),
		UniqueID: "0123456789abcdef0123456789abcdef", SessionID: "82000002", Username: "carol",
		NASIP: netip.MustParseAddr("192.0.2.12"), FromAPI: true, InputOctets: u64(1), OutputOctets: u64(2)}
	on := nettportal.AccountingRecord{Status: nettportal.StatusAccountingOn, RouterID: 2, EventTime: t0.Add(3 * time.Minute),
		NASIP: netip.MustParseAddr("192.0.2.12"), NASIdent: "edge-2"}
	return []nettportal.AccountingRecord{start, interim, stop, bare, api, on}
}

// copyDir copies a fixture spool so the test may replay (and delete) it.
func copyDir(t *testing.T, from string) string {
	t.Helper()
	to := t.TempDir()
	err := filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, d.Name()), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	return to
}

// capture is a store that keeps what it is given.
type capture struct{ recs []nettportal.AccountingRecord }

func (c *capture) ApplyAccounting(_ context.Context, recs []nettportal.AccountingRecord) error {
	c.recs = append(c.recs, recs...)
	return nil
}

func TestReadsSpoolWrittenByUnversionedFormat(t *testing.T) {
	t.Parallel()
	dir := copyDir(t, "testdata/v0")
	s := mustOpen(t, dir)
	want := fixtureRecords()
	if s.Depth() != int64(len(want)) {
		t.Fatalf("depth %d, want %d", s.Depth(), len(want))
	}
	// Records appended now (version 1) follow the old ones in the same
	// segment; both are read back.
	extra := records(1, 1)
	if err := s.Append(extra); err != nil {
		t.Fatal(err)
	}
	var got capture
	if n, err := s.Replay(context.Background(), &got, 4); err != nil || n != len(want)+len(extra) {
		t.Fatalf("replayed %d: %v", n, err)
	}
	want = append(want, extra...)
	for i := range want {
		if !reflect.DeepEqual(got.recs[i], want[i]) {
			t.Fatalf("record %d:\n got %+v\nwant %+v", i, got.recs[i], want[i])
		}
	}
	s.Close()

	// And into PostgreSQL: the old records land as the same records applied
	// directly.
	s = mustOpen(t, copyDir(t, "testdata/v0"))
	defer s.Close()
	db := storetest.MustOpenDB(t)
	if n, err := s.Replay(context.Background(), db, 0); err != nil || n != len(fixtureRecords()) {
		t.Fatalf("replayed %d: %v", n, err)
	}
	direct := storetest.MustOpenDB(t)
	if err := direct.ApplyAccounting(context.Background(), fixtureRecords()); err != nil {
		t.Fatal(err)
	}
	sameState(t, state(t, db), state(t, direct))
}

// TestFormatCarriesEveryField fails when AccountingRecord gains a field the
// spool format does not carry: such a field would be lost in an outage.
func TestFormatCarriesEveryField(t *testing.T) {
	t.Parallel()
	var rec nettportal.AccountingRecord
	v := reflect.ValueOf(&rec).Elem()
	for i := 0; i < v.NumField(); i++ {
		fill(t, v.Type().Field(i).Name, v.Field(i), i)
	}
	dir := t.TempDir()
	s := mustOpen(t, dir)
	defer s.Close()
	if err := s.Append([]nettportal.AccountingRecord{rec}); err != nil {
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "segment-*"))
	raw, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{`"v":1`, `"acct_unique_id"`, `"user_name"`, `"acct_input_octets"`, `"nas_ip_address"`} {
		if !strings.Contains(string(raw), name) {
			t.Errorf("spool record has no %s: %s", name, raw[8:])
		}
	}
	var got capture
	if _, err := s.Replay(context.Background(), &got, 0); err != nil {
		t.Fatal(err)
	}
	if len(got.recs) != 1 || !reflect.DeepEqual(got.recs[0], rec) {
		t.Fatalf("round trip lost a field:\n got %+v\nwant %+v", got.recs, rec)
	}
}

// fill gives a field a distinct non-zero value.
func fill(t *testing.T, name string, f reflect.Value, i int) {
	switch f.Interface().(type) {
	case time.Time:
		f.Set(reflect.ValueOf(t0.Add(time.Duration(i) * time.Second)))
	case netip.Addr:
		f.Set(reflect.ValueOf(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})))
	case string:
		f.SetString(name + "-value")
	case bool:
		f.SetBool(true)
	case []byte:
		f.SetBytes([]byte{1, byte(i), 0, 0xff})
	case netip.AddrPort:
		f.Set(reflect.ValueOf(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 1, byte(i)}), uint16(3000+i))))
	case nettportal.StatusType:
		f.Set(reflect.ValueOf(nettportal.StatusStop))
	case int64:
		f.SetInt(int64(1000 + i))
	case *uint32:
		x := uint32(2000 + i)
		f.Set(reflect.ValueOf(&x))
	case *uint64:
		x := uint64(1<<40 + i)
		f.Set(reflect.ValueOf(&x))
	default:
		t.Fatalf("field %s has type %s the test cannot fill: teach fill (and the spool format) about it", name, f.Type())
	}
}

// resultStore quarantines records of one user, as the store does with a
// record PostgreSQL refuses, and applies the rest.
type resultStore struct {
	*capture
	bad string
}

func (r resultStore) ApplyAccountingResults(ctx context.Context, recs []nettportal.AccountingRecord) ([]nettportal.Outcome, error) {
	out := make([]nettportal.Outcome, len(recs))
	var good []nettportal.AccountingRecord
	for i := range recs {
		if recs[i].Username == r.bad {
			out[i] = nettportal.OutcomeQuarantined
			continue
		}
		good = append(good, recs[i])
	}
	return out, r.capture.ApplyAccounting(ctx, good)
}

func TestQuarantinedRecordDoesNotStallReplay(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, t.TempDir())
	defer s.Close()
	recs := records(4, 2)
	if err := s.Append(recs); err != nil {
		t.Fatal(err)
	}
	got := resultStore{capture: &capture{}, bad: "user001"}
	n, err := s.Replay(context.Background(), got, 5)
	if err != nil || n != len(recs) || s.Depth() != 0 {
		t.Fatalf("replayed %d, depth %d: %v", n, s.Depth(), err)
	}
	counts := s.ReplayCounts()
	if counts[nettportal.OutcomeQuarantined] != 4 || counts[nettportal.OutcomeOK] != uint64(len(recs)-4) || len(got.recs) != len(recs)-4 {
		t.Fatalf("counts %v, applied %d", counts, len(got.recs))
	}
	if n, err := s.Replay(context.Background(), got, 5); n != 0 || err != nil {
		t.Fatalf("second replay %d: %v", n, err)
	}
}
