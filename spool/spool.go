// Package spool is NettPortal's durable local spool: when PostgreSQL cannot
// commit in time, accounting records are appended to an fsync'd log and
// acknowledged, then replayed into the database, in order, once it is back.
//
// The log is a directory of segment files. Each record is framed as
// [4-byte length][4-byte CRC-32C][JSON payload]; the payload is versioned,
// with explicit field names (see format.go). A checkpoint file says how far
// replay has committed; a crash during replay re-applies at most one chunk,
// which the accounting rules make harmless (every record is idempotent). A
// torn record at the end of the last segment (a crash during a write) was
// never acknowledged, so opening the spool truncates it.
package spool

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/nettportal/nettportal"
)

const (
	segmentPrefix  = "segment-"
	segmentSuffix  = ".log"
	checkpointName = "checkpoint"
	headerSize     = 8
	// maxRecordSize rejects garbage lengths when reading a damaged file.
	maxRecordSize = 1 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Spool is an open spool directory. Create it with Open.
type Spool struct {
	dir         string
	log         zerolog.Logger
	segmentSize int64

	appends chan appendReq
	closed  chan struct{}
	wg      sync.WaitGroup

	// mu guards the segment list and the active file; the writer goroutine
	// and the replayer take it.
	mu        sync.Mutex
	active    *os.File
	activeSeq uint64
	// durable is the size of each segment known to be on disk.
	durable map[uint64]int64
	cp      checkpoint

	depth atomic.Int64
	// replayed counts replayed records by the store's result.
	replayed [nettportal.NumOutcomes]atomic.Uint64
	// replayMu makes Replay single-flight.
	replayMu sync.Mutex
}

type checkpoint struct {
	Seq    uint64 // segment being replayed
	Offset int64  // bytes of it already committed to the database
}

type appendReq struct {
	data  []byte
	count int
	done  chan error
}

// Open opens (creating if needed) the spool in dir, truncates a torn tail
// and counts the records still to replay.
func Open(dir string, log zerolog.Logger) (*Spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	s := &Spool{dir: dir, log: log, segmentSize: 64 << 20, durable: map[uint64]int64{},
		appends: make(chan appendReq, 256), closed: make(chan struct{})}
	cp, err := s.readCheckpoint()
	if err != nil {
		return nil, err
	}
	s.cp = cp
	seqs, err := s.segments()
	if err != nil {
		return nil, err
	}
	var depth int64
	for i, seq := range seqs {
		if seq < cp.Seq {
			// Fully replayed before a crash prevented its removal.
			os.Remove(s.segmentPath(seq))
			continue
		}
		n, good, err := scanSegment(s.segmentPath(seq))
		if err != nil {
			return nil, err
		}
		size, err := fileSize(s.segmentPath(seq))
		if err != nil {
			return nil, err
		}
		if good < size {
			if i != len(seqs)-1 {
				// Only the last segment can have been written when we
				// crashed; damage elsewhere is not ours to repair.
				return nil, fmt.Errorf("open spool: segment %d is damaged at byte %d of %d; move it aside and replay it by hand", seq, good, size)
			}
			log.Warn().Uint64("segment", seq).Int64("at", good).Int64("size", size).Msg("spool: truncating a torn record (never acknowledged)")
			if err := os.Truncate(s.segmentPath(seq), good); err != nil {
				return nil, fmt.Errorf("open spool: truncate torn tail: %w", err)
			}
		}
		s.durable[seq] = good
		if seq == cp.Seq {
			skipped, err := countRecords(s.segmentPath(seq), cp.Offset)
			if err != nil {
				return nil, err
			}
			n -= skipped
		}
		depth += int64(n)
	}
	s.depth.Store(depth)
	next := uint64(1)
	if len(seqs) > 0 {
		next = seqs[len(seqs)-1] + 1
	}
	if cp.Seq >= next {
		next = cp.Seq + 1
	}
	if err := s.openActive(next); err != nil {
		return nil, err
	}
	if depth > 0 {
		log.Warn().Int64("records", depth).Msg("spool has records to replay into the database")
	}
	s.wg.Add(1)
	go s.writer()
	return s, nil
}

// SetSegmentSize sets the size after which appends start a new segment
// (default 64 MiB).
func (s *Spool) SetSegmentSize(n int64) {
	s.mu.Lock()
	s.segmentSize = n
	s.mu.Unlock()
}

// Depth is the number of records waiting to be replayed.
func (s *Spool) Depth() int64 { return s.depth.Load() }

// Append writes records durably: it returns after they are fsync'd. Calls
// from several goroutines share one fsync (group commit).
func (s *Spool) Append(recs []nettportal.AccountingRecord) error {
	if len(recs) == 0 {
		return nil
	}
	var buf []byte
	for i := range recs {
		payload, err := encodeRecord(&recs[i])
		if err != nil {
			return fmt.Errorf("spool: encode record: %w", err)
		}
		var h [headerSize]byte
		binary.BigEndian.PutUint32(h[0:4], uint32(len(payload)))
		binary.BigEndian.PutUint32(h[4:8], crc32.Checksum(payload, castagnoli))
		buf = append(buf, h[:]...)
		buf = append(buf, payload...)
	}
	req := appendReq{data: buf, count: len(recs), done: make(chan error, 1)}
	select {
	case s.appends <- req:
	case <-s.closed:
		return errors.New("spool: closed")
	}
	return <-req.done
}

// writer owns the active segment: it writes every queued append, fsyncs
// once, then answers them all.
func (s *Spool) writer() {
	defer s.wg.Done()
	for {
		var reqs []appendReq
		select {
		case r := <-s.appends:
			reqs = append(reqs, r)
		case <-s.closed:
			return
		}
	drain:
		for {
			select {
			case r := <-s.appends:
				reqs = append(reqs, r)
			default:
				break drain
			}
		}
		err := s.writeAndSync(reqs)
		for _, r := range reqs {
			r.done <- err
		}
	}
}

func (s *Spool) writeAndSync(reqs []appendReq) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.durable[s.activeSeq] >= s.segmentSize {
		if err := s.openActive(s.activeSeq + 1); err != nil {
			return err
		}
	}
	size := s.durable[s.activeSeq]
	count := 0
	for _, r := range reqs {
		if _, err := s.active.Write(r.data); err != nil {
			// Cut what may have been half written, so the file stays
			// readable; none of these records is acknowledged.
			s.active.Truncate(size)
			s.active.Seek(size, io.SeekStart)
			return fmt.Errorf("spool: write: %w", err)
		}
		size += int64(len(r.data))
		count += r.count
	}
	if err := s.active.Sync(); err != nil {
		return fmt.Errorf("spool: fsync: %w", err)
	}
	s.durable[s.activeSeq] = size
	s.depth.Add(int64(count))
	return nil
}

// openActive starts appending to segment seq. Called with mu held.
func (s *Spool) openActive(seq uint64) error {
	f, err := os.OpenFile(s.segmentPath(seq), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("spool: open segment: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		f.Close()
		return err
	}
	if s.active != nil {
		s.active.Close()
	}
	size, err := fileSize(s.segmentPath(seq))
	if err != nil {
		f.Close()
		return err
	}
	s.active, s.activeSeq = f, seq
	s.durable[seq] = size
	return nil
}

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
			return applied, fmt.Errorf("spool: replay %d records: %w", len(recs), err)
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

// Close stops the writer. Records appended before Close are durable.
func (s *Spool) Close() error {
	select {
	case <-s.closed:
		return nil
	default:
	}
	close(s.closed)
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active.Close()
}

func (s *Spool) segmentPath(seq uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%s%016d%s", segmentPrefix, seq, segmentSuffix))
}

func (s *Spool) segments() ([]uint64, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("list spool: %w", err)
	}
	var seqs []uint64
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, segmentPrefix) || !strings.HasSuffix(name, segmentSuffix) {
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, segmentPrefix), segmentSuffix), 10, 64)
		if err != nil {
			continue
		}
		seqs = append(seqs, seq)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	return seqs, nil
}

func (s *Spool) readCheckpoint() (checkpoint, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, checkpointName))
	if errors.Is(err, os.ErrNotExist) {
		return checkpoint{Seq: 1}, nil
	}
	if err != nil {
		return checkpoint{}, fmt.Errorf("read spool checkpoint: %w", err)
	}
	var cp checkpoint
	if _, err := fmt.Sscanf(string(b), "%d %d", &cp.Seq, &cp.Offset); err != nil {
		return checkpoint{}, fmt.Errorf("read spool checkpoint %q: %w", b, err)
	}
	return cp, nil
}

// saveCheckpoint replaces the checkpoint atomically and durably.
func (s *Spool) saveCheckpoint(cp checkpoint) error {
	tmp := filepath.Join(s.dir, checkpointName+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write spool checkpoint: %w", err)
	}
	if _, err := fmt.Fprintf(f, "%d %d\n", cp.Seq, cp.Offset); err != nil {
		f.Close()
		return fmt.Errorf("write spool checkpoint: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write spool checkpoint: %w", err)
	}
	f.Close()
	if err := os.Rename(tmp, filepath.Join(s.dir, checkpointName)); err != nil {
		return fmt.Errorf("write spool checkpoint: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		return err
	}
	s.mu.Lock()
	s.cp = cp
	s.mu.Unlock()
	return nil
}

// scanSegment counts the whole, valid records of a segment and returns the
// byte offset where they end.
func scanSegment(path string) (n int, good int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, fmt.Errorf("scan spool segment: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<16)
	for {
		_, size, err := readRecord(r)
		if err != nil {
			return n, good, nil
		}
		n++
		good += size
	}
}

func countRecords(path string, upTo int64) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("scan spool segment: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(io.LimitReader(f, upTo), 1<<16)
	n := 0
	for {
		if _, _, err := readRecord(r); err != nil {
			return n, nil
		}
		n++
	}
}

// readChunk reads up to max records of a segment from offset, not past end.
func readChunk(path string, offset, end int64, max int) ([]nettportal.AccountingRecord, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("read spool segment: %w", err)
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil, 0, fmt.Errorf("read spool segment: %w", err)
	}
	r := bufio.NewReaderSize(io.LimitReader(f, end-offset), 1<<16)
	var recs []nettportal.AccountingRecord
	pos := offset
	for len(recs) < max {
		payload, size, err := readRecord(r)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, 0, fmt.Errorf("read spool segment %s at %d: %w", filepath.Base(path), pos, err)
		}
		rec, err := decodeRecord(payload)
		if err != nil {
			return nil, 0, fmt.Errorf("decode spool record in %s at %d: %w", filepath.Base(path), pos, err)
		}
		recs = append(recs, rec)
		pos += size
	}
	return recs, pos, nil
}

var errTorn = errors.New("torn or damaged record")

func readRecord(r io.Reader) ([]byte, int64, error) {
	var h [headerSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, 0, io.EOF
		}
		return nil, 0, errTorn
	}
	n := binary.BigEndian.Uint32(h[0:4])
	if n == 0 || n > maxRecordSize {
		return nil, 0, errTorn
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return nil, 0, errTorn
	}
	if crc32.Checksum(payload, castagnoli) != binary.BigEndian.Uint32(h[4:8]) {
		return nil, 0, errTorn
	}
	return payload, int64(headerSize) + int64(n), nil
}

func fileSize(path string) (int64, error) {
	st, err := os.Stat(path)
	if err != nil {
		return 0, fmt.Errorf("spool: %w", err)
	}
	return st.Size(), nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("spool: sync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("spool: sync directory: %w", err)
	}
	return nil
}
