package radius

import (
	"math"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	rad "layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2866"
	"layeh.com/radius/rfc2869"
	"layeh.com/radius/rfc3162"
	"layeh.com/radius/vendors/mikrotik"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/radius/radiustest"
)

var testRouter = nettportal.Router{ID: 7, Name: "core-1", IP: netip.MustParseAddr("127.0.0.11"), Secret: "s3cret"}

// mikrotikPacket builds an Accounting-Request the way RouterOS fills it.
func mikrotikPacket(status rfc2866.AcctStatusType) *rad.Packet {
	return radiustest.MikroTik(status, "alice", "8100000c", net.ParseIP("127.0.0.11"), "core-1").Packet("s3cret")
}

func TestDecode(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	src := netip.MustParseAddr("127.0.0.11")

	t.Run("interim with gigawords and event timestamp", func(t *testing.T) {
		p := mikrotikPacket(rfc2866.AcctStatusType_Value_InterimUpdate)
		rfc2866.AcctInputOctets_Set(p, 10)
		rfc2869.AcctInputGigawords_Set(p, 2)
		rfc2866.AcctOutputOctets_Set(p, 4294967295)
		rfc2869.AcctOutputGigawords_Set(p, 1)
		rfc2866.AcctSessionTime_Set(p, 3600)
		rfc2869.EventTimestamp_Set(p, now.Add(-time.Minute))
		rfc2866.AcctDelayTime_Set(p, 30) // ignored: Event-Timestamp wins
		mikrotik.MikrotikGroup_AddString(p, "10M")
		r, err := Decode(p, testRouter, src, now)
		if err != nil {
			t.Fatal(err)
		}
		if *r.InputOctets != 2<<32+10 || *r.OutputOctets != 1<<32+4294967295 {
			t.Errorf("octets in %d out %d", *r.InputOctets, *r.OutputOctets)
		}
		if !r.EventTime.Equal(now.Add(-time.Minute)) || *r.SessionTime != 3600 {
			t.Errorf("event time %v session time %d", r.EventTime, *r.SessionTime)
		}
		want := nettportal.AcctUniqueID("alice", "8100000c", "127.0.0.11", "core-1", "vlan100", "2164260876")
		if r.UniqueID != want || r.RouterID != 7 || r.Profile != "10M" || r.NASPortTyp != "Ethernet" ||
			r.CallingStation != "AA:BB:CC:DD:EE:01" || r.FramedIP.String() != "100.64.0.7" || r.Authentic != "RADIUS" {
			t.Errorf("decoded %+v", r)
		}
	})
	t.Run("delay time without event timestamp", func(t *testing.T) {
		p := mikrotikPacket(rfc2866.AcctStatusType_Value_Stop)
		rfc2866.AcctDelayTime_Set(p, 45)
		rfc2866.AcctTerminateCause_Set(p, rfc2866.AcctTerminateCause_Value_LostCarrier)
		r, err := Decode(p, testRouter, src, now)
		if err != nil {
			t.Fatal(err)
		}
		if !r.EventTime.Equal(now.Add(-45*time.Second)) || r.TerminateCause != "Lost-Carrier" {
			t.Errorf("event time %v cause %q", r.EventTime, r.TerminateCause)
		}
		if r.InputOctets != nil || r.SessionTime != nil {
			t.Error("absent counters decoded as present")
		}
	})
	t.Run("no NAS-IP-Address uses the source for the row and the unique id", func(t *testing.T) {
		p := mikrotikPacket(rfc2866.AcctStatusType_Value_Start)
		rfc2865.NASIPAddress_Del(p)
		r, err := Decode(p, testRouter, netip.MustParseAddr("127.0.0.99"), now)
		if err != nil {
			t.Fatal(err)
		}
		if r.NASIP.String() != "127.0.0.99" || r.UniqueID != nettportal.AcctUniqueID("alice", "8100000c", "127.0.0.99", "core-1", "vlan100", "2164260876") {
			t.Errorf("nas ip %v unique id %s", r.NASIP, r.UniqueID)
		}
	})
	t.Run("accounting-on needs no session", func(t *testing.T) {
		p := radiustest.Request{Status: rfc2866.AcctStatusType_Value_AccountingOn, NASIP: net.ParseIP("127.0.0.11")}.Packet("s3cret")
		r, err := Decode(p, testRouter, src, now)
		if err != nil || r.Status != nettportal.StatusAccountingOn {
			t.Fatalf("%+v %v", r, err)
		}
	})
	for name, mutate := range map[string]func(*rad.Packet){
		"no status type": func(p *rad.Packet) { rfc2866.AcctStatusType_Del(p) },
		"no session id":  func(p *rad.Packet) { rfc2866.AcctSessionID_Del(p) },
		"unknown status": func(p *rad.Packet) { rfc2866.AcctStatusType_Set(p, 99) },
	} {
		t.Run(name, func(t *testing.T) {
			p := mikrotikPacket(rfc2866.AcctStatusType_Value_Start)
			mutate(p)
			if _, err := Decode(p, testRouter, src, now); err == nil {
				t.Error("decoded without error")
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	entry := &routerEntry{router: testRouter, secret: []byte(testRouter.Secret)}
	for _, status := range []rfc2866.AcctStatusType{1, 2, 3, 7} {
		p := mikrotikPacket(status)
		rfc2866.AcctInputOctets_Set(p, 1)
		rfc2869.AcctInputGigawords_Set(p, 1)
		rfc2869.EventTimestamp_Set(p, time.Unix(1764000000, 0))
		raw, err := p.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	hostile := mikrotikPacket(rfc2866.AcctStatusType_Value_InterimUpdate)
	rfc2865.UserName_Set(hostile, []byte("caf\xe9\x00"))
	rfc2869.AcctInputGigawords_Set(hostile, 1<<31)
	rfc2869.EventTimestamp_Set(hostile, time.Unix(0, 0))
	if raw, err := hostile.Encode(); err == nil {
		f.Add(raw)
	}
	f.Add([]byte{4, 1, 0, 20})
	f.Add(make([]byte, 20))
	src := netip.MustParseAddr("127.0.0.11")
	now := time.Now()
	f.Fuzz(func(t *testing.T, raw []byte) {
		// Unsigned packets only reach the header checks; sign the fuzzed
		// bytes so the attribute decoder is explored as well.
		_, _, _ = decodePacket(raw, entry, src, now, Limits{}, nil)
		if len(raw) >= 20 && len(raw) <= 4096 {
			signed := append([]byte(nil), raw...)
			signed[0] = byte(rad.CodeAccountingRequest)
			signed[2], signed[3] = byte(len(signed)>>8), byte(len(signed))
			signRequest(signed, entry.secret)
			rec, _, err := decodePacket(signed, entry, src, now, Limits{}, nil)
			if err != nil {
				return
			}
			if rec.Status != nettportal.StatusAccountingOn && rec.Status != nettportal.StatusAccountingOff && rec.UniqueID == "" {
				t.Fatalf("decoded a session record without an acctuniqueid: %+v", rec)
			}
			// Only storable values: PostgreSQL text takes no NUL and no
			// invalid UTF-8; bigint takes no counter at or above 2^63.
			v := reflect.ValueOf(rec)
			for i := 0; i < v.NumField(); i++ {
				if s, ok := v.Field(i).Interface().(string); ok && (!utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0) {
					t.Fatalf("%s = %q is not storable text", v.Type().Field(i).Name, s)
				}
			}
			for _, c := range []*uint64{rec.InputOctets, rec.OutputOctets} {
				if c != nil && *c > math.MaxInt64 {
					t.Fatalf("counter %d does not fit bigint", *c)
				}
			}
			if d := rec.EventTime.Sub(now); d < -25*time.Hour || d > 11*time.Minute {
				t.Fatalf("event time %v is %v from receive time", rec.EventTime, d)
			}
		}
	})
}

// The record's NAS address is the nasipaddress FreeRADIUS's stock queries
// write (%{%{NAS-IPv6-Address}:-%{NAS-IP-Address}} after preprocess), and
// the router stays the one the packet came from.
func TestDecodeNASAddressAsFreeRADIUS(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	v4src, v6src := netip.MustParseAddr("127.0.0.11"), netip.MustParseAddr("2001:db8::99")
	setV6 := func(s string) func(p *rad.Packet) {
		return func(p *rad.Packet) { rfc3162.NASIPv6Address_Set(p, net.ParseIP(s)) }
	}
	noV4 := func(p *rad.Packet) { rfc2865.NASIPAddress_Del(p) }
	for _, c := range []struct {
		name  string
		src   netip.Addr
		edits []func(p *rad.Packet)
		want  string
	}{
		{"only NAS-IP-Address", v4src, nil, "127.0.0.11"},
		{"NAS-IP-Address not the source", netip.MustParseAddr("127.0.0.12"), nil, "127.0.0.11"},
		{"neither, IPv4 source", v4src, []func(*rad.Packet){noV4}, "127.0.0.11"},
		{"neither, IPv4-mapped source", netip.MustParseAddr("::ffff:127.0.0.13"), []func(*rad.Packet){noV4}, "127.0.0.13"},
		{"only NAS-IPv6-Address", v4src, []func(*rad.Packet){noV4, setV6("2001:db8::1")}, "2001:db8::1"},
		{"both", v4src, []func(*rad.Packet){setV6("2001:db8::1")}, "2001:db8::1"},
		{"IPv4-mapped NAS-IPv6-Address stays IPv6", v4src, []func(*rad.Packet){noV4, func(p *rad.Packet) {
			p.Add(rfc3162.NASIPv6Address_Type, rad.Attribute(netip.MustParseAddr("::ffff:10.1.2.3").AsSlice()))
		}}, "::ffff:10.1.2.3"},
		{"NAS-IPv6-Address of the wrong length is not one", v4src, []func(*rad.Packet){func(p *rad.Packet) {
			p.Add(rfc3162.NASIPv6Address_Type, rad.Attribute{1, 2, 3, 4})
		}}, "127.0.0.11"},
		{"IPv6 source wins over NAS-IP-Address", v6src, nil, "2001:db8::99"},
		{"IPv6 source, neither", v6src, []func(*rad.Packet){noV4}, "2001:db8::99"},
		{"IPv6 source with zone", netip.MustParseAddr("fe80::1%lo"), []func(*rad.Packet){noV4}, "fe80::1"},
		{"NAS-IPv6-Address over IPv6 source", v6src, []func(*rad.Packet){setV6("2001:db8::1")}, "2001:db8::1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, status := range []rfc2866.AcctStatusType{rfc2866.AcctStatusType_Value_Start, rfc2866.AcctStatusType_Value_AccountingOn} {
				p := mikrotikPacket(status)
				for _, e := range c.edits {
					e(p)
				}
				r, err := Decode(p, testRouter, c.src, now)
				if err != nil {
					t.Fatal(err)
				}
				if r.NASIP.String() != c.want {
					t.Errorf("status %v: NASIP %v, want %s", status, r.NASIP, c.want)
				}
				if r.RouterID != testRouter.ID {
					t.Errorf("status %v: router %d, want the sender %d", status, r.RouterID, testRouter.ID)
				}
			}
		})
	}
}
