package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/nettportal/nettportal"
)

// marksOfUpSQL selects, from an accounting statement's RETURNING (the CTE
// up), the marks that go to usage_days: what the statement flushed off the
// rows, and the last mark of rows that are closed.
const marksOfUpSQL = `
	SELECT acctuniqueid, flush_day AS day, username, nas_id, flush_inputoctets AS inoctets, flush_outputoctets AS outoctets
	FROM up WHERE flush_day IS NOT NULL AND flush_inputoctets IS NOT NULL AND flush_outputoctets IS NOT NULL
	UNION ALL
	-- A closed row keeps no mark of its own: its last one goes to usage_days.
	SELECT acctuniqueid, mark_day, username, nas_id, acctinputoctets, acctoutputoctets
	FROM up WHERE acctstoptime IS NOT NULL AND mark_day IS NOT NULL
		AND acctinputoctets IS NOT NULL AND acctoutputoctets IS NOT NULL`

// insertMarksSQL raises usage_days marks from a CTE named marks. Two marks
// of one statement never share a (session, day): a flushed mark is from
// another day than the row's.
const insertMarksSQL = `
INSERT INTO usage_days AS d (acctuniqueid, day, username, nas_id, input_octets, output_octets)
SELECT acctuniqueid, day, coalesce(username, ''), nas_id, inoctets, outoctets FROM marks
ON CONFLICT (acctuniqueid, day) DO UPDATE SET
	input_octets = greatest(d.input_octets, EXCLUDED.input_octets),
	output_octets = greatest(d.output_octets, EXCLUDED.output_octets)`

// closedMarksSQL ends a close statement whose UPDATE is the CTE closed
// (RETURNING *): the closed rows' last marks go to usage_days, where closed
// sessions keep theirs. It returns how many rows were closed.
const closedMarksSQL = `, marks AS (
	SELECT acctuniqueid, mark_day AS day, username, nas_id, acctinputoctets AS inoctets, acctoutputoctets AS outoctets
	FROM closed WHERE mark_day IS NOT NULL AND acctinputoctets IS NOT NULL AND acctoutputoctets IS NOT NULL
), kept AS (` + insertMarksSQL + `)
SELECT count(*) FROM closed`

// closeRouterSessionsSQL is Accounting-On/Off: the router restarted (or is
// stopping), so every session it had before that moment is gone. Event
// times have whole seconds, so "before" is decided per second:
//   - a session that started in an earlier second is closed;
//   - one whose row arrives after the Accounting-On is new (arrival order:
//     it is not there yet when this runs, or comes later in the batch);
//   - one already there that started in the reboot's own second (a Start
//     and a retransmitted Accounting-On arriving together) is closed only
//     when its Acct-Session-Id carries the boot digit of the router's last
//     session from before that second: RouterOS ids are 8 hex digits whose
//     first changes at every boot. Without that evidence it stays open (a
//     wrong close would cost a live session; a wrong keep is closed by the
//     reconciler, the sweep or the next Accounting-On).
const closeRouterSessionsSQL = `
WITH cut AS (
	SELECT date_trunc('second', $2::timestamptz) AS sec
), old_boot AS (
	SELECT left(x.acctsessionid, 1) AS digit FROM radacct x, cut
	WHERE x.nas_id = $1 AND x.acctstarttime < cut.sec AND x.acctsessionid ~ '^[0-9a-f]{8}$'
	ORDER BY x.acctstarttime DESC LIMIT 1
), picked AS (
	SELECT radacctid FROM radacct r, cut
	WHERE r.nas_id = $1 AND r.acctstoptime IS NULL AND (r.acctstarttime < cut.sec
		OR (r.acctstarttime < cut.sec + interval '1 second' AND r.acctsessionid ~ '^[0-9a-f]{8}$'
			AND left(r.acctsessionid, 1) = (SELECT digit FROM old_boot)))
	ORDER BY r.acctuniqueid FOR UPDATE OF r -- the order batches lock in: no deadlock
), closed AS (
	UPDATE radacct r SET
		acctstoptime = greatest($2, r.acctstarttime),
		acctterminatecause = 'NAS-Reboot',
		closed_by = 'nas-reboot',
		input_bps = 0, output_bps = 0,
		acctsessiontime = greatest(r.acctsessiontime, floor(extract(epoch FROM greatest($2, r.acctstarttime) - r.acctstarttime))::bigint)
	FROM picked WHERE r.radacctid = picked.radacctid
	RETURNING r.*
)` + closedMarksSQL

// retireAPIRowsSQL deletes the stand-in rows the reconciler made for
// sessions whose accounting has now arrived: the accounting row carries the
// same session totals, and billing must not count the session twice. The
// partial index on api rows makes this a few probes of a tiny index.
const retireAPIRowsSQL = `
WITH gone AS (
	DELETE FROM radacct r USING unnest($1::bigint[], $2::text[]) AS u(nasid, sessionid)
	WHERE r.source = 'api' AND r.nas_id = u.nasid AND r.acctsessionid = u.sessionid
		AND EXISTS (SELECT 1 FROM radacct WHERE source = 'api') -- evaluated once: skips the join when there are none
	RETURNING r.acctuniqueid
)
DELETE FROM usage_days WHERE acctuniqueid IN (SELECT acctuniqueid FROM gone)`

// ApplyAccounting makes a batch durable in one transaction, applying records
// in the order given. It returns after COMMIT. Its callers (the spool
// replay) cannot refuse a record, so one for another router's session (see
// ApplyAccountingOutcomes) goes to the quarantine, with the owner in its
// error, rather than being lost after it was acknowledged.
func (db *DB) ApplyAccounting(ctx context.Context, batch []nettportal.AccountingRecord) error {
	_, err := db.ApplyAcknowledgedResults(ctx, batch)
	return err
}

// ApplyAcknowledgedResults applies records that were acknowledged already
// (the spool replay's): like ApplyAccounting, with each record's result
// (nil: all OutcomeOK). A record for another router's session cannot be
// refused any more, so it is quarantined (OutcomeQuarantined).
func (db *DB) ApplyAcknowledgedResults(ctx context.Context, batch []nettportal.AccountingRecord) ([]nettportal.Outcome, error) {
	out := make([]nettportal.RecordOutcome, len(batch))
	if err := db.ApplyAccountingOutcomes(ctx, batch, out); err != nil {
		return nil, err
	}
	results := recordResults(out)
	for i, o := range results {
		if o != nettportal.OutcomeForeignSession {
			continue
		}
		results[i] = nettportal.OutcomeQuarantined
		if _, err := db.acct.Exec(ctx, insertQuarantineSQL, quarantineArgs(&batch[i], errForeign)...); err != nil {
			return nil, fmt.Errorf("quarantine a record for another router's session: %w", err)
		}
		db.Stats.Quarantined.Add(1)
	}
	return results, nil
}

// errForeign is the quarantine's error for a record of another router's
// session that could not be refused (it was acknowledged from the spool).
var errForeign = errors.New("the session belongs to another router (nas_id): refused")

// ApplyAccountingOutcomes is ApplyAccounting that says per record what it
// did (out, when not nil, must have len(batch)):
//   - a batch that fails with a data error (SQLSTATE class 22 or 23: a
//     value PostgreSQL cannot store or compute with) is applied again in
//     one transaction, split in halves under savepoints until every good
//     record is in; a record that fails alone goes to accounting_quarantine
//     in the same transaction (RecordQuarantined). So one bad record costs
//     its batch-mates one extra commit, and never fails them;
//   - a record for a session whose row belongs to another router changes
//     nothing (RecordForeignSession).
func (db *DB) ApplyAccountingOutcomes(ctx context.Context, batch []nettportal.AccountingRecord, out []nettportal.RecordOutcome) error {
	if len(batch) == 0 {
		return nil
	}
	if out != nil && len(out) != len(batch) {
		return fmt.Errorf("apply accounting batch of %d: %d outcome slots", len(batch), len(out))
	}
	loc := db.usageLocation()
	// Records that cannot be stored as they are (checkStorable) skip the
	// attempt: they go to the quarantine in the batch's own transaction, so
	// the usual hostile input costs its batch-mates no extra commit at all.
	var refused []refusedRecord
	apply := batch
	for i := range batch {
		if err := checkStorable(&batch[i]); err != nil {
			if refused == nil {
				apply = make([]nettportal.AccountingRecord, 0, len(batch))
				apply = append(apply, batch[:i]...)
			}
			refused = append(refused, refusedRecord{&batch[i], err})
			continue
		}
		if refused != nil {
			apply = append(apply, batch[i])
		}
	}
	var res *applyResult
	err := retryRaces(func() error {
		res = newApplyResult()
		return db.applySteps(ctx, planBatch(apply), loc, res, refused)
	})
	if isDataError(err) {
		err = retryRaces(func() error {
			res = newApplyResult()
			return db.applyIsolated(ctx, apply, loc, res, refused)
		})
	}
	if err != nil {
		return fmt.Errorf("apply accounting batch of %d: %w", len(batch), err)
	}
	if refused != nil {
		// res is keyed by the records applied: a copy when some were refused.
		byIndex := newApplyResult()
		byIndex.reopened, byIndex.narrowed = res.reopened, res.narrowed
		j := 0
		for i := range batch {
			rec := &batch[i]
			if k := slices.IndexFunc(refused, func(r refusedRecord) bool { return r.rec == rec }); k >= 0 {
				byIndex.outcome[rec] = nettportal.RecordQuarantined
				byIndex.errs[rec] = refused[k].err
				continue
			}
			if o, ok := res.outcome[&apply[j]]; ok {
				byIndex.outcome[rec] = o
				byIndex.errs[rec] = res.errs[&apply[j]]
				byIndex.owner[rec] = res.owner[&apply[j]]
			}
			j++
		}
		res = byIndex
	}
	db.afterCommit(batch, res, out)
	return nil
}

// applyResult is what a transaction did beyond storing records, keyed by
// the record (a pointer into the batch): almost every record is simply
// stored, so only the exceptions are kept.
type applyResult struct {
	outcome  map[*nettportal.AccountingRecord]nettportal.RecordOutcome
	errs     map[*nettportal.AccountingRecord]error // why a record was quarantined
	owner    map[*nettportal.AccountingRecord]int64 // the router owning a foreign record's row
	reopened int
	narrowed int
}

func newApplyResult() *applyResult {
	return &applyResult{outcome: map[*nettportal.AccountingRecord]nettportal.RecordOutcome{},
		errs: map[*nettportal.AccountingRecord]error{}, owner: map[*nettportal.AccountingRecord]int64{}}
}

func (r *applyResult) merge(o *applyResult) {
	maps.Copy(r.outcome, o.outcome)
	maps.Copy(r.errs, o.errs)
	maps.Copy(r.owner, o.owner)
	r.reopened += o.reopened
	r.narrowed += o.narrowed
}

// afterCommit counts, logs and reports what a committed batch did, and
// notes the routers seen sending interims.
func (db *DB) afterCommit(batch []nettportal.AccountingRecord, res *applyResult, out []nettportal.RecordOutcome) {
	db.narrowApplied.Add(int64(res.narrowed))
	db.Stats.Reopened.Add(uint64(res.reopened))
	var interimRouters []int64
	for i := range batch {
		rec := &batch[i]
		o := res.outcome[rec]
		if out != nil {
			out[i] = o
		}
		switch o {
		case nettportal.RecordQuarantined:
			db.Stats.Quarantined.Add(1)
			db.log.Error().Err(res.errs[rec]).Int64("router_id", rec.RouterID).Str("source", rec.Source.String()).
				Str("status", rec.Status.String()).Str("acct_session_id", escapeText(rec.SessionID)).
				Msg("accounting record refused by PostgreSQL: kept in accounting_quarantine and answered")
		case nettportal.RecordForeignSession:
			db.Stats.ForeignSession.Add(1)
			if !db.foreignLog.allow(time.Now()) {
				continue
			}
			db.log.Warn().Int64("router_id", rec.RouterID).Str("source", rec.Source.String()).
				Int64("owner_router_id", res.owner[rec]).Str("acct_session_id", escapeText(rec.SessionID)).
				Str("acctuniqueid", escapeText(rec.UniqueID)).
				Msg("refused accounting for a session another router owns")
		case nettportal.RecordStored:
			if rec.Status == nettportal.StatusInterimUpdate && !rec.FromAPI && !slices.Contains(interimRouters, rec.RouterID) {
				interimRouters = append(interimRouters, rec.RouterID)
			}
		}
	}
	for _, id := range interimRouters {
		db.noteInterims(id)
	}
}

// noteInterims records that a router sends Interim-Updates, about once a
// minute per router, outside the batch's transaction: it only enables the
// stale sweep for the router, so it need not be atomic with the records.
func (db *DB) noteInterims(routerID int64) {
	now := time.Now()
	if last, ok := db.interimsSeen.Load(routerID); ok && now.Unix()-last.(int64) < 60 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := db.acct.Exec(ctx, `INSERT INTO router_status (nas_id, interims_seen_at) SELECT $1, $2 WHERE $1 BETWEEN 1 AND 2147483647
		ON CONFLICT (nas_id) DO UPDATE SET interims_seen_at = greatest(router_status.interims_seen_at, EXCLUDED.interims_seen_at)`,
		routerID, now)
	if err != nil {
		db.log.Warn().Err(err).Int64("router_id", routerID).Msg("record that the router sends interims")
		return
	}
	db.interimsSeen.Store(routerID, now.Unix())
}

// isDataError says whether PostgreSQL refused a value (SQLSTATE class 22,
// data exception, or 23, integrity constraint violation): the same records
// would fail again, so retrying the batch as a whole cannot help.
func isDataError(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (strings.HasPrefix(pgErr.Code, "22") || strings.HasPrefix(pgErr.Code, "23"))
}

// applySteps runs a planned batch as one transaction in as few round trips
// as its data allows: BEGIN goes with the first statements and COMMIT with
// the last, so a batch of interims and Starts takes two (the full upsert
// needs to know what the narrow update applied). At 20,000 packets/s
// batches are a few dozen records, and the six round trips they took one
// by one were most of a commit's time.
func (db *DB) applySteps(ctx context.Context, steps []step, loc *time.Location, res *applyResult, refused []refusedRecord) error {
	return db.inPipelinedTx(ctx, func(p *pipeline) error {
		queueRefused(p, refused)
		return db.queueSteps(ctx, p, steps, loc, res)
	})
}

// refusedRecord is a record checkStorable refused, and why.
type refusedRecord struct {
	rec *nettportal.AccountingRecord
	err error
}

func queueRefused(p *pipeline, refused []refusedRecord) {
	for _, r := range refused {
		p.exec("quarantine a record", insertQuarantineSQL, quarantineArgs(r.rec, r.err)...)
	}
}

func (db *DB) queueSteps(ctx context.Context, p *pipeline, steps []step, loc *time.Location, res *applyResult) error {
	for _, s := range steps {
		if s.closeRouter != nil {
			p.exec(fmt.Sprintf("adopt open sessions of router %d", s.closeRouter.RouterID),
				adoptRouterSessionsSQL, s.closeRouter.RouterID)
			if nas := s.closeRouter.NASIP; nas.IsValid() {
				p.exec(fmt.Sprintf("adopt open sessions of router %d named %v", s.closeRouter.RouterID, nas),
					adoptNamedSessionsSQL, s.closeRouter.RouterID, nas.String())
			}
			p.exec(fmt.Sprintf("close sessions of router %d", s.closeRouter.RouterID),
				closeRouterSessionsSQL, s.closeRouter.RouterID, s.closeRouter.EventTime)
			continue
		}
		if err := applyRound(ctx, p, s.round, loc, !db.fullUpsertOnly, res); err != nil {
			return err
		}
	}
	return nil
}

// applyIsolated applies a batch that failed with a data error: in one
// transaction, each part under a savepoint, halving a failing part until
// the record that fails is alone; that record goes to the quarantine. The
// parts are applied in batch order, so arrival order holds.
func (db *DB) applyIsolated(ctx context.Context, batch []nettportal.AccountingRecord, loc *time.Location, res *applyResult, refused []refusedRecord) error {
	return db.inPipelinedTx(ctx, func(p *pipeline) error {
		queueRefused(p, refused)
		var part func(recs []nettportal.AccountingRecord, depth int) error
		part = func(recs []nettportal.AccountingRecord, depth int) error {
			sp := fmt.Sprintf("part%d", depth)
			try := newApplyResult()
			p.exec("savepoint", "SAVEPOINT "+sp)
			err := db.queueSteps(ctx, p, planBatch(recs), loc, try)
			if err == nil {
				p.exec("release savepoint", "RELEASE SAVEPOINT "+sp)
				err = p.flush(ctx)
			}
			if err == nil {
				res.merge(try)
				return nil
			}
			if !isDataError(err) {
				return err
			}
			p.batch, p.labels, p.done = &pgx.Batch{}, nil, 0 // what was queued after the failure is gone
			// In the simple protocol: pgx would prepare a new statement
			// first, which the aborted transaction refuses.
			if _, rbErr := p.conn.PgConn().Exec(ctx, "ROLLBACK TO SAVEPOINT "+sp).ReadAll(); rbErr != nil {
				return fmt.Errorf("rollback to savepoint: %w", rbErr)
			}
			if len(recs) == 1 {
				rec := &recs[0]
				p.exec("quarantine a record", insertQuarantineSQL, quarantineArgs(rec, err)...)
				if err := p.flush(ctx); err != nil {
					return fmt.Errorf("quarantine: %w", err)
				}
				res.outcome[rec] = nettportal.RecordQuarantined
				res.errs[rec] = err
				return nil
			}
			mid := len(recs) / 2
			if err := part(recs[:mid], depth+1); err != nil {
				return err
			}
			return part(recs[mid:], depth+1)
		}
		return part(batch, 0)
	})
}

// logLimiter lets a few lines a second through: a router with a valid
// secret sending (and retransmitting) packets for other routers' sessions
// must not fill the disk with logs.
type logLimiter struct {
	mu     sync.Mutex
	window time.Time
	n      int
}

func (l *logLimiter) allow(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.window) >= time.Second {
		l.window, l.n = now, 0
	}
	l.n++
	return l.n <= 5
}
