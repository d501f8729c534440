package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/store/storetest"
)

func TestUsersAndLogins(t *testing.T) {
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	u, err := db.CreateUser(ctx, "alice", "correct horse", nettportal.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateUser(ctx, "alice", "another one", nettportal.RoleViewer); !errors.Is(err, nettportal.ErrConflict) {
		t.Errorf("duplicate user: %v", err)
	}
	for _, bad := range []struct{ name, pw, role string }{{"", "longenough", "admin"}, {"bob", "short", "admin"}, {"bob", "longenough", "root"}} {
		if _, err := db.CreateUser(ctx, bad.name, bad.pw, nettportal.Role(bad.role)); !errors.Is(err, nettportal.ErrInvalid) {
			t.Errorf("CreateUser(%v): %v, want ErrInvalid", bad, err)
		}
	}
	var hash string
	db.Pool.QueryRow(ctx, "SELECT password_hash FROM users WHERE name = 'alice'").Scan(&hash)
	if !strings.HasPrefix(hash, "$2a$") || strings.Contains(hash, "correct horse") {
		t.Errorf("password stored as %q, want a bcrypt hash", hash)
	}
	got, err := db.Authenticate(ctx, "alice", "correct horse")
	if err != nil || got.ID != u.ID || got.Role != nettportal.RoleOperator {
		t.Fatalf("Authenticate = %+v, %v", got, err)
	}
	for _, c := range [][2]string{{"alice", "wrong horse"}, {"nobody", "correct horse"}} {
		if _, err := db.Authenticate(ctx, c[0], c[1]); !errors.Is(err, nettportal.ErrUnauthorized) {
			t.Errorf("Authenticate(%s): %v, want ErrUnauthorized", c[0], err)
		}
	}

	cookie, csrf, err := db.CreateLogin(ctx, u.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	lu, lcsrf, err := db.LoginUser(ctx, cookie, time.Hour)
	if err != nil || lu.Name != "alice" || lcsrf != csrf {
		t.Fatalf("LoginUser = %+v %q %v", lu, lcsrf, err)
	}
	if _, _, err := db.LoginUser(ctx, cookie+"x", time.Hour); !errors.Is(err, nettportal.ErrUnauthorized) {
		t.Errorf("bad cookie: %v", err)
	}
	if err := db.DeleteLogin(ctx, cookie); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.LoginUser(ctx, cookie, time.Hour); !errors.Is(err, nettportal.ErrUnauthorized) {
		t.Errorf("after logout: %v", err)
	}
	cookie, _, _ = db.CreateLogin(ctx, u.ID, time.Hour)
	if err := db.DeleteUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.LoginUser(ctx, cookie, time.Hour); !errors.Is(err, nettportal.ErrUnauthorized) {
		t.Errorf("login of deleted user: %v", err)
	}
	if err := db.DeleteUser(ctx, "alice"); !errors.Is(err, nettportal.ErrNotFound) {
		t.Errorf("delete twice: %v", err)
	}
}

func TestTokens(t *testing.T) {
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	secret, err := db.CreateToken(ctx, "billing", nettportal.RoleViewer)
	if err != nil {
		t.Fatal(err)
	}
	var stored string
	db.Pool.QueryRow(ctx, "SELECT token_hash FROM api_tokens").Scan(&stored)
	if len(stored) != 64 || strings.Contains(secret, stored) || strings.Contains(stored, secret) {
		t.Errorf("token stored as %q, want a sha256 hex hash", stored)
	}
	u, err := db.TokenUser(ctx, secret)
	if err != nil || u.Name != "billing" || u.Role != nettportal.RoleViewer || !u.Token || u.Actor() != "token:billing" {
		t.Fatalf("TokenUser = %+v, %v", u, err)
	}
	toks, _ := db.Tokens(ctx)
	if len(toks) != 1 || toks[0].LastUsedAt == nil {
		t.Errorf("tokens = %+v, want last_used_at set", toks)
	}
	if _, err := db.CreateToken(ctx, "billing", nettportal.RoleAdmin); !errors.Is(err, nettportal.ErrConflict) {
		t.Errorf("duplicate token: %v", err)
	}
	if err := db.RevokeToken(ctx, "billing"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.TokenUser(ctx, secret); !errors.Is(err, nettportal.ErrUnauthorized) {
		t.Errorf("revoked token: %v", err)
	}
	if _, err := db.CreateToken(ctx, "billing", nettportal.RoleAdmin); err != nil {
		t.Errorf("reuse a revoked token's name: %v", err)
	}
}

func TestRoles(t *testing.T) {
	v, o, a := nettportal.RoleViewer, nettportal.RoleOperator, nettportal.RoleAdmin
	if !a.AtLeast(o) || !o.AtLeast(v) || v.AtLeast(o) || o.AtLeast(a) || nettportal.Role("root").AtLeast(v) {
		t.Error("role order is viewer < operator < admin, unknown has nothing")
	}
}

func TestCustomers(t *testing.T) {
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	c := nettportal.Customer{Name: "Kari Nordmann", Username: "kari"}
	if created, err := db.SaveCustomer(ctx, &c); err != nil || !created {
		t.Fatalf("save: %v %v", created, err)
	}
	c.Name = "Kari N."
	if created, err := db.SaveCustomer(ctx, &c); err != nil || created {
		t.Fatalf("save again: %v %v", created, err)
	}
	res, err := db.ImportCustomersCSV(ctx, strings.NewReader(
		"username,name,phone,profile,extra\n"+
			"kari,Kari Nordmann,+47 1,gold,x\n"+
			"ola,Ola Nordmann,,10M\n"+
			",No Username\n"+
			"per,Per,1\n"+
			"per,Per Again,2\n"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Created != 2 || res.Updated != 1 || len(res.Errors) != 2 || res.Errors[0].Line != 4 || res.Errors[1].Line != 5 {
		t.Errorf("import = %+v", res)
	}
	list, total, err := db.Customers(ctx, "nord", 10, 0)
	if err != nil || total != 2 || list[0].Name != "Kari Nordmann" || list[0].Profile != "gold" || list[0].Phone != "+47 1" {
		t.Errorf("customers = %+v %d %v", list, total, err)
	}
	list, _, _ = db.Customers(ctx, "per", 10, 0)
	if len(list) != 1 || list[0].Name != "Per Again" {
		t.Errorf("the last line of a repeated username wins: %+v", list)
	}
	if _, err := db.ImportCustomersCSV(ctx, strings.NewReader("who,what\n1,2\n")); !errors.Is(err, nettportal.ErrInvalid) {
		t.Errorf("header without name: %v", err)
	}
	c2 := list[0]
	c2.Username = "kari"
	if err := db.UpdateCustomer(ctx, &c2); !errors.Is(err, nettportal.ErrConflict) {
		t.Errorf("update to a taken username: %v", err)
	}
}

func TestSetPasswordEndsLogins(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	u, err := db.CreateUser(ctx, "admin", "old-password", nettportal.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	cookie, _, err := db.CreateLogin(ctx, u.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SetPassword(ctx, "admin", "new-password"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Authenticate(ctx, "admin", "old-password"); !errors.Is(err, nettportal.ErrUnauthorized) {
		t.Errorf("old password: %v", err)
	}
	if _, err := db.Authenticate(ctx, "admin", "new-password"); err != nil {
		t.Errorf("new password: %v", err)
	}
	if _, _, err := db.LoginUser(ctx, cookie, time.Hour); err == nil {
		t.Error("a login from before the change still works")
	}
	if err := db.SetPassword(ctx, "nobody", "whatever-123"); !errors.Is(err, nettportal.ErrNotFound) {
		t.Errorf("unknown user: %v", err)
	}
	if err := db.SetPassword(ctx, "admin", "short"); !errors.Is(err, nettportal.ErrInvalid) {
		t.Errorf("short password: %v", err)
	}
}
