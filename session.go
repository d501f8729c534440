package nettportal

import (
	"context"
	"encoding/json"
	"net/netip"
	"time"
)

// Session is one PPPoE session as the live page and the API show it: a
// radacct row joined with its router and customer.
type Session struct {
	ID            int64 // radacctid
	AcctSessionID string
	UniqueID      string
	Username      string
	Customer      string // customer name when the username is linked
	RouterID      int64
	Router        string // router name
	NASIP         netip.Addr
	IP            netip.Addr // Framed-IP-Address
	MAC           string     // Calling-Station-Id
	Profile       string
	Service       string // Called-Station-Id
	Interface     string // NAS-Port-Id
	StartedAt     time.Time
	UpdatedAt     time.Time
	StoppedAt     *time.Time
	SessionTime   int64 // seconds, as the router last reported
	InputOctets   int64 // upload from the subscriber
	OutputOctets  int64 // download to the subscriber
	// Current rates in bits/s, from the last two updates.
	InputBps, OutputBps int64
	TerminateCause      string
	ClosedBy            string
	HasStart            bool
	InterimSeconds      int64
}

// Open reports whether the session is still up.
func (s Session) Open() bool { return s.StoppedAt == nil }

// SessionFilter selects sessions for the live page, the API and bulk
// disconnects. The zero value is every open session, newest first.
type SessionFilter struct {
	Router string  // router id or name
	Query  string  // matches username, customer name or IP
	IDs    []int64 // radacctids
	Sort   string  // username, customer, router, ip, profile, started_at, uptime, input_octets, output_octets, input_bps, output_bps
	Order  string  // asc or desc
	Limit  int
	Offset int
	// Closed includes stopped sessions (the audit of one router, history).
	Closed bool
	// From and To, when set, keep sessions started in [From, To). A
	// search over history (Closed with Query) needs From: the history of
	// years cannot be searched in the time a page has.
	From, To time.Time
}

// SessionStats are the totals of the filtered open sessions.
type SessionStats struct {
	Sessions     int64
	InputOctets  int64
	OutputOctets int64
	InputBps     int64
	OutputBps    int64
}

// SessionPage is one page of sessions with the filter's totals.
type SessionPage struct {
	Total    int64
	Sessions []Session
	Stats    SessionStats
}

// RadacctColumns is every column of one radacct row by column name, each
// value as PostgreSQL's to_jsonb wrote it. Raw JSON keeps bigint counters
// exact (decoded into any they would be float64, rounded above 2^53), and
// columns a billing system added to the table show up too.
type RadacctColumns map[string]json.RawMessage

// SessionStore reads sessions.
type SessionStore interface {
	Sessions(ctx context.Context, f SessionFilter) (SessionPage, error)
	Session(ctx context.Context, id int64) (Session, error)
}

// Control actions recorded in the audit.
const (
	ActionDisconnect = "disconnect"
	ActionRateLimit  = "rate-limit"
)

// ControlResult is the outcome of a disconnect or CoA for one session.
type ControlResult struct {
	SessionID  int64  `json:"id"`
	Username   string `json:"username,omitempty"`
	OK         bool   `json:"ok"`
	Method     string `json:"method"` // "radius" or "routeros"
	Result     string `json:"result"` // "ack", "nak", "timeout" or "error"
	Detail     string `json:"detail"`
	ErrorCause uint32 `json:"error_cause,omitempty"`
}

// SessionControl disconnects sessions and changes their speed. actor is who
// asked (a user name or "token:NAME"), for the audit.
type SessionControl interface {
	Disconnect(ctx context.Context, actor string, id int64) (ControlResult, error)
	DisconnectMany(ctx context.Context, actor string, f SessionFilter) ([]ControlResult, error)
	ChangeRateLimit(ctx context.Context, actor string, id int64, rateLimit string) (ControlResult, error)
}

// AuditEntry records one control attempt: who, when, what, how, result.
type AuditEntry struct {
	ID         int64
	At         time.Time
	Actor      string
	Action     string // ActionDisconnect or ActionRateLimit
	SessionID  int64  // radacctid
	Username   string
	RouterID   int64
	Router     string
	Method     string
	Result     string
	OK         bool
	Detail     string
	ErrorCause uint32
	RateLimit  string
}

// AuditStore keeps the control audit.
type AuditStore interface {
	RecordAudit(ctx context.Context, e *AuditEntry) error
	Audit(ctx context.Context, limit, offset int) ([]AuditEntry, error)
}

// SessionsChanged is what the store announces after each committed change
// to sessions (one notification per batch, across instances through
// LISTEN/NOTIFY): which routers' sessions changed.
type SessionsChanged struct {
	RouterIDs []int64 `json:"routers"`
	Records   int     `json:"n"`
}

// OpenSession is what the reconciler and the sweeps need of an open row.
type OpenSession struct {
	ID            int64
	UniqueID      string
	AcctSessionID string
	Username      string
	StartedAt     time.Time
	UpdatedAt     time.Time
	Interim       time.Duration // the session's Acct-Interim-Interval, else zero
	FromAPI       bool          // made by the reconciler, not by accounting
}

// Usage periods.
const (
	PeriodDay   = "day"
	PeriodMonth = "month"
)

// UsageFilter selects billing usage: days From to To (inclusive, dates in
// the billing time zone), one username or all, per day or per month.
type UsageFilter struct {
	From, To time.Time
	Username string
	Period   string // PeriodDay (default) or PeriodMonth
}

// UsageRow is one username's usage on one day (or month, Day being its
// first day). Input is upload from the subscriber, output download.
type UsageRow struct {
	Username     string    `json:"username"`
	Day          time.Time `json:"day"`
	InputOctets  int64     `json:"input_octets"`
	OutputOctets int64     `json:"output_octets"`
	Sessions     int64     `json:"sessions,omitempty"`
}
