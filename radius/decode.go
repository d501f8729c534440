// Package radius is NettPortal's RADIUS accounting listener (RFC 2866): it
// verifies each Accounting-Request against its router's secret, decodes the
// MikroTik attribute set, de-duplicates retransmissions, batches records into
// one transaction and answers only after COMMIT.
package radius

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"time"

	rad "layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2866"
	"layeh.com/radius/rfc2869"
	"layeh.com/radius/rfc3162"
	"layeh.com/radius/rfc4818"
	"layeh.com/radius/rfc6911"
	"layeh.com/radius/vendors/mikrotik"

	"github.com/nettportal/nettportal"
)

// Decode errors; each is counted as a malformed packet.
var (
	ErrNoStatusType = errors.New("no Acct-Status-Type")
	ErrNoSessionID  = errors.New("no Acct-Session-Id")
	ErrBadStatus    = errors.New("unsupported Acct-Status-Type")
	// ErrCounterRange: Acct-*-Gigawords << 32 | Acct-*-Octets is at or
	// above 2^63, which no real session reaches and bigint cannot hold.
	ErrCounterRange = errors.New("octet counter total at or above 2^63")
)

// Decode turns a parsed Accounting-Request from router into a record, with
// the default Limits. src is the packet's source address, which FreeRADIUS
// puts in the record's NAS address when the packet names none of src's
// family (see NASAddress); now is the receive time, from which
// Acct-Delay-Time is subtracted when the packet has no (believable)
// Event-Timestamp. Every string of the record is valid UTF-8 without NUL
// (see Escape); a counter total that cannot be a real session makes the
// packet malformed (ErrCounterRange).
func Decode(p *rad.Packet, router nettportal.Router, src netip.Addr, now time.Time) (nettportal.AccountingRecord, error) {
	return decode(p, router, src, now, Limits{}, nil)
}

// decode is Decode with lim; when clk is not nil it learns what the packet
// said about the router's clock.
func decode(p *rad.Packet, router nettportal.Router, src netip.Addr, now time.Time, lim Limits, clk *ClockReading) (nettportal.AccountingRecord, error) {
	var r nettportal.AccountingRecord
	status, err := rfc2866.AcctStatusType_Lookup(p)
	if err != nil {
		return r, ErrNoStatusType
	}
	r.Status = nettportal.StatusType(status)
	r.RouterID = router.ID
	switch r.Status {
	case nettportal.StatusStart, nettportal.StatusInterimUpdate, nettportal.StatusStop,
		nettportal.StatusAccountingOn, nettportal.StatusAccountingOff:
	default:
		return r, fmt.Errorf("%w %d", ErrBadStatus, status)
	}

	r.EventTime = lim.eventTime(p, now, clk).UTC().Truncate(time.Microsecond) // what timestamptz keeps

	r.NASIP = NASAddress(p, src)
	r.NASIdent = rfc2865.NASIdentifier_GetString(p)
	if r.Status == nettportal.StatusAccountingOn || r.Status == nettportal.StatusAccountingOff {
		escapeStrings(&r)
		return r, nil
	}

	sid, err := rfc2866.AcctSessionID_LookupString(p)
	if err != nil || sid == "" {
		return r, ErrNoSessionID
	}
	r.SessionID = sid
	r.Username = rfc2865.UserName_GetString(p)
	r.NASPortID = rfc2869.NASPortID_GetString(p)
	if port, err := rfc2865.NASPort_Lookup(p); err == nil {
		v := uint32(port)
		r.NASPort = &v
	}
	r.UniqueID = UniqueID(p, src)
	if v, err := rfc2865.NASPortType_Lookup(p); err == nil {
		r.NASPortTyp = v.String()
	}
	if v, err := rfc2866.AcctSessionTime_Lookup(p); err == nil {
		x := min(uint32(v), lim.maxSessionTime())
		r.SessionTime = &x
	}
	in, inErr := rfc2866.AcctInputOctets_Lookup(p)
	inGiga, inGigaErr := rfc2869.AcctInputGigawords_Lookup(p)
	r.InputOctets = octets(uint32(in), inErr == nil, uint32(inGiga), inGigaErr == nil)
	out, outErr := rfc2866.AcctOutputOctets_Lookup(p)
	outGiga, outGigaErr := rfc2869.AcctOutputGigawords_Lookup(p)
	r.OutputOctets = octets(uint32(out), outErr == nil, uint32(outGiga), outGigaErr == nil)
	for _, c := range []*uint64{r.InputOctets, r.OutputOctets} {
		if c != nil && *c > math.MaxInt64 {
			// radacct's bigint would store it negative; no session moves 8 EiB.
			return r, fmt.Errorf("%w: %d", ErrCounterRange, *c)
		}
	}
	if v, err := rfc2866.AcctInputPackets_Lookup(p); err == nil {
		x := uint32(v)
		r.InputPackets = &x
	}
	if v, err := rfc2866.AcctOutputPackets_Lookup(p); err == nil {
		x := uint32(v)
		r.OutputPackets = &x
	}
	if v, err := rfc2866.AcctAuthentic_Lookup(p); err == nil {
		r.Authentic = v.String()
	}
	if v, err := rfc2866.AcctTerminateCause_Lookup(p); err == nil {
		r.TerminateCause = v.String()
	}
	if v, err := rfc2865.ServiceType_Lookup(p); err == nil {
		r.ServiceType = v.String()
	}
	if v, err := rfc2865.FramedProtocol_Lookup(p); err == nil {
		r.FramedProtocol = v.String()
	}
	r.ConnectInfo = rfc2869.ConnectInfo_GetString(p)
	r.CalledStation = rfc2865.CalledStationID_GetString(p)
	r.CallingStation = rfc2865.CallingStationID_GetString(p)
	if ip, err := rfc2865.FramedIPAddress_Lookup(p); err == nil {
		r.FramedIP = addrFromIP(ip)
	}
	if ip, err := rfc6911.FramedIPv6Address_Lookup(p); err == nil {
		r.FramedIPv6Addr = addrFromIP(ip)
	}
	if n, err := rfc3162.FramedIPv6Prefix_Lookup(p); err == nil && n != nil {
		r.FramedIPv6Pfx = n.String()
	}
	if n, err := rfc4818.DelegatedIPv6Prefix_Lookup(p); err == nil && n != nil {
		r.DelegatedPfx = n.String()
	}
	if id, err := rfc3162.FramedInterfaceID_Lookup(p); err == nil {
		r.FramedIfaceID = id.String()
	}
	if class, err := rfc2865.Class_Lookup(p); err == nil {
		// FreeRADIUS writes octets attributes as 0x-prefixed hex.
		r.Class = "0x" + hex.EncodeToString(class)
	}
	if v, err := rfc2869.AcctInterimInterval_Lookup(p); err == nil {
		x := uint32(v)
		r.InterimSeconds = &x
	}
	r.Profile = mikrotik.MikrotikGroup_GetString(p)
	escapeStrings(&r)
	return r, nil
}

// escapeStrings makes every string attribute storable (valid UTF-8, no
// NUL). It runs after acctuniqueid, which hashes the raw bytes as
// FreeRADIUS does.
func escapeStrings(r *nettportal.AccountingRecord) {
	for _, f := range []*string{&r.SessionID, &r.Username, &r.Realm, &r.NASIdent, &r.NASPortID, &r.ConnectInfo,
		&r.CalledStation, &r.CallingStation, &r.Profile} {
		*f = Escape(*f)
	}
}

// octets joins Acct-*-Octets with Acct-*-Gigawords into the 64-bit total;
// nil when the packet carries neither.
func octets(low uint32, hasLow bool, high uint32, hasHigh bool) *uint64 {
	if !hasLow && !hasHigh {
		return nil
	}
	v := uint64(high)<<32 | uint64(low)
	return &v
}

func addrFromIP(ip net.IP) netip.Addr {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}
	}
	return a.Unmap()
}
