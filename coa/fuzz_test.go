package coa

import (
	"testing"

	"layeh.com/radius"
)

// FuzzVerifyResponse feeds arbitrary datagrams to the code that handles a
// router's answer. Whatever arrives, it must not panic, and nothing that
// fails verification may be taken as an answer.
func FuzzVerifyResponse(f *testing.F) {
	secret := []byte("s3cret")
	req := mustHex(f, bobRequestHex)
	coaReq := refRequest(43, 0x2a, []byte(userNameBob), "s3cret")
	ack := mustHex(f, bobACKHex)
	nak := mustHex(f, bobNAKHex)

	f.Add(ack, false)
	f.Add(nak, false)
	f.Add(refResponse(44, coaReq, nil, "s3cret"), true)
	f.Add(refResponse(45, coaReq, []byte{101, 6, 0, 0, 1, 0x91}, "s3cret"), true)
	f.Add(refResponse(42, req, []byte{101, 3, 0}, "s3cret"), false) // short Error-Cause
	f.Add(refResponse(42, req, []byte{80, 18, 1}, "s3cret"), false) // truncated attribute
	f.Add(refResponse(41, req, []byte{26, 2}, "s3cret"), false)     // empty VSA
	f.Add(append(ack[:3:3], 0xff), false)                           // length, no body
	f.Add([]byte{41, 0x2a, 0x10, 0x00}, false)
	f.Add([]byte{}, false)
	f.Add(req, false)

	f.Fuzz(func(t *testing.T, raw []byte, isCoA bool) {
		request := req
		if isCoA {
			request = coaReq
		}
		verr := VerifyResponse(raw, request, secret)
		r, ok := parseResponse(raw, request, secret)
		if ok && verr != nil {
			t.Fatalf("accepted an answer that failed verification: %v", verr)
		}
		if ok && r.Result != ResultACK && r.Result != ResultNAK {
			t.Fatalf("accepted answer with result %q", r.Result)
		}
		if ok && r.Result == ResultACK && r.ErrorCause != 0 {
			t.Fatalf("ACK with Error-Cause %d", r.ErrorCause)
		}
		// Verification must not depend on octets after Length.
		if verr == nil {
			if err := VerifyResponse(append(raw[:len(raw):len(raw)], 0xee), request, secret); err != nil {
				t.Fatalf("trailing octet changed the verdict: %v", err)
			}
		}
	})
}

// FuzzVerifyRequest does the same for the router side: arbitrary requests
// never panic, and what verifies also parses.
func FuzzVerifyRequest(f *testing.F) {
	secret := []byte("s3cret")
	f.Add(mustHex(f, bobRequestHex))
	f.Add(refRequest(43, 1, []byte{26, 12, 0, 0, 0x3a, 0x8c, 8, 6, '1', 'M', '/', '1'}, "s3cret"))
	f.Add(refRequest(40, 1, []byte{80, 4, 0, 0}, "s3cret"))
	f.Add([]byte{40, 1, 0, 20})
	f.Fuzz(func(t *testing.T, raw []byte) {
		if VerifyRequest(raw, secret) == nil {
			if _, err := radius.Parse(raw, secret); err != nil {
				t.Fatalf("verified request does not parse: %v", err)
			}
		}
	})
}
