package radius

import (
	"crypto/md5"
	"fmt"
	"net"
	"net/netip"
	"testing"

	rad "layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2866"
	"layeh.com/radius/rfc3162"

	"github.com/nettportal/nettportal/radius/radiustest"
)

func md5Of(s string) string { return fmt.Sprintf("%x", md5.Sum([]byte(s))) }

// The formula of FreeRADIUS's stock preprocess + acct_unique, case by case;
// TestUniqueIDMatchesFreeRADIUS checks the same cases against the real one.
func TestUniqueID(t *testing.T) {
	v4src := netip.MustParseAddr("127.0.0.9")
	v6src := netip.MustParseAddr("fd00::9")
	base := func() *rad.Packet {
		return radiustest.Request{Status: rfc2866.AcctStatusType_Value_Start, User: "alice", SessionID: "81000001",
			NASIP: net.IPv4(10, 0, 0, 1), NASIdentifier: "core-1", NASPort: 7}.Packet("s")
	}
	for _, c := range []struct {
		name string
		src  netip.Addr
		edit func(p *rad.Packet)
		want string
	}{
		{"NAS-IP-Address", v4src, nil, "alice,81000001,10.0.0.1,core-1,,7"},
		{"no NAS-IP-Address: IPv4 source", v4src, func(p *rad.Packet) { rfc2865.NASIPAddress_Del(p) }, "alice,81000001,127.0.0.9,core-1,,7"},
		{"IPv4-mapped source", netip.MustParseAddr("::ffff:127.0.0.9"), func(p *rad.Packet) { rfc2865.NASIPAddress_Del(p) }, "alice,81000001,127.0.0.9,core-1,,7"},
		{"IPv6 source wins over NAS-IP-Address", v6src, nil, "alice,81000001,fd00::9,core-1,,7"},
		{"NAS-IPv6-Address wins", v4src, func(p *rad.Packet) { rfc3162.NASIPv6Address_Set(p, net.ParseIP("2001:db8::1")) }, "alice,81000001,2001:db8::1,core-1,,7"},
		{"NAS-IPv6-Address over IPv6 source", v6src, func(p *rad.Packet) { rfc3162.NASIPv6Address_Set(p, net.ParseIP("2001:db8::1")) }, "alice,81000001,2001:db8::1,core-1,,7"},
		{"no NAS-Port", v4src, func(p *rad.Packet) { rfc2865.NASPort_Del(p) }, "alice,81000001,10.0.0.1,core-1,,"},
		{"Class ai:", v4src, func(p *rad.Packet) { rfc2865.Class_Add(p, []byte("ai:"+hex32+"tail")) }, hex32 + ",81000001"},
		{"Class ai: upper-case digits kept", v4src, func(p *rad.Packet) { rfc2865.Class_Add(p, []byte("ai:ABCDEF"+hex32[6:])) }, "ABCDEF" + hex32[6:] + ",81000001"},
		{"Class AI:", v4src, func(p *rad.Packet) { rfc2865.Class_Add(p, []byte("AI:"+hex32)) }, "alice,81000001,10.0.0.1,core-1,,7"},
		{"Class too short", v4src, func(p *rad.Packet) { rfc2865.Class_Add(p, []byte("ai:"+hex32[:31])) }, "alice,81000001,10.0.0.1,core-1,,7"},
		{"one trailing NUL dropped", v4src, func(p *rad.Packet) { rfc2865.UserName_Set(p, []byte("alice\x00")) }, "alice,81000001,10.0.0.1,core-1,,7"},
		{"an inner NUL ends the text", v4src, func(p *rad.Packet) { rfc2865.NASIdentifier_Set(p, []byte("co\x00re")) }, "alice,81000001,10.0.0.1,co"},
		{"raw bytes", v4src, func(p *rad.Packet) { rfc2865.UserName_Set(p, []byte("jos\xe9")) }, "jos\xe9,81000001,10.0.0.1,core-1,,7"},
	} {
		p := base()
		if c.edit != nil {
			c.edit(p)
		}
		if got := UniqueID(p, c.src); got != md5Of(c.want) {
			t.Errorf("%s: %s, want md5(%q) = %s", c.name, got, c.want, md5Of(c.want))
		}
	}
}

const hex32 = "0123456789abcdef0123456789abcdef"

func TestInetNtop6(t *testing.T) {
	for in, want := range map[string]string{
		"::":               "::",
		"::1":              "::1",
		"::1:2":            "::0.1.0.2",
		"::10.1.2.3":       "::10.1.2.3",
		"::ffff:10.1.2.3":  "::ffff:10.1.2.3",
		"::ffff:0:1":       "::ffff:0.0.0.1",
		"::1:0:0":          "::1:0:0",
		"2001:db8::1":      "2001:db8::1",
		"2001:db8:0:0:1::": "2001:db8:0:0:1::",
		"1:0:0:2:0:0:0:3":  "1:0:0:2::3",
		"fe80::1:2:3:4":    "fe80::1:2:3:4",
	} {
		if got := inetNtop6(netip.MustParseAddr(in)); got != want {
			t.Errorf("inetNtop6(%s) = %s, want %s", in, got, want)
		}
	}
}
