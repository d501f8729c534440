package radius

import (
	"hash/maphash"
	"net/netip"
	"sync"
	"time"
)

// dedupeKey identifies a request: a retransmission has the same source,
// Identifier and Request Authenticator (RFC 2866 keeps them on retransmit).
type dedupeKey struct {
	addr netip.AddrPort
	id   byte
	auth [16]byte
}

func newDedupeKey(addr netip.AddrPort, raw []byte) dedupeKey {
	k := dedupeKey{addr: addr, id: raw[1]}
	copy(k.auth[:], raw[4:20])
	return k
}

type dedupeEntry struct {
	resp []byte // nil while the request is being committed
	at   time.Time
}

const dedupeShards = 64

// dedupeCache remembers requests in flight and the answers of recent ones.
// Each shard keeps two generations, rotated once per window, so expiring
// old answers costs nothing per entry: an answer lives between one and two
// windows.
type dedupeCache struct {
	window time.Duration
	seed   maphash.Seed
	shards [dedupeShards]dedupeShard
}

type dedupeShard struct {
	mu        sync.Mutex
	cur, prev map[dedupeKey]dedupeEntry
	rotated   time.Time
}

func newDedupeCache(window time.Duration, now time.Time) *dedupeCache {
	c := &dedupeCache{window: window, seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].cur = make(map[dedupeKey]dedupeEntry)
		c.shards[i].prev = make(map[dedupeKey]dedupeEntry)
		c.shards[i].rotated = now
	}
	return c
}

func (c *dedupeCache) shard(k dedupeKey) *dedupeShard {
	return &c.shards[maphash.Comparable(c.seed, k)%dedupeShards]
}

func (sh *dedupeShard) get(k dedupeKey) (dedupeEntry, bool) {
	if e, ok := sh.cur[k]; ok {
		return e, true
	}
	e, ok := sh.prev[k]
	return e, ok
}

// begin records a new request. For a known one it returns the cached
// answer, or pending=true while the first copy is still being committed.
func (c *dedupeCache) begin(k dedupeKey, now time.Time) (resp []byte, pending bool) {
	sh := c.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e, ok := sh.get(k); ok {
		return e.resp, e.resp == nil
	}
	sh.cur[k] = dedupeEntry{at: now}
	return nil, false
}

func (c *dedupeCache) done(k dedupeKey, resp []byte, now time.Time) {
	sh := c.shard(k)
	sh.mu.Lock()
	delete(sh.prev, k)
	sh.cur[k] = dedupeEntry{resp: resp, at: now}
	sh.mu.Unlock()
}

// forget drops a request that was not committed, so its retransmission is
// processed afresh.
func (c *dedupeCache) forget(k dedupeKey) {
	sh := c.shard(k)
	sh.mu.Lock()
	delete(sh.cur, k)
	delete(sh.prev, k)
	sh.mu.Unlock()
}

// expire drops the older generation of each shard once per window. A
// request still pending that falls out is only processed again if
// retransmitted, which the idempotent store makes harmless.
func (c *dedupeCache) expire(now time.Time) {
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		if now.Sub(sh.rotated) >= c.window {
			// Keep the pending ones: their batch still owns them.
			for k, e := range sh.prev {
				if e.resp == nil {
					sh.cur[k] = e
				}
			}
			sh.prev, sh.cur = sh.cur, make(map[dedupeKey]dedupeEntry, len(sh.cur))
			sh.rotated = now
		}
		sh.mu.Unlock()
	}
}
