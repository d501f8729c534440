package routerostest

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func TestLengthEncodingBoundaries(t *testing.T) {
	tests := []struct {
		n    int
		want []byte
	}{
		{0, []byte{0x00}},
		{1, []byte{0x01}},
		{0x7F, []byte{0x7F}},
		{0x80, []byte{0x80, 0x80}},
		{0x3FFF, []byte{0xBF, 0xFF}},
		{0x4000, []byte{0xC0, 0x40, 0x00}},
		{0x1FFFFF, []byte{0xDF, 0xFF, 0xFF}},
		{0x200000, []byte{0xE0, 0x20, 0x00, 0x00}},
		{0xFFFFFFF, []byte{0xEF, 0xFF, 0xFF, 0xFF}},
		{0x10000000, []byte{0xF0, 0x10, 0x00, 0x00, 0x00}},
		{0x7FFFFFFF, []byte{0xF0, 0x7F, 0xFF, 0xFF, 0xFF}},
	}
	for _, tt := range tests {
		got := encodeLength(tt.n)
		if !bytes.Equal(got, tt.want) {
			t.Errorf("encodeLength(%#x) = % x, want % x", tt.n, got, tt.want)
		}
		n, err := readLength(bufio.NewReader(bytes.NewReader(tt.want)))
		switch {
		case tt.n > maxWordLen:
			if !errors.Is(err, errWordTooLong) {
				t.Errorf("readLength(% x) = %d, %v; want errWordTooLong", tt.want, n, err)
			}
		case err != nil || n != tt.n:
			t.Errorf("readLength(% x) = %d, %v; want %d", tt.want, n, err, tt.n)
		}
	}
}

func TestReadLengthRejectsControlBytes(t *testing.T) {
	for _, b := range []byte{0xF1, 0xF8, 0xFF} {
		_, err := readLength(bufio.NewReader(bytes.NewReader([]byte{b, 0, 0, 0, 0})))
		if !errors.Is(err, errBadLength) {
			t.Errorf("readLength(%#x) err = %v, want errBadLength", b, err)
		}
	}
}

// Round-trips words whose lengths sit on each side of every encoding
// boundary that fits under the word limit.
func TestSentenceRoundTrip(t *testing.T) {
	lengths := []int{0x7F, 0x80, 0x3FFF, 0x4000, 0x1FFFFF - 0x100000 - 1, maxWordLen}
	var words []string
	for _, n := range lengths {
		words = append(words, strings.Repeat("x", n))
	}
	words[0] = "/x" + words[0][2:]
	var buf bytes.Buffer
	if err := writeSentence(bufio.NewWriter(&buf), words); err != nil {
		t.Fatal(err)
	}
	got, err := readSentence(bufio.NewReader(&buf))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(words) {
		t.Fatalf("got %d words, want %d", len(got), len(words))
	}
	for i := range words {
		if got[i] != words[i] {
			t.Errorf("word %d: length %d, want %d", i, len(got[i]), len(words[i]))
		}
	}
}

func TestReadSentenceErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"clean EOF", nil, io.EOF},
		{"cut length", []byte{0x80}, io.ErrUnexpectedEOF},
		{"cut word", []byte{0x05, 'a'}, io.ErrUnexpectedEOF},
		{"no terminator", []byte{0x01, 'a'}, io.ErrUnexpectedEOF},
		{"oversized", []byte{0xE0, 0x20, 0x00, 0x00}, errWordTooLong},
		{"huge", []byte{0xF0, 0xFF, 0xFF, 0xFF, 0xFF}, errWordTooLong},
	}
	for _, tt := range tests {
		_, err := readSentence(bufio.NewReader(bytes.NewReader(tt.in)))
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
	}
}

func FuzzReadSentence(f *testing.F) {
	seed := func(words ...string) []byte {
		var buf bytes.Buffer
		if err := writeSentence(bufio.NewWriter(&buf), words); err != nil {
			f.Fatal(err)
		}
		return buf.Bytes()
	}
	f.Add(seed("/login", "=name=admin", "=password="))
	f.Add(seed("/ppp/active/print", "?name=a", "?#|", "=.proplist=.id,name", ".tag=7"))
	f.Add(seed(strings.Repeat("a", 200)))
	f.Add(seed(strings.Repeat("b", 0x4000)))
	f.Add([]byte{0})
	f.Add([]byte{0xF0, 0xFF, 0xFF, 0xFF, 0xFF})
	f.Add([]byte{0xF8})
	f.Add([]byte{0xC0, 0x00})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReader(bytes.NewReader(in))
		for {
			words, err := readSentence(r)
			if err != nil {
				return
			}
			// Whatever decodes must encode back to a sentence that
			// decodes to the same words.
			var buf bytes.Buffer
			if err := writeSentence(bufio.NewWriter(&buf), words); err != nil {
				t.Fatal(err)
			}
			again, err := readSentence(bufio.NewReader(&buf))
			if err != nil || len(again) != len(words) {
				t.Fatalf("re-read: %v, %d words, want %d", err, len(again), len(words))
			}
			// Exercise the query and request parsers on fuzzed words too.
			if len(words) > 0 {
				req := parseRequest(words)
				_, _ = match(req.queries, row{{"name", "a"}, {"rx-byte", "10"}})
			}
		}
	})
}

// FuzzServe feeds arbitrary bytes to a connection handler, logged in or
// not, and checks that it neither panics nor hangs.
func FuzzServe(f *testing.F) {
	seed := func(sentences ...[]string) []byte {
		var buf bytes.Buffer
		w := bufio.NewWriter(&buf)
		for _, s := range sentences {
			if err := writeSentence(w, s); err != nil {
				f.Fatal(err)
			}
		}
		return buf.Bytes()
	}
	login := []string{"/login", "=name=admin", "=password="}
	f.Add(seed(login, []string{"/ppp/active/print", "?name=a", "?#|!", "=.proplist=name"}))
	f.Add(seed(login, []string{"/ppp/active/remove", "=.id=*10,*99"}))
	f.Add(seed(login, []string{"/interface/listen", ".tag=1"}, []string{"/cancel", "=tag=1"}))
	f.Add(seed(login, []string{"/ppp/active/print", "=interval=0.01"}, []string{"/cancel"}))
	f.Add(seed([]string{"/login"}, []string{"/login", "=name=admin", "=response=00"}))
	f.Add(seed(login, []string{"/ppp/secret/print", "=count-only="}, []string{"/quit"}))
	f.Fuzz(func(t *testing.T, in []byte) {
		s := &Server{LegacyLogin: len(in)%2 == 1, EmptyReplies: true}
		s.mu.Lock()
		s.initLocked()
		s.mu.Unlock()
		s.BootTime = time.Now()
		s.SetSession(Session{Name: "a", SessionID: 1})
		s.SetSecret(Secret{Name: "b"})
		client, server := net.Pipe()
		c := newConn(s, server)
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go c.serve()
		go io.Copy(io.Discard, client)
		client.SetWriteDeadline(time.Now().Add(2 * time.Second))
		client.Write(in)
		client.Close()
		done := make(chan struct{})
		go func() { s.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("server did not stop")
		}
	})
}
