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
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"sync"
	"sync/atomic"

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
			return fmt.Errorf("encode record: %w", err)
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
		return errors.New("closed")
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
			return fmt.Errorf("write: %w", err)
		}
		size += int64(len(r.data))
		count += r.count
	}
	if err := s.active.Sync(); err != nil {
		return fmt.Errorf("fsync: %w", err)
	}
	s.durable[s.activeSeq] = size
	s.depth.Add(int64(count))
	return nil
}

// openActive starts appending to segment seq. Called with mu held.
func (s *Spool) openActive(seq uint64) error {
	f, err := os.OpenFile(s.segmentPath(seq), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open segment: %w", err)
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
