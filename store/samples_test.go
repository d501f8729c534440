package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/store"
	"github.com/nettportal/nettportal/store/storetest"
)

func TestSamplerKeepsOnePointPerInterval(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	s := &store.Sampler{DB: db, MinInterval: time.Minute, Buffer: 3, MaxRate: 1000}
	var batch []nettportal.AccountingRecord
	for i := 1; i <= 6; i++ { // every 30 s: points at 30 s, 90 s, 150 s
		batch = append(batch, withCounters(rec(nettportal.StatusInterimUpdate, "alice", "81000001", time.Duration(i)*30*time.Second), uint32(i*30), uint64(i)*100, uint64(i)*1000))
	}
	other := withCounters(rec(nettportal.StatusInterimUpdate, "bob", "81000002", time.Minute), 60, 1, 2)
	batch = append(batch, other) // a fourth point: the buffer of 3 is full
	s.Add(batch)
	s.Add(batch[:1]) // a replay adds nothing
	s.Flush(context.Background())
	var n int
	var maxIn int64
	if err := db.Pool.QueryRow(context.Background(), "SELECT count(*), max(input_octets) FROM session_samples").Scan(&n, &maxIn); err != nil {
		t.Fatal(err)
	}
	if n != 3 || maxIn != 500 || s.Dropped.Load() != 1 {
		t.Errorf("points %d, max %d, dropped %d; want 3, 500, 1", n, maxIn, s.Dropped.Load())
	}
	if _, err := db.PruneSamples(context.Background(), time.Hour); err != nil {
		t.Fatal(err)
	}
}

func TestSamplerKeepsToItsWriteBudget(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	s := &store.Sampler{DB: db, MinInterval: time.Second, MaxRate: 50, FlushEvery: 100 * time.Millisecond}
	var batch []nettportal.AccountingRecord
	for i := 0; i < 20; i++ {
		sid := fmt.Sprintf("%08x", 0x81000000+i)
		batch = append(batch, withCounters(rec(nettportal.StatusInterimUpdate, "user"+sid, sid, time.Minute), 60, 1, 1))
	}
	s.Add(batch) // 20 points against a budget of 5 per flush
	s.Flush(context.Background())
	var n int
	if err := db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM session_samples").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 5 || s.Dropped.Load() != 15 {
		t.Errorf("wrote %d, dropped %d; want 5 and 15", n, s.Dropped.Load())
	}
}
