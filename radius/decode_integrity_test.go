package radius

import (
	"bytes"
	"crypto/md5"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2866"
	"layeh.com/radius/rfc2869"
)

func TestEscape(t *testing.T) {
	for raw, want := range map[string]string{
		"alice":              "alice",
		`DOMAIN\user`:        `DOMAIN\user`, // a backslash alone stays
		"caf\xe9":            `caf\xe9`,     // Latin-1
		"a\x00b":             `a\x00b`,
		"ünï€de":             "ünï€de",
		`lit\x41`:            `lit\\x41`, // looks like an escape: its backslash doubles
		`two\\`:              `two\\\`,
		"end\\\x00":          `end\\\x00`,
		"\xff\xfe":           `\xff\xfe`,
		"\xe2\x82":           `\xe2\x82`, // a truncated UTF-8 sequence
		"a\\\xe9":            `a\\\xe9`,
		"tail\\":             `tail\`,
		"\xed\xa0\x80surrog": `\xed\xa0\x80surrog`, // UTF-16 surrogates are not valid UTF-8
	} {
		got := Escape(raw)
		if got != want {
			t.Errorf("Escape(%q) = %q, want %q", raw, got, want)
		}
		if back := Unescape(got); string(back) != raw {
			t.Errorf("Unescape(Escape(%q)) = %q", raw, back)
		}
	}
}

func FuzzEscape(f *testing.F) {
	for _, s := range []string{"alice", "caf\xe9", "a\x00", `\x41`, `\\`, "\\\xff", "\\", "x\\x"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		e := Escape(string(raw))
		if !utf8.ValidString(e) || strings.IndexByte(e, 0) >= 0 {
			t.Fatalf("Escape(%q) = %q is not storable", raw, e)
		}
		if back := Unescape(e); !bytes.Equal(back, raw) {
			t.Fatalf("Unescape(Escape(%q)) = %q (escaped %q)", raw, back, e)
		}
	})
}

func TestDecodeStringsAreStorableAndUniqueIDIsRaw(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	p := mikrotikPacket(rfc2866.AcctStatusType_Value_Start)
	rfc2865.UserName_Set(p, []byte("jos\xe9\x00"))
	rfc2865.CallingStationID_Set(p, []byte("AA:BB\xff"))
	rfc2865.NASIdentifier_Set(p, []byte("core\x001"))
	r, err := Decode(p, testRouter, netip.MustParseAddr("127.0.0.11"), now)
	if err != nil {
		t.Fatal(err)
	}
	if r.Username != `jos\xe9\x00` || r.CallingStation != `AA:BB\xff` || r.NASIdent != `core\x001` {
		t.Errorf("escaped %q %q %q", r.Username, r.CallingStation, r.NASIdent)
	}
	// FreeRADIUS hashes the attribute bytes as received, less one trailing
	// NUL, up to the first NUL of the joined text.
	want := fmt.Sprintf("%x", md5.Sum([]byte("jos\xe9,8100000c,127.0.0.11,core")))
	if r.UniqueID != want {
		t.Errorf("acctuniqueid %s, want md5 of the raw bytes %s", r.UniqueID, want)
	}
}

func TestDecodeCounterRange(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		giga, octets uint32
		ok           bool
	}{
		{1<<31 - 1, math.MaxUint32, true}, // 2^63 - 1: the largest bigint
		{1 << 31, 0, false},               // exactly 2^63
		{math.MaxUint32, math.MaxUint32, false},
	} {
		for _, in := range []bool{true, false} {
			p := mikrotikPacket(rfc2866.AcctStatusType_Value_InterimUpdate)
			if in {
				rfc2866.AcctInputOctets_Set(p, rfc2866.AcctInputOctets(c.octets))
				rfc2869.AcctInputGigawords_Set(p, rfc2869.AcctInputGigawords(c.giga))
			} else {
				rfc2866.AcctOutputOctets_Set(p, rfc2866.AcctOutputOctets(c.octets))
				rfc2869.AcctOutputGigawords_Set(p, rfc2869.AcctOutputGigawords(c.giga))
			}
			r, err := Decode(p, testRouter, netip.MustParseAddr("127.0.0.11"), now)
			if c.ok {
				if err != nil {
					t.Errorf("gigawords %d octets %d: %v", c.giga, c.octets, err)
				}
				continue
			}
			if !errors.Is(err, ErrCounterRange) {
				t.Errorf("gigawords %d octets %d (input %v): decoded %v %v, want ErrCounterRange", c.giga, c.octets, in, r.InputOctets, err)
			}
		}
	}
}

func TestDecodeClockAndCaps(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name      string
		ts        *time.Time
		delay     uint32
		lim       Limits
		want      time.Time
		untrusted bool
	}{
		{name: "1970 (no NTP)", ts: ptr(time.Unix(0, 0)), delay: 7, want: now.Add(-7 * time.Second), untrusted: true},
		{name: "2100", ts: ptr(time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)), want: now, untrusted: true},
		{name: "23h ago is believed", ts: ptr(now.Add(-23 * time.Hour)), want: now.Add(-23 * time.Hour)},
		{name: "25h ago is not", ts: ptr(now.Add(-25 * time.Hour)), delay: 2, want: now.Add(-2 * time.Second), untrusted: true},
		{name: "9 minutes ahead is believed", ts: ptr(now.Add(9 * time.Minute)), want: now.Add(9 * time.Minute)},
		{name: "11 minutes ahead is not", ts: ptr(now.Add(11 * time.Minute)), want: now, untrusted: true},
		{name: "configured skew", ts: ptr(now.Add(-2 * time.Hour)), lim: Limits{ClockPast: time.Hour}, want: now, untrusted: true},
		{name: "absurd delay is capped", delay: math.MaxUint32, want: now.Add(-24 * time.Hour)},
		{name: "configured delay cap", delay: 7200, lim: Limits{MaxDelay: time.Hour}, want: now.Add(-time.Hour)},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := mikrotikPacket(rfc2866.AcctStatusType_Value_InterimUpdate)
			if c.ts != nil {
				rfc2869.EventTimestamp_Set(p, *c.ts)
			}
			if c.delay > 0 {
				rfc2866.AcctDelayTime_Set(p, rfc2866.AcctDelayTime(c.delay))
			}
			var clk ClockReading
			r, err := decode(p, testRouter, netip.MustParseAddr("127.0.0.11"), now, c.lim, &clk)
			if err != nil {
				t.Fatal(err)
			}
			if !r.EventTime.Equal(c.want) || clk.Untrusted != c.untrusted || clk.HasTimestamp != (c.ts != nil) {
				t.Errorf("event time %v untrusted %v (reading %+v), want %v untrusted %v", r.EventTime, clk.Untrusted, clk, c.want, c.untrusted)
			}
			if c.ts != nil && clk.Offset != c.ts.Sub(now.Add(-min(time.Duration(c.delay)*time.Second, c.lim.maxDelay()))) {
				t.Errorf("offset %v", clk.Offset)
			}
		})
	}
	t.Run("absurd session time is capped", func(t *testing.T) {
		p := mikrotikPacket(rfc2866.AcctStatusType_Value_InterimUpdate)
		rfc2866.AcctSessionTime_Set(p, math.MaxUint32)
		r, err := Decode(p, testRouter, netip.MustParseAddr("127.0.0.11"), now)
		if err != nil || *r.SessionTime != 3650*86400 {
			t.Fatalf("session time %d: %v", *r.SessionTime, err)
		}
		r, _ = decode(p, testRouter, netip.MustParseAddr("127.0.0.11"), now, Limits{MaxSessionTime: time.Hour}, nil)
		if *r.SessionTime != 3600 {
			t.Fatalf("session time %d with a 1h cap", *r.SessionTime)
		}
	})
}

func ptr[T any](v T) *T { return &v }

func TestLogLimiterIsPerSource(t *testing.T) {
	var l logLimiter
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	noisy, quiet := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	allowed := 0
	for i := 0; i < 1000; i++ {
		if ok, _ := l.allow(noisy, now); ok {
			allowed++
		}
	}
	if allowed != logPerSource {
		t.Errorf("noisy source logged %d lines in a second, want %d", allowed, logPerSource)
	}
	if ok, _ := l.allow(quiet, now); !ok {
		t.Fatal("a flood from one address hid another address's line")
	}
	// Next window: the noisy source logs again and says what it lost.
	ok, suppressed := l.allow(noisy, now.Add(time.Second))
	if !ok || suppressed != 1000-logPerSource {
		t.Errorf("next window: allowed %v, suppressed %d", ok, suppressed)
	}
	// Many sources together stay under the ceiling, and the state is bounded.
	total := 0
	for i := 0; i < 3*logMaxSources; i++ {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if ok, _ := l.allow(a, now.Add(2*time.Second)); ok {
			total++
		}
	}
	if total != logAllSources || len(l.per) > logMaxSources {
		t.Errorf("%d lines from many sources (ceiling %d), %d sources tracked (bound %d)", total, logAllSources, len(l.per), logMaxSources)
	}
}
