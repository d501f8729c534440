// Package radiustest builds the Accounting-Requests tests send to an
// accounting server (ours, or FreeRADIUS as a peer), as coa/coatest does
// for Disconnect and CoA: one description of a request, its fields named,
// and the attributes a test needs beyond them set by a function. Every
// attribute goes through layeh's generated packages.
//
// The simulator (package sim) builds its own requests: it is production
// code (demo, sim, benchmarks), it must not import a test package, and its
// load path encodes from precomputed templates for speed.
package radiustest

import (
	"net"
	"testing"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2866"
	"layeh.com/radius/rfc2869"
)

// Request is one Accounting-Request. A zero field is not sent.
type Request struct {
	Status    rfc2866.AcctStatusType
	User      string // User-Name; any bytes (a hostile router's too)
	SessionID string // Acct-Session-Id
	NASIP     net.IP // NAS-IP-Address
	// NASIdentifier, NASPort, NASPortID and NASPortType describe the
	// router's port, as FreeRADIUS's acct_unique policy reads them.
	NASIdentifier string
	NASPort       uint32
	NASPortID     string
	NASPortType   rfc2865.NASPortType
	Calling       string // Calling-Station-Id (the CPE's MAC)
	Called        string // Called-Station-Id (the PPPoE service)
	FramedIP      net.IP // Framed-IP-Address
	// PPP sends Service-Type Framed-User and Framed-Protocol PPP.
	PPP       bool
	Authentic rfc2866.AcctAuthentic // Acct-Authentic
	// Counters, when set, sends Acct-Session-Time and the octet counters.
	Counters *Counters
	// Event, when set, is sent as Event-Timestamp.
	Event time.Time
	// Set, when set, changes the packet last: attributes Request does not
	// name, or removing one of those it sent.
	Set func(p *radius.Packet)
}

// Counters are an interim's or a stop's totals.
type Counters struct {
	SessionTime uint32 // seconds
	In, Out     uint32 // Acct-Input-Octets, Acct-Output-Octets (below 4 GiB)
}

// Start is a Start of user's session sid with nothing else.
func Start(user, sid string) Request {
	return Request{Status: rfc2866.AcctStatusType_Value_Start, User: user, SessionID: sid}
}

// MikroTik is the request RouterOS sends for user's PPPoE session sid
// from the router at nas named ident: port, CPE and service as it fills
// them. Counters are the caller's.
func MikroTik(status rfc2866.AcctStatusType, user, sid string, nas net.IP, ident string) Request {
	return Request{
		Status: status, User: user, SessionID: sid, NASIP: nas, NASIdentifier: ident,
		NASPort: 0x8100000c, NASPortID: "vlan100", NASPortType: rfc2865.NASPortType_Value_Ethernet,
		Calling: "AA:BB:CC:DD:EE:01", Called: "isp", FramedIP: net.IPv4(100, 64, 0, 7),
		PPP: true, Authentic: rfc2866.AcctAuthentic_Value_RADIUS,
	}
}

// Packet builds the request with secret.
func (r Request) Packet(secret string) *radius.Packet {
	p := radius.New(radius.CodeAccountingRequest, []byte(secret))
	// A fresh packet holds none of these, so no _Set can fail or repeat.
	add(p, r.Status, rfc2866.AcctStatusType_Set)
	add(p, r.User, rfc2865.UserName_SetString)
	add(p, r.SessionID, rfc2866.AcctSessionID_SetString)
	addIP(p, r.NASIP, rfc2865.NASIPAddress_Set)
	add(p, r.NASIdentifier, rfc2865.NASIdentifier_SetString)
	add(p, rfc2865.NASPort(r.NASPort), rfc2865.NASPort_Set)
	add(p, r.NASPortID, rfc2869.NASPortID_SetString)
	add(p, r.NASPortType, rfc2865.NASPortType_Set)
	add(p, r.Calling, rfc2865.CallingStationID_SetString)
	add(p, r.Called, rfc2865.CalledStationID_SetString)
	addIP(p, r.FramedIP, rfc2865.FramedIPAddress_Set)
	if r.PPP {
		_ = rfc2865.ServiceType_Set(p, rfc2865.ServiceType_Value_FramedUser)
		_ = rfc2865.FramedProtocol_Set(p, rfc2865.FramedProtocol_Value_PPP)
	}
	add(p, r.Authentic, rfc2866.AcctAuthentic_Set)
	if c := r.Counters; c != nil {
		_ = rfc2866.AcctSessionTime_Set(p, rfc2866.AcctSessionTime(c.SessionTime))
		_ = rfc2866.AcctInputOctets_Set(p, rfc2866.AcctInputOctets(c.In))
		_ = rfc2866.AcctOutputOctets_Set(p, rfc2866.AcctOutputOctets(c.Out))
	}
	if !r.Event.IsZero() {
		_ = rfc2869.EventTimestamp_Set(p, r.Event)
	}
	if r.Set != nil {
		r.Set(p)
	}
	return p
}

// add sets an attribute to v unless v is zero (a Request's zero field is
// not sent).
func add[T comparable](p *radius.Packet, v T, set func(*radius.Packet, T) error) {
	var zero T
	if v != zero {
		_ = set(p, v)
	}
}

// addIP is add for an address field: nil is not sent.
func addIP(p *radius.Packet, ip net.IP, set func(*radius.Packet, net.IP) error) {
	if ip != nil {
		_ = set(p, ip)
	}
}

// Encode is the request on the wire, signed with secret; an encoding
// error fails tb.
func (r Request) Encode(tb testing.TB, secret string) []byte {
	tb.Helper()
	raw, err := r.Packet(secret).Encode()
	if err != nil {
		tb.Fatalf("encode Accounting-Request: %v", err)
	}
	return raw
}
