package nettportal

import "time"

// RouterClock is what the accounting listener last saw of a router's clock,
// so the routers page can say "router clock is off by ...".
type RouterClock struct {
	RouterID int64
	Router   string // name
	// Offset is the router's last Event-Timestamp minus its receive time
	// (less Acct-Delay-Time): positive when the router's clock is ahead.
	Offset time.Duration
	// ObservedAt is when that packet arrived.
	ObservedAt time.Time
	// Skewed counts packets whose Event-Timestamp was too far from receive
	// time to be believed (receive time - Acct-Delay-Time was used).
	Skewed uint64
}
