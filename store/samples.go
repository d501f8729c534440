package store

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/nettportal/nettportal"
)

// Sampler keeps the counters of interim updates for the session rate chart.
// Chart points are not billing data, so they stay off the acknowledgement
// path: Add only copies into a bounded buffer, and a background loop writes
// the buffer in large batches. Under overload points are dropped and
// counted, never the accounting itself.
type Sampler struct {
	DB *DB
	// MinInterval is the chart's resolution: a session gets at most one
	// point per interval. Zero: 30s.
	MinInterval time.Duration
	// Buffer bounds the points waiting to be written. Zero: 100000.
	Buffer int
	// MaxRate bounds the points written per second, so chart writes can
	// never take the database from accounting: a fleet of 100,000 sessions
	// at 5-minute interims makes 333 a second; a reconnect storm makes far
	// more, and then charts thin out. Zero: 2000.
	MaxRate int
	// FlushEvery is how often the buffer is written. Zero: 200ms: small,
	// frequent writes keep the chart from stalling accounting commits.
	FlushEvery time.Duration
	// FlushMax bounds the points in one write. Zero: 2000.
	FlushMax int
	Log      zerolog.Logger

	// Dropped counts points lost to a full buffer or a failed write.
	Dropped atomic.Uint64

	mu      sync.Mutex
	pending []sample
	last    map[string]time.Time // acctuniqueid -> time of its last point
	wake    chan struct{}
}

type sample struct {
	uniqueID string
	at       time.Time
	in, out  int64
}

func (s *Sampler) init() {
	if s.last == nil {
		s.last = make(map[string]time.Time)
		s.wake = make(chan struct{}, 1)
		if s.MinInterval <= 0 {
			s.MinInterval = 30 * time.Second
		}
		if s.Buffer <= 0 {
			s.Buffer = 100000
		}
		if s.FlushEvery <= 0 {
			s.FlushEvery = 200 * time.Millisecond
		}
		if s.FlushMax <= 0 {
			s.FlushMax = 2000
		}
		if s.MaxRate <= 0 {
			s.MaxRate = 2000
		}
	}
}

// Add takes the points of a committed batch. It never blocks on the database.
func (s *Sampler) Add(batch []nettportal.AccountingRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	for i := range batch {
		r := &batch[i]
		switch r.Status {
		case nettportal.StatusInterimUpdate, nettportal.StatusStop:
		default:
			continue
		}
		if r.InputOctets == nil || r.OutputOctets == nil {
			continue
		}
		last, seen := s.last[r.UniqueID]
		if r.Status == nettportal.StatusStop {
			delete(s.last, r.UniqueID)
		} else if seen && r.EventTime.Sub(last) < s.MinInterval {
			continue
		} else {
			s.last[r.UniqueID] = r.EventTime
		}
		if len(s.pending) >= min(s.Buffer, s.perFlush()) {
			s.Dropped.Add(1)
			continue
		}
		s.pending = append(s.pending, sample{r.UniqueID, r.EventTime, int64(*r.InputOctets), int64(*r.OutputOctets)})
	}
}

// perFlush is how many points one flush may write under MaxRate.
func (s *Sampler) perFlush() int {
	return max(1, int(float64(s.MaxRate)*s.FlushEvery.Seconds()))
}

// Run writes buffered points until ctx ends, then writes what is left.
func (s *Sampler) Run(ctx context.Context) {
	s.mu.Lock()
	s.init()
	s.mu.Unlock()
	tick := time.NewTicker(s.FlushEvery)
	defer tick.Stop()
	var reported uint64
	lastReport := time.Now()
	for {
		if time.Since(lastReport) >= time.Minute {
			if d := s.Dropped.Load(); d > reported {
				s.Log.Info().Uint64("points", d-reported).Int("max_per_second", s.MaxRate).Msg("rate chart thinned: more updates than its write budget")
				reported = d
			}
			lastReport = time.Now()
		}
		select {
		case <-ctx.Done():
			flushCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			s.Flush(flushCtx)
			cancel()
			return
		case <-tick.C:
			s.Flush(ctx)
		}
	}
}

// Flush writes the buffered points now, in writes of at most FlushMax.
func (s *Sampler) Flush(ctx context.Context) {
	s.mu.Lock()
	s.init()
	batch := s.pending
	s.pending = nil
	// Sessions that vanished without a Stop would stay in the map forever.
	if len(s.last) > 4*s.Buffer {
		clear(s.last)
	}
	s.mu.Unlock()
	for len(batch) > 0 {
		n := min(len(batch), s.FlushMax)
		s.write(ctx, batch[:n])
		batch = batch[n:]
	}
}

func (s *Sampler) write(ctx context.Context, batch []sample) {
	sort.Slice(batch, func(i, j int) bool { return batch[i].uniqueID < batch[j].uniqueID })
	ids := make([]string, len(batch))
	at := make([]time.Time, len(batch))
	in := make([]int64, len(batch))
	out := make([]int64, len(batch))
	for i, p := range batch {
		ids[i], at[i], in[i], out[i] = p.uniqueID, p.at, p.in, p.out
	}
	_, err := s.DB.Pool.Exec(ctx, `INSERT INTO session_samples (acctuniqueid, at, input_octets, output_octets)
		SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::bigint[], $4::bigint[])
		ON CONFLICT DO NOTHING`, ids, at, in, out)
	if err != nil {
		s.Dropped.Add(uint64(len(batch)))
		s.Log.Warn().Err(err).Int("points", len(batch)).Msg("write rate samples")
	}
}

// PruneSamples deletes chart points older than keep.
func (db *DB) PruneSamples(ctx context.Context, keep time.Duration) (int64, error) {
	tag, err := db.Pool.Exec(ctx, "DELETE FROM session_samples WHERE at < now() - make_interval(secs => $1)", keep.Seconds())
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}
