package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/nettportal/nettportal"
)

// lockRoundSQL locks a round's existing rows in acctuniqueid order and
// says who owns each, and when an inferred close ended it.
var lockRoundSQL = `SELECT acctuniqueid, nas_id, CASE WHEN closed_by IN ` + inferredCloses + ` THEN acctstoptime END
	FROM radacct WHERE acctuniqueid = ANY($1::text[]) ORDER BY acctuniqueid FOR NO KEY UPDATE`

// pinPlansSQL leaves the batch's statements one plan each: a probe of an
// index per record. Postgres caches a prepared statement's generic plan per
// connection and replans it only when statistics change; planned against a
// new, small radacct, the narrow update joined it by seq scan and hash,
// and on a server without autovacuum (so without new statistics) kept doing
// that at 50,000 sessions: 40 seq scans a second and 150 ms at p99 in the
// soak. Every statement here is driven by the batch's records, so the
// index path is always the right one.
const pinPlansSQL = `SELECT set_config('enable_seqscan', 'off', true), set_config('enable_hashjoin', 'off', true),
	set_config('enable_mergejoin', 'off', true)`

// applyRound queues a round of records with distinct acctuniqueids, sorted
// by it: interims and Stops of sessions that have their row go through the
// narrow update, everything else (Starts, new sessions, rows missing
// descriptive fields, the reconciler's records, other routers' records)
// through the full upsert. It sends what is queued when it must learn what
// the narrow update applied. What it learns of foreign records and
// reopened sessions goes to res as the results come in.
func applyRound(ctx context.Context, p *pipeline, round []*nettportal.AccountingRecord, loc *time.Location, narrow bool, res *applyResult) error {
	applied := make([]bool, len(round))
	narrowed := 0
	cc := newColumnContext(loc)
	var n *recordArrays   // made for the round's first narrow record: a round of Starts has none
	var narrowIndex []int // position in the round of each narrow record
	for i, r := range round {
		if narrow && !r.FromAPI && (r.Status == nettportal.StatusInterimUpdate || r.Status == nettportal.StatusStop) {
			if n == nil {
				n = newRecordArrays(narrowColumns, len(round)-i, cc)
			}
			n.add(r)
			narrowIndex = append(narrowIndex, i)
		}
	}
	// The round's existing rows: who owns each, and when a close we only
	// inferred ended it.
	type existing struct {
		owner        pgtype.Int8
		inferredStop pgtype.Timestamptz
	}
	rows := map[string]existing{}
	// The narrow update and the full upsert are two passes over the
	// round; taking the round's existing rows first, in one pass in
	// acctuniqueid order, keeps concurrent batches from locking rows in
	// crossing orders (a deadlock costs a second before Postgres
	// breaks it: seen replaying the spool while live traffic went on).
	ids := make([]string, len(round))
	for i, r := range round {
		ids[i] = r.UniqueID
	}
	p.queue("lock sessions", lockRoundSQL, ids).Query(func(qr pgx.Rows) error {
		var uid string
		var e existing
		_, err := pgx.ForEachRow(qr, []any{&uid, &e.owner, &e.inferredStop}, func() error {
			rows[uid] = e
			return nil
		})
		return err
	})
	if n != nil {
		p.queue("update sessions", updateExistingSQL, n.args()...).Query(func(qr pgx.Rows) error {
			var ord int64
			_, err := pgx.ForEachRow(qr, []any{&ord}, func() error {
				if ord < 1 || int(ord) > len(narrowIndex) {
					return fmt.Errorf("ordinal %d out of range", ord)
				}
				applied[narrowIndex[ord-1]] = true
				narrowed++
				return nil
			})
			return err
		})
		if err := p.flush(ctx); err != nil {
			return err
		}
	}
	// finish learns, once the full upsert said which records it applied
	// (upserted), which were refused as another router's and which
	// reopened a session.
	finish := func(upserted map[string]bool) {
		res.narrowed += narrowed
		for i, r := range round {
			if !applied[i] && !upserted[r.UniqueID] {
				// Not applied: a reconciler record standing back for
				// accounting's row (by design), or another router's session.
				if row, ok := rows[r.UniqueID]; ok && !r.FromAPI {
					res.outcome[r] = nettportal.RecordForeignSession
					res.owner[r] = row.owner.Int64
				}
				continue
			}
			if row, ok := rows[r.UniqueID]; ok && r.Status == nettportal.StatusInterimUpdate &&
				row.inferredStop.Valid && r.EventTime.After(row.inferredStop.Time) {
				res.reopened++
			}
		}
	}
	c := newRecordArrays(fullColumns, len(round)-narrowed, cc)
	for i, r := range round {
		if !applied[i] {
			c.add(r)
		}
	}
	var radiusNAS []int64
	var radiusSID []string
	for _, r := range round {
		if !r.FromAPI {
			radiusNAS = append(radiusNAS, r.RouterID)
			radiusSID = append(radiusSID, r.SessionID)
		}
	}
	if c.len() > 0 {
		p.queue("upsert sessions", upsertAccountingSQL, c.args()...).Query(func(qr pgx.Rows) error {
			upserted := map[string]bool{}
			var uid string
			_, err := pgx.ForEachRow(qr, []any{&uid}, func() error {
				upserted[uid] = true
				return nil
			})
			if err == nil {
				finish(upserted)
			}
			return err
		})
	} else {
		finish(nil)
	}
	if len(radiusNAS) > 0 {
		p.exec("retire the reconciler's rows", retireAPIRowsSQL, radiusNAS, radiusSID)
	}
	return nil
}

// step is one part of a batch: an Accounting-On/Off, or a round of records
// with distinct acctuniqueids (one statement cannot touch a row twice).
type step struct {
	closeRouter *nettportal.AccountingRecord
	round       []*nettportal.AccountingRecord
}

// planBatch splits a batch into steps that keep arrival order: records of
// one session go to successive rounds, and an Accounting-On/Off is a
// barrier. Records in each round are sorted by acctuniqueid so concurrent
// batches lock in the same order and rarely deadlock.
func planBatch(batch []nettportal.AccountingRecord) []step {
	var steps []step
	var rounds [][]*nettportal.AccountingRecord
	lastRound := map[string]int{} // acctuniqueid -> round of its latest record
	flush := func() {
		for _, recs := range rounds {
			// A round holds each acctuniqueid once, so the order is total.
			slices.SortFunc(recs, func(a, b *nettportal.AccountingRecord) int { return strings.Compare(a.UniqueID, b.UniqueID) })
			steps = append(steps, step{round: recs})
		}
		rounds = nil
		clear(lastRound)
	}
	for i := range batch {
		rec := &batch[i]
		if rec.Status == nettportal.StatusAccountingOn || rec.Status == nettportal.StatusAccountingOff {
			flush()
			steps = append(steps, step{closeRouter: rec})
			continue
		}
		k := 0
		if prev, ok := lastRound[rec.UniqueID]; ok {
			k = prev + 1
		}
		if k == len(rounds) {
			rounds = append(rounds, nil)
		}
		rounds[k] = append(rounds[k], rec)
		lastRound[rec.UniqueID] = k
	}
	flush()
	return steps
}
