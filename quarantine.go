package nettportal

import "time"

// QuarantinedRecord is an accounting record PostgreSQL refused, kept in
// accounting_quarantine and answered: the first copy the router sent, and
// how many copies it sent (Repeats, the newest at LastSeen).
type QuarantinedRecord struct {
	ID           int64
	At           time.Time // the first copy
	LastSeen     time.Time
	Repeats      int64
	RouterID     int64
	Source       string // address:port the packet came from; empty when unknown
	Status       StatusType
	AcctUniqueID string
	// Raw is the Accounting-Request as received (nil when unknown, e.g. a
	// record spooled by an older version).
	Raw []byte
	// Fields is the decoded record, every string escaped (radius.Unescape
	// reverses it) and 64-bit counters as text.
	Fields   map[string]any
	Error    string
	SQLState string
}
