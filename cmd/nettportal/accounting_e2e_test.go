package main

import (
	"context"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	rad "layeh.com/radius"
	"layeh.com/radius/rfc2866"

	"github.com/nettportal/nettportal/freeradius/freeradiustest"
	"github.com/nettportal/nettportal/radius/radiustest"
	"github.com/nettportal/nettportal/store"

	"github.com/rs/zerolog"
)

// radclient sends one packet with FreeRADIUS's radclient, an implementation
// independent of ours, and reports whether an Accounting-Response came back.
func radclient(t *testing.T, addr, secret, attrs string) (bool, string) {
	t.Helper()
	cmd := exec.Command(freeradiustest.Radclient(t), "-x", "-t", "1", "-r", "1", addr, "acct", secret)
	cmd.Stdin = strings.NewReader(attrs)
	out, err := cmd.CombinedOutput()
	return err == nil && strings.Contains(string(out), "Received Accounting-Response"), string(out)
}

type acctRow struct {
	SessionID, UniqueID, Username, NASIP, NASPortID, NASPortType string
	Start, Update, Stop                                          *time.Time
	Interval, SessionTime                                        *int64
	Authentic, ConnectStart, ConnectStop                         *string
	In, Out                                                      *int64
	Called, Calling, Cause, ServiceType, FramedProtocol          *string
	FramedIP, Class                                              *string
}

func readRow(t *testing.T, db *store.DB, sessionID string) (acctRow, bool) {
	t.Helper()
	var r acctRow
	err := db.Pool.QueryRow(context.Background(), `SELECT acctsessionid, acctuniqueid, username, host(nasipaddress),
		nasportid, nasporttype, acctstarttime, acctupdatetime, acctstoptime, acctinterval, acctsessiontime,
		acctauthentic, connectinfo_start, connectinfo_stop, acctinputoctets, acctoutputoctets, calledstationid,
		callingstationid, acctterminatecause, servicetype, framedprotocol, host(framedipaddress), class
		FROM radacct WHERE acctsessionid = $1`, sessionID).Scan(&r.SessionID, &r.UniqueID, &r.Username, &r.NASIP,
		&r.NASPortID, &r.NASPortType, &r.Start, &r.Update, &r.Stop, &r.Interval, &r.SessionTime, &r.Authentic,
		&r.ConnectStart, &r.ConnectStop, &r.In, &r.Out, &r.Called, &r.Calling, &r.Cause, &r.ServiceType,
		&r.FramedProtocol, &r.FramedIP, &r.Class)
	if err != nil {
		return r, false
	}
	return r, true
}

func str(p *string) string {
	if p == nil {
		return "<NULL>"
	}
	return *p
}

func num(p *int64) int64 {
	if p == nil {
		return -1
	}
	return *p
}

func TestAccountingEndToEndWithRadclient(t *testing.T) {
	dbURL := migratedDBWithRouter(t, "core-1", "127.0.0.1", "testing123")
	srv := startServe(t, dbURL, "--clock-skew-past", "87600h") // the packets carry a fixed date
	db, err := store.Open(context.Background(), dbURL, 2, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	const common = `User-Name = "alice@isp"
Acct-Session-Id = "8100000c"
NAS-IP-Address = 127.0.0.1
NAS-Identifier = "core-1"
NAS-Port = 2164260876
NAS-Port-Id = "<pppoe-alice@isp>"
NAS-Port-Type = Ethernet
Calling-Station-Id = "AA:BB:CC:DD:EE:01"
Called-Station-Id = "isp-pppoe"
Framed-IP-Address = 100.64.1.10
Framed-Protocol = PPP
Service-Type = Framed-User
Acct-Authentic = RADIUS
Class = 0x706c616e2d3130
`
	start := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	ts := func(d time.Duration) string { return "Event-Timestamp = " + itoa(start.Add(d).Unix()) + "\n" }

	// Start.
	if ok, out := radclient(t, srv.AcctAddr, "testing123", common+"Acct-Status-Type = Start\n"+ts(0)); !ok {
		t.Fatalf("Start not acknowledged:\n%s\n%s", out, srv.Log.String())
	}
	r, ok := readRow(t, db, "8100000c")
	if !ok {
		t.Fatal("no row after an acknowledged Start")
	}
	checks := []struct{ name, got, want string }{
		{"acctuniqueid", r.UniqueID, md5hex("alice@isp,8100000c,127.0.0.1,core-1,<pppoe-alice@isp>,2164260876")},
		{"username", r.Username, "alice@isp"},
		{"nasipaddress", r.NASIP, "127.0.0.1"},
		{"nasportid", r.NASPortID, "<pppoe-alice@isp>"},
		{"nasporttype", r.NASPortType, "Ethernet"},
		{"acctstarttime", r.Start.UTC().String(), start.String()},
		{"acctstoptime", fmtTime(r.Stop), "<NULL>"},
		{"acctauthentic", str(r.Authentic), "RADIUS"},
		{"calledstationid", str(r.Called), "isp-pppoe"},
		{"callingstationid", str(r.Calling), "AA:BB:CC:DD:EE:01"},
		{"servicetype", str(r.ServiceType), "Framed-User"},
		{"framedprotocol", str(r.FramedProtocol), "PPP"},
		{"framedipaddress", str(r.FramedIP), "100.64.1.10"},
		{"class", str(r.Class), "0x706c616e2d3130"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("after Start: %s = %q, want %q", c.name, c.got, c.want)
		}
	}

	// Interim with Gigawords: 3*2^32+1000 up, 5*2^32+7 down.
	interim := common + "Acct-Status-Type = Interim-Update\n" + ts(300*time.Second) +
		"Acct-Session-Time = 300\nAcct-Input-Octets = 1000\nAcct-Input-Gigawords = 3\nAcct-Output-Octets = 7\nAcct-Output-Gigawords = 5\nAcct-Interim-Interval = 300\n"
	if ok, out := radclient(t, srv.AcctAddr, "testing123", interim); !ok {
		t.Fatalf("Interim not acknowledged:\n%s", out)
	}
	r, _ = readRow(t, db, "8100000c")
	if num(r.In) != 3<<32+1000 || num(r.Out) != 5<<32+7 || num(r.SessionTime) != 300 || num(r.Interval) != 300 {
		t.Errorf("after Interim: in %d out %d session time %d interval %d", num(r.In), num(r.Out), num(r.SessionTime), num(r.Interval))
	}
	if !r.Update.Equal(start.Add(300 * time.Second)) {
		t.Errorf("acctupdatetime %v", r.Update)
	}

	// Stop, with Acct-Delay-Time and no Event-Timestamp: event time is receive time - delay.
	before := time.Now()
	stop := common + "Acct-Status-Type = Stop\nAcct-Delay-Time = 30\nAcct-Session-Time = 600\n" +
		"Acct-Input-Octets = 2000\nAcct-Input-Gigawords = 3\nAcct-Output-Octets = 9\nAcct-Output-Gigawords = 5\nAcct-Terminate-Cause = User-Request\n"
	if ok, out := radclient(t, srv.AcctAddr, "testing123", stop); !ok {
		t.Fatalf("Stop not acknowledged:\n%s", out)
	}
	r, _ = readRow(t, db, "8100000c")
	if r.Stop == nil || r.Stop.Before(before.Add(-31*time.Second)) || r.Stop.After(time.Now().Add(-29*time.Second)) {
		t.Errorf("acctstoptime %v, want about %v", fmtTime(r.Stop), before.Add(-30*time.Second))
	}
	if str(r.Cause) != "User-Request" || num(r.In) != 3<<32+2000 || num(r.Out) != 5<<32+9 || num(r.SessionTime) != 600 {
		t.Errorf("after Stop: cause %s in %d out %d time %d", str(r.Cause), num(r.In), num(r.Out), num(r.SessionTime))
	}

	// Wrong secret: no answer, nothing written.
	other := strings.ReplaceAll(common, "8100000c", "8100000d")
	if ok, _ := radclient(t, srv.AcctAddr, "wrong-secret", other+"Acct-Status-Type = Start\n"+ts(10*time.Second)); ok {
		t.Error("a packet with the wrong secret was acknowledged")
	}
	if _, ok := readRow(t, db, "8100000d"); ok {
		t.Error("a packet with the wrong secret was written")
	}

	// Accounting-On closes the router's open sessions.
	if ok, out := radclient(t, srv.AcctAddr, "testing123", other+"Acct-Status-Type = Start\n"+ts(10*time.Second)); !ok {
		t.Fatalf("second Start not acknowledged:\n%s", out)
	}
	on := "Acct-Status-Type = Accounting-On\nNAS-IP-Address = 127.0.0.1\nNAS-Identifier = \"core-1\"\nAcct-Session-Id = \"\"\n" + ts(3600*time.Second)
	if ok, out := radclient(t, srv.AcctAddr, "testing123", on); !ok {
		t.Fatalf("Accounting-On not acknowledged:\n%s", out)
	}
	r, _ = readRow(t, db, "8100000d")
	if r.Stop == nil || !r.Stop.Equal(start.Add(3600*time.Second)) || str(r.Cause) != "NAS-Reboot" {
		t.Errorf("after Accounting-On: stop %s cause %s", fmtTime(r.Stop), str(r.Cause))
	}
	// The already stopped session keeps its real Stop.
	r, _ = readRow(t, db, "8100000c")
	if str(r.Cause) != "User-Request" {
		t.Errorf("Accounting-On changed a stopped session: cause %s", str(r.Cause))
	}
}

// TestRetransmissionIsAnsweredOnce sends the very same bytes twice, as a
// router does when an answer is late: both get the same answer, one write.
func TestRetransmissionIsAnsweredOnce(t *testing.T) {
	dbURL := migratedDBWithRouter(t, "core-1", "127.0.0.1", "s3cret")
	srv := startServe(t, dbURL)

	raw := radiustest.Request{Status: rfc2866.AcctStatusType_Value_InterimUpdate, User: "bob", SessionID: "81000001",
		Counters: &radiustest.Counters{SessionTime: 60, In: 500}}.Encode(t, "s3cret")
	conn, err := net.Dial("udp", srv.AcctAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	db, err := store.Open(context.Background(), dbURL, 2, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// ON CONFLICT DO UPDATE writes a new row version even when nothing
	// changes, so an unchanged xmin proves the copies were not written again.
	rowVersion := func() string {
		var rows int
		var xmin string
		if err := db.Pool.QueryRow(context.Background(), "SELECT count(*), max(xmin::text) FROM radacct").Scan(&rows, &xmin); err != nil {
			t.Fatal(err)
		}
		if rows != 1 {
			t.Fatalf("%d rows, want 1", rows)
		}
		return xmin
	}
	var answers [][]byte
	var firstVersion string
	for i := 0; i < 3; i++ {
		if _, err := conn.Write(raw); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		buf := make([]byte, 4096)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("copy %d: no answer: %v", i, err)
		}
		if !rad.IsAuthenticResponse(buf[:n], raw, []byte("s3cret")) {
			t.Fatalf("copy %d: answer does not authenticate", i)
		}
		answers = append(answers, buf[:n])
		if i == 0 {
			firstVersion = rowVersion()
		}
	}
	if string(answers[0]) != string(answers[1]) || string(answers[1]) != string(answers[2]) {
		t.Error("retransmissions got different answers")
	}
	if v := rowVersion(); v != firstVersion {
		t.Errorf("retransmissions wrote the row again (xmin %s, then %s)", firstVersion, v)
	}
}
