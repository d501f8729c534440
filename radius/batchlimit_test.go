package radius_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"layeh.com/radius/rfc2866"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/radius"
	"github.com/nettportal/nettportal/store"
	"github.com/nettportal/nettportal/store/storetest"
)

// costlyStore is the database with commits that take cost per record on
// the server's clock, which moves on by that much during each commit.
type costlyStore struct {
	*store.DB
	ahead *atomic.Int64
	cost  *atomic.Int64
}

func (s costlyStore) ApplyAccountingResults(ctx context.Context, recs []nettportal.AccountingRecord) ([]nettportal.Outcome, error) {
	s.ahead.Add(int64(len(recs)) * s.cost.Load())
	return s.DB.ApplyAccountingResults(ctx, recs)
}

// A batch is cut to what commits within MaxCommitTime at the cost per
// record the last large batches took, and never below 64 records: under
// overload the queue holds MaxBatch records, and one commit of them all
// answered every packet after the router's timeout.
func TestCommitTimeBoundsTheBatch(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	var ahead, cost atomic.Int64
	cost.Store(int64(10 * time.Millisecond))
	sizes := make(chan int, 64)
	taken := make(chan struct{}, 1)
	srv := startServer(t, db, func(s *radius.Server) {
		s.Workers, s.Readers, s.MaxBatch = 1, 1, 1000
		s.MaxCommitTime = time.Second
		s.Now = func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
		s.Store = costlyStore{DB: db, ahead: &ahead, cost: &cost}
		s.OnDequeue = func(time.Duration) {
			select {
			case taken <- struct{}{}:
			default:
			}
		}
		s.OnBatch = func(n int, _ time.Duration, err error) {
			if err == nil {
				sizes <- n
			}
		}
	})
	c := newClient(t, srv)
	next := 0
	// round holds a commit of one record, queues n behind it, and returns
	// the sizes of the batches that commit them.
	round := func(n int) []int {
		t.Helper()
		select {
		case <-taken: // the previous round's
		default:
		}
		unlock := lockAccounting(t, db)
		next++
		c.send(request(t, fmt.Sprintf("limit%d", next), rfc2866.AcctStatusType_Value_Start, secret))
		select {
		case <-taken:
		case <-time.After(5 * time.Second):
			t.Fatal("the worker took no packet")
		}
		ok := srv.outcomes.count(nettportal.OutcomeOK)
		for range n {
			next++
			c.send(request(t, fmt.Sprintf("limit%d", next), rfc2866.AcctStatusType_Value_Start, secret))
		}
		c.barrier(srv)
		unlock()
		srv.outcomes.await(t, nettportal.OutcomeOK, ok+n+1)
		var got []int
		for sum := 0; sum < n+1; {
			select {
			case size := <-sizes:
				got = append(got, size)
				sum += size
			case <-time.After(5 * time.Second):
				t.Fatalf("batches of %v so far, for %d records", got, n+1)
			}
		}
		if got[0] != 1 {
			t.Fatalf("the held commit had %d records, want 1", got[0])
		}
		return got[1:]
	}

	// No cost known yet: one batch takes the whole queue.
	if got := round(200); len(got) != 1 {
		t.Fatalf("before any large commit: batches of %v, want one of 200", got)
	}
	// 10 ms a record: 1 s holds at most 100.
	got := round(300)
	if len(got) < 3 {
		t.Errorf("at 10ms a record and a 1s bound: batches of %v, want at most 100 records each", got)
	}
	for _, n := range got {
		if n > 100 {
			t.Errorf("at 10ms a record and a 1s bound: a batch of %d (all: %v)", n, got)
		}
	}
	// A database this slow still gets batches of 64: smaller ones would
	// spend its time on each transaction's fixed cost.
	cost.Store(int64(time.Second))
	got = round(250)
	if len(got) < 3 || got[1] != 64 {
		t.Errorf("at 1s a record: batches of %v, want the ones after the first cut to 64", got)
	}
}
