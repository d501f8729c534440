package radius

import (
	"sync"
	"time"
)

// Batch sizing. A bigger batch costs the database less per record, but
// every packet in it waits for the whole commit. At MaxBatch (4096) a
// worker's batch took 600 ms when an overload began (three workers sharing
// some 20,000 records a second), so the first packets of every overload
// were answered after the routers' timeout. So a batch is cut at the
// records a worker was measured to commit in BatchCommitTime. Never below
// minCutBatch: a commit slowed by something other than its size (the CPU
// busy with the web page, a checkpoint) would otherwise shrink the batches
// until their fixed costs dominate and the workers fall behind arrivals
// they kept up with.
const minCutBatch = 512

// commitRate is how many records one worker commits a second, smoothed
// over the last batches.
type commitRate struct {
	mu        sync.Mutex
	perSecond float64 // 0: no batch measured yet
}

// commitRateWeight is the weight of the newest batch in the average: the
// rate follows a change of load within a few tens of batches (a fraction
// of a second under load) and one odd commit moves it little.
const commitRateWeight = 0.2

// note learns a committed batch of records that took took.
func (c *commitRate) note(records int, took time.Duration) {
	if records <= 0 || took <= 0 {
		return
	}
	rate := float64(records) / took.Seconds()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.perSecond == 0 {
		c.perSecond = rate
		return
	}
	c.perSecond += commitRateWeight * (rate - c.perSecond)
}

// records is how many records a worker commits in d, at most limit;
// false while no batch has been measured.
func (c *commitRate) records(d time.Duration, limit int) (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// Clamped before the conversion: a float past MaxInt64 has no int.
	return int(min(c.perSecond*d.Seconds(), float64(limit))), c.perSecond > 0
}

// batchLimit is the most records the next batch takes: what a worker
// commits in BatchCommitTime, within [minCutBatch, MaxBatch]; MaxBatch
// until a batch has been measured, or when BatchCommitTime is negative.
func (s *Server) batchLimit() int {
	floor := min(minCutBatch, s.MaxBatch)
	if s.BatchCommitTime < 0 || s.MaxBatch <= floor {
		return s.MaxBatch
	}
	n, measured := s.commitRate.records(s.BatchCommitTime, s.MaxBatch)
	if !measured {
		return s.MaxBatch
	}
	return max(n, floor)
}
