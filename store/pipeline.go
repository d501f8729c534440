package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/nettportal/nettportal"
)

// inPipelinedTx runs fill between BEGIN and COMMIT on one connection.
func (db *DB) inPipelinedTx(ctx context.Context, fill func(p *pipeline) error) error {
	conn, err := db.acct.Acquire(ctx)
	if err != nil {
		if st := db.acct.Stat(); ctx.Err() != nil && st.AcquiredConns() >= st.MaxConns() {
			// Every connection is committing: the database answers, it is
			// only slower than the load; not an outage to spool for.
			return fmt.Errorf("acquire connection: all %d accounting connections busy: %w: %w", st.MaxConns(), nettportal.ErrBusy, err)
		}
		return fmt.Errorf("acquire connection: %w", err)
	}
	defer conn.Release()
	p := &pipeline{conn: conn.Conn(), batch: &pgx.Batch{}}
	err = func() error {
		p.exec("begin", "begin")
		p.exec("pin plans", pinPlansSQL)
		if err := fill(p); err != nil {
			return err
		}
		p.queue("commit", "commit").Exec(func(tag pgconn.CommandTag) error {
			if tag.String() != "COMMIT" {
				return errors.New("the transaction was rolled back")
			}
			return nil
		})
		return p.flush(ctx)
	}()
	if err != nil && conn.Conn().PgConn().TxStatus() != 'I' {
		// Left in the failed transaction: end it here rather than make the
		// pool close the connection.
		rbCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if _, rbErr := conn.Exec(rbCtx, "rollback"); rbErr != nil {
			_ = conn.Conn().Close(rbCtx)
		}
		cancel()
	}
	return err
}

// pipeline queues a transaction's statements and sends them together when
// a result is needed (flush). A failed statement makes Postgres skip the
// rest of what was sent with it, COMMIT included; the error names the
// statement.
type pipeline struct {
	conn   *pgx.Conn
	batch  *pgx.Batch
	labels []string // per queued statement, for errors
	done   int      // statements of batch that succeeded
}

func (p *pipeline) queue(label, sql string, args ...any) *pgx.QueuedQuery {
	p.labels = append(p.labels, label)
	return p.batch.Queue(sql, args...)
}

// exec queues a statement whose result is only success or failure.
func (p *pipeline) exec(label, sql string, args ...any) {
	p.queue(label, sql, args...).Exec(func(pgconn.CommandTag) error { return nil })
}

func (p *pipeline) flush(ctx context.Context) error {
	if p.batch.Len() == 0 {
		return nil
	}
	for _, q := range p.batch.QueuedQueries {
		fn := q.Fn
		q.Fn = func(br pgx.BatchResults) error {
			if err := fn(br); err != nil {
				return err
			}
			p.done++
			return nil
		}
	}
	err := p.conn.SendBatch(ctx, p.batch).Close()
	if err != nil && p.done < len(p.labels) {
		err = fmt.Errorf("%s: %w", p.labels[p.done], err)
	}
	p.batch, p.labels, p.done = &pgx.Batch{}, nil, 0
	return err
}
