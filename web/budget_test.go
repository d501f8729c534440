package web_test

import (
	"context"
	"strings"
	"testing"
	"time"
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
	// The heavy slots (one, the store's default) held by history pages
	// waiting for a lock: the next heavy request is refused.
	const slots = 1
	locker, err := e.db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Rollback(ctx) //nolint:errcheck // test cleanup
	if _, err := locker.Exec(ctx, "LOCK TABLE customers IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	held := make(chan int, slots)
	for i := 0; i < slots; i++ {
		go func() {
			s, _ := v.do("GET", "/api/sessions?closed=true&sort=customer", nil)
			held <- s
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		if err := e.db.AccountingPool().QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n >= slots {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the %d history pages never waited for the lock", slots)
		}
		time.Sleep(5 * time.Millisecond) // polling pg_stat_activity: there is no event to wait on
	}
	s, b := v.doHeaders("GET", "/api/sessions.csv?closed=true", nil, nil)
	if s != 503 || !strings.Contains(string(b), "narrow") {
		t.Errorf("export while the heavy slots are taken: %d %s", s, b)
	}
	if err := locker.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < slots; i++ {
		if s := <-held; s != 200 {
			t.Errorf("held history page answered %d after the lock, want 200", s)
		}
	}
}
