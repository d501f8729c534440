package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/nettportal/nettportal"
)

// SessionsChannel is the LISTEN/NOTIFY channel of session changes.
const SessionsChannel = "nettportal_sessions"

// maxNotifyRouters bounds the router list in one notification: NOTIFY
// payloads must stay under 8000 bytes, and a change on hundreds of
// routers is "everything changed" (an empty list) for every listener.
const maxNotifyRouters = 500

// NotifySessionsChanged tells every instance listening on the database that
// sessions changed. It must run outside the accounting transaction: a
// transaction that has sent NOTIFY holds a database-wide lock from its
// commit until the commit is done, which would serialize the batchers.
func (db *DB) NotifySessionsChanged(ctx context.Context, c nettportal.SessionsChanged) error {
	if len(c.RouterIDs) > maxNotifyRouters {
		c.RouterIDs = nil
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("notify sessions changed: %w", err)
	}
	if _, err := db.Pool.Exec(ctx, "SELECT pg_notify($1, $2)", SessionsChannel, string(payload)); err != nil {
		return fmt.Errorf("notify sessions changed: %w", err)
	}
	return nil
}

// Notifier coalesces committed accounting batches into at most one
// notification per Interval. Changed never blocks the accounting path.
type Notifier struct {
	DB *DB
	// Interval is the shortest time between two notifications. Zero: 100ms.
	Interval time.Duration
	Log      zerolog.Logger

	mu      sync.Mutex
	routers map[int64]struct{}
	records int
	wake    chan struct{}
}

func (n *Notifier) init() {
	if n.wake == nil {
		n.wake = make(chan struct{}, 1)
		n.routers = map[int64]struct{}{}
		if n.Interval <= 0 {
			n.Interval = 100 * time.Millisecond
		}
	}
}

// Changed records a committed batch; it fits radius.Server.OnCommit.
func (n *Notifier) Changed(batch []nettportal.AccountingRecord) {
	if len(batch) == 0 {
		return
	}
	c := nettportal.SessionsChanged{Records: len(batch)}
	for i := range batch {
		c.RouterIDs = append(c.RouterIDs, batch[i].RouterID)
	}
	n.Announce(c)
}

// Announce records changes made outside the accounting path (reconciler,
// stale sweep, spool replay). It never blocks.
func (n *Notifier) Announce(c nettportal.SessionsChanged) {
	if c.Records == 0 {
		return
	}
	n.mu.Lock()
	n.init()
	for _, id := range c.RouterIDs {
		n.routers[id] = struct{}{}
	}
	n.records += c.Records
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// Run sends the notifications until ctx ends.
func (n *Notifier) Run(ctx context.Context) {
	n.mu.Lock()
	n.init()
	n.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.wake:
		}
		n.mu.Lock()
		c := nettportal.SessionsChanged{Records: n.records}
		for id := range n.routers {
			c.RouterIDs = append(c.RouterIDs, id)
		}
		clear(n.routers)
		n.records = 0
		n.mu.Unlock()
		if c.Records > 0 {
			sort.Slice(c.RouterIDs, func(i, j int) bool { return c.RouterIDs[i] < c.RouterIDs[j] })
			nctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := n.DB.NotifySessionsChanged(nctx, c); err != nil && ctx.Err() == nil {
				// Viewers still get the periodic refresh; nothing is lost.
				n.Log.Warn().Err(err).Msg("notify sessions changed")
			}
			cancel()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(n.Interval):
		}
	}
}

// ListenSessionsChanged calls fn with every session change announced on the
// database, by this instance or any other, until ctx ends. It uses its own
// connection (not one of the pool's) and reconnects after errors. After
// each (re)connection it calls fn once with an empty SessionsChanged:
// changes may have been missed while it was not listening, so viewers
// should refresh. fn runs on the listening goroutine and must be quick.
func (db *DB) ListenSessionsChanged(ctx context.Context, fn func(nettportal.SessionsChanged)) error {
	return db.listen(ctx, SessionsChannel, func(payload string) {
		var c nettportal.SessionsChanged
		if payload != "" {
			if err := json.Unmarshal([]byte(payload), &c); err != nil {
				db.log.Warn().Err(err).Str("payload", payload).Msg("bad session change notification")
				c = nettportal.SessionsChanged{}
			}
		}
		fn(c)
	})
}

// AuthChannel is the LISTEN/NOTIFY channel on which credential changes
// (token revoked, logout, user deleted, disabled or re-passworded) are
// announced, so every instance can close WebSockets that rode on them.
const AuthChannel = "nettportal_auth"

// notifyAuthChanged announces a credential change. A failure is returned
// but the change itself has happened; instances still re-check every
// open socket periodically.
func (db *DB) notifyAuthChanged(ctx context.Context) error {
	if _, err := db.Pool.Exec(ctx, "SELECT pg_notify($1, '')", AuthChannel); err != nil {
		return fmt.Errorf("notify credential change: %w", err)
	}
	return nil
}

// ListenAuthChanged calls fn whenever a token, login or user ended or
// changed on any instance, and once after each (re)connection, until ctx
// ends. fn runs on the listening goroutine and must be quick.
func (db *DB) ListenAuthChanged(ctx context.Context, fn func()) error {
	return db.listen(ctx, AuthChannel, func(string) { fn() })
}

// listen calls fn with every payload on channel until ctx ends, and with
// an empty payload after each (re)connection.
func (db *DB) listen(ctx context.Context, channel string, fn func(payload string)) error {
	backoff := 100 * time.Millisecond
	for {
		err := db.listenOnce(ctx, channel, fn)
		if ctx.Err() != nil {
			return nil
		}
		db.log.Warn().Err(err).Str("channel", channel).Dur("retry_in", backoff).Msg("listen for notifications")
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (db *DB) listenOnce(ctx context.Context, channel string, fn func(payload string)) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := pgx.ConnectConfig(cctx, db.Pool.Config().ConnConfig.Copy())
	cancel()
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	fn("")
	for {
		// A bounded wait doubles as a liveness check of the connection: a
		// silently dead TCP connection would otherwise wait forever.
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		note, err := conn.WaitForNotification(wctx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if wctx.Err() != nil {
				pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				err = conn.Ping(pctx)
				cancel()
				if err == nil {
					continue
				}
			}
			return fmt.Errorf("wait for notification: %w", err)
		}
		fn(note.Payload)
	}
}
