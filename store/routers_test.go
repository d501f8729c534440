package store_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/store/storetest"
)

func TestRouterCRUD(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	r := nettportal.Router{Name: "core-1", IP: netip.MustParseAddr("127.0.0.11"), Secret: "s3cret"}
	if err := db.CreateRouter(ctx, &r); err != nil {
		t.Fatal(err)
	}
	if r.ID == 0 || r.CoAPort != 3799 {
		t.Fatalf("created router %+v", r)
	}
	dup := nettportal.Router{Name: "core-1", IP: netip.MustParseAddr("127.0.0.12"), Secret: "x"}
	if err := db.CreateRouter(ctx, &dup); !errors.Is(err, nettportal.ErrConflict) {
		t.Fatalf("duplicate name: %v, want ErrConflict", err)
	}
	if err := db.CreateRouter(ctx, &nettportal.Router{Name: "x"}); !errors.Is(err, nettportal.ErrInvalid) {
		t.Fatalf("no IP: %v, want ErrInvalid", err)
	}
	r.APIAddr, r.APIUser, r.APIPassword = "127.0.0.11:8728", "api", "pw"
	if err := db.UpdateRouter(ctx, &r); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"core-1", "127.0.0.11"} {
		got, err := db.Router(ctx, key)
		if err != nil {
			t.Fatalf("router %q: %v", key, err)
		}
		if got.ID != r.ID || got.APIAddr != "127.0.0.11:8728" || !got.HasAPI() {
			t.Fatalf("router %q = %+v", key, got)
		}
	}
	all, err := db.Routers(ctx)
	if err != nil || len(all) != 1 {
		t.Fatalf("routers %v %v", all, err)
	}
	if err := db.DeleteRouter(ctx, "core-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Router(ctx, "core-1"); !errors.Is(err, nettportal.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
}

// A CIDR nas row gives a session's NAS its address, the range's secret and
// CoA port (coa_port when set, else FreeRADIUS's ports, else 3799), and no
// API; other rows and addresses outside the range are not found.
func TestRangeRouter(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	add := func(nasname string, coaPort int, ports any) int64 {
		t.Helper()
		var id int64
		if err := db.Pool.QueryRow(ctx, `INSERT INTO nas (nasname, shortname, secret, coa_port, ports, api_addr, api_user)
			VALUES ($1, $1, 'rs', $2, $3, '10.9.9.9:8728', 'admin') RETURNING id`, nasname, coaPort, ports).Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	for _, c := range []struct {
		nasname string
		coaPort int
		ports   any
		want    int
	}{
		{"10.1.0.0/24", 3799, nil, 3799},
		{"10.2.0.0/24", 3799, 1700, 1700},
		{"10.3.0.0/24", 3799, 70000, 3799},
		{"10.4.0.0/24", 4000, 1700, 4000},
	} {
		id := add(c.nasname, c.coaPort, c.ports)
		nas := netip.MustParsePrefix(c.nasname).Addr().Next()
		r, err := db.RangeRouter(ctx, id, nas)
		if err != nil {
			t.Fatalf("%s: %v", c.nasname, err)
		}
		if r.ID != id || r.IP != nas || r.Secret != "rs" || r.CoAPort != c.want || r.HasAPI() || r.CoAAddr() != netip.AddrPortFrom(nas, uint16(c.want)).String() {
			t.Errorf("%s: %+v, want %v port %d without API", c.nasname, r, nas, c.want)
		}
		if _, err := db.RangeRouter(ctx, id, netip.MustParseAddr("10.200.0.1")); !errors.Is(err, nettportal.ErrNotFound) {
			t.Errorf("%s: an address outside: %v", c.nasname, err)
		}
	}
	host := add("nas.example.net", 3799, nil)
	if _, err := db.RangeRouter(ctx, host, netip.MustParseAddr("10.1.0.1")); !errors.Is(err, nettportal.ErrNotFound) || !strings.Contains(err.Error(), "hostname") {
		t.Errorf("hostname row: %v", err)
	}
	if _, err := db.RangeRouter(ctx, 1<<30, netip.MustParseAddr("10.1.0.1")); !errors.Is(err, nettportal.ErrNotFound) {
		t.Errorf("no row: %v", err)
	}
}
