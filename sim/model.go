package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Traffic model bounds, in bits per second of download. Most subscribers are
// light (browsing, messaging, idle streaming boxes); a few are heavy
// (downloads, 4K streams) and dominate the byte totals, as on a real
// concentrator.
const (
	lightMinBps   = 10e3
	lightMaxBps   = 2e6
	heavyMinBps   = 20e6
	heavyMaxBps   = 200e6
	heavyFraction = 0.05
	// Upload is a fraction of download: subscribers mostly receive.
	minUpRatio = 0.05
	maxUpRatio = 0.30
	// Average packet sizes turn byte counters into packet counters: uploads
	// are mostly TCP ACKs, downloads mostly full-size segments.
	avgUpPacket   = 120
	avgDownPacket = 1200
)

// traffic is one session's counters. Rates are in bytes per second; the
// counters advance with the router's clock, so a test with a fake clock
// gets exact numbers.
type traffic struct {
	upRate, downRate float64 // uncapped
	capUp, capDown   float64 // 0: no rate limit
	in, out          float64 // bytes so far (in = upload, out = download)
	at               time.Time
}

// drawTraffic draws a session's rates from the heavy-tailed model.
func drawTraffic(rng *rand.Rand, start time.Time) traffic {
	var down float64
	if rng.Float64() < heavyFraction {
		down = logUniform(rng, heavyMinBps, heavyMaxBps)
	} else {
		down = logUniform(rng, lightMinBps, lightMaxBps)
	}
	up := down * (minUpRatio + (maxUpRatio-minUpRatio)*rng.Float64())
	return traffic{upRate: up / 8, downRate: down / 8, at: start}
}

// logUniform spreads draws evenly over orders of magnitude, which is how
// subscriber rates are distributed within a class.
func logUniform(rng *rand.Rand, lo, hi float64) float64 {
	return math.Exp(math.Log(lo) + rng.Float64()*(math.Log(hi)-math.Log(lo)))
}

func capped(rate, limit float64) float64 {
	if limit > 0 && rate > limit {
		return limit
	}
	return rate
}

// advance moves the counters to now. Time never runs backwards for the
// counters, even when the clock does.
func (t *traffic) advance(now time.Time) {
	dt := now.Sub(t.at).Seconds()
	if dt <= 0 {
		return
	}
	t.in += capped(t.upRate, t.capUp) * dt
	t.out += capped(t.downRate, t.capDown) * dt
	t.at = now
}

func (t *traffic) counters() (in, out uint64) { return uint64(t.in), uint64(t.out) }

func packetsOf(octets uint64, avg uint64) uint32 {
	return uint32(min((octets+avg-1)/avg, math.MaxUint32))
}

// parseRateLimit reads the first pair of a Mikrotik-Rate-Limit value,
// "rx-rate[/tx-rate] [bursts...]", into bytes per second. rx is what the
// router receives from the subscriber (upload), tx what it sends
// (download); a single value limits both, and 0 means unlimited.
func parseRateLimit(s string) (up, down float64, err error) {
	first, _, _ := strings.Cut(strings.TrimSpace(s), " ")
	if first == "" {
		return 0, 0, fmt.Errorf("parse rate limit %q: empty", s)
	}
	rx, tx, hasTx := strings.Cut(first, "/")
	if up, err = parseRate(rx); err != nil {
		return 0, 0, fmt.Errorf("parse rate limit %q: %w", s, err)
	}
	down = up
	if hasTx {
		if down, err = parseRate(tx); err != nil {
			return 0, 0, fmt.Errorf("parse rate limit %q: %w", s, err)
		}
	}
	return up / 8, down / 8, nil
}

// parseRate reads a RouterOS rate in bits per second with an optional
// k/M/G suffix.
func parseRate(s string) (float64, error) {
	mult := 1.0
	switch {
	case strings.HasSuffix(s, "k"), strings.HasSuffix(s, "K"):
		mult, s = 1e3, s[:len(s)-1]
	case strings.HasSuffix(s, "M"):
		mult, s = 1e6, s[:len(s)-1]
	case strings.HasSuffix(s, "G"):
		mult, s = 1e9, s[:len(s)-1]
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("rate %q is not a number with an optional k/M/G suffix", s)
	}
	return v * mult, nil
}

// sessionNumber builds a RouterOS session id: the first hex digit is the
// boot digit, which changes at every reboot, then the constant 1 RouterOS
// shows after it, then a counter of sessions since boot (24 bits).
func sessionNumber(boot uint8, n uint32) uint32 {
	return uint32(boot&0xf)<<28 | 1<<24 | n&0xffffff
}

// FormatSessionID renders a session id as RouterOS puts it in
// Acct-Session-Id: 8 lower-case hex digits, e.g. "8100000c".
func FormatSessionID(id uint32) string {
	const digits = "0123456789abcdef"
	var b [8]byte
	for i := 7; i >= 0; i-- {
		b[i] = digits[id&0xf]
		id >>= 4
	}
	return string(b[:])
}

// nextBoot is the boot digit after a reboot; 0 is skipped so a session id
// always has 8 significant digits, as on RouterOS.
func nextBoot(b uint8) uint8 {
	b = (b + 1) & 0xf
	if b == 0 {
		b = 1
	}
	return b
}

// subscriberIP is a subscriber's framed address: a /18 of 100.64.0.0/10 per
// router, picked from the router's loopback address, so routers of one
// fleet hand out distinct addresses.
func subscriberIP(router netip.Addr, i int) netip.Addr {
	a := router.As4()
	block := (uint32(a[2])<<8 | uint32(a[3])) & 0xff
	v := uint32(100)<<24 | uint32(64)<<16 | block<<14 | uint32(i+2)&0x3fff
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// drawMAC draws a CPE MAC in RouterOS's caller-id form: upper case, colons.
func drawMAC(rng *rand.Rand) string {
	// Vendor prefixes of common PPPoE CPEs, so MACs look real.
	ouis := [...][3]byte{{0xD4, 0xCA, 0x6D}, {0xE8, 0x48, 0xB8}, {0x50, 0xC7, 0xBF}, {0x74, 0x4D, 0x28}, {0x18, 0xFD, 0x74}}
	oui := ouis[rng.IntN(len(ouis))]
	return fmt.Sprintf("%02X:%02X:%02X:%02X:%02X:%02X", oui[0], oui[1], oui[2], rng.IntN(256), rng.IntN(256), rng.IntN(256))
}
