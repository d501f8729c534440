package radius_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"
	rad "layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2866"
	"layeh.com/radius/rfc2869"
	"layeh.com/radius/rfc3162"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/freeradius/freeradiustest"
	"github.com/nettportal/nettportal/radius"
	"github.com/nettportal/nettportal/radius/radiustest"
	"github.com/nettportal/nettportal/store"
	"github.com/nettportal/nettportal/store/storetest"
)

// uniqueIDCase is one Accounting-Start sent from src; edit changes the
// ordinary packet.
type uniqueIDCase struct {
	name string
	src  string
	edit func(p *rad.Packet)
}

const hex32 = "0123456789abcdef0123456789abcdef"

func uniqueIDCases() []uniqueIDCase {
	v6 := func(s string) func(p *rad.Packet) {
		return func(p *rad.Packet) { rfc3162.NASIPv6Address_Set(p, net.ParseIP(s)) }
	}
	noNASIP := func(p *rad.Packet) { rfc2865.NASIPAddress_Del(p) }
	class := func(vals ...string) func(p *rad.Packet) {
		return func(p *rad.Packet) {
			for _, v := range vals {
				rfc2865.Class_Add(p, []byte(v))
			}
		}
	}
	user := func(b string) func(p *rad.Packet) {
		return func(p *rad.Packet) { rfc2865.UserName_Set(p, []byte(b)) }
	}
	both := func(fs ...func(p *rad.Packet)) func(p *rad.Packet) {
		return func(p *rad.Packet) {
			for _, f := range fs {
				f(p)
			}
		}
	}
	return []uniqueIDCase{
		{name: "ordinary", src: "127.0.0.1"},
		{name: "no NAS-IP-Address", src: "127.0.0.1", edit: noNASIP},
		{name: "no NAS-IP-Address, other source", src: "127.0.0.2", edit: noNASIP},
		{name: "NAS-IP-Address not the source", src: "127.0.0.2", edit: func(p *rad.Packet) { rfc2865.NASIPAddress_Set(p, net.IPv4(10, 0, 0, 1)) }},
		{name: "only NAS-IPv6-Address", src: "127.0.0.1", edit: both(noNASIP, v6("2001:db8::1"))},
		{name: "both addresses", src: "127.0.0.1", edit: v6("2001:db8:0:0:1:0:0:1")},
		{name: "IPv6 with embedded IPv4", src: "127.0.0.1", edit: both(noNASIP, v6("::10.1.2.3"))},
		{name: "IPv6 ::1:2", src: "127.0.0.1", edit: v6("::1:2")},
		{name: "IPv4-mapped IPv6", src: "127.0.0.1", edit: both(noNASIP, func(p *rad.Packet) {
			p.Add(rfc3162.NASIPv6Address_Type, rad.Attribute(netip.MustParseAddr("::ffff:10.1.2.3").AsSlice()))
		})},
		{name: "IPv6 ::1", src: "127.0.0.1", edit: v6("::1")},
		{name: "Class ai: and 32 hex digits", src: "127.0.0.1", edit: class("ai:" + hex32)},
		{name: "Class ai: upper-case hex and more", src: "127.0.0.1", edit: class("ai:" + strings.ToUpper(hex32) + "-rest")},
		{name: "Class ai: without NAS-IP-Address", src: "127.0.0.2", edit: both(noNASIP, class("ai:"+hex32))},
		{name: "Class AI: upper-case prefix", src: "127.0.0.1", edit: class("AI:" + hex32)},
		{name: "Class ai: 31 hex digits", src: "127.0.0.1", edit: class("ai:" + hex32[:31])},
		{name: "Class ai: non-hex digit", src: "127.0.0.1", edit: class("ai:" + hex32[:31] + "g")},
		{name: "Class ai: NUL inside", src: "127.0.0.1", edit: class("ai:" + hex32[:10] + "\x00" + hex32[11:])},
		{name: "Class other value", src: "127.0.0.1", edit: class("premium")},
		{name: "second Class is ai:", src: "127.0.0.1", edit: class("premium", "ai:"+hex32)},
		{name: "no NAS-Port", src: "127.0.0.1", edit: func(p *rad.Packet) { rfc2865.NASPort_Del(p) }},
		{name: "NAS-Port 0", src: "127.0.0.1", edit: func(p *rad.Packet) { rfc2865.NASPort_Set(p, 0) }},
		{name: "NAS-Port max", src: "127.0.0.1", edit: func(p *rad.Packet) { rfc2865.NASPort_Set(p, 1<<32-1) }},
		{name: "no NAS-Identifier, NAS-Port-Id", src: "127.0.0.1", edit: func(p *rad.Packet) {
			rfc2865.NASIdentifier_Del(p)
			rfc2869.NASPortID_Del(p)
		}},
		{name: "no User-Name", src: "127.0.0.1", edit: func(p *rad.Packet) { rfc2865.UserName_Del(p) }},
		{name: "User-Name with NUL inside", src: "127.0.0.1", edit: user("ab\x00cd")},
		{name: "User-Name Latin-1 and trailing NUL", src: "127.0.0.1", edit: user("jos\xe9\x00")},
		{name: "User-Name with comma and backslash", src: "127.0.0.1", edit: user(`DOM\user,x`)},
		{name: "User-Name .ppp hint", src: "127.0.0.1", edit: user("bob.ppp")},
		{name: "User-Name UTF-8", src: "127.0.0.1", edit: user("jøran")},
		{name: "User-Name two trailing NULs", src: "127.0.0.1", edit: user("xy\x00\x00")},
		{name: "User-Name only NUL", src: "127.0.0.1", edit: user("\x00")},
		{name: "User-Name NUL then NUL-terminated", src: "127.0.0.1", edit: user("a\x00b\x00")},
		{name: "NAS-Identifier with NUL", src: "127.0.0.1", edit: func(p *rad.Packet) { rfc2865.NASIdentifier_Set(p, []byte("core\x001")) }},
		{name: "NAS-Port-Id trailing NUL", src: "127.0.0.1", edit: func(p *rad.Packet) { rfc2869.NASPortID_Set(p, []byte("vlan100\x00")) }},
		{name: "Acct-Session-Id trailing NUL", src: "127.0.0.1", edit: func(p *rad.Packet) {
			sid := rfc2866.AcctSessionID_Get(p)
			rfc2866.AcctSessionID_Set(p, append(sid, 0))
		}},
		{name: "Class ai: and Acct-Session-Id with NUL", src: "127.0.0.1", edit: both(class("ai:"+hex32), func(p *rad.Packet) {
			sid := rfc2866.AcctSessionID_Get(p)
			rfc2866.AcctSessionID_Set(p, append(append(sid, 0), 'z'))
		})},
	}
}

// caseRequest encodes MikroTik's Start of case i (Acct-Session-Id
// prefix and i), changed by edit when there is one.
func caseRequest(t *testing.T, prefix string, i int, name string, edit func(*rad.Packet)) []byte {
	t.Helper()
	p := mikrotikRequest(fmt.Sprintf(prefix+"%04d", i), fmt.Sprintf("case-%02d", i))
	if edit != nil {
		edit(p)
	}
	raw, err := p.Encode()
	if err != nil {
		t.Fatalf("%s: encode: %v", name, err)
	}
	return raw
}

// serverBeside is this server, tuned by tune (when not nil), on a new
// migrated database in which router r is registered (its ID set); it
// returns the database's URL, the database and the server's address.
func serverBeside(t *testing.T, r *nettportal.Router, tune func(*radius.Server)) (string, *store.DB, netip.AddrPort) {
	t.Helper()
	ourURL := storetest.MustCreateDatabase(t)
	ctx := context.Background()
	db, err := store.Open(ctx, ourURL, 4, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateRouter(ctx, r); err != nil {
		t.Fatal(err)
	}
	ours := startServer(t, db, tune)
	return ourURL, db, ours.LocalAddr().(*net.UDPAddr).AddrPort()
}

// The same Accounting-Start packets, sent through the real FreeRADIUS 3.2
// (stock configuration, its own stock database) and through this server,
// land on rows with the same acctuniqueid, case by case.
func TestUniqueIDMatchesFreeRADIUS(t *testing.T) {
	fr := freeradiustest.Start(t, freeradiustest.Config{DatabaseURL: freeradiustest.StockDatabase(t), Secret: secret})
	frURL := fr.DatabaseURL

	r2 := nettportal.Router{Name: "core-2", IP: netip.MustParseAddr("127.0.0.2"), Secret: secret}
	ourURL, _, oursAddr := serverBeside(t, &r2, nil)

	cases := uniqueIDCases()
	for i, c := range cases {
		raw := caseRequest(t, "8200", i, c.name, c.edit)
		src := netip.MustParseAddr(c.src)
		for _, dst := range []netip.AddrPort{fr.AcctAddr(), oursAddr} {
			if err := sendAwait(src, dst, raw); err != nil {
				t.Fatalf("%s: to %v: %v", c.name, dst, err)
			}
		}
	}

	compareRows(t, cases, uniqueIDs(t, frURL), uniqueIDs(t, ourURL))
}

// compareRows checks that each case's row has FreeRADIUS's acctuniqueid
// and nasipaddress.
func compareRows(t *testing.T, cases []uniqueIDCase, want, got map[string]rowIDs) {
	t.Helper()
	for i, c := range cases {
		key := fmt.Sprintf("case-%02d", i)
		w, g := want[key], got[key]
		if w.id == "" || g.id == "" {
			t.Errorf("%s: FreeRADIUS row %+v, ours %+v", c.name, w, g)
			continue
		}
		if g.id != w.id {
			t.Errorf("%s: acctuniqueid %s, FreeRADIUS wrote %s", c.name, g.id, w.id)
		}
		if g.nas != w.nas {
			t.Errorf("%s: nasipaddress %s, FreeRADIUS wrote %s", c.name, g.nas, w.nas)
		}
	}
}

// mikrotikRequest is an Accounting-Start as RouterOS sends it.
func mikrotikRequest(sid, calling string) *rad.Packet {
	r := radiustest.MikroTik(rfc2866.AcctStatusType_Value_Start, "alice", sid, net.IPv4(127, 0, 0, 1), "core-1")
	r.Calling = calling
	return r.Packet(secret)
}

// sendAwait sends raw from src to dst and waits for the authentic answer,
// retransmitting as a router would.
func sendAwait(src netip.Addr, dst netip.AddrPort, raw []byte) error {
	conn, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), net.UDPAddrFromAddrPort(dst))
	if err != nil {
		return err
	}
	defer conn.Close()
	buf := make([]byte, 4096)
	for attempt := 0; attempt < 3; attempt++ {
		if _, err := conn.Write(raw); err != nil {
			return err
		}
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			n, err := conn.Read(buf)
			if err != nil {
				break
			}
			if rad.IsAuthenticResponse(buf[:n], raw, []byte(secret)) {
				return nil
			}
		}
	}
	return fmt.Errorf("no answer")
}

// rowIDs is what a row says about where it came from.
type rowIDs struct{ id, nas string }

// uniqueIDs maps callingstationid to the row's acctuniqueid and
// nasipaddress (as PostgreSQL prints the inet).
func uniqueIDs(t *testing.T, url string) map[string]rowIDs {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT callingstationid, acctuniqueid, nasipaddress::text FROM radacct`)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]rowIDs{}
	for rows.Next() {
		var k string
		var v rowIDs
		if err := rows.Scan(&k, &v.id, &v.nas); err != nil {
			t.Fatal(err)
		}
		m[k] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

// The same over IPv6 loopback: a router sending from ::1 (preprocess then
// adds NAS-IPv6-Address = ::1 when the packet has none, which wins over
// NAS-IP-Address), with only NAS-IPv6-Address, both addresses, or neither.
// FreeRADIUS and this server must agree on acctuniqueid and nasipaddress.
func TestUniqueIDMatchesFreeRADIUSOverIPv6(t *testing.T) {
	freeradiustest.Require(t)
	lo6 := netip.IPv6Loopback() // on lo wherever the tests run: its absence is a failure
	fr := freeradiustest.Start(t, freeradiustest.Config{DatabaseURL: freeradiustest.StockDatabase(t), Secret: secret, Addr: lo6,
		Clients: []freeradiustest.Client{{Addr: "::1", Secret: secret, Name: "lo6"}}})

	ctx := context.Background()
	r6 := nettportal.Router{Name: "core-6", IP: lo6, Secret: secret}
	ourURL, db, oursAddr := serverBeside(t, &r6, func(s *radius.Server) { s.Addr = "[::1]:0" })

	v6 := func(s string) func(p *rad.Packet) {
		return func(p *rad.Packet) { rfc3162.NASIPv6Address_Set(p, net.ParseIP(s)) }
	}
	noNASIP := func(p *rad.Packet) { rfc2865.NASIPAddress_Del(p) }
	cases := []uniqueIDCase{
		{name: "only NAS-IPv6-Address ::1", edit: func(p *rad.Packet) { noNASIP(p); v6("::1")(p) }},
		{name: "only NAS-IPv6-Address, not the source", edit: func(p *rad.Packet) { noNASIP(p); v6("2001:db8::1")(p) }},
		{name: "both addresses", edit: v6("2001:db8::2")},
		{name: "only NAS-IP-Address", edit: nil},
		{name: "neither address", edit: noNASIP},
		{name: "IPv4-mapped NAS-IPv6-Address", edit: func(p *rad.Packet) {
			noNASIP(p)
			p.Add(rfc3162.NASIPv6Address_Type, rad.Attribute(netip.MustParseAddr("::ffff:10.1.2.3").AsSlice()))
		}},
		{name: "Class ai: and NAS-IPv6-Address", edit: func(p *rad.Packet) {
			v6("2001:db8::3")(p)
			rfc2865.Class_Add(p, []byte("ai:"+hex32))
		}},
	}
	for i, c := range cases {
		raw := caseRequest(t, "8600", i, c.name, c.edit)
		for _, dst := range []netip.AddrPort{fr.AcctAddr(), oursAddr} {
			if err := sendAwait(lo6, dst, raw); err != nil {
				t.Fatalf("%s: to %v: %v", c.name, dst, err)
			}
		}
	}
	got := uniqueIDs(t, ourURL)
	compareRows(t, cases, uniqueIDs(t, fr.DatabaseURL), got)
	// The sessions are the sending router's, whatever address they name.
	var foreign int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM radacct WHERE nas_id IS DISTINCT FROM $1`, r6.ID).Scan(&foreign); err != nil {
		t.Fatal(err)
	}
	if foreign != 0 || len(got) != len(cases) {
		t.Errorf("%d rows, %d not router %d's", len(got), foreign, r6.ID)
	}
}
