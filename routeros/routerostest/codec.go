package routerostest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// Limits that keep a hostile or broken peer from making the fake allocate
// without bound; real routers reject far smaller sentences than these.
const (
	maxWordLen       = 1 << 20
	maxSentenceWords = 4096
	maxSentenceBytes = 8 << 20
)

var (
	errWordTooLong     = errors.New("word longer than 1 MiB")
	errSentenceTooLong = errors.New("sentence too long")
	errBadLength       = errors.New("reserved length prefix")
)

// encodeLength returns the RouterOS length prefix of a word of n bytes.
func encodeLength(n int) []byte {
	switch {
	case n < 0x80:
		return []byte{byte(n)}
	case n < 0x4000:
		return []byte{byte(n>>8) | 0x80, byte(n)}
	case n < 0x200000:
		return []byte{byte(n>>16) | 0xC0, byte(n >> 8), byte(n)}
	case n < 0x10000000:
		return []byte{byte(n>>24) | 0xE0, byte(n >> 16), byte(n >> 8), byte(n)}
	default:
		return []byte{0xF0, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
	}
}

// readLength decodes one length prefix. Bytes 0xF1-0xFF are control bytes
// in the protocol; we never expect them from a client, so they are errors.
func readLength(r *bufio.Reader) (int, error) {
	b0, err := r.ReadByte()
	if err != nil {
		return 0, err
	}
	var extra int
	var n int
	switch {
	case b0&0x80 == 0:
		return int(b0), nil
	case b0&0xC0 == 0x80:
		extra, n = 1, int(b0&0x3F)
	case b0&0xE0 == 0xC0:
		extra, n = 2, int(b0&0x1F)
	case b0&0xF0 == 0xE0:
		extra, n = 3, int(b0&0x0F)
	case b0 == 0xF0:
		extra = 4
	default:
		return 0, fmt.Errorf("%w 0x%02x", errBadLength, b0)
	}
	for range extra {
		b, err := r.ReadByte()
		if err != nil {
			return 0, noEOF(err)
		}
		// Checked per byte so the 5-byte form cannot overflow an int on
		// 32-bit platforms before the limit test.
		n = n<<8 | int(b)
		if n > maxWordLen {
			return 0, errWordTooLong
		}
	}
	return n, nil
}

// noEOF turns an EOF in the middle of a sentence into ErrUnexpectedEOF, so
// a clean disconnect between sentences stays distinguishable from a cut one.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// readSentence reads words up to the terminating empty word. An empty
// sentence (a lone zero byte) yields no words, which RouterOS ignores.
func readSentence(r *bufio.Reader) ([]string, error) {
	var words []string
	total := 0
	for {
		n, err := readLength(r)
		if err != nil {
			if len(words) > 0 {
				err = noEOF(err)
			}
			return nil, fmt.Errorf("read word length: %w", err)
		}
		if n == 0 {
			return words, nil
		}
		total += n
		if len(words) >= maxSentenceWords || total > maxSentenceBytes {
			return nil, errSentenceTooLong
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, fmt.Errorf("read word: %w", noEOF(err))
		}
		words = append(words, string(b))
	}
}

// writeSentence writes words and the terminating empty word, then flushes.
func writeSentence(w *bufio.Writer, words []string) error {
	for _, word := range words {
		if _, err := w.Write(encodeLength(len(word))); err != nil {
			return fmt.Errorf("write word length: %w", err)
		}
		if _, err := w.WriteString(word); err != nil {
			return fmt.Errorf("write word: %w", err)
		}
	}
	if err := w.WriteByte(0); err != nil {
		return fmt.Errorf("write sentence end: %w", err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("flush sentence: %w", err)
	}
	return nil
}
