package radius

// The data structures of overload handling (see overload.go): what was
// shed, the tickets that answer a retransmission, and the retry queue.

import (
	"hash/maphash"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"layeh.com/radius/rfc2866"
)

// fingerprint identifies a request across retransmissions: source address
// and port, code, Identifier and the attributes except Acct-Delay-Time.
// Routers (RouterOS, the simulator) raise Acct-Delay-Time on each retry,
// which changes the Request Authenticator, so the dedupe key cannot
// recognise the retry; everything else of the packet stays as it was.
func fingerprint(seed maphash.Seed, addr netip.AddrPort, raw []byte) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	a := addr.Addr().Unmap().As16()
	_, _ = h.Write(a[:])
	port := addr.Port()
	_ = h.WriteByte(byte(port >> 8))
	_ = h.WriteByte(byte(port))
	_ = h.WriteByte(raw[0])
	_ = h.WriteByte(raw[1])
	length := int(raw[2])<<8 | int(raw[3])
	if length < 20 || length > len(raw) {
		length = len(raw) // undecodable; hashed whole, it is dropped later
	}
	attrs := raw[20:length]
	for len(attrs) >= 2 {
		n := int(attrs[1])
		if n < 2 || n > len(attrs) {
			_, _ = h.Write(attrs)
			break
		}
		if attrs[0] != byte(rfc2866.AcctDelayTime_Type) {
			_, _ = h.Write(attrs[:n])
		}
		attrs = attrs[n:]
	}
	return h.Sum64()
}

// retryTicket is a retransmission of a shed packet waiting in the retry
// queue. Later copies of the request (with a newer Acct-Delay-Time, so a
// new authenticator) are folded into it: the router checks the answer
// against the copy it sent last, so the answer must be for that one.
type retryTicket struct {
	mu   sync.Mutex
	key  dedupeKey // the latest copy's: where the answer goes and is cached
	done bool      // committed or dropped: later copies are new requests
}

// replace makes k the copy to answer and returns the one it replaces;
// false once the ticket is done.
func (t *retryTicket) replace(k dedupeKey) (dedupeKey, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return dedupeKey{}, false
	}
	old := t.key
	t.key = k
	return old, true
}

// finish closes the ticket and returns the copy to answer.
func (t *retryTicket) finish() dedupeKey {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.done = true
	return t.key
}

// shedMemory remembers the fingerprints of shed packets (nil ticket) and
// of their retransmissions waiting in the retry queue, for between one
// and two windows, in two generations like the dedupe cache, and at most
// max entries a generation.
type shedMemory struct {
	seed      maphash.Seed
	window    time.Duration
	max       int
	size      atomic.Int64 // entries; zero lets handle skip the fingerprint
	mu        sync.Mutex
	cur, prev map[uint64]*retryTicket
	rotated   time.Time
}

func newShedMemory(window time.Duration, max int, now time.Time) *shedMemory {
	return &shedMemory{seed: maphash.MakeSeed(), window: window, max: max,
		cur: map[uint64]*retryTicket{}, prev: map[uint64]*retryTicket{}, rotated: now}
}

func (m *shedMemory) active() bool { return m.size.Load() > 0 }

func (m *shedMemory) fingerprint(addr netip.AddrPort, raw []byte) uint64 {
	return fingerprint(m.seed, addr, raw)
}

// setLocked stores t under fp in the current generation.
func (m *shedMemory) setLocked(fp uint64, t *retryTicket) {
	if _, ok := m.prev[fp]; ok {
		delete(m.prev, fp)
		m.size.Add(-1)
	}
	if _, ok := m.cur[fp]; !ok {
		if len(m.cur) >= m.max {
			return // full: this one's retry is treated as a new packet
		}
		m.size.Add(1)
	}
	m.cur[fp] = t
}

func (m *shedMemory) getLocked(fp uint64) (*retryTicket, bool) {
	if t, ok := m.cur[fp]; ok {
		return t, true
	}
	t, ok := m.prev[fp]
	return t, ok
}

// shed remembers fp as shed, unless a newer ticket than t (nil: none)
// holds it.
func (m *shedMemory) shed(fp uint64, t *retryTicket) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if cur, ok := m.getLocked(fp); ok && cur != t {
		return
	}
	m.setLocked(fp, nil)
}

// lookup says whether fp was shed and, when its retransmission waits in
// the retry queue, its ticket.
func (m *shedMemory) lookup(fp uint64) (*retryTicket, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.getLocked(fp)
}

// claim stores t as fp's waiting retransmission, unless one waits
// already: then it returns that one.
func (m *shedMemory) claim(fp uint64, t *retryTicket) *retryTicket {
	m.mu.Lock()
	defer m.mu.Unlock()
	if cur, ok := m.getLocked(fp); ok && cur != nil {
		cur.mu.Lock()
		done := cur.done
		cur.mu.Unlock()
		if !done {
			return cur
		}
	}
	m.setLocked(fp, t)
	return nil
}

// forget drops fp once its ticket t is settled.
func (m *shedMemory) forget(fp uint64, t *retryTicket) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, g := range []map[uint64]*retryTicket{m.cur, m.prev} {
		if cur, ok := g[fp]; ok && cur == t {
			delete(g, fp)
			m.size.Add(-1)
		}
	}
}

// expire drops the older generation once per window; tickets still
// waiting move to the new one, as the retry queue still holds them.
func (m *shedMemory) expire(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if now.Sub(m.rotated) < m.window {
		return
	}
	for fp, t := range m.prev {
		if t != nil {
			m.cur[fp] = t
		}
	}
	m.prev, m.cur = m.cur, make(map[uint64]*retryTicket, len(m.cur))
	m.size.Store(int64(len(m.prev)))
	m.rotated = now
}

// retryQueue holds retransmissions of shed packets, oldest first, at most
// max of them. ready has a token while it holds any, to wake a worker. An
// item's queued counts it in its router's share while it is here.
type retryQueue struct {
	mu    sync.Mutex
	items []item
	head  int
	max   int
	ready chan struct{}
}

func newRetryQueue(max int) *retryQueue {
	return &retryQueue{max: max, ready: make(chan struct{}, 1)}
}

func (q *retryQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) - q.head
}

func (q *retryQueue) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// push queues it; false when the queue is full.
func (q *retryQueue) push(it item) bool {
	q.mu.Lock()
	if len(q.items)-q.head >= q.max {
		q.mu.Unlock()
		return false
	}
	if q.head > 0 && q.head >= len(q.items)/2 {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	q.items = append(q.items, it)
	q.mu.Unlock()
	q.signal()
	return true
}

// pop appends up to n of the oldest items to dst.
func (q *retryQueue) pop(dst []item, n int) []item {
	q.mu.Lock()
	defer q.mu.Unlock()
	for ; n > 0 && q.head < len(q.items); n-- {
		q.items[q.head].queued.Add(-1)
		dst = append(dst, q.items[q.head])
		q.items[q.head] = item{}
		q.head++
	}
	if q.head < len(q.items) {
		q.signal() // more for another worker
	}
	return dst
}

// popExpired appends to dst the items queued at or before cutoff.
func (q *retryQueue) popExpired(dst []item, cutoff time.Time) []item {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.head < len(q.items) && !q.items[q.head].at.After(cutoff) {
		q.items[q.head].queued.Add(-1)
		dst = append(dst, q.items[q.head])
		q.items[q.head] = item{}
		q.head++
	}
	return dst
}
