package web_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nettportal/nettportal/store"
	"github.com/nettportal/nettportal/store/storetest"
)

// Over the query budget the API answers 503 with what to narrow; a
// history search without a time range is a 400 that says to add one.
func TestHeavyQueriesOverBudgetAre503(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	v := e.login(t, "vic")
	if s, b := v.do("GET", "/api/sessions?closed=true&q=ustomer", nil); s != 400 || !strings.Contains(string(b), "time range") {
		t.Errorf("history search without a range: %d %s", s, b)
	}
	if s, b := v.do("GET", "/api/sessions?closed=true&q=ustomer&from=yesterday", nil); s != 400 || !strings.Contains(string(b), "from") {
		t.Errorf("bad from: %d %s", s, b)
	}
	from := time.Now().Add(-24 * time.Hour).UTC().Format(time.RFC3339)
	if s, b := v.do("GET", "/api/sessions?closed=true&q=ustomer&from="+from, nil); s != 200 {
		t.Errorf("history search with a range: %d %s", s, b)
	}
	// The heavy slot and the export slot (one each, the store's defaults)
	// held by a history page and an export waiting for a lock: the next
	// of each is refused.
	locker := storetest.MustLockTable(t, e.db, "customers")
	awaitSlots := storetest.WatchSlots(t, e.db)
	held := make(chan string, 2)
	for _, path := range []string{"/api/sessions?closed=true&sort=customer", "/api/sessions.csv?closed=true"} {
		go func() {
			s, _ := v.do("GET", path, nil)
			held <- fmt.Sprintf("%s: %d", path, s)
		}()
	}
	awaitSlots(store.SlotHeavy, store.SlotExport)
	if s, b := v.do("GET", "/api/sessions?closed=true&sort=profile&q=ustomer&from="+from, nil); s != 503 || !strings.Contains(string(b), "narrow") {
		t.Errorf("history search while the heavy slot is taken: %d %s", s, b)
	}
	if s, b := v.doHeaders("GET", "/api/sessions.csv?closed=true", nil, nil); s != 503 || !strings.Contains(string(b), "narrow") {
		t.Errorf("export while the export slot is taken: %d %s", s, b)
	}
	if err := locker.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if got := <-held; !strings.HasSuffix(got, ": 200") {
			t.Errorf("held request %s after the lock, want 200", got)
		}
	}
}
