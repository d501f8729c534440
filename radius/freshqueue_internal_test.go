package radius

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestFreshQueueTakesRoutersInTurn(t *testing.T) {
	busy, quiet, late := new(atomic.Int64), new(atomic.Int64), new(atomic.Int64)
	q := newFreshQueue(100)
	seq := map[*atomic.Int64]int{}
	push := func(router *atomic.Int64, n int) {
		for range n {
			seq[router]++
			it := item{queued: router, id: byte(seq[router])}
			if !q.push(it) {
				t.Fatal("push refused below the limit")
			}
		}
	}
	push(busy, 50)
	push(quiet, 2)
	type taken struct {
		router *atomic.Int64
		id     byte
	}
	pop := func() taken {
		t.Helper()
		it, got := q.tryPop()
		if got != popped {
			t.Fatalf("tryPop: %v with %d queued", got, q.len())
		}
		return taken{it.queued, it.id}
	}
	want := []taken{{busy, 1}, {quiet, 1}, {busy, 2}, {quiet, 2}, {busy, 3}, {busy, 4}}
	for i, w := range want {
		if got := pop(); got != w {
			t.Fatalf("take %d: router %p packet %d, want router %p packet %d", i+1, got.router, got.id, w.router, w.id)
		}
	}
	// A router that had nothing queued waits at most for one turn of
	// each router already waiting, not for their backlog (busy just had
	// its turn); the quiet one, emptied, comes back behind it.
	push(late, 1)
	push(quiet, 1)
	want = []taken{{late, 1}, {quiet, 3}, {busy, 5}, {busy, 6}}
	for i, w := range want {
		if got := pop(); got != w {
			t.Fatalf("take %d after the late router came: router %p packet %d, want router %p packet %d", i+1, got.router, got.id, w.router, w.id)
		}
	}
	if n := q.len(); n != 44 {
		t.Fatalf("len %d, want 44", n)
	}
}

// A line that never empties (a router flooding at its share) keeps its
// order while the taken part is reclaimed.
func TestFreshQueueKeepsOrderInALineThatNeverEmpties(t *testing.T) {
	router := new(atomic.Int64)
	q := newFreshQueue(8)
	next, want := 0, 0
	for range 1000 {
		// fp carries the packet's sequence number: the queue does not read it.
		for q.push(item{queued: router, fp: uint64(next)}) {
			next++
		}
		for range 3 {
			it, got := q.tryPop()
			if got != popped {
				t.Fatalf("tryPop: %v", got)
			}
			if seq := int(it.fp); seq != want {
				t.Fatalf("took packet %d, want %d", seq, want)
			}
			want++
		}
	}
	blocks := 0
	for b := q.lines[router].head; b != nil; b = b.next {
		blocks++
	}
	if blocks > 2 || len(q.spare) > 1 {
		t.Fatalf("a line of at most 8 packets holds %d blocks and left %d spare", blocks, len(q.spare))
	}
}

// A storm's line is let go block by block as it drains: what stays is
// bounded by the spare blocks kept, not by the line's peak.
func TestFreshQueueLetsAStormsLineGo(t *testing.T) {
	router := new(atomic.Int64)
	const storm = 100 * blockItems
	q := newFreshQueue(storm)
	for i := range storm {
		if !q.push(item{queued: router, fp: uint64(i)}) {
			t.Fatalf("push %d refused below the limit", i)
		}
	}
	for i := range storm {
		it, got := q.tryPop()
		if got != popped || int(it.fp) != i {
			t.Fatalf("take %d: %v, packet %d", i, got, it.fp)
		}
	}
	if len(q.lines) != 0 || len(q.turns) != 0 {
		t.Fatalf("an empty queue keeps %d lines, %d turns", len(q.lines), len(q.turns))
	}
	if len(q.spare) > maxSpareBlocks {
		t.Fatalf("%d spare blocks kept, bound %d", len(q.spare), maxSpareBlocks)
	}
	for _, b := range q.spare {
		for i := range b.items {
			if b.items[i].queued != nil {
				t.Fatal("a spare block still holds a packet")
			}
		}
	}
}

func TestFreshQueueBoundAndClose(t *testing.T) {
	a, b := new(atomic.Int64), new(atomic.Int64)
	q := newFreshQueue(3)
	for i, it := range []item{{queued: a}, {queued: b}, {queued: a}} {
		if !q.push(it) {
			t.Fatalf("push %d refused below the limit", i+1)
		}
	}
	if q.push(item{queued: b}) {
		t.Fatal("a fourth packet was taken by a queue of 3")
	}
	if _, got := q.tryPop(); got != popped {
		t.Fatalf("tryPop: %v", got)
	}
	if !q.push(item{queued: b}) {
		t.Fatal("a packet was refused with room for it")
	}
	q.close()
	if q.push(item{queued: a}) {
		t.Fatal("a closed queue took a packet")
	}
	select {
	case <-q.done:
	default:
		t.Fatal("done is open after close")
	}
	for i := range 3 {
		if _, got := q.tryPop(); got != popped {
			t.Fatalf("take %d of what was queued before close: %v", i+1, got)
		}
	}
	if _, got := q.tryPop(); got != queueClosed {
		t.Fatalf("tryPop on a closed, empty queue: %v, want queueClosed", got)
	}
}

// A worker that takes a packet and goes off to commit it leaves ready
// signalled when packets are left, so a second waiting worker takes them
// instead of waiting for the next push.
func TestFreshQueueWakesTheNextWorkerForWhatIsLeft(t *testing.T) {
	router := new(atomic.Int64)
	q := newFreshQueue(4)
	q.push(item{queued: router})
	q.push(item{queued: router}) // one signal for both: ready holds one
	<-q.ready                    // the first worker wakes
	if _, got := q.tryPop(); got != popped {
		t.Fatalf("tryPop: %v", got)
	}
	select {
	case <-q.ready:
	default:
		t.Fatal("a packet is left and no waiting worker is woken for it")
	}
	if _, got := q.tryPop(); got != popped {
		t.Fatalf("tryPop: %v", got)
	}
	select {
	case <-q.ready:
		t.Fatal("ready signalled with nothing left")
	default:
	}
}

// Concurrent pushers and takers lose nothing (run with -race).
func TestFreshQueueUnderConcurrentUse(t *testing.T) {
	const routers, perRouter, workers = 4, 2000, 3
	q := newFreshQueue(routers * perRouter)
	var taken atomic.Int64
	allTaken := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				switch _, got := q.tryPop(); got {
				case popped:
					if taken.Add(1) == routers*perRouter {
						close(allTaken)
					}
					continue
				case queueClosed:
					return
				}
				select {
				case <-q.ready:
				case <-q.done:
				}
			}
		}()
	}
	var senders sync.WaitGroup
	for range routers {
		senders.Add(1)
		go func() {
			defer senders.Done()
			router := new(atomic.Int64)
			for range perRouter {
				if !q.push(item{queued: router}) {
					t.Error("push refused below the limit")
					return
				}
			}
		}()
	}
	senders.Wait()
	// Every packet is taken before close, whose done would wake a worker
	// that missed a signal.
	select {
	case <-allTaken:
	case <-time.After(10 * time.Second):
		t.Fatalf("workers took %d of %d packets and wait", taken.Load(), routers*perRouter)
	}
	q.close()
	wg.Wait()
	if n := taken.Load(); n != routers*perRouter {
		t.Fatalf("workers took %d of %d packets", n, routers*perRouter)
	}
}
