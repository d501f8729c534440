package radius

import (
	"crypto/md5"
	"encoding/hex"
	"net/netip"
	"strconv"
	"strings"

	rad "layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2866"
	"layeh.com/radius/rfc2869"
	"layeh.com/radius/rfc3162"
)

// classPrefix is FreeRADIUS's stock policy.class_value_prefix: a Class of
// this prefix and 32 hex digits was minted by its insert_acct_class.
const classPrefix = "ai:"

// UniqueID is the Acct-Unique-Session-Id that FreeRADIUS 3.2's stock
// preacct section (preprocess, then the acct_unique policy in
// policy.d/accounting) gives the Accounting-Request p received from src, so
// a packet written by either server lands on the same radacct row:
//
//   - a first Class of "ai:" and 32 hex digits (either case): md5 of those
//     32 digits as sent, ",", Acct-Session-Id;
//   - otherwise md5 of User-Name,Acct-Session-Id,NAS-IPv6-Address or else
//     NAS-IP-Address,NAS-Identifier,NAS-Port-Id,NAS-Port, where preprocess
//     has first filled the missing address attribute of src's family from
//     src (so an IPv4 source yields its address when NAS-IP-Address is
//     absent, and an IPv6 source always wins over NAS-IP-Address).
//
// Absent attributes are empty strings. Values are the raw attribute bytes
// less one trailing NUL (FreeRADIUS's decoder drops it); the joined text
// is hashed up to its first NUL, as the md5 expansion takes a C string.
// Addresses are printed as glibc's inet_ntop prints them.
func UniqueID(p *rad.Packet, src netip.Addr) string {
	sid := trimNUL(rfc2866.AcctSessionID_Get(p))
	if class := rfc2865.Class_Get(p); isLocalClass(class) {
		return md5Hex(string(class[len(classPrefix):len(classPrefix)+32]), ",", sid)
	}
	nas := ""
	if a := NASAddress(p, src); a.Is6() {
		nas = inetNtop6(a)
	} else if a.IsValid() {
		nas = a.String()
	}
	port := ""
	if v, err := rfc2865.NASPort_Lookup(p); err == nil {
		port = strconv.FormatUint(uint64(v), 10)
	}
	return md5Hex(trimNUL(rfc2865.UserName_Get(p)), ",", sid, ",", nas, ",",
		trimNUL(rfc2865.NASIdentifier_Get(p)), ",", trimNUL(rfc2869.NASPortID_Get(p)), ",", port)
}

// NASAddress is the address FreeRADIUS 3.2's stock configuration stores as
// nasipaddress and hashes into acctuniqueid for the Accounting-Request p
// received from src: %{%{NAS-IPv6-Address}:-%{NAS-IP-Address}} after
// preprocess has added the attribute of src's family from src when p lacks
// it. So NAS-IPv6-Address wins over NAS-IP-Address, an IPv6 source wins
// over NAS-IP-Address, and an IPv4 source stands in only when p has
// neither attribute. An IPv4-mapped NAS-IPv6-Address stays IPv6, as
// FreeRADIUS prints and PostgreSQL stores it. Invalid only when src is
// invalid and p names no address.
//
// It is not the router: the router is who sent the packet (its source),
// which a NAS-IPv6-Address does not change.
func NASAddress(p *rad.Packet, src netip.Addr) netip.Addr {
	src = src.Unmap().WithZone("")
	if v6, ok := addr16(rfc3162.NASIPv6Address_Get(p)); ok {
		return v6
	}
	if src.Is6() {
		return src
	}
	if ip, err := rfc2865.NASIPAddress_Lookup(p); err == nil && len(ip) == 4 {
		return netip.AddrFrom4([4]byte(ip))
	}
	return src
}

// isLocalClass mirrors the policy's two tests: the hex of Class starts with
// the prefix's hex (the prefix exactly), and the printed Class matches
// /^ai:([0-9a-f]{32})/i.
func isLocalClass(class []byte) bool {
	if len(class) < len(classPrefix)+32 || string(class[:len(classPrefix)]) != classPrefix {
		return false
	}
	for _, c := range class[len(classPrefix) : len(classPrefix)+32] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// trimNUL is a string attribute as FreeRADIUS decodes it: one trailing
// NUL, which some NASes send as a C terminator, is dropped; a second stays
// (and then cuts the hashed text there).
func trimNUL(b []byte) string {
	if len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return string(b)
}

func addr16(b []byte) (netip.Addr, bool) {
	if len(b) != 16 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom16([16]byte(b)), true
}

// inetNtop6 prints a as glibc's inet_ntop does. It differs from
// netip.Addr.String only where glibc prints the last 32 bits as dotted
// IPv4: after six zero groups (::1.2.3.4, ::0.1.0.2) or five and ffff
// (::ffff:1.2.3.4, which netip prints the same). glibc then prints :: and
// ::1 in the usual way, because their zero run is longer than six groups.
func inetNtop6(a netip.Addr) string {
	b := a.As16()
	var w [8]uint16
	for i := range w {
		w[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
	}
	// glibc looks at the longest zero run: embedded IPv4 form only when it
	// starts at group 0 and is exactly 6 long, or 5 long followed by ffff.
	best, bestLen, cur, curLen := -1, 0, -1, 0
	for i := 0; i < 8; i++ {
		if w[i] == 0 {
			if cur < 0 {
				cur, curLen = i, 1
			} else {
				curLen++
			}
			if curLen > bestLen {
				best, bestLen = cur, curLen
			}
		} else {
			cur, curLen = -1, 0
		}
	}
	if best == 0 && (bestLen == 6 || bestLen == 5 && w[5] == 0xffff) {
		prefix := "::"
		if bestLen == 5 {
			prefix = "::ffff:"
		}
		return prefix + netip.AddrFrom4([4]byte(b[12:])).String()
	}
	return a.String()
}

// md5Hex hashes the joined parts up to the first NUL.
func md5Hex(parts ...string) string {
	s := strings.Join(parts, "")
	if i := strings.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}
