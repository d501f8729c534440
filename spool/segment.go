package spool

import (
	"bufio"
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

	"github.com/nettportal/nettportal"
)

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
		return 0, fmt.Errorf("%w", err)
	}
	return st.Size(), nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	return nil
}
