package radius_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rs/zerolog"
	"layeh.com/radius/rfc2866"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/radius"
	"github.com/nettportal/nettportal/spool"
	"github.com/nettportal/nettportal/store"
	"github.com/nettportal/nettportal/store/storetest"
)

// pingWatch is the real store, telling the test of each liveness ping
// the listener makes and its result.
type pingWatch struct {
	*store.DB
	pings chan error
}

func (p *pingWatch) PingAccounting(ctx context.Context) error {
	err := p.DB.PingAccounting(ctx)
	select {
	case p.pings <- err:
	default:
	}
	return err
}

func spoolFor(t *testing.T) *spool.Spool {
	t.Helper()
	sp, err := spool.Open(t.TempDir(), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	return sp
}

// mustAnswerAll fails the test unless every one of reqs is answered
// within 5s (when says at which point of the test), srv has spooled
// spooled records and sp holds them, and db's radacct has rows rows.
func mustAnswerAll(t *testing.T, c *client, reqs [][]byte, when string, srv *testServer, sp *spool.Spool, spooled int64, db *store.DB, rows int) {
	t.Helper()
	if n := c.answers(reqs, 5*time.Second); n != len(reqs) {
		t.Fatalf("%d of %d answered %s", n, len(reqs), when)
	}
	if got := srv.Stats.Spooled.Load(); got != uint64(spooled) || sp.Depth() != spooled {
		t.Fatalf("%s: spooled %d, spool depth %d, want %d", when, got, sp.Depth(), spooled)
	}
	if n := countRows(t, db); n != rows {
		t.Fatalf("%s: %d rows in radacct, want %d", when, n, rows)
	}
}

func starts(t *testing.T, c *client, prefix string, n int) [][]byte {
	t.Helper()
	return sendRequests(t, c, rfc2866.AcctStatusType_Value_Start, prefix+"%02d", n)
}

// sendRequests sends n requests of status from c, session i's id being
// sidFormat with i, and returns them.
func sendRequests(t *testing.T, c *client, status rfc2866.AcctStatusType, sidFormat string, n int) [][]byte {
	t.Helper()
	var reqs [][]byte
	for i := 0; i < n; i++ {
		req := request(t, fmt.Sprintf(sidFormat, i), status, secret)
		reqs = append(reqs, req)
		c.send(req)
	}
	return reqs
}

// A database that is slow (here: radacct locked by another session, as a
// long report or a migration would) but answers is waited for, past
// SpoolAfter: the batch commits to Postgres and nothing goes to the spool.
func TestSlowDatabaseIsWaitedForNotSpooled(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	sp := spoolFor(t)
	watched := &pingWatch{DB: db, pings: make(chan error, 16)}
	srv := startServer(t, db, func(s *radius.Server) {
		s.Store = watched
		s.Spool = sp
		s.SpoolAfter = 200 * time.Millisecond
	})
	c := newClient(t, srv)
	unlock := lockAccounting(t, db)
	reqs := starts(t, c, "840000", 10)
	// Two pings: the commit outlived SpoolAfter and a ping interval, and
	// the database answered both.
	for i := 0; i < 2; i++ {
		select {
		case err := <-watched.pings:
			if err != nil {
				t.Fatalf("ping of a live database: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the listener never pinged the database while its commit waited")
		}
	}
	if n := c.answers(reqs, 50*time.Millisecond); n != 0 {
		t.Fatalf("%d answered while radacct was locked: neither committed nor spooled", n)
	}
	unlock()
	// A slow database is not treated as an outage: nothing spooled.
	mustAnswerAll(t, c, reqs, "once the lock was gone", srv, sp, 0, db, 10)
}

// pgProxy forwards TCP connections to the test's PostgreSQL server until
// it is told to hang (every connection, old and new, is kept open and
// nothing passes: a database host that stopped answering) or to refuse
// (every connection closed, the port closed: a database that is gone).
type pgProxy struct {
	ln      net.Listener
	network string
	addr    string

	mu    sync.Mutex
	hung  bool
	conns []net.Conn
}

// newPGProxy starts a proxy in front of the server dbURL names and returns
// it with a URL of the same database through it.
func newPGProxy(t *testing.T, dbURL string) (*pgProxy, string) {
	t.Helper()
	cfg, err := pgconn.ParseConfig(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	p := &pgProxy{network: "tcp", addr: net.JoinHostPort(cfg.Host, fmt.Sprint(cfg.Port))}
	if strings.HasPrefix(cfg.Host, "/") {
		p.network, p.addr = "unix", fmt.Sprintf("%s/.s.PGSQL.%d", cfg.Host, cfg.Port)
	}
	if p.ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.refuse)
	go p.accept()
	u := url.URL{Scheme: "postgres", Host: p.ln.Addr().String(), Path: "/" + cfg.Database,
		User: url.UserPassword(cfg.User, cfg.Password), RawQuery: "sslmode=disable"}
	return p, u.String()
}

func (p *pgProxy) accept() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.conns = append(p.conns, in)
		hung := p.hung
		p.mu.Unlock()
		if hung {
			continue // accepted, never answered
		}
		out, err := net.Dial(p.network, p.addr)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, out)
		p.mu.Unlock()
		go p.pipe(out, in)
		go p.pipe(in, out)
	}
}

// pipe copies from src to dst while the proxy is not hung.
func (p *pgProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		p.mu.Lock()
		hung := p.hung
		p.mu.Unlock()
		if hung {
			return // the bytes are swallowed; the connection stays open
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				dst.Close()
			}
			return
		}
	}
}

func (p *pgProxy) hang() {
	p.mu.Lock()
	p.hung = true
	p.mu.Unlock()
}

func (p *pgProxy) refuse() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// openThrough opens the store on dbURL's database through a proxy.
func openThrough(t *testing.T, proxyURL string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), proxyURL, 4, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db
}

// A database host that stops answering mid-commit (the commit hangs, and
// so does a ping): the batch is spooled and answered, not held until
// CommitTimeout.
func TestHungDatabaseIsSpooled(t *testing.T) {
	t.Parallel()
	var through *pingWatch
	p := startProxied(t, 200*time.Millisecond, func(db *store.DB) nettportal.AccountingStore {
		through = &pingWatch{DB: db, pings: make(chan error, 16)}
		return through
	}, "850000")
	srv, c, direct, proxy, sp := p.srv, p.c, p.direct, p.proxy, p.spool
	// Closing a pool whose connections hang takes pgx many seconds: the
	// proxy lets them go first.
	t.Cleanup(proxy.refuse)
	for len(through.pings) > 0 {
		<-through.pings // a slow first commit's pings, through the proxy still forwarding
	}
	proxy.hang()
	reqs := starts(t, c, "851000", 10)
	select {
	case err := <-through.pings:
		if err == nil {
			t.Fatal("a ping through a hung proxy succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the listener never pinged the database while its commit hung")
	}
	// The 10 packets of the hung commit are spooled; only the first
	// Start (committed through the proxy before) is in radacct.
	mustAnswerAll(t, c, reqs, "while the database hung", srv, sp, 10, direct, 1)
	// Known down: the next batch probes the database (it hangs again) and
	// goes to the spool too.
	more := starts(t, c, "852000", 1)
	if n := c.answers(more, 5*time.Second); n != 1 || sp.Depth() != 11 {
		t.Fatalf("during the outage: %d answered, spool depth %d", n, sp.Depth())
	}
}

// A database that is gone (its connections reset, its port closed): the
// commits fail, and after SpoolAfter the batch is spooled and answered.
func TestUnreachableDatabaseIsSpooled(t *testing.T) {
	t.Parallel()
	p := startProxied(t, 300*time.Millisecond, func(db *store.DB) nettportal.AccountingStore { return db }, "860000")
	srv, c, direct, proxy, sp := p.srv, p.c, p.direct, p.proxy, p.spool
	proxy.refuse()
	sent := time.Now()
	reqs := starts(t, c, "861000", 10)
	if n := c.answers(reqs, 5*time.Second); n != 10 {
		t.Fatalf("%d of 10 answered while the database was unreachable", n)
	}
	if waited := time.Since(sent); waited < 300*time.Millisecond {
		t.Errorf("spooled after %v, before SpoolAfter (300ms) of retries", waited)
	}
	if srv.Stats.Spooled.Load() != 10 || sp.Depth() != 10 || countRows(t, direct) != 1 {
		t.Fatalf("spooled %d, depth %d, rows %d", srv.Stats.Spooled.Load(), sp.Depth(), countRows(t, direct))
	}
}

// proxied is a server whose accounting reaches a migrated database through
// a proxy the test can hang or close, and the same database directly.
type proxied struct {
	srv    *testServer
	c      *client
	direct *store.DB
	proxy  *pgProxy
	spool  *spool.Spool
}

// startProxied starts it with spoolAfter and a store made by wrap from the
// pool through the proxy, and checks that a first Start (session prefix
// first) is committed through the proxy while it forwards.
func startProxied(t *testing.T, spoolAfter time.Duration, wrap func(*store.DB) nettportal.AccountingStore, first string) proxied {
	t.Helper()
	dbURL := storetest.MustCreateDatabase(t)
	p := proxied{direct: openThrough(t, dbURL), spool: spoolFor(t)}
	if err := p.direct.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	var proxyURL string
	p.proxy, proxyURL = newPGProxy(t, dbURL)
	through := wrap(openThrough(t, proxyURL))
	p.srv = startServer(t, p.direct, func(s *radius.Server) {
		s.Store = through
		s.Spool = p.spool
		s.SpoolAfter = spoolAfter
		s.CommitTimeout = time.Minute
	})
	p.c = newClient(t, p.srv)
	reqs := starts(t, p.c, first, 1)
	if n := p.c.answers(reqs, 5*time.Second); n != 1 || countRows(t, p.direct) != 1 {
		t.Fatalf("through the proxy: %d answered, %d rows", n, countRows(t, p.direct))
	}
	return p
}
