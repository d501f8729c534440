package radius

import (
	"net/netip"
	"testing"
	"time"
)

func TestDedupeCacheGenerations(t *testing.T) {
	t0 := time.Unix(1000, 0)
	c := newDedupeCache(10*time.Second, t0)
	key := func(id byte) dedupeKey {
		return dedupeKey{addr: netip.MustParseAddrPort("127.0.0.11:40000"), id: id}
	}
	if resp, pending := c.begin(key(1), t0); resp != nil || pending {
		t.Fatal("a new request looked known")
	}
	if _, pending := c.begin(key(1), t0); !pending {
		t.Fatal("a copy of a pending request was not recognised")
	}
	c.done(key(1), []byte("answer"), t0)
	c.begin(key(2), t0) // stays pending
	c.expire(t0.Add(11 * time.Second))
	if resp, _ := c.begin(key(1), t0.Add(11*time.Second)); string(resp) != "answer" {
		t.Fatal("an answer younger than two windows was forgotten")
	}
	c.expire(t0.Add(22 * time.Second))
	if resp, pending := c.begin(key(1), t0.Add(22*time.Second)); resp != nil || pending {
		t.Fatal("an answer older than two windows was kept")
	}
	if _, pending := c.begin(key(2), t0.Add(22*time.Second)); !pending {
		t.Fatal("a pending request was expired while its batch owns it")
	}
	c.forget(key(2))
	if _, pending := c.begin(key(2), t0.Add(22*time.Second)); pending {
		t.Fatal("forget left the request pending")
	}
}
