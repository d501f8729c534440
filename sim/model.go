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

// Plan is a service plan: its name is the subscriber's profile (PPP
// profile, Mikrotik-Group) and RateLimit, in Mikrotik-Rate-Limit form
// ("10M/50M"), caps the subscriber's rates; empty: unlimited.
type Plan struct {
	Name, RateLimit string
}

// DemoPlans are plans as a small ISP sells them.
func DemoPlans() []Plan {
	return []Plan{
		{Name: "home-20", RateLimit: "5M/20M"},
		{Name: "home-50", RateLimit: "10M/50M"},
		{Name: "home-100", RateLimit: "20M/100M"},
		{Name: "business-200", RateLimit: "100M/200M"},
		{Name: "fiber-500", RateLimit: "250M/500M"},
	}
}

// dayFactor is the share of a subscriber's peak rate in use at this point
// of a day compressed into dayLength: full around 9 in the evening, a
// tenth twelve hours later, as residential traffic goes.
func dayFactor(t time.Time, dayLength time.Duration) float64 {
	if dayLength <= 0 {
		return 1
	}
	phase := float64(t.UnixNano()%int64(dayLength)) / float64(dayLength) // 0 = midnight
	return 0.55 - 0.45*math.Cos(2*math.Pi*(phase-21.0/24+0.5))
}

// traffic is one session's counters. Rates are in bytes per second; the
// counters advance with the router's clock, so a test with a fake clock
// gets exact numbers.
type traffic struct {
	upRate, downRate float64 // uncapped
	capUp, capDown   float64 // 0: no rate limit
	in, out          float64 // bytes so far (in = upload, out = download)
	at               time.Time
	// day is the compressed day length of dayFactor (0: flat); burst
	// scales the rate until the next report, so rates are not constant.
	day   time.Duration
	burst float64
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
	f := 1.0
	if t.day > 0 {
		f = dayFactor(t.at.Add(now.Sub(t.at)/2), t.day) * t.burst
	}
	t.in += capped(t.upRate*f, t.capUp) * dt
	t.out += capped(t.downRate*f, t.capDown) * dt
	t.at = now
}

// reburst draws the next period's burst factor of a session that follows
// the daily curve: mostly near its usual rate, now and then far above
// (a download) or idle.
func (t *traffic) reburst(rng *rand.Rand) {
	if t.day <= 0 {
		return
	}
	switch x := rng.Float64(); {
	case x < 0.1:
		t.burst = 0.05 + 0.2*rng.Float64()
	case x < 0.2:
		t.burst = 2 + 3*rng.Float64()
	default:
		t.burst = 0.6 + 0.8*rng.Float64()
	}
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
