package spool_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/spool"
	"github.com/nettportal/nettportal/store"
	"github.com/nettportal/nettportal/store/storetest"
)

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// records makes a session history per user: Start, interims, Stop.
func records(users, interims int) []nettportal.AccountingRecord {
	var out []nettportal.AccountingRecord
	for u := 0; u < users; u++ {
		user := fmt.Sprintf("user%03d", u)
		sid := fmt.Sprintf("%08x", 0x81000000+u)
		base := nettportal.AccountingRecord{RouterID: 1, UniqueID: nettportal.AcctUniqueID(user, sid, "127.0.0.11", "r1", "", ""),
			SessionID: sid, Username: user, NASIP: netip.MustParseAddr("127.0.0.11"), FramedIP: netip.MustParseAddr("100.64.0.1")}
		for i := 0; i <= interims+1; i++ {
			r := base
			r.EventTime = t0.Add(time.Duration(i) * time.Minute)
			switch {
			case i == 0:
				r.Status = nettportal.StatusStart
			case i == interims+1:
				r.Status = nettportal.StatusStop
				r.TerminateCause = "User-Request"
			default:
				r.Status = nettportal.StatusInterimUpdate
			}
			if i > 0 {
				st, in, outb := uint32(i*60), uint64(i*1000+u), uint64(i*5000+u)
				r.SessionTime, r.InputOctets, r.OutputOctets = &st, &in, &outb
			}
			out = append(out, r)
		}
	}
	return out
}

func mustOpen(t *testing.T, dir string) *spool.Spool {
	t.Helper()
	s, err := spool.Open(dir, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// state is radacct as billing sees it, to compare two databases.
func state(t *testing.T, db *store.DB) map[string]string {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), `SELECT acctuniqueid, concat_ws('|', acctstarttime, acctupdatetime,
		acctstoptime, acctsessiontime, acctinputoctets, acctoutputoctets, acctterminatecause, closed_by) FROM radacct`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	m := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		m[k] = v
	}
	return m
}

func sameState(t *testing.T, got, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d rows, want %d", len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("row %s = %s, want %s", k, got[k], v)
		}
	}
}

func TestAppendIsDurableAndReplaysInOrder(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	recs := records(50, 4)
	s := mustOpen(t, dir)
	s.SetSegmentSize(4096) // several segments
	var wg sync.WaitGroup
	// Concurrent appenders share fsyncs; each keeps its own order.
	for w := 0; w < 5; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for u := w * 10; u < (w+1)*10; u++ {
				if err := s.Append(recs[u*6 : (u+1)*6]); err != nil {
					t.Error(err)
				}
			}
		}(w)
	}
	wg.Wait()
	if s.Depth() != int64(len(recs)) {
		t.Fatalf("depth %d, want %d", s.Depth(), len(recs))
	}
	s.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "segment-*"))
	if len(segs) < 3 {
		t.Fatalf("%d segments, want several", len(segs))
	}

	s = mustOpen(t, dir)
	defer s.Close()
	if s.Depth() != int64(len(recs)) {
		t.Fatalf("after reopen depth %d, want %d", s.Depth(), len(recs))
	}
	db := storetest.MustOpenDB(t)
	n, err := s.Replay(context.Background(), db, 7)
	if err != nil || n != len(recs) || s.Depth() != 0 {
		t.Fatalf("replayed %d (depth %d): %v", n, s.Depth(), err)
	}
	want := storetest.MustOpenDB(t)
	if err := want.ApplyAccounting(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	sameState(t, state(t, db), state(t, want))
	segs, _ = filepath.Glob(filepath.Join(dir, "segment-*"))
	if len(segs) != 1 {
		t.Errorf("%d segments left after a full replay, want only the new active one", len(segs))
	}
	// Nothing is replayed twice.
	if n, err := s.Replay(context.Background(), db, 7); n != 0 || err != nil {
		t.Errorf("second replay applied %d: %v", n, err)
	}
}

// crashingStore commits a chunk and then fails, as a process killed between
// COMMIT and the checkpoint would.
type crashingStore struct {
	db     *store.DB
	chunks int
}

func (c *crashingStore) ApplyAccounting(ctx context.Context, recs []nettportal.AccountingRecord) error {
	if err := c.db.ApplyAccounting(ctx, recs); err != nil {
		return err
	}
	c.chunks--
	if c.chunks < 0 {
		return errors.New("killed after commit, before checkpoint")
	}
	return nil
}

func TestCrashMidReplayLosesAndDuplicatesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	recs := records(40, 3)
	s := mustOpen(t, dir)
	if err := s.Append(recs); err != nil {
		t.Fatal(err)
	}
	db := storetest.MustOpenDB(t)
	if _, err := s.Replay(context.Background(), &crashingStore{db: db, chunks: 2}, 25); err == nil {
		t.Fatal("the crash did not happen")
	}
	s.Close()
	// Restart: the chunk committed without a checkpoint is applied again.
	s = mustOpen(t, dir)
	defer s.Close()
	if got, want := s.Depth(), int64(len(recs)-2*25); got != want {
		t.Errorf("depth after restart %d, want %d", got, want)
	}
	if _, err := s.Replay(context.Background(), db, 25); err != nil {
		t.Fatal(err)
	}
	want := storetest.MustOpenDB(t)
	if err := want.ApplyAccounting(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	sameState(t, state(t, db), state(t, want))
}

func TestTornTailIsTruncated(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := mustOpen(t, dir)
	recs := records(3, 1)
	if err := s.Append(recs); err != nil {
		t.Fatal(err)
	}
	s.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "segment-*"))
	f, err := os.OpenFile(segs[len(segs)-1], os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0, 0, 1, 0, 9, 9}) // half a header: a crash mid-write
	f.Close()
	s = mustOpen(t, dir)
	defer s.Close()
	if s.Depth() != int64(len(recs)) {
		t.Fatalf("depth %d, want %d", s.Depth(), len(recs))
	}
	// Appending after the truncation keeps the file readable.
	if err := s.Append(recs[:1]); err != nil {
		t.Fatal(err)
	}
	db := storetest.MustOpenDB(t)
	if n, err := s.Replay(context.Background(), db, 100); err != nil || n != len(recs)+1 {
		t.Fatalf("replayed %d: %v", n, err)
	}
}

func TestFailedReplayKeepsEverything(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := mustOpen(t, dir)
	defer s.Close()
	recs := records(5, 1)
	s.Append(recs)
	if n, err := s.Replay(context.Background(), storeFunc(func([]nettportal.AccountingRecord) error { return errors.New("database down") }), 10); err == nil || n != 0 {
		t.Fatalf("replay against a down database: %d %v", n, err)
	}
	if s.Depth() != int64(len(recs)) {
		t.Fatalf("depth %d after a failed replay", s.Depth())
	}
}

type storeFunc func([]nettportal.AccountingRecord) error

func (f storeFunc) ApplyAccounting(_ context.Context, recs []nettportal.AccountingRecord) error {
	return f(recs)
}
