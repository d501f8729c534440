package coa

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"testing"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2869"
	"layeh.com/radius/rfc3576"
)

// The reference functions below rebuild RFC 5176 packets from hand-written
// octets with crypto/hmac and crypto/md5 only, so the tests do not compare
// the package against itself.

// refRequest returns a signed request whose attributes are
// Message-Authenticator followed by rest.
func refRequest(code, id byte, rest []byte, secret string) []byte {
	return refSigned(code, id, make([]byte, 16), rest, secret)
}

// refResponse returns a signed response to request whose attributes are
// Message-Authenticator followed by rest.
func refResponse(code byte, request, rest []byte, secret string) []byte {
	return refSigned(code, request[1], request[4:20], rest, secret)
}

// refSigned returns a packet whose attributes are Message-Authenticator
// followed by rest, both authenticators computed with auth in the
// Authenticator's place: zeros for a request, the request's for a response.
func refSigned(code, id byte, auth, rest []byte, secret string) []byte {
	attrs := append([]byte{80, 18}, make([]byte, 16)...)
	attrs = append(attrs, rest...)
	n := 20 + len(attrs)
	hdr := []byte{code, id, byte(n >> 8), byte(n)}

	mac := hmac.New(md5.New, []byte(secret))
	mac.Write(hdr)
	mac.Write(auth)
	mac.Write(attrs)
	copy(attrs[2:18], mac.Sum(nil))

	h := md5.New()
	h.Write(hdr)
	h.Write(auth)
	h.Write(attrs)
	h.Write([]byte(secret))
	return append(append(hdr, h.Sum(nil)...), attrs...)
}

// userNameBob is the User-Name attribute "bob" on the wire.
const userNameBob = "\x01\x05bob"

// Frozen vectors: secret "s3cret", identifier 0x2a, User-Name "bob". They
// were computed by refRequest/refResponse and, separately, by a few lines of
// Python hashlib/hmac, which agreed.
const (
	bobRequestHex = "282a002b1c726ea366d751c29f2c6738654c7dec501231926608b77f9986f03b" +
		"59bcc7c3a70a0105626f62"
	bobACKHex = "292a0026521e9d81ff47e3456c62e7a18aaa7f365012d254ea9d25cb293cfcfb" +
		"27ad026dc95c"
	// bobNAKHex carries Error-Cause 503 (Session-Context-Not-Found).
	bobNAKHex = "2a2a002c6ee9e76adb493f99336b95437e09a17d5012acb2ec74c9c024ad54bf" +
		"cb9c6f69f1976506000001f7"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func bobPacket(t testing.TB) *radius.Packet {
	t.Helper()
	p := &radius.Packet{Code: radius.CodeDisconnectRequest, Identifier: 0x2a, Secret: []byte("s3cret")}
	if err := rfc2865.UserName_SetString(p, "bob"); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEncodeRequestVector(t *testing.T) {
	got, err := EncodeRequest(bobPacket(t))
	if err != nil {
		t.Fatal(err)
	}
	if want := refRequest(40, 0x2a, []byte(userNameBob), "s3cret"); !bytes.Equal(got, want) {
		t.Fatalf("EncodeRequest against reference:\n got %x\nwant %x", got, want)
	}
	if want := mustHex(t, bobRequestHex); !bytes.Equal(got, want) {
		t.Fatalf("EncodeRequest against frozen vector:\n got %x\nwant %x", got, want)
	}
	if err := VerifyRequest(got, []byte("s3cret")); err != nil {
		t.Fatalf("VerifyRequest of own encoding: %v", err)
	}
}

func TestEncodeRequestReplacesMessageAuthenticatorAndKeepsInput(t *testing.T) {
	p := bobPacket(t)
	// A stale Message-Authenticator at the end must not survive or be
	// duplicated, and p must stay as the caller built it.
	if err := rfc2869.MessageAuthenticator_Add(p, bytes.Repeat([]byte{0xff}, 16)); err != nil {
		t.Fatal(err)
	}
	p.Authenticator = [16]byte{1, 2, 3}
	got, err := EncodeRequest(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := mustHex(t, bobRequestHex); !bytes.Equal(got, want) {
		t.Fatalf("got %x\nwant %x", got, want)
	}
	if len(p.Attributes) != 2 || p.Attributes[1].Type != rfc2869.MessageAuthenticator_Type || p.Authenticator != [16]byte{1, 2, 3} {
		t.Fatalf("input packet modified: %+v", p)
	}
}

func TestEncodeResponseVectors(t *testing.T) {
	req := mustHex(t, bobRequestHex)
	parsed, err := radius.Parse(req, []byte("s3cret"))
	if err != nil {
		t.Fatal(err)
	}

	ack, err := EncodeResponse(parsed.Response(radius.CodeDisconnectACK), req)
	if err != nil {
		t.Fatal(err)
	}
	if want := refResponse(41, req, nil, "s3cret"); !bytes.Equal(ack, want) {
		t.Fatalf("ACK against reference:\n got %x\nwant %x", ack, want)
	}
	if want := mustHex(t, bobACKHex); !bytes.Equal(ack, want) {
		t.Fatalf("ACK against frozen vector:\n got %x\nwant %x", ack, want)
	}

	nak := parsed.Response(radius.CodeDisconnectNAK)
	if err := rfc3576.ErrorCause_Set(nak, rfc3576.ErrorCause_Value_SessionContextNotFound); err != nil {
		t.Fatal(err)
	}
	got, err := EncodeResponse(nak, req)
	if err != nil {
		t.Fatal(err)
	}
	if want := refResponse(42, req, []byte{101, 6, 0, 0, 0x01, 0xf7}, "s3cret"); !bytes.Equal(got, want) {
		t.Fatalf("NAK against reference:\n got %x\nwant %x", got, want)
	}
	if want := mustHex(t, bobNAKHex); !bytes.Equal(got, want) {
		t.Fatalf("NAK against frozen vector:\n got %x\nwant %x", got, want)
	}
}

func TestVerifyRequest(t *testing.T) {
	secret := []byte("s3cret")
	good := mustHex(t, bobRequestHex)

	// A request without Message-Authenticator but with a correct Request
	// Authenticator, built by hand.
	noMA := func() []byte {
		hdr := []byte{40, 7, 0, 25}
		h := md5.New()
		h.Write(hdr)
		h.Write(make([]byte, 16))
		h.Write([]byte(userNameBob))
		h.Write(secret)
		return append(append(hdr, h.Sum(nil)...), []byte(userNameBob)...)
	}()

	flip := func(b []byte, i int) []byte {
		c := bytes.Clone(b)
		c[i] ^= 1
		return c
	}
	// badMA has a wrong HMAC but a Request Authenticator recomputed over
	// it, so only the Message-Authenticator check can catch it.
	badMA := reauthenticate(flip(good, 22), make([]byte, 16), secret)
	coa := refRequest(43, 9, []byte(userNameBob), "s3cret")
	twoMA := refRequest(40, 1, append([]byte{80, 18}, make([]byte, 16)...), "s3cret")
	shortMA := refRequest(40, 1, []byte{80, 4, 0, 0}, "s3cret")

	tests := []struct {
		name string
		raw  []byte
		sec  []byte
		want error // nil: must verify
	}{
		{"valid disconnect", good, secret, nil},
		{"valid CoA", coa, secret, nil},
		{"trailing padding ignored", append(bytes.Clone(good), 0, 0, 0), secret, nil},
		{"wrong secret", good, []byte("other"), ErrBadAuthenticator},
		{"attribute altered", flip(good, len(good)-1), secret, ErrBadAuthenticator},
		{"authenticator altered", flip(good, 4), secret, ErrBadAuthenticator},
		{"HMAC altered", badMA, secret, ErrBadMessageAuthenticator},
		{"no Message-Authenticator", noMA, secret, ErrNoMessageAuthenticator},
		{"no Message-Authenticator, wrong secret", noMA, []byte("x"), ErrBadAuthenticator},
		{"two Message-Authenticators", twoMA, secret, ErrMalformed},
		{"short Message-Authenticator", shortMA, secret, ErrMalformed},
		{"short packet", good[:19], secret, ErrMalformed},
		{"length beyond datagram", good[:30], secret, ErrMalformed},
		{"response code", mustHex(t, bobACKHex), secret, ErrMalformed},
		{"access request", refRequest(1, 1, []byte(userNameBob), "s3cret"), secret, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantVerified(t, "VerifyRequest", VerifyRequest(tt.raw, tt.sec), tt.want)
		})
	}
}

// wantVerified fails t unless err, what verify returned, is nil when
// want is nil and is want otherwise.
func wantVerified(t *testing.T, verify string, err, want error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("%s: %v", verify, err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("%s: got %v, want %v", verify, err, want)
	}
}

// reauthenticate writes into c the Authenticator a sender with secret
// computes over c with auth (zeros for a request, the request's
// Authenticator for an answer) in its place, and returns c.
func reauthenticate(c, auth, secret []byte) []byte {
	h := md5.New()
	h.Write(c[:4])
	h.Write(auth)
	h.Write(c[20:])
	h.Write(secret)
	copy(c[4:20], h.Sum(nil))
	return c
}

func TestVerifyResponse(t *testing.T) {
	secret := []byte("s3cret")
	req := mustHex(t, bobRequestHex)
	ack := mustHex(t, bobACKHex)
	otherReq := refRequest(40, 0x2a, []byte{1, 5, 'e', 'v', 'e'}, "s3cret")
	coaReq := refRequest(43, 0x2a, []byte(userNameBob), "s3cret")

	// ACK without Message-Authenticator: allowed by RFC 5176.
	plainACK := func() []byte {
		hdr := []byte{41, 0x2a, 0, 20}
		h := md5.New()
		h.Write(hdr)
		h.Write(req[4:20])
		h.Write(secret)
		return append(hdr, h.Sum(nil)...)
	}()
	// Response Authenticator right, HMAC wrong.
	badMA := func() []byte {
		c := bytes.Clone(ack)
		c[25] ^= 0x80
		return reauthenticate(c, req[4:20], secret)
	}()
	wrongID := refResponse(41, append([]byte{40, 0x2b}, req[2:]...), nil, "s3cret")

	tests := []struct {
		name    string
		raw     []byte
		request []byte
		sec     []byte
		want    error
	}{
		{"ACK", ack, req, secret, nil},
		{"NAK", mustHex(t, bobNAKHex), req, secret, nil},
		{"ACK without Message-Authenticator", plainACK, req, secret, nil},
		{"wrong secret", ack, req, []byte("other"), ErrBadAuthenticator},
		{"answer to another request", ack, otherReq, secret, ErrBadAuthenticator},
		{"HMAC altered", badMA, req, secret, ErrBadMessageAuthenticator},
		{"identifier mismatch", wrongID, req, secret, ErrMalformed},
		{"Disconnect-ACK to CoA-Request", ack, coaReq, secret, ErrMalformed},
		{"request echoed back", req, req, secret, ErrMalformed},
		{"truncated", ack[:25], req, secret, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantVerified(t, "VerifyResponse", VerifyResponse(tt.raw, tt.request, tt.sec), tt.want)
		})
	}
}

func TestEncodeResponseRejectsMisuse(t *testing.T) {
	req := mustHex(t, bobRequestHex)
	p, err := radius.Parse(req, []byte("s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := EncodeResponse(p.Response(radius.CodeCoAACK), req); err == nil {
		t.Error("CoA-ACK to a Disconnect-Request encoded")
	}
	r := p.Response(radius.CodeDisconnectACK)
	r.Identifier++
	if _, err := EncodeResponse(r, req); err == nil {
		t.Error("response with another identifier encoded")
	}
	r = p.Response(radius.CodeDisconnectACK)
	r.Secret = nil
	if _, err := EncodeResponse(r, req); err == nil {
		t.Error("response without secret encoded")
	}
	if _, err := EncodeRequest(&radius.Packet{Code: radius.CodeAccessRequest, Secret: []byte("s")}); err == nil {
		t.Error("Access-Request encoded as a CoA request")
	}
}
