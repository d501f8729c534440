package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/store"
	"github.com/nettportal/nettportal/store/storetest"
)

func TestNotifierCoalescesAndListenersSeeIt(t *testing.T) {
	db := storetest.MustOpenDB(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan nettportal.SessionsChanged, 100)
	go db.ListenSessionsChanged(ctx, func(c nettportal.SessionsChanged) { got <- c })
	select {
	case c := <-got:
		if c.Records != 0 {
			t.Fatalf("first callback = %+v, want the empty resync", c)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no resync callback after LISTEN")
	}
	n := &store.Notifier{DB: db, Interval: 200 * time.Millisecond}
	go n.Run(ctx)
	for i := 0; i < 50; i++ {
		n.Changed([]nettportal.AccountingRecord{{RouterID: int64(1 + i%3)}, {RouterID: 7}})
	}
	var total int
	routers := map[int64]bool{}
	notes := 0
	deadline := time.After(3 * time.Second)
	for total < 100 {
		select {
		case c := <-got:
			notes++
			total += c.Records
			for _, r := range c.RouterIDs {
				routers[r] = true
			}
		case <-deadline:
			t.Fatalf("got %d records in %d notifications, want 100", total, notes)
		}
	}
	if notes > 3 || len(routers) != 4 {
		t.Errorf("%d notifications for routers %v; want at most 3 (coalesced) for routers 1,2,3,7", notes, routers)
	}
}
