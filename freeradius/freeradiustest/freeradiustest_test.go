package freeradiustest_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"layeh.com/radius"
	"layeh.com/radius/rfc2865"

	"github.com/nettportal/nettportal/freeradius/freeradiustest"
	"github.com/nettportal/nettportal/radius/radiustest"
)

func exchange(t *testing.T, p *radius.Packet, addr string) *radius.Packet {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := radius.Exchange(ctx, p, addr)
	if err != nil {
		t.Fatalf("exchange with FreeRADIUS: %v", err)
	}
	return resp
}

func start(t *testing.T, secret, session string) *radius.Packet {
	r := radiustest.Start("alice", session)
	r.NASIP = net.IPv4(127, 0, 0, 1)
	return r.Packet(secret)
}

func TestStartWritesStockDatabase(t *testing.T) {
	url := freeradiustest.StockDatabase(t)
	s := freeradiustest.Start(t, freeradiustest.Config{DatabaseURL: url})
	resp := exchange(t, start(t, s.Secret, "81000001"), s.AcctAddr().String())
	if resp.Code != radius.CodeAccountingResponse {
		t.Fatalf("answer %v, want Accounting-Response", resp.Code)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var user, uid string
	if err := conn.QueryRow(ctx, `SELECT username, acctuniqueid FROM radacct WHERE acctsessionid = '81000001'`).Scan(&user, &uid); err != nil {
		t.Fatalf("FreeRADIUS's row: %v", err)
	}
	if user != "alice" || len(uid) != 32 {
		t.Fatalf("row username %q acctuniqueid %q", user, uid)
	}
}

func TestStartReadsClientsFromNAS(t *testing.T) {
	url := freeradiustest.StockDatabase(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `INSERT INTO nas (nasname, shortname, type, secret) VALUES ('127.0.0.1', 'r1', 'other', 'from-nas-table')`); err != nil {
		t.Fatal(err)
	}
	s := freeradiustest.Start(t, freeradiustest.Config{DatabaseURL: url, ReadClients: true, CoA: true, Debug: 1})
	if !s.CoAAddr().IsValid() {
		t.Fatal("no CoA listener")
	}
	resp := exchange(t, start(t, "from-nas-table", "81000002"), s.AcctAddr().String())
	if resp.Code != radius.CodeAccountingResponse {
		t.Fatalf("answer %v, want Accounting-Response", resp.Code)
	}
	dm := radius.New(radius.CodeDisconnectRequest, []byte("from-nas-table"))
	_ = rfc2865.UserName_AddString(dm, "alice")
	if resp := exchange(t, dm, s.CoAAddr().String()); resp.Code != radius.CodeDisconnectACK && resp.Code != radius.CodeDisconnectNAK {
		t.Fatalf("CoA listener answered %v", resp.Code)
	}
	// Only the harness's own loopback listeners: nothing on the wildcard
	// or the well-known ports, which other tests' simulated routers use.
	files, _ := filepath.Glob(filepath.Join(s.Dir, "sites-enabled", "*"))
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			code, _, _ := strings.Cut(line, "#")
			if f := strings.Fields(code); len(f) == 3 && (f[0] == "ipaddr" || f[0] == "ipv6addr") && (f[2] == "*" || f[2] == "::") {
				t.Errorf("%s: listens on %s", filepath.Base(file), line)
			}
		}
	}
}
