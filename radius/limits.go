package radius

import (
	"math"
	"time"

	rad "layeh.com/radius"
	"layeh.com/radius/rfc2866"
	"layeh.com/radius/rfc2869"
)

// Limits bound what the listener believes of a router's times. A router
// without NTP (a MikroTik after a reboot says 1970) or with a broken clock
// must not place sessions decades away: the stale sweep would close them at
// once, or never. Zero fields take the defaults in parentheses.
type Limits struct {
	// ClockPast is how far before receive time an Event-Timestamp is still
	// believed (24h). An older one is replaced by receive time minus
	// Acct-Delay-Time and counted as clock skew.
	ClockPast time.Duration
	// ClockFuture is how far after receive time an Event-Timestamp is still
	// believed (10m).
	ClockFuture time.Duration
	// MaxDelay caps Acct-Delay-Time (ClockPast): a router does not hold
	// accounting longer than that, so a larger value is a bug, not a delay.
	MaxDelay time.Duration
	// MaxSessionTime caps Acct-Session-Time (3650 days), which otherwise
	// may place an Interim's inferred start up to 136 years back.
	MaxSessionTime time.Duration
}

func (l Limits) clockPast() time.Duration {
	if l.ClockPast <= 0 {
		return 24 * time.Hour
	}
	return l.ClockPast
}

func (l Limits) clockFuture() time.Duration {
	if l.ClockFuture <= 0 {
		return 10 * time.Minute
	}
	return l.ClockFuture
}

func (l Limits) maxDelay() time.Duration {
	if l.MaxDelay <= 0 {
		return l.clockPast()
	}
	return l.MaxDelay
}

// maxSessionTime is the Acct-Session-Time cap in seconds.
func (l Limits) maxSessionTime() uint32 {
	d := l.MaxSessionTime
	if d <= 0 {
		d = 3650 * 24 * time.Hour
	}
	return uint32(min(int64(d/time.Second), math.MaxUint32))
}

// ClockReading is what one packet said about its router's clock.
type ClockReading struct {
	// HasTimestamp: the packet carried Event-Timestamp.
	HasTimestamp bool
	// Offset is Event-Timestamp minus (receive time - Acct-Delay-Time):
	// how far the router's clock is off, as far as this packet tells.
	Offset time.Duration
	// Untrusted: the Event-Timestamp was outside [now - ClockPast, now +
	// ClockFuture] and was replaced.
	Untrusted bool
}

// eventTime is the record's event time: Event-Timestamp when believable,
// else receive time minus the (capped) Acct-Delay-Time.
func (l Limits) eventTime(p *rad.Packet, now time.Time, clk *ClockReading) time.Time {
	var delay time.Duration
	if d, err := rfc2866.AcctDelayTime_Lookup(p); err == nil {
		delay = min(time.Duration(d)*time.Second, l.maxDelay())
	}
	fallback := now.Add(-delay)
	ts, err := rfc2869.EventTimestamp_Lookup(p)
	if err != nil {
		return fallback
	}
	untrusted := ts.Before(now.Add(-l.clockPast())) || ts.After(now.Add(l.clockFuture()))
	if clk != nil {
		*clk = ClockReading{HasTimestamp: true, Offset: ts.Sub(fallback), Untrusted: untrusted}
	}
	if untrusted {
		return fallback
	}
	return ts
}
