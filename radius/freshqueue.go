package radius

import (
	"sync"
	"sync/atomic"
	"time"
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
	limit  int
	closed bool
	// spare are emptied blocks kept for reuse (at most maxSpareBlocks),
	// so a line that empties and fills again allocates nothing.
	spare []*lineBlock
	// n is the packets held: changed under mu, read without it by len,
	// which Behind polls for every viewer query.
	n atomic.Int64
	// ready is signalled when a packet is pushed, and again after a take
	// that left packets behind, so every waiting worker finds them.
	ready chan struct{}
	// done is closed by close: no more packets will come.
	done chan struct{}
}

// blockItems is the packets one block of a line holds. A line is a chain
// of blocks, so a storm's line grows and shrinks a block at a time and
// never copies what it holds (an item is about 700 bytes, and the lock is
// held meanwhile).
const blockItems = 64

// maxSpareBlocks bounds the emptied blocks kept for reuse (about 3 MB).
const maxSpareBlocks = 64

type lineBlock struct {
	items [blockItems]item
	next  *lineBlock
}

// routerLine is one router's packets, oldest first: from head.items[first]
// to tail.items[end-1].
type routerLine struct {
	key           *atomic.Int64
	overloadUntil *atomic.Int64 // its router's, from its first packet
	head, tail    *lineBlock
	first, end    int
	n             int // packets held
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
	if int(q.n.Load()) >= q.limit || q.closed {
		q.mu.Unlock()
		return false
	}
	line := q.lines[it.queued]
	if line == nil {
		// A router with nothing queued takes its turn after the routers
		// already waiting.
		b := q.block()
		line = &routerLine{key: it.queued, overloadUntil: it.overloadUntil, head: b, tail: b}
		q.lines[it.queued] = line
		q.turns = append(q.turns, line)
	}
	if line.end == blockItems {
		b := q.block()
		line.tail.next, line.tail, line.end = b, b, 0
	}
	line.tail.items[line.end] = it
	line.end++
	line.n++
	q.n.Add(1)
	q.mu.Unlock()
	q.signal()
	return true
}

// tryPop takes the oldest packet of the router whose turn it is.
func (q *freshQueue) tryPop() (item, popState) {
	q.mu.Lock()
	if q.n.Load() == 0 {
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
	it := line.head.items[line.first]
	line.head.items[line.first] = item{} // the record and buffers go with the batch
	line.first++
	line.n--
	left := q.n.Add(-1)
	switch {
	case line.head == line.tail && line.first == line.end:
		// Its line is empty: it leaves the turns (the next router's turn
		// is now at q.next), and is made again by its next packet.
		q.release(line.head)
		q.turns = append(q.turns[:q.next], q.turns[q.next+1:]...)
		delete(q.lines, line.key)
	case line.first == blockItems:
		done := line.head
		line.head, line.first = done.next, 0
		q.release(done)
		q.next++
	default:
		q.next++
	}
	q.mu.Unlock()
	if left > 0 {
		q.signal()
	}
	return it, popped
}

// block is an empty block, a spare one when there is one.
func (q *freshQueue) block() *lineBlock {
	if n := len(q.spare); n > 0 {
		b := q.spare[n-1]
		q.spare = q.spare[:n-1]
		return b
	}
	return new(lineBlock)
}

// release keeps an emptied block (its items already cleared) for reuse.
func (q *freshQueue) release(b *lineBlock) {
	if len(q.spare) < maxSpareBlocks {
		b.next = nil
		q.spare = append(q.spare, b)
	}
}

func (q *freshQueue) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// eachStanding calls f with the overload state of each router whose
// oldest waiting packet arrived before cutoff (not for those without
// one). f must not use the queue.
func (q *freshQueue) eachStanding(cutoff time.Time, f func(overloadUntil *atomic.Int64)) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, line := range q.turns {
		if line.overloadUntil != nil && line.head.items[line.first].at.Before(cutoff) {
			f(line.overloadUntil)
		}
	}
}

// waiting is how many packets the router whose line key names has
// waiting, and how many the other routers have.
func (q *freshQueue) waiting(key *atomic.Int64) (own, others int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if line := q.lines[key]; line != nil {
		own = line.n
	}
	return own, int(q.n.Load()) - own
}

// len is the number of packets waiting.
func (q *freshQueue) len() int { return int(q.n.Load()) }

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
