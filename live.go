package nettportal

import "time"

// Sample is one point of a session's traffic chart: the counters at an
// interim update, and the rate since the point before it.
type Sample struct {
	At           time.Time `json:"at"`
	InputOctets  int64     `json:"input_octets"`
	OutputOctets int64     `json:"output_octets"`
	InputBps     int64     `json:"input_bps"`
	OutputBps    int64     `json:"output_bps"`
}

// RouterState is a router's health for the routers page.
type RouterState struct {
	RouterID            int64      `json:"-"`
	OpenSessions        int64      `json:"open_sessions"`
	LastAccountingAt    *time.Time `json:"last_accounting_at"`
	LastReconcileAt     *time.Time `json:"last_reconcile_at"`
	LastReconcileResult string     `json:"last_reconcile_result"`
	APIReachable        *bool      `json:"api_reachable"`
	CoAReachable        *bool      `json:"coa_reachable"`
	BootTime            *time.Time `json:"boot_time"`
	// QuarantinedRecords is how many of the router's records PostgreSQL
	// refused (kept in accounting_quarantine).
	QuarantinedRecords int64 `json:"quarantined_records"`
	// InterimsSeen says whether the router has been seen sending
	// Interim-Updates (its silent sessions are swept as stale only then);
	// InterimsSeenAt is when, last.
	InterimsSeen   bool       `json:"interims_seen"`
	InterimsSeenAt *time.Time `json:"interims_seen_at"`
}

// ImportLineError is one line of a customer import that was not imported.
type ImportLineError struct {
	Line  int    `json:"line"`
	Error string `json:"error"`
}

// ImportResult is what a customer import did.
type ImportResult struct {
	Created int `json:"created"`
	Updated int `json:"updated"`
	// Errors are the first lines that were not imported (at most
	// MaxImportErrors); ErrorCount counts them all.
	Errors     []ImportLineError `json:"errors"`
	ErrorCount int               `json:"error_count"`
}

// MaxImportErrors bounds ImportResult.Errors: a file of a million bad
// lines gets an answer of a hundred and a count.
const MaxImportErrors = 100
