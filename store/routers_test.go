package store_test

import (
	"context"
	"errors"
	"net/netip"
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
