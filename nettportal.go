// Package nettportal holds the domain types of NettPortal sessions: routers,
// accounting records, sessions and the events that flow between the
// accounting listener, the store, the reconciler and the web page.
//
// The package imports nothing of ours; adapters (radius, store, coa,
// routeros, web, sim) import it and cmd/nettportal wires them together.
package nettportal

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"time"
)

// Error codes shared by every adapter, so the web layer can map them to
// HTTP statuses without knowing where an error came from.
var (
	ErrNotFound     = errors.New("not found")
	ErrInvalid      = errors.New("invalid input")
	ErrConflict     = errors.New("conflict")
	ErrUnauthorized = errors.New("unauthorized")
	ErrForbidden    = errors.New("forbidden")
	// ErrBusy: the query was refused or stopped because it would take more
	// than its share of the database; the message says what to narrow.
	ErrBusy = errors.New("busy")
)

// Router is a MikroTik router (a row of the FreeRADIUS `nas` table plus our
// columns for CoA and the RouterOS API).
type Router struct {
	ID          int64
	Name        string     // nas.shortname; usually the RouterOS identity
	IP          netip.Addr // nas.nasname: the address accounting packets come from
	Secret      string     // RADIUS shared secret
	CoAPort     int        // Disconnect/CoA port on the router; 0 means 3799
	APIAddr     string     // RouterOS API host:port; empty when the router has no API access
	APIUser     string
	APIPassword string
	APITLS      bool
	// APITLSFingerprint pins the API certificate: hex SHA-256 of its DER
	// (what `router trust` prints). RouterOS's own self-signed certificate
	// is usable this way. It replaces name and chain checks.
	APITLSFingerprint string
	// APITLSCAFile is a PEM file of CAs to verify the API certificate
	// with, instead of the system roots.
	APITLSCAFile string
	// APITLSInsecure skips verifying the API certificate: anyone on the
	// path can read the API password. Logged and shown as a warning.
	APITLSInsecure bool
	Description    string
	// InterimInterval is how often the router sends Interim-Updates; zero
	// means the DefaultInterimInterval. It drives the stale timeout.
	InterimInterval time.Duration
}

// DefaultCoAPort is the port most ISPs configure with `/radius incoming`.
const DefaultCoAPort = 3799

// DefaultInterimInterval is RouterOS's usual `/ppp aaa interim-update=5m`.
const DefaultInterimInterval = 5 * time.Minute

// HasAPI reports whether the router can be reached through the RouterOS API.
func (r Router) HasAPI() bool { return r.APIAddr != "" && r.APIUser != "" }

// CoAAddr is the host:port Disconnect and CoA requests go to.
func (r Router) CoAAddr() string {
	port := r.CoAPort
	if port == 0 {
		port = DefaultCoAPort
	}
	return netip.AddrPortFrom(r.IP, uint16(port)).String()
}

// SkippedNAS is a `nas` row this server cannot use as a router, though
// FreeRADIUS accepts it: a CIDR range of clients, a hostname, or a name or
// address another row has too. It is kept as it is (FreeRADIUS may still
// use it), listed with the reason, and left out of Routers.
type SkippedNAS struct {
	ID        int64  `json:"id"`
	NASName   string `json:"nasname"`
	ShortName string `json:"shortname"`
	Reason    string `json:"reason"`
}

// RouterLister lists the routers allowed to send accounting.
type RouterLister interface {
	Routers(ctx context.Context) ([]Router, error)
}

// RouterFinder looks a router up by its id or its name; an unknown one is
// ErrNotFound.
type RouterFinder interface {
	Router(ctx context.Context, idOrName string) (Router, error)
}

// RouterStore reads and changes routers.
type RouterStore interface {
	RouterLister
	RouterFinder
	CreateRouter(ctx context.Context, r *Router) error
	UpdateRouter(ctx context.Context, r *Router) error
	DeleteRouter(ctx context.Context, idOrName string) error
}

// StatusType is the Acct-Status-Type of an accounting record.
type StatusType uint32

// The Acct-Status-Type values RouterOS sends (RFC 2866 5.1).
const (
	StatusStart         StatusType = 1
	StatusStop          StatusType = 2
	StatusInterimUpdate StatusType = 3
	StatusAccountingOn  StatusType = 7
	StatusAccountingOff StatusType = 8
)

func (s StatusType) String() string {
	switch s {
	case StatusStart:
		return "Start"
	case StatusStop:
		return "Stop"
	case StatusInterimUpdate:
		return "Interim-Update"
	case StatusAccountingOn:
		return "Accounting-On"
	case StatusAccountingOff:
		return "Accounting-Off"
	}
	return "Unknown"
}

// Terminate causes we set ourselves (RFC 2866 5.10 names).
const (
	CauseNASReboot   = "NAS-Reboot"
	CauseLostService = "Lost-Service"
	CauseAdminReset  = "Admin-Reset"
)

// How a session was closed, in radacct.closed_by. A real Stop always wins
// over a close we inferred.
const (
	ClosedByStop       = "stop"
	ClosedByNASReboot  = "nas-reboot"
	ClosedByStale      = "stale"
	ClosedByReconciler = "reconciler"
)

// AccountingRecord is one decoded Accounting-Request, ready for the store.
// Optional numeric attributes are pointers: nil means the packet did not
// carry it, which the store must tell apart from zero (a Stop without
// counters keeps the last counters).
type AccountingRecord struct {
	Status     StatusType
	RouterID   int64
	EventTime  time.Time // Event-Timestamp, else receive time - Acct-Delay-Time
	UniqueID   string    // acctuniqueid, see AcctUniqueID
	SessionID  string    // Acct-Session-Id
	Username   string
	Realm      string
	NASIP      netip.Addr // nasipaddress as FreeRADIUS writes it: NAS-IPv6-Address, else NAS-IP-Address, with the source filling the missing one of its family
	NASIdent   string
	NASPortID  string
	NASPort    *uint32
	NASPortTyp string
	// SessionTime is Acct-Session-Time in seconds.
	SessionTime    *uint32
	InputOctets    *uint64 // from the subscriber, with gigawords
	OutputOctets   *uint64 // to the subscriber, with gigawords
	InputPackets   *uint32
	OutputPackets  *uint32
	Authentic      string
	ConnectInfo    string
	CalledStation  string
	CallingStation string
	TerminateCause string
	ServiceType    string
	FramedProtocol string
	FramedIP       netip.Addr
	FramedIPv6Addr netip.Addr
	FramedIPv6Pfx  string
	DelegatedPfx   string
	FramedIfaceID  string
	Class          string
	InterimSeconds *uint32 // Acct-Interim-Interval when the router sends it
	Profile        string  // Mikrotik-Group
	// FromAPI marks a record the reconciler built from the RouterOS API
	// rather than an accounting packet.
	FromAPI bool
	// Raw is the Accounting-Request as received and Source the address it
	// came from, kept so a record PostgreSQL refuses can be quarantined
	// with the packet itself; empty for records not from a packet.
	Raw    []byte
	Source netip.AddrPort
}

// AcctUniqueID is the general branch of FreeRADIUS's stock acct_unique
// policy: md5 hex of
// User-Name,Acct-Session-Id,NAS-IP-Address,NAS-Identifier,NAS-Port-Id,NAS-Port,
// with absent attributes as empty strings. For a received packet use
// radius.UniqueID, which also applies what preprocess and the policy do
// first (source address for a missing NAS-IP-Address, NAS-IPv6-Address
// preferred, the "ai:" Class rule, NUL handling).
func AcctUniqueID(username, sessionID, nasIP, nasIdent, nasPortID, nasPort string) string {
	sum := md5.Sum([]byte(strings.Join([]string{username, sessionID, nasIP, nasIdent, nasPortID, nasPort}, ",")))
	return hex.EncodeToString(sum[:])
}

// AccountingStore makes a batch of accounting records durable in one
// transaction. It returns only after COMMIT; on error nothing of the batch
// may be acknowledged.
type AccountingStore interface {
	ApplyAccounting(ctx context.Context, batch []AccountingRecord) error
}

// RecordOutcome is what a store did with one record of a batch it applied.
type RecordOutcome uint8

const (
	// RecordStored: applied to radacct (or, a replay, found to change nothing).
	RecordStored RecordOutcome = iota
	// RecordQuarantined: PostgreSQL refused the record with a data error
	// even on its own; it is durable in accounting_quarantine instead.
	RecordQuarantined
	// RecordForeignSession: the session's row belongs to another router;
	// nothing was changed, and the record must not be acknowledged.
	RecordForeignSession
)

// AccountingOutcomeStore is an AccountingStore that says, per record, what
// it did. out has len(batch) and is filled only when the error is nil.
type AccountingOutcomeStore interface {
	AccountingStore
	ApplyAccountingOutcomes(ctx context.Context, batch []AccountingRecord, out []RecordOutcome) error
}
