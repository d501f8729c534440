package radius

import (
	"net/netip"
	"testing"
	"time"

	rad "layeh.com/radius"
	"layeh.com/radius/rfc2866"
)

func TestFingerprintIgnoresOnlyAcctDelayTime(t *testing.T) {
	secret := []byte("s3cret")
	encode := func(id byte, sid string, delay uint32) []byte {
		p := rad.New(rad.CodeAccountingRequest, secret)
		p.Identifier = id
		rfc2866.AcctSessionID_SetString(p, sid)
		rfc2866.AcctStatusType_Set(p, rfc2866.AcctStatusType_Value_InterimUpdate)
		rfc2866.AcctDelayTime_Set(p, rfc2866.AcctDelayTime(delay))
		raw, err := p.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	m := newShedMemory(time.Second, 16, time.Now())
	src := netip.MustParseAddrPort("10.0.0.1:1700")
	orig := m.fingerprint(src, encode(7, "a", 0))
	if got := m.fingerprint(src, encode(7, "a", 3)); got != orig {
		t.Error("a retransmission with a larger Acct-Delay-Time has another fingerprint")
	}
	for name, fp := range map[string]uint64{
		"another Identifier":  m.fingerprint(src, encode(8, "a", 0)),
		"another session":     m.fingerprint(src, encode(7, "b", 0)),
		"another source port": m.fingerprint(netip.MustParseAddrPort("10.0.0.1:1701"), encode(7, "a", 0)),
	} {
		if fp == orig {
			t.Errorf("%s has the same fingerprint", name)
		}
	}
	// Lengths that do not fit are hashed, not trusted.
	short := encode(7, "a", 0)
	short[3] = 200
	_ = m.fingerprint(src, short)
}

func TestShedMemoryForgetsAfterTwoWindowsButKeepsWaitingTickets(t *testing.T) {
	start := time.Now()
	m := newShedMemory(time.Second, 2, start)
	if m.active() {
		t.Fatal("active while empty")
	}
	m.shed(1, nil)
	waiting := &retryTicket{}
	if m.claim(2, waiting) != nil {
		t.Fatal("claim found a ticket in an empty memory")
	}
	m.shed(3, nil) // over max: not remembered
	if _, known := m.lookup(3); known {
		t.Error("remembered past its size bound")
	}
	m.expire(start.Add(time.Second))
	if _, known := m.lookup(1); !known {
		t.Error("forgot a shed packet after one window")
	}
	m.expire(start.Add(2 * time.Second))
	if _, known := m.lookup(1); known {
		t.Error("remembered a shed packet after two windows")
	}
	if got, _ := m.lookup(2); got != waiting {
		t.Error("forgot a ticket still in the retry queue")
	}
	if other := m.claim(2, &retryTicket{}); other != waiting {
		t.Error("a second claim did not find the waiting ticket")
	}
	waiting.finish()
	m.forget(2, waiting)
	if m.active() {
		t.Error("active after everything was forgotten")
	}
}
