package radius

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/nettportal/nettportal"
)

func (s *Server) worker(since *atomic.Int64) {
	defer s.workers.Done()
	batch := make([]item, 0, s.MaxBatch)
	recs := make([]nettportal.AccountingRecord, 0, s.MaxBatch)
	for {
		var ok bool
		if batch, ok = s.nextBatch(batch[:0], since); !ok {
			return
		}
		s.inFlight.Add(1)
		// The whole batch: retransmissions of shed packets (a batch of its
		// own, or its tail) may be older than its first packet.
		since.Store(oldestArrival(batch).UnixNano())
		s.commitAndAnswer(batch, recs[:0])
		since.Store(0)
		// A worker may be waiting for no commit to be in flight to take
		// the retry queue (retriesWelcome).
		if s.inFlight.Add(-1) == 0 && s.retry.len() > 0 {
			s.retry.signal()
		}
	}
}

// commitAndAnswer commits a batch and answers it.
func (s *Server) commitAndAnswer(batch []item, recs []nettportal.AccountingRecord) {
	for i := range batch {
		recs = append(recs, batch[i].rec)
	}
	result, outcomes := s.commit(recs)
	s.settleTickets(batch)
	switch result {
	case givenUp:
		for i := range batch {
			s.dedupe.forget(batch[i].key)
		}
		s.Stats.Outcomes[nettportal.OutcomeGivenUp].Add(uint64(len(batch)))
		return
	case committed:
		var ok []nettportal.AccountingRecord
		batch, ok = s.setOutcomes(batch, recs, outcomes)
		if s.OnCommit != nil && len(ok) > 0 {
			s.OnCommit(ok)
		}
	case spooled:
		s.Stats.Spooled.Add(uint64(len(batch)))
	}
	s.noteLatency(batch)
	s.answer(batch)
}

// setOutcomes gives each item the store's result for its record. It
// returns the items to answer, without those refused as another router's
// session (nothing of them is durable, so they are counted and left
// unanswered, like any packet we cannot take), and the records that were
// applied (OutcomeOK): only those changed radacct.
func (s *Server) setOutcomes(batch []item, recs []nettportal.AccountingRecord, outcomes []nettportal.Outcome) ([]item, []nettportal.AccountingRecord) {
	if outcomes == nil {
		return batch, recs
	}
	if len(outcomes) != len(batch) {
		// The store committed, so every record is durable; a result list
		// of the wrong length is its bug, not the router's.
		s.Log.Error().Int("records", len(batch)).Int("results", len(outcomes)).Msg("store returned a result list of the wrong length: answering all as ok")
		return batch, recs
	}
	kept, ok := batch[:0], recs[:0:0]
	for i := range batch {
		o := outcomes[i]
		switch o {
		case nettportal.OutcomeForeignSession:
			s.Stats.count(o)
			s.dedupe.forget(batch[i].key) // the store logged it, with the owner
			continue
		case nettportal.OutcomeOK, nettportal.OutcomeQuarantined:
		default:
			s.Log.Error().Str("outcome", o.String()).Msg("store returned a result that is not final: counting it as ok, the record committed")
			o = nettportal.OutcomeOK
		}
		batch[i].outcome = o
		if o == nettportal.OutcomeOK {
			ok = append(ok, recs[i])
		}
		kept = append(kept, batch[i])
	}
	return kept, ok
}

type commitOutcome int

const (
	committed commitOutcome = iota
	spooled
	givenUp
)

// commit retries a failing batch with backoff: a short database hiccup
// costs latency, not retransmissions. A batch goes to the spool, when
// there is one, only when the database is out of reach or fails it: its
// commits keep failing for SpoolAfter, or a commit still running at
// SpoolAfter meets a database that does not answer a ping. A commit that is
// merely slow (the database busy, a lock held) is waited for while the
// database answers, up to CommitTimeout: spooling it would acknowledge from
// the disk what Postgres is about to commit, and replay it again later.
// Past CommitTimeout the batch is spooled (or, without a spool, given up
// unanswered).
//
// Once committed, the store's per-record results come with it (nil: all
// OutcomeOK); see nettportal.AccountingResultStore.
func (s *Server) commit(recs []nettportal.AccountingRecord) (commitOutcome, []nettportal.Outcome) {
	if s.Spool != nil && s.dbDown.Load() && !s.probeDue() {
		if err := s.Spool.Append(recs); err == nil {
			return spooled, nil
		}
		s.Stats.SpoolErrors.Add(1)
	}
	// Past the fast path while the database is known down, this batch is
	// the probe: one failed attempt sends it to the spool.
	probing := s.Spool != nil && s.dbDown.Load()
	start := time.Now()
	deadline := start.Add(s.CommitTimeout)
	spoolAt := start.Add(s.SpoolAfter)
	backoff := 50 * time.Millisecond
	for {
		began := time.Now()
		outcomes, gone, err := s.attempt(recs, spoolAt, deadline)
		took := time.Since(began)
		if s.OnBatch != nil {
			s.OnBatch(len(recs), took, err)
		}
		if err == nil {
			// Only the attempt that committed: a failed one's time and the
			// backoff say nothing of what a batch costs the database.
			s.commitRate.note(len(recs), took)
			s.Stats.Batches.Add(1)
			if s.dbDown.CompareAndSwap(true, false) {
				s.Log.Info().Msg("database commits again: batches go to it, the spool is replayed")
			}
			return committed, outcomes
		}
		s.Stats.CommitErrors.Add(1)
		now := time.Now()
		timedOut := !now.Before(deadline)
		// An outage: the database does not answer a ping, or its commits
		// keep failing (refused, reset, an error from Postgres). An attempt
		// that ran out of time while the database answered (a lock held,
		// every accounting connection committing) is not one.
		failed := !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nettportal.ErrBusy)
		outage := gone || (failed && (probing || !now.Before(spoolAt)))
		if _, canPing := s.Store.(pinger); !canPing && !now.Before(spoolAt) && !errors.Is(err, nettportal.ErrBusy) {
			// Without a ping a hung database looks like a slow one: an
			// attempt still running at SpoolAfter counts as an outage.
			outage = true
		}
		if s.Spool != nil && (outage || timedOut) {
			spoolErr := s.Spool.Append(recs)
			if spoolErr == nil {
				switch {
				case !outage:
					s.Log.Warn().Err(err).Int("records", len(recs)).Dur("commit_timeout", s.CommitTimeout).
						Msg("database answers but did not commit a batch in time: spooled it, the next batches try the database again")
				case !s.dbDown.Swap(true):
					s.Log.Warn().Err(err).Int("records", len(recs)).Msg("database cannot commit: spooling to disk and acknowledging until it is back")
				}
				return spooled, nil
			}
			s.Stats.SpoolErrors.Add(1)
			s.Log.Error().Err(spoolErr).Msg("spool append failed: still retrying the database")
		}
		if now.Add(backoff).After(deadline) {
			s.Log.Error().Err(err).Int("records", len(recs)).Msg("giving up a batch: its packets stay unanswered and will be retransmitted")
			return givenUp, nil
		}
		s.Log.Warn().Err(err).Int("records", len(recs)).Dur("retry_in", backoff).Msg("commit accounting batch")
		time.Sleep(backoff)
		backoff = min(2*backoff, time.Second)
	}
}

// pinger is a store that can say whether the database answers at all, on
// a connection accounting does not commit on (store.DB).
type pinger interface {
	PingAccounting(ctx context.Context) error
}

// pingTimeout bounds a liveness ping: an empty statement on an idle
// connection is one round trip, which a database serving anything answers
// well within a second however busy its viewers keep it.
const pingTimeout = time.Second

// attempt runs one commit of recs, ending by deadline. With a spool, a
// commit still running at spoolAt is watched: the database is pinged then
// and every pingTimeout after, and the commit is stopped (gone) only when a
// ping fails. A store that cannot be pinged has its attempt end at spoolAt.
// A stopped COMMIT may still have landed; spooling the batch as well is
// harmless, as every record is idempotent.
func (s *Server) attempt(recs []nettportal.AccountingRecord, spoolAt, deadline time.Time) (outcomes []nettportal.Outcome, gone bool, err error) {
	if s.Spool == nil || !time.Now().Before(spoolAt) {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		defer cancel()
		outcomes, err = nettportal.ApplyWithResults(ctx, s.Store, recs)
		return outcomes, false, err
	}
	p, ok := s.Store.(pinger)
	if !ok {
		ctx, cancel := context.WithDeadline(context.Background(), spoolAt)
		defer cancel()
		outcomes, err = nettportal.ApplyWithResults(ctx, s.Store, recs)
		return outcomes, false, err
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	var finished, down atomic.Bool
	var watch *time.Timer
	// Armed only once watch is set: the function resets it.
	watch = time.AfterFunc(time.Hour, func() {
		if finished.Load() {
			return
		}
		pctx, pcancel := context.WithTimeout(context.Background(), pingTimeout)
		perr := p.PingAccounting(pctx)
		pcancel()
		if finished.Load() {
			return
		}
		if perr != nil {
			s.Log.Warn().Err(perr).Int("records", len(recs)).Msg("a commit is hanging and the database does not answer a ping: stopping it to spool the batch")
			down.Store(true)
			cancel()
			return
		}
		watch.Reset(pingTimeout)
	})
	watch.Reset(time.Until(spoolAt))
	outcomes, err = nettportal.ApplyWithResults(ctx, s.Store, recs)
	finished.Store(true)
	watch.Stop()
	return outcomes, down.Load() && err != nil, err
}

// probeDue lets one batch every ProbeInterval try the database while it is
// known to be down.
func (s *Server) probeDue() bool {
	now := s.Now().UnixNano()
	last := s.lastProbe.Load()
	return now-last >= int64(s.ProbeInterval) && s.lastProbe.CompareAndSwap(last, now)
}
