// Package sim simulates a fleet of MikroTik RouterOS PPPoE concentrators as
// NettPortal sees them on the wire: each simulated router owns a loopback
// address (127.0.0.x), sends RADIUS accounting (Start, Interim-Update, Stop,
// Accounting-On) with RouterOS's attribute set and session-id format,
// retransmits with a growing Acct-Delay-Time, answers Disconnect and CoA
// requests on its incoming port, and serves the same sessions and counters
// through a fake RouterOS API (routeros/routerostest).
//
// Faults are injected on demand (packet loss, lost Stops, reboots, a router
// that ignores CoA, an unreachable API), so tests, `nettportal demo`,
// `nettportal sim` and the load benchmark (RunLoad) all drive the same code.
package sim
