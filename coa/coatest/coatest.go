// Package coatest runs a small RFC 5176 responder on 127.0.0.1 for tests of
// Disconnect and CoA clients. It checks requests like a strict router would
// (with coa.VerifyRequest, Message-Authenticator required) and signs answers
// with coa.EncodeResponse, and it can misbehave on purpose: stay silent,
// drop the first datagrams, or sign with the wrong secret.
package coatest

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc3576"

	"github.com/nettportal/nettportal/coa"
)

// Handler decides the answer to a verified request. It returns the response
// packet (usually built with req.Response), or nil to stay silent.
type Handler func(req *radius.Packet) *radius.Packet

// ACK answers every request with the matching ACK code.
func ACK(req *radius.Packet) *radius.Packet {
	if req.Code == radius.CodeCoARequest {
		return req.Response(radius.CodeCoAACK)
	}
	return req.Response(radius.CodeDisconnectACK)
}

// NAK returns a Handler answering every request with the matching NAK code
// carrying the given Error-Cause.
func NAK(cause rfc3576.ErrorCause) Handler {
	return func(req *radius.Packet) *radius.Packet {
		code := radius.CodeDisconnectNAK
		if req.Code == radius.CodeCoARequest {
			code = radius.CodeCoANAK
		}
		resp := req.Response(code)
		// A fresh packet has no Error-Cause, so Add cannot duplicate one.
		_ = rfc3576.ErrorCause_Add(resp, cause)
		return resp
	}
}

// Option changes how a Server behaves.
type Option func(*Server)

// DropFirst makes the server ignore the first n valid requests, as a lossy
// path would, so clients must retransmit.
func DropFirst(n int) Option { return func(s *Server) { s.dropFirst = n } }

// Ignore makes the server record requests and never answer.
func Ignore() Option { return func(s *Server) { s.ignore = true } }

// ResponseSecret makes the server sign its answers with another secret, as a
// misconfigured router or a forger would. Requests are still checked with
// the server's own secret.
func ResponseSecret(secret string) Option {
	return func(s *Server) { s.respSecret = []byte(secret) }
}

// Request is one datagram the server received.
type Request struct {
	At   time.Time
	From netip.AddrPort
	Raw  []byte
	// Packet is the parsed request; nil when it did not parse.
	Packet *radius.Packet
	// Err is the verification error; such requests are never answered.
	Err error
	// Answered reports whether the server sent a response.
	Answered bool
}

// Server is a running responder. Close it when done.
type Server struct {
	conn       *net.UDPConn
	secret     []byte
	respSecret []byte
	handler    Handler
	dropFirst  int
	ignore     bool
	done       chan struct{}

	mu       sync.Mutex
	requests []Request
	valid    int
}

// NewServer starts a responder on a free port of 127.0.0.1 checking
// requests with secret. A nil handler means ACK.
func NewServer(secret string, handler Handler, opts ...Option) (*Server, error) {
	if handler == nil {
		handler = ACK
	}
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	s := &Server{
		conn:    conn,
		secret:  []byte(secret),
		handler: handler,
		done:    make(chan struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	if s.respSecret == nil {
		s.respSecret = s.secret
	}
	go s.serve()
	return s, nil
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return s.conn.LocalAddr().String() }

// Requests returns a copy of every datagram received so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Close stops the server and waits for its goroutine.
func (s *Server) Close() error {
	err := s.conn.Close()
	<-s.done
	if err != nil {
		return fmt.Errorf("close: %w", err)
	}
	return nil
}

func (s *Server) serve() {
	defer close(s.done)
	buf := make([]byte, radius.MaxPacketLength)
	for {
		n, from, err := s.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		raw := append([]byte(nil), buf[:n]...)
		r := Request{At: time.Now(), From: from, Raw: raw}
		r.Err = coa.VerifyRequest(raw, s.secret)
		if p, err := radius.Parse(raw, s.secret); err == nil {
			r.Packet = p
		} else if r.Err == nil {
			r.Err = err
		}
		resp := s.answer(&r)
		// Recorded before the answer goes out: a client that has its
		// answer must find its request in Requests.
		s.mu.Lock()
		i := len(s.requests)
		s.requests = append(s.requests, r)
		s.mu.Unlock()
		if resp != nil {
			if _, err := s.conn.WriteToUDPAddrPort(resp, from); err == nil {
				s.mu.Lock()
				s.requests[i].Answered = true
				s.mu.Unlock()
			}
		}
	}
}

// answer returns the encoded response to r, or nil to stay silent.
func (s *Server) answer(r *Request) []byte {
	if r.Err != nil || s.ignore {
		return nil
	}
	s.mu.Lock()
	s.valid++
	drop := s.valid <= s.dropFirst
	s.mu.Unlock()
	if drop {
		return nil
	}
	resp := s.handler(r.Packet)
	if resp == nil {
		return nil
	}
	resp.Secret = s.respSecret
	b, err := coa.EncodeResponse(resp, r.Raw)
	if err != nil {
		r.Err = fmt.Errorf("encode response: %w", err)
		return nil
	}
	return b
}
