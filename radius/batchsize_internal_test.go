package radius

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestBatchIsCutAtTheRecordsAWorkerCommitsInBatchCommitTime(t *testing.T) {
	s := &Server{}
	s.defaults()
	if s.BatchCommitTime != s.MaxQueueDelay/4 {
		t.Fatalf("BatchCommitTime defaults to %s, want a quarter of MaxQueueDelay (%s)", s.BatchCommitTime, s.MaxQueueDelay)
	}
	if got := s.batchLimit(); got != s.MaxBatch {
		t.Errorf("before any commit: limit %d, want MaxBatch %d", got, s.MaxBatch)
	}
	// 40,000 records a second: 2,000 in 50ms.
	s.commitRate.note(400, 10*time.Millisecond)
	if got := s.batchLimit(); got != 2000 {
		t.Errorf("at 40,000 records/s: limit %d, want 2000", got)
	}
	// A slower batch moves the average by a fifth of the difference.
	s.commitRate.note(100, 10*time.Millisecond) // 10,000/s
	if got := s.batchLimit(); got != 1700 {
		t.Errorf("after a batch at 10,000/s: limit %d, want 1700 (34,000/s)", got)
	}
	// A commit stalled by something else never cuts below the floor.
	for range 50 {
		s.commitRate.note(10, time.Second)
	}
	if got := s.batchLimit(); got != minCutBatch {
		t.Errorf("after stalled commits: limit %d, want the floor %d", got, minCutBatch)
	}
	// Nor above MaxBatch.
	for range 50 {
		s.commitRate.note(100000, 10*time.Millisecond)
	}
	if got := s.batchLimit(); got != s.MaxBatch {
		t.Errorf("at 10M records/s: limit %d, want MaxBatch %d", got, s.MaxBatch)
	}

	off := &Server{BatchCommitTime: -1}
	off.defaults()
	off.commitRate.note(10, time.Second)
	if got := off.batchLimit(); got != off.MaxBatch {
		t.Errorf("BatchCommitTime negative: limit %d, want MaxBatch %d", got, off.MaxBatch)
	}
	small := &Server{MaxBatch: 8}
	small.defaults()
	small.commitRate.note(1, time.Second)
	if got := small.batchLimit(); got != 8 {
		t.Errorf("MaxBatch under the floor: limit %d, want MaxBatch 8", got)
	}
}

// A queue the workers leave packets in behind every batch, batch after
// batch, for longer than MaxQueueDelay is an overload (the tighter budget
// holds); one they drain within it, or a stall between cuts, is not.
func TestStandingQueueHoldsTheOverloadBudget(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	s := &Server{Now: func() time.Time { return now }}
	s.defaults()
	s.fresh = newFreshQueue(4)
	router := new(atomic.Int64)
	s.fresh.push(item{queued: router})
	tight, normal := s.OverloadQueueDelay, s.MaxQueueDelay
	if tight != normal/2 {
		t.Fatalf("OverloadQueueDelay defaults to %s, want half of MaxQueueDelay (%s)", tight, normal)
	}
	step := normal / 10
	// cuts cuts a batch every step, for d.
	cuts := func(d time.Duration) {
		for end := now.Add(d); now.Before(end); now = now.Add(step) {
			s.noteStandingQueue()
		}
		s.noteStandingQueue()
	}

	cuts(normal / 2)
	if got := s.budget(now); got != normal {
		t.Fatalf("a backlog behind batches for %s: budget %s, want %s", normal/2, got, normal)
	}
	s.noteDrained() // a worker found the queue empty: the backlog was cleared
	cuts(normal * 3 / 4)
	if got := s.budget(now); got != normal {
		t.Fatalf("%s after a drain: budget %s, want %s", normal*3/4, got, normal)
	}
	now = now.Add(normal) // a stall: no cut
	cuts(normal * 3 / 4)
	if got := s.budget(now); got != normal {
		t.Fatalf("%s of backlog on both sides of a stall: budget %s, want %s", normal*3/4, got, normal)
	}

	cuts(normal / 2)
	if got := s.budget(now); got != tight {
		t.Fatalf("a backlog behind every batch for longer than MaxQueueDelay: budget %s, want %s", got, tight)
	}
	now = now.Add(overloadHold*normal + time.Millisecond)
	s.fresh.tryPop()
	s.noteStandingQueue() // cut with nothing left behind it
	if got := s.budget(now); got != normal {
		t.Fatalf("the hold passed with the queue empty: budget %s, want %s", got, normal)
	}
	s.fresh.push(item{queued: router})
	cuts(normal / 2)
	if got := s.budget(now); got != normal {
		t.Fatalf("a backlog that formed %s ago: budget %s, want %s", normal/2, got, normal)
	}
}
