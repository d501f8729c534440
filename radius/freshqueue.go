package radius

import (
	"sync"
	"sync/atomic"
)

// freshQueue holds the fresh packets waiting for a batch: one first-in
// first-out line per router, taken from in turn, a packet at a time. A
// router with thousands of packets queued (a reconnect storm, a flood)
// then delays another router's packets by one of its own, not by its
// whole backlog, and when packets wait past the budget (MaxQueueDelay)
// the ones shed are the busy router's. A single line would put the quiet
// router's packets behind the backlog, to wait as long and be shed as
// often.
//
// A router's line is named by its entry's queued counter, which survives
// router reloads. It is safe for concurrent use.
type freshQueue struct {
	mu     sync.Mutex
	lines  map[*atomic.Int64]*routerLine
	turns  []*routerLine // the lines holding packets, in turn order
	next   int           // index in turns of the line whose turn it is
	n      int           // packets held
	limit  int
	closed bool
	// ready is signalled when a packet is pushed, and again after a take
	// that left packets behind, so every waiting worker finds them.
	ready chan struct{}
	// done is closed by close: no more packets will come.
	done chan struct{}
}

// routerLine is one router's packets, oldest first, from head on.
type routerLine struct {
	key   *atomic.Int64
	items []item
	head  int
}

// popState is what a take found.
type popState int

const (
	popped popState = iota
	queueEmpty
	queueClosed // empty, and nothing more will come
)

func newFreshQueue(limit int) *freshQueue {
	return &freshQueue{
		lines: map[*atomic.Int64]*routerLine{},
		limit: limit,
		ready: make(chan struct{}, 1),
		done:  make(chan struct{}),
	}
}

// push queues it in its router's line; false when the queue holds limit
// packets already (or is closed).
func (q *freshQueue) push(it item) bool {
	q.mu.Lock()
	if q.n >= q.limit || q.closed {
		q.mu.Unlock()
		return false
	}
	line := q.lines[it.queued]
	if line == nil {
		// A router with nothing queued takes its turn after the routers
		// already waiting.
		line = &routerLine{key: it.queued}
		q.lines[it.queued] = line
		q.turns = append(q.turns, line)
	}
	line.items = append(line.items, it)
	q.n++
	q.mu.Unlock()
	q.signal()
	return true
}

// tryPop takes the oldest packet of the router whose turn it is.
func (q *freshQueue) tryPop() (item, popState) {
	q.mu.Lock()
	if q.n == 0 {
		closed := q.closed
		q.mu.Unlock()
		if closed {
			return item{}, queueClosed
		}
		return item{}, queueEmpty
	}
	if q.next >= len(q.turns) {
		q.next = 0
	}
	line := q.turns[q.next]
	it := line.items[line.head]
	line.items[line.head] = item{} // the record and buffers go with the batch
	line.head++
	q.n--
	switch {
	case line.head == len(line.items):
		// Its line is empty: it leaves the turns (the next router's turn
		// is now at q.next), and is made again by its next packet, so a
		// storm's line is not kept at its peak size.
		q.turns = append(q.turns[:q.next], q.turns[q.next+1:]...)
		delete(q.lines, line.key)
	default:
		if line.head > len(line.items)/2 {
			// Reclaim the taken half, so a line that never empties does
			// not grow without end.
			line.items = line.items[:copy(line.items, line.items[line.head:])]
			line.head = 0
		}
		q.next++
	}
	left := q.n
	q.mu.Unlock()
	if left > 0 {
		q.signal()
	}
	return it, popped
}

func (q *freshQueue) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// len is the number of packets waiting.
func (q *freshQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

// close says no more packets will be pushed; what is queued can still
// be taken.
func (q *freshQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.closed = true
		close(q.done)
	}
}
