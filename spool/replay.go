package spool

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nettportal/nettportal"
)

// Replay applies every spooled record to store in order, in chunks of
// chunk records, checkpointing after each committed chunk. It returns the
// number of records done; on error the rest stays for the next call.
//
// When store is a nettportal.AccountingResultStore, its per-record results
// count: a record it quarantined (or refused as another router's session)
// is durable or final there, so it is done and replay goes on past it. An
// error from the store means nothing of the chunk is durable: the chunk is
// retried by the next call. ReplayCounts says how the records ended.
func (s *Spool) Replay(ctx context.Context, store nettportal.AccountingStore, chunk int) (int, error) {
	s.replayMu.Lock()
	defer s.replayMu.Unlock()
	if chunk <= 0 {
		chunk = 2000
	}
	applied := 0
	for {
		s.mu.Lock()
		cp := s.cp
		end, ok := s.durable[cp.Seq]
		activeSeq := s.activeSeq
		s.mu.Unlock()
		if !ok {
			// The checkpoint names a segment that never got records.
			if cp.Seq >= activeSeq {
				return applied, nil
			}
			if err := s.advance(cp.Seq); err != nil {
				return applied, err
			}
			continue
		}
		if cp.Offset >= end {
			if cp.Seq == activeSeq {
				if applied > 0 || end > 0 {
					if err := s.rotateReplayed(end); err != nil {
						return applied, err
					}
				}
				return applied, nil
			}
			if err := s.advance(cp.Seq); err != nil {
				return applied, err
			}
			continue
		}
		recs, next, err := readChunk(s.segmentPath(cp.Seq), cp.Offset, end, chunk)
		if err != nil {
			return applied, err
		}
		var results []nettportal.Outcome
		if as, ok := store.(nettportal.AcknowledgedResultStore); ok {
			results, err = as.ApplyAcknowledgedResults(ctx, recs)
		} else {
			results, err = nettportal.ApplyWithResults(ctx, store, recs)
		}
		if err != nil {
			return applied, fmt.Errorf("replay %d records: %w", len(recs), err)
		}
		if err := s.saveCheckpoint(checkpoint{Seq: cp.Seq, Offset: next}); err != nil {
			return applied, err
		}
		s.depth.Add(-int64(len(recs)))
		applied += len(recs)
		s.countResults(recs, results)
	}
}

// countResults counts a replayed chunk by result, and logs the records the
// store did not apply (an operator finds them in quarantine).
func (s *Spool) countResults(recs []nettportal.AccountingRecord, results []nettportal.Outcome) {
	if len(results) != len(recs) {
		s.replayed[nettportal.OutcomeOK].Add(uint64(len(recs)))
		return
	}
	notApplied := 0
	for _, o := range results {
		if int(o) >= len(s.replayed) {
			o = nettportal.OutcomeOK
		}
		s.replayed[o].Add(1)
		if o != nettportal.OutcomeOK {
			notApplied++
		}
	}
	if notApplied > 0 {
		// The store logs each record it refuses; one line here says replay
		// went on past them.
		s.log.Warn().Int("records", notApplied).Msg("spool: replayed records the store quarantined or refused; replay goes on")
	}
}

// ReplayCounts is the number of records replayed, by the store's result
// (indexed by nettportal.Outcome).
func (s *Spool) ReplayCounts() [nettportal.NumOutcomes]uint64 {
	var out [nettportal.NumOutcomes]uint64
	for i := range s.replayed {
		out[i] = s.replayed[i].Load()
	}
	return out
}

// advance moves replay past a finished, non-active segment and deletes it.
func (s *Spool) advance(seq uint64) error {
	if err := s.saveCheckpoint(checkpoint{Seq: seq + 1}); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.durable, seq)
	s.mu.Unlock()
	os.Remove(s.segmentPath(seq))
	return nil
}

// rotateReplayed starts a new active segment once the active one is fully
// replayed, so the replayed one can be deleted.
func (s *Spool) rotateReplayed(end int64) error {
	s.mu.Lock()
	if s.durable[s.activeSeq] != end {
		s.mu.Unlock()
		return nil // appended meanwhile: the next Replay continues
	}
	old := s.activeSeq
	if err := s.openActive(old + 1); err != nil {
		s.mu.Unlock()
		return err
	}
	s.mu.Unlock()
	return s.advance(old)
}

// Run replays whenever there is something to replay, every interval, until
// ctx ends. onReplay, when set, is called with each successful replay's
// count (to announce changes to the live view).
func (s *Spool) Run(ctx context.Context, store nettportal.AccountingStore, interval time.Duration, onReplay func(int)) {
	if interval <= 0 {
		interval = time.Second
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if s.Depth() == 0 {
			continue
		}
		n, err := s.Replay(ctx, store, 0)
		if n > 0 {
			s.log.Info().Int("records", n).Int64("left", s.Depth()).Msg("spool: replayed into the database")
			if onReplay != nil {
				onReplay(n)
			}
		}
		if err != nil {
			s.log.Warn().Err(err).Int64("depth", s.Depth()).Msg("spool: replay")
		}
	}
}
