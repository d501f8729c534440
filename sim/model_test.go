package sim

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

func TestFormatSessionID(t *testing.T) {
	for _, c := range []struct {
		boot uint8
		n    uint32
		want string
	}{
		{8, 12, "8100000c"},
		{9, 1, "91000001"},
		{0xf, 0xffffff, "f1ffffff"},
		{8, 0x1000001, "81000001"}, // the counter wraps within 24 bits
	} {
		if got := FormatSessionID(sessionNumber(c.boot, c.n)); got != c.want {
			t.Errorf("boot %x n %d: %s, want %s", c.boot, c.n, got, c.want)
		}
	}
	if nextBoot(8) != 9 || nextBoot(0xf) != 1 {
		t.Error("boot digit must advance and skip 0")
	}
}

func TestTrafficModelIsHeavyTailed(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 20000
	heavy := 0
	var total, heavyBytes float64
	for range n {
		tr := drawTraffic(rng, time.Time{})
		down, up := tr.downRate*8, tr.upRate*8
		switch {
		case down >= heavyMinBps && down <= heavyMaxBps:
			heavy++
			heavyBytes += down
		case down < lightMinBps || down > lightMaxBps:
			t.Fatalf("download rate %.0f bit/s outside both classes", down)
		}
		if up >= down || up < down*minUpRatio {
			t.Fatalf("upload %.0f, download %.0f", up, down)
		}
		total += down
	}
	if f := float64(heavy) / n; f < 0.03 || f > 0.07 {
		t.Errorf("%.3f of sessions heavy, want about %.2f", f, heavyFraction)
	}
	if heavyBytes/total < 0.8 {
		t.Errorf("heavy sessions carry %.2f of the bytes; a heavy tail means most", heavyBytes/total)
	}
}

func TestTrafficAdvancesWithTheClockAndRateLimit(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	tr := traffic{upRate: 1000, downRate: 10_000, at: t0}
	tr.advance(t0.Add(10 * time.Second))
	if in, out := tr.counters(); in != 10_000 || out != 100_000 {
		t.Fatalf("after 10s: %d/%d", in, out)
	}
	tr.advance(t0) // the clock went back: counters stay
	up, down, err := parseRateLimit("4k/40k 8k/80k 1k/1k 10/10")
	if err != nil || up != 500 || down != 5000 {
		t.Fatalf("parse: %v %v %v", up, down, err)
	}
	tr.capUp, tr.capDown = up, down
	tr.advance(t0.Add(20 * time.Second))
	if in, out := tr.counters(); in != 15_000 || out != 150_000 {
		t.Fatalf("after 10s more at 4k/40k: %d/%d", in, out)
	}
	for _, bad := range []string{"", "fast", "10X/1M", "-1M"} {
		if _, _, err := parseRateLimit(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if up, down, _ := parseRateLimit("2M"); up != 250e3 || down != 250e3 {
		t.Errorf("single value: %v/%v", up, down)
	}
}

func TestSubscriberAddresses(t *testing.T) {
	a := subscriberIP(netip.MustParseAddr("127.0.0.11"), 0)
	b := subscriberIP(netip.MustParseAddr("127.0.0.12"), 0)
	if a == b || !netip.MustParsePrefix("100.64.0.0/10").Contains(a) {
		t.Errorf("%s and %s", a, b)
	}
	if mac := drawMAC(rand.New(rand.NewPCG(1, 1))); len(mac) != 17 || mac != toUpper(mac) {
		t.Errorf("MAC %q", mac)
	}
}

func toUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 32
		}
	}
	return string(b)
}
