package store_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/store"
	"github.com/nettportal/nettportal/store/storetest"
)

func openWith(t *testing.T, opt store.Options) *store.DB {
	t.Helper()
	url := storetest.MustCreateDatabase(t)
	ctx := context.Background()
	db, err := store.OpenWith(ctx, url, opt, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return db
}

// Every connection of the general pool held by slow viewer queries must
// leave accounting committing at once, on its own connections.
func TestAccountingCommitsWhileGeneralPoolIsHeld(t *testing.T) {
	db := openWith(t, store.Options{MaxConns: 2, AccountingConns: 2})
	ctx := context.Background()
	release := make(chan struct{})
	for i := 0; i < 2; i++ {
		conn, err := db.Pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		go func() { <-release; conn.Release() }()
	}
	defer close(release)
	if got := db.Pool.Stat().AcquiredConns(); got != 2 {
		t.Fatalf("general pool acquired %d, want 2 (all)", got)
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	began := time.Now()
	if err := db.ApplyAccounting(cctx, []nettportal.AccountingRecord{rec(nettportal.StatusStart, "alice", "81000001", 0)}); err != nil {
		t.Fatalf("accounting with the general pool held: %v", err)
	}
	if d := time.Since(began); d > time.Second {
		t.Errorf("commit took %v with the general pool held", d)
	}
	// And the general pool is indeed exhausted: a viewer waits.
	vctx, vcancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer vcancel()
	if _, err := db.Sessions(vctx, nettportal.SessionFilter{}); err == nil {
		t.Error("a viewer query got a connection from a held pool")
	}
}

// A statement of the general pool that runs past the statement timeout is
// stopped and reported as busy with what to narrow; accounting has no
// such timeout.
func TestStatementTimeoutIsBusy(t *testing.T) {
	db := openWith(t, store.Options{StatementTimeout: 200 * time.Millisecond})
	ctx := context.Background()
	_, err := db.Pool.Exec(ctx, "SELECT pg_sleep(2)")
	if err == nil {
		t.Fatal("pg_sleep(2) finished under a 200ms statement timeout")
	}
	var timeout string
	if err := db.Pool.QueryRow(ctx, "SHOW statement_timeout").Scan(&timeout); err != nil {
		t.Fatal(err)
	}
	if timeout != "200ms" {
		t.Errorf("general pool statement_timeout = %q, want 200ms", timeout)
	}
	// Migrate lifts it on its connection and leaves the pool's setting.
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ { // whichever connection comes back
		if err := db.Pool.QueryRow(ctx, "SHOW statement_timeout").Scan(&timeout); err != nil {
			t.Fatal(err)
		}
		if timeout != "200ms" {
			t.Errorf("after Migrate statement_timeout = %q, want 200ms", timeout)
		}
	}
	// A history search that cannot finish in time: it waits for a lock
	// another session holds, past the budget.
	storetest.MustLockTable(t, db, "customers")
	_, err = db.Sessions(ctx, nettportal.SessionFilter{Closed: true, Sort: "customer"})
	if !errors.Is(err, nettportal.ErrBusy) || !strings.Contains(err.Error(), "narrow") {
		t.Fatalf("history search over a 200ms budget: %v, want ErrBusy saying what to narrow", err)
	}
	// The same store's accounting has no statement timeout.
	var acctTimeout string
	if err := db.AccountingPool().QueryRow(ctx, "SHOW statement_timeout").Scan(&acctTimeout); err != nil {
		t.Fatal(err)
	}
	if acctTimeout != "0" {
		t.Errorf("accounting pool statement_timeout = %q, want 0", acctTimeout)
	}
	if err := db.ApplyAccounting(ctx, []nettportal.AccountingRecord{rec(nettportal.StatusStart, "bob", "82000001", 0)}); err != nil {
		t.Fatalf("accounting on a store with a 1ms statement timeout: %v", err)
	}
}

// Heavy queries beyond the bound are refused as busy after HeavyWait.
func TestHeavyQueriesBounded(t *testing.T) {
	db := openWith(t, store.Options{HeavyQueries: 1, HeavyWait: 50 * time.Millisecond, StatementTimeout: 5 * time.Second})
	ctx := context.Background()
	mustApply(t, db, []nettportal.AccountingRecord{rec(nettportal.StatusStart, "alice", "81000001", 0)})
	// Hold the only slot with a history search blocked on a lock.
	locker := storetest.MustLockTable(t, db, "customers")
	awaitSlots := storetest.WatchSlots(t, db)
	first := make(chan error, 1)
	go func() {
		_, err := db.Sessions(ctx, nettportal.SessionFilter{Closed: true, Sort: "customer"})
		first <- err
	}()
	awaitSlots(store.SlotHeavy)
	_, err := db.Sessions(ctx, nettportal.SessionFilter{Closed: true, Query: "ali",
		From: time.Now().AddDate(0, 0, -1), To: time.Now().Add(time.Hour)})
	if !errors.Is(err, nettportal.ErrBusy) {
		t.Fatalf("second heavy query: %v, want ErrBusy", err)
	}
	if err := locker.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-first; err != nil {
		t.Fatalf("first heavy query: %v", err)
	}
	if _, err := db.Sessions(ctx, nettportal.SessionFilter{Closed: true, Query: "ali",
		From: time.Now().AddDate(0, 0, -1), To: time.Now().Add(time.Hour)}); err != nil {
		t.Fatalf("heavy query after the slot is free: %v", err)
	}

}

// watchBehind sets db.AccountingBehind to say what behind holds, and to
// tell asked (without blocking) each time it is asked.
func watchBehind(db *store.DB) (behind *atomic.Bool, asked chan struct{}) {
	behind, asked = new(atomic.Bool), make(chan struct{}, 1)
	db.AccountingBehind = func() bool {
		select {
		case asked <- struct{}{}:
		default:
		}
		return behind.Load()
	}
	return behind, asked
}

// While accounting is behind, a viewer query (here a session list) waits
// before it queries, ViewerYield at most; it goes on as soon as
// accounting caught up, at the bound, or with its context's error.
func TestViewerQueriesYieldToAccounting(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	behind, asked := watchBehind(db)
	behind.Store(true)
	db.ViewerYield = time.Hour
	await := func(what string) {
		t.Helper()
		select {
		case <-asked:
		case <-time.After(10 * time.Second):
			t.Fatalf("the session list never asked whether accounting is behind (%s)", what)
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := db.Sessions(ctx, nettportal.SessionFilter{})
		done <- err
	}()
	// Asked once to begin waiting and again while polling: it waits.
	await("first")
	await("while waiting")
	select {
	case err := <-done:
		t.Fatalf("the session list ran while accounting was behind (%v)", err)
	default:
	}
	behind.Store(false)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the session list still waits after accounting caught up")
	}
	if n := db.Viewers.Yields.Load(); n != 1 {
		t.Errorf("%d waits counted, want 1", n)
	}

	// Accounting stays behind: the bound ends the wait, and the list runs.
	behind.Store(true)
	db.ViewerYield = 20 * time.Millisecond
	if _, err := db.Sessions(ctx, nettportal.SessionFilter{}); err != nil {
		t.Fatalf("after the bound: %v", err)
	}
	if n := db.Viewers.Yields.Load(); n != 2 || db.Viewers.YieldNanos.Load() < uint64(20*time.Millisecond) {
		t.Errorf("%d waits of %v in all, want 2 of at least 20ms", n, time.Duration(db.Viewers.YieldNanos.Load()))
	}
	// A heavy query (closed sessions) that would still find accounting
	// behind is refused as busy, with what to do.
	_, err := db.Sessions(ctx, nettportal.SessionFilter{Closed: true})
	if !errors.Is(err, nettportal.ErrBusy) || !strings.Contains(err.Error(), "accounting is behind") {
		t.Errorf("a history page while accounting stays behind: %v, want ErrBusy saying accounting is behind", err)
	}
	if n := db.Viewers.Refused.Load(); n != 1 {
		t.Errorf("%d heavy queries refused, want 1", n)
	}
	behind.Store(false)
	if _, err := db.Sessions(ctx, nettportal.SessionFilter{Closed: true}); err != nil {
		t.Errorf("a history page once accounting caught up: %v", err)
	}
	behind.Store(true)
	// A request that ends while it waits ends with its context's error.
	db.ViewerTurn = time.Hour
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := db.Sessions(cctx, nettportal.SessionFilter{}); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled while waiting: %v, want context.Canceled", err)
	}
}

// Viewer queries that had to wait for accounting then run one at a time,
// whether or not it caught up, so they do not all start together the
// moment it does: a second list sends no statement while the first still
// runs. A turn not had within ViewerTurn is refused as busy. Lists that
// never waited run side by side.
func TestViewerQueriesThatWaitedRunOneAtATime(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	behind, asked := watchBehind(db)
	db.ViewerYield = time.Hour
	sent := make(chan struct{}, 4)
	store.OnSessionsSQL(db, func(string, string, []any) { sent <- struct{}{} })
	within := func(ch <-chan struct{}, what string) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatal(what)
		}
	}
	notSent := func(what string) {
		t.Helper()
		select {
		case <-sent:
			t.Fatal(what)
		case <-time.After(100 * time.Millisecond):
		}
	}
	done := make(chan error, 4)
	list := func(ctx context.Context) {
		_, err := db.Sessions(ctx, nettportal.SessionFilter{})
		done <- err
	}
	result := func(what string) error {
		t.Helper()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatalf("%s never ended", what)
			return nil
		}
	}
	// waitThenCatchUp starts a list while accounting is behind and lets
	// it catch up once the list is waiting (asked twice: to begin, and
	// while polling).
	waitThenCatchUp := func(ctx context.Context, what string) {
		t.Helper()
		for len(asked) > 0 {
			<-asked
		}
		behind.Store(true)
		go list(ctx)
		within(asked, what+" never asked whether accounting is behind")
		within(asked, what+" did not wait for accounting")
		behind.Store(false)
	}
	yields := func(n uint64, what string) {
		t.Helper()
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for deadline := time.After(10 * time.Second); db.Viewers.Yields.Load() < n; {
			select {
			case <-tick.C:
			case <-deadline:
				t.Fatalf("%s never ended its wait", what)
			}
		}
	}

	// The first list's statements wait inside PostgreSQL behind this lock,
	// in its turn.
	locker := storetest.MustLockTable(t, db, "radacct")
	waitThenCatchUp(ctx, "the first list")
	within(sent, "the first list never sent its statements")
	waitThenCatchUp(ctx, "the second list")
	yields(2, "the second list")
	notSent("the second list sent its statements while the first still ran, accounting having caught up")
	locker.Rollback(ctx) //nolint:errcheck // the test's lock
	if err := result("the first list"); err != nil {
		t.Fatal(err)
	}
	within(sent, "the second list never sent its statements after the first ended")
	if err := result("the second list"); err != nil {
		t.Fatal(err)
	}

	// A turn that does not come within ViewerTurn is refused as busy, and
	// a request that ends meanwhile ends with its context's error.
	locker = storetest.MustLockTable(t, db, "radacct")
	waitThenCatchUp(ctx, "the lane's holder")
	within(sent, "the lane's holder never sent its statements")
	db.ViewerTurn = 20 * time.Millisecond
	waitThenCatchUp(ctx, "a list without a turn")
	if err := result("a list without a turn"); !errors.Is(err, nettportal.ErrBusy) || !strings.Contains(err.Error(), "one at a time") {
		t.Errorf("a list whose turn did not come: %v, want ErrBusy saying the waiting queries run one at a time", err)
	}
	if n := db.Viewers.Refused.Load(); n != 1 {
		t.Errorf("%d viewer queries refused, want 1", n)
	}
	db.ViewerYield = time.Hour
	cctx, cancel := context.WithCancel(ctx)
	waitThenCatchUp(cctx, "a list that ends while it waits for its turn")
	yields(5, "a list that ends while it waits for its turn")
	cancel()
	if err := result("a list that ends while it waits for its turn"); !errors.Is(err, context.Canceled) {
		t.Errorf("a list cancelled while it waits for its turn: %v, want context.Canceled", err)
	}
	locker.Rollback(ctx) //nolint:errcheck // the test's lock
	if err := result("the lane's holder"); err != nil {
		t.Fatal(err)
	}

	// The turn is free again, and lists that never waited run side by side.
	waitThenCatchUp(ctx, "a list after the others")
	within(sent, "a list after the others never got its turn")
	if err := result("a list after the others"); err != nil {
		t.Fatal(err)
	}
	locker = storetest.MustLockTable(t, db, "radacct")
	go list(ctx)
	go list(ctx)
	within(sent, "a list beside accounting that keeps up never sent its statements")
	within(sent, "another list beside it never sent its statements")
	locker.Rollback(ctx) //nolint:errcheck // the test's lock
	for range 2 {
		if err := result("a list beside accounting that keeps up"); err != nil {
			t.Error(err)
		}
	}
}

// A heavy query already running when accounting falls behind is stopped
// once accounting has stayed behind for heavyGiveWay, answered as busy
// with what to do, and counted as refused; one that finishes first is not.
func TestHeavyQueryGivesWayWhileRunning(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, waitsOn string
		filter        nettportal.SessionFilter
	}{
		{"the page", "radacct", nettportal.SessionFilter{Closed: true}},
		// The count that shapes a search runs inside the slot too.
		{"the search's match count", "acct_usernames",
			nettportal.SessionFilter{Closed: true, Query: "user", From: time.Now().Add(-24 * time.Hour)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := storetest.MustOpenDB(t)
			ctx := context.Background()
			var behind atomic.Bool
			db.AccountingBehind = behind.Load
			slotTaken := make(chan struct{}, 1)
			db.OnSlot = func(string) { slotTaken <- struct{}{} }
			// The history query waits inside PostgreSQL behind this lock.
			locker := storetest.MustLockTable(t, db, tc.waitsOn)
			done := make(chan error, 1)
			go func() {
				_, err := db.Sessions(ctx, tc.filter)
				done <- err
			}()
			select {
			case <-slotTaken:
			case <-time.After(10 * time.Second):
				t.Fatal("the history query never took its slot")
			}
			behind.Store(true)
			select {
			case err := <-done:
				if !errors.Is(err, nettportal.ErrBusy) || !strings.Contains(err.Error(), "accounting fell behind while the query ran") {
					t.Errorf("history query while accounting stays behind: %v, want ErrBusy saying accounting fell behind", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the history query kept running while accounting stayed behind")
			}
			if n := db.Viewers.Refused.Load(); n != 1 {
				t.Errorf("%d heavy queries refused, want 1", n)
			}
			locker.Rollback(ctx) //nolint:errcheck // the test's lock
			behind.Store(false)
			if _, err := db.Sessions(ctx, tc.filter); err != nil {
				t.Errorf("a history page with accounting keeping up: %v", err)
			}
			<-slotTaken
			if n := db.Viewers.Refused.Load(); n != 1 {
				t.Errorf("%d heavy queries refused after one that finished, want 1", n)
			}
		})
	}
}
