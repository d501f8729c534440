package coa

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"

	"layeh.com/radius"
	"layeh.com/radius/rfc2869"
)

// Errors from VerifyRequest and VerifyResponse. Callers tell them apart with
// errors.Is; every returned error wraps one of them.
var (
	// ErrMalformed means the datagram is not a well-formed RADIUS packet
	// of the expected kind.
	ErrMalformed = errors.New("malformed packet")
	// ErrBadAuthenticator means the Request or Response Authenticator does
	// not match: wrong secret, or a forged or corrupted packet.
	ErrBadAuthenticator = errors.New("bad authenticator")
	// ErrBadMessageAuthenticator means a Message-Authenticator is present
	// but its HMAC does not match.
	ErrBadMessageAuthenticator = errors.New("bad Message-Authenticator")
	// ErrNoMessageAuthenticator means the packet is otherwise authentic but
	// carries no Message-Authenticator. VerifyRequest returns it only after
	// the Request Authenticator has been checked, so a caller that accepts
	// such requests may ignore it.
	ErrNoMessageAuthenticator = errors.New("no Message-Authenticator")
)

const (
	headerLen = 20
	authLen   = 16
	// maLen is the wire length of a Message-Authenticator attribute: type,
	// length and a 16-octet HMAC-MD5 (RFC 3579 3.2).
	maLen = 2 + authLen
)

// EncodeRequest encodes a Disconnect-Request or CoA-Request signed with
// p.Secret: it replaces any Message-Authenticator in p with a fresh one and
// fills the Request Authenticator. p itself is not modified; p.Authenticator
// is ignored because RFC 5176 requests derive it from the packet.
//
// RFC 5176 3.5 fixes the order: the HMAC is taken over the packet with a zero
// Authenticator field, and the Request Authenticator (RFC 5176 2.3) then
// covers the finished Message-Authenticator.
func EncodeRequest(p *radius.Packet) ([]byte, error) {
	if p == nil {
		return nil, errors.New("encode request: nil packet")
	}
	if !isRequest(p.Code) {
		return nil, fmt.Errorf("encode request: code %v is not a Disconnect-Request or CoA-Request", p.Code)
	}
	if len(p.Secret) == 0 {
		return nil, errors.New("encode request: empty secret")
	}
	q := withZeroMessageAuthenticator(p)
	q.Authenticator = [authLen]byte{}
	b, err := q.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	if err := signMessageAuthenticator(b, p.Secret); err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	auth := requestAuthenticator(b, p.Secret)
	copy(b[4:headerLen], auth[:])
	return b, nil
}

// VerifyRequest checks a received Disconnect-Request or CoA-Request: its
// Request Authenticator, then its Message-Authenticator. A request without
// Message-Authenticator yields ErrNoMessageAuthenticator (wrapped); all
// other failures mean the packet must be dropped. Octets after the RADIUS
// Length are ignored as RFC 2865 3 requires.
func VerifyRequest(raw []byte, secret []byte) error {
	b, err := packetBytes(raw)
	if err != nil {
		return fmt.Errorf("verify request: %w", err)
	}
	if !isRequest(radius.Code(b[0])) {
		return fmt.Errorf("verify request: %w: code %v is not a Disconnect-Request or CoA-Request", ErrMalformed, radius.Code(b[0]))
	}
	if len(secret) == 0 {
		return errors.New("verify request: empty secret")
	}
	off, err := findMessageAuthenticator(b)
	if err != nil {
		return fmt.Errorf("verify request: %w", err)
	}
	want := requestAuthenticator(b, secret)
	if subtle.ConstantTimeCompare(want[:], b[4:headerLen]) != 1 {
		return fmt.Errorf("verify request: %w", ErrBadAuthenticator)
	}
	if off < 0 {
		return fmt.Errorf("verify request: %w", ErrNoMessageAuthenticator)
	}
	var zero [authLen]byte
	if !messageAuthenticatorValid(b, off, zero, secret) {
		return fmt.Errorf("verify request: %w", ErrBadMessageAuthenticator)
	}
	return nil
}

// EncodeResponse encodes a Disconnect-ACK/NAK or CoA-ACK/NAK answering the
// encoded request, signed with resp.Secret. Any Message-Authenticator in resp
// is replaced by a fresh one; resp is not modified. resp.Identifier must be
// the request's (radius.Packet.Response does that) and resp.Code must answer
// the request's code.
//
// The HMAC is taken with the request's authenticator in the Authenticator
// field (RFC 5176 3.5), and the Response Authenticator then covers it.
func EncodeResponse(resp *radius.Packet, request []byte) ([]byte, error) {
	if resp == nil {
		return nil, errors.New("encode response: nil packet")
	}
	req, err := packetBytes(request)
	if err != nil {
		return nil, fmt.Errorf("encode response: request: %w", err)
	}
	if !answers(radius.Code(req[0]), resp.Code) {
		return nil, fmt.Errorf("encode response: code %v does not answer %v", resp.Code, radius.Code(req[0]))
	}
	if resp.Identifier != req[1] {
		return nil, fmt.Errorf("encode response: identifier %d does not match request identifier %d", resp.Identifier, req[1])
	}
	if len(resp.Secret) == 0 {
		return nil, errors.New("encode response: empty secret")
	}
	q := withZeroMessageAuthenticator(resp)
	copy(q.Authenticator[:], req[4:headerLen])
	b, err := q.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("encode response: %w", err)
	}
	if err := signMessageAuthenticator(b, resp.Secret); err != nil {
		return nil, fmt.Errorf("encode response: %w", err)
	}
	auth := responseAuthenticator(b, req[4:headerLen], resp.Secret)
	copy(b[4:headerLen], auth[:])
	return b, nil
}

// VerifyResponse checks that raw is an authentic answer to the encoded
// request: matching identifier, an ACK or NAK for the request's code, the
// Response Authenticator, and the Message-Authenticator when present.
// RFC 5176 does not require Message-Authenticator in responses, so its
// absence is not an error here.
func VerifyResponse(raw, request []byte, secret []byte) error {
	req, err := packetBytes(request)
	if err != nil {
		return fmt.Errorf("verify response: request: %w", err)
	}
	if len(secret) == 0 {
		return errors.New("verify response: empty secret")
	}
	b, err := packetBytes(raw)
	if err != nil {
		return fmt.Errorf("verify response: %w", err)
	}
	if !answers(radius.Code(req[0]), radius.Code(b[0])) {
		return fmt.Errorf("verify response: %w: code %v does not answer %v", ErrMalformed, radius.Code(b[0]), radius.Code(req[0]))
	}
	if b[1] != req[1] {
		return fmt.Errorf("verify response: %w: identifier %d, request identifier %d", ErrMalformed, b[1], req[1])
	}
	off, err := findMessageAuthenticator(b)
	if err != nil {
		return fmt.Errorf("verify response: %w", err)
	}
	want := responseAuthenticator(b, req[4:headerLen], secret)
	if subtle.ConstantTimeCompare(want[:], b[4:headerLen]) != 1 {
		return fmt.Errorf("verify response: %w", ErrBadAuthenticator)
	}
	if off >= 0 {
		var reqAuth [authLen]byte
		copy(reqAuth[:], req[4:headerLen])
		if !messageAuthenticatorValid(b, off, reqAuth, secret) {
			return fmt.Errorf("verify response: %w", ErrBadMessageAuthenticator)
		}
	}
	return nil
}

func isRequest(c radius.Code) bool {
	return c == radius.CodeDisconnectRequest || c == radius.CodeCoARequest
}

// answers reports whether resp is a valid reply code for req.
func answers(req, resp radius.Code) bool {
	switch req {
	case radius.CodeDisconnectRequest:
		return resp == radius.CodeDisconnectACK || resp == radius.CodeDisconnectNAK
	case radius.CodeCoARequest:
		return resp == radius.CodeCoAACK || resp == radius.CodeCoANAK
	}
	return false
}

// packetBytes validates the RADIUS header of raw and returns the packet
// without trailing padding.
func packetBytes(raw []byte) ([]byte, error) {
	if len(raw) < headerLen {
		return nil, fmt.Errorf("%w: %d octets, shorter than a RADIUS header", ErrMalformed, len(raw))
	}
	n := int(binary.BigEndian.Uint16(raw[2:4]))
	if n < headerLen || n > radius.MaxPacketLength || n > len(raw) {
		return nil, fmt.Errorf("%w: Length %d with %d octets received", ErrMalformed, n, len(raw))
	}
	return raw[:n], nil
}

// withZeroMessageAuthenticator returns a shallow copy of p whose attributes
// start with a zero-filled Message-Authenticator. First position follows the
// BlastRADIUS (CVE-2024-3596) hardening advice; it costs nothing here.
func withZeroMessageAuthenticator(p *radius.Packet) *radius.Packet {
	q := &radius.Packet{Code: p.Code, Identifier: p.Identifier, Secret: p.Secret}
	// The generated helper only appends, so build the list with it on an
	// empty packet and add p's other attributes after it.
	_ = rfc2869.MessageAuthenticator_Add(q, make([]byte, authLen)) // 16 octets always fit
	rest := &radius.Packet{Attributes: append(radius.Attributes(nil), p.Attributes...)}
	rfc2869.MessageAuthenticator_Del(rest)
	q.Attributes = append(q.Attributes, rest.Attributes...)
	return q
}

// findMessageAuthenticator walks the attributes of a validated packet and
// returns the offset of the Message-Authenticator attribute, or -1. More than
// one, or one of the wrong length, makes the packet malformed (RFC 3579 3.2).
func findMessageAuthenticator(b []byte) (int, error) {
	off := -1
	for i := headerLen; i < len(b); {
		if len(b)-i < 2 {
			return -1, fmt.Errorf("%w: truncated attribute at offset %d", ErrMalformed, i)
		}
		l := int(b[i+1])
		if l < 2 || i+l > len(b) {
			return -1, fmt.Errorf("%w: attribute length %d at offset %d", ErrMalformed, l, i)
		}
		if radius.Type(b[i]) == rfc2869.MessageAuthenticator_Type {
			if off >= 0 {
				return -1, fmt.Errorf("%w: more than one Message-Authenticator", ErrMalformed)
			}
			if l != maLen {
				return -1, fmt.Errorf("%w: Message-Authenticator length %d", ErrMalformed, l)
			}
			off = i
		}
		i += l
	}
	return off, nil
}

// messageAuthenticator computes the HMAC-MD5 of b as it would be with the
// given Authenticator field and a zero Message-Authenticator value at off.
func messageAuthenticator(b []byte, off int, authField [authLen]byte, secret []byte) [authLen]byte {
	tmp := make([]byte, len(b))
	copy(tmp, b)
	copy(tmp[4:headerLen], authField[:])
	clear(tmp[off+2 : off+maLen])
	mac := hmac.New(md5.New, secret)
	mac.Write(tmp)
	var sum [authLen]byte
	mac.Sum(sum[:0])
	return sum
}

func messageAuthenticatorValid(b []byte, off int, authField [authLen]byte, secret []byte) bool {
	want := messageAuthenticator(b, off, authField, secret)
	return hmac.Equal(want[:], b[off+2:off+maLen])
}

// signMessageAuthenticator fills the Message-Authenticator of b, whose
// Authenticator field already holds what the HMAC must cover.
func signMessageAuthenticator(b []byte, secret []byte) error {
	off, err := findMessageAuthenticator(b)
	if err != nil {
		return err
	}
	if off < 0 {
		return errors.New("Message-Authenticator missing after encoding")
	}
	var field [authLen]byte
	copy(field[:], b[4:headerLen])
	sum := messageAuthenticator(b, off, field, secret)
	copy(b[off+2:off+maLen], sum[:])
	return nil
}

// requestAuthenticator is RFC 5176 2.3's MD5(Code+Identifier+Length+16 zero
// octets+Attributes+Secret).
func requestAuthenticator(b []byte, secret []byte) [authLen]byte {
	h := md5.New()
	h.Write(b[:4])
	var zero [authLen]byte
	h.Write(zero[:])
	h.Write(b[headerLen:])
	h.Write(secret)
	var sum [authLen]byte
	h.Sum(sum[:0])
	return sum
}

// responseAuthenticator is RFC 2865 3's MD5(Code+ID+Length+RequestAuth+
// Attributes+Secret), which RFC 5176 2.3 reuses for ACKs and NAKs.
func responseAuthenticator(b []byte, reqAuth []byte, secret []byte) [authLen]byte {
	h := md5.New()
	h.Write(b[:4])
	h.Write(reqAuth)
	h.Write(b[headerLen:])
	h.Write(secret)
	var sum [authLen]byte
	h.Sum(sum[:0])
	return sum
}
