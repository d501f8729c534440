package radius

import (
	"hash/maphash"
	"net"
	"sync"
	"time"
)

// dedupeKey identifies a request: a retransmission has the same source,
// Identifier and Request Authenticator (RFC 2866 keeps them on retransmit).
type dedupeKey struct {
	addr string
	id   byte
	auth [16]byte
}

func newDedupeKey(addr net.Addr, raw []byte) dedupeKey {
	k := dedupeKey{addr: addr.String(), id: raw[1]}
	copy(k.auth[:], raw[4:20])
	return k
}

type dedupeEntry struct {
	resp []byte // nil while the request is being committed
	at   time.Time
}

const dedupeShards = 64

// dedupeCache remembers requests in flight and the answers of recent ones.
type dedupeCache struct {
	window time.Duration
	seed   maphash.Seed
	shards [dedupeShards]struct {
		mu sync.Mutex
		m  map[dedupeKey]dedupeEntry
	}
}

func newDedupeCache(window time.Duration) *dedupeCache {
	c := &dedupeCache{window: window, seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].m = make(map[dedupeKey]dedupeEntry)
	}
	return c
}

func (c *dedupeCache) shard(k dedupeKey) int {
	var h maphash.Hash
	h.SetSeed(c.seed)
	h.WriteString(k.addr)
	h.WriteByte(k.id)
	h.Write(k.auth[:])
	return int(h.Sum64() % dedupeShards)
}

// begin records a new request. For a known one it returns the cached
// answer, or pending=true while the first copy is still being committed.
func (c *dedupeCache) begin(k dedupeKey, now time.Time) (resp []byte, pending bool) {
	sh := &c.shards[c.shard(k)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e, ok := sh.m[k]; ok {
		return e.resp, e.resp == nil
	}
	sh.m[k] = dedupeEntry{at: now}
	return nil, false
}

func (c *dedupeCache) done(k dedupeKey, resp []byte, now time.Time) {
	sh := &c.shards[c.shard(k)]
	sh.mu.Lock()
	sh.m[k] = dedupeEntry{resp: resp, at: now}
	sh.mu.Unlock()
}

// forget drops a request that was not committed, so its retransmission is
// processed afresh.
func (c *dedupeCache) forget(k dedupeKey) {
	sh := &c.shards[c.shard(k)]
	sh.mu.Lock()
	delete(sh.m, k)
	sh.mu.Unlock()
}

// expire drops answers older than the window. Pending entries are kept:
// their batch still owns them.
func (c *dedupeCache) expire(now time.Time) {
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		for k, e := range sh.m {
			if e.resp != nil && now.Sub(e.at) > c.window {
				delete(sh.m, k)
			}
		}
		sh.mu.Unlock()
	}
}
