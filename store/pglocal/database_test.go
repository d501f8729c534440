package pglocal

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestCreateDatabase(t *testing.T) {
	t.Parallel()
	base := localServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	u, drop, err := CreateDatabase(ctx, base, "")
	if err != nil {
		t.Fatalf("CreateDatabase: %v", err)
	}
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		drop(ctx)
		t.Fatalf("connect to %s: %v", u, err)
	}
	var name string
	if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&name); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(name, DefaultTestPrefix) {
		t.Errorf("database %q lacks prefix %q", name, DefaultTestPrefix)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE t (id int)"); err != nil {
		t.Fatal(err)
	}

	u2, drop2, err := CreateDatabase(ctx, base, "")
	if err != nil {
		t.Fatal(err)
	}
	if u2 == u {
		t.Errorf("two CreateDatabase calls returned the same URL %s", u)
	}
	if err := drop2(ctx); err != nil {
		t.Error(err)
	}

	// conn is still open: the drop must force it off.
	if err := drop(ctx); err != nil {
		t.Fatalf("drop: %v", err)
	}
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	var n int
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("database %s still exists after drop", name)
	}
	if err := drop(ctx); err != nil {
		t.Errorf("second drop: %v", err)
	}
}

func TestCreateDatabaseBadPrefix(t *testing.T) {
	t.Parallel()
	for _, p := range []string{`x"; DROP`, "Upper", "1abc", strings.Repeat("a", 60)} {
		if _, _, err := CreateDatabase(context.Background(), "postgres://127.0.0.1:1/x", p); err == nil {
			t.Errorf("prefix %q accepted", p)
		}
	}
}

func TestWithDatabase(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"postgres://u:p@h:5/postgres?sslmode=disable", "postgres://u:p@h:5/db1?sslmode=disable"},
		{"postgres://u@/postgres?host=/var/run/postgresql", "postgres://u@/db1?host=/var/run/postgresql"},
		{"host=h dbname=postgres", "host=h dbname=postgres dbname=db1"},
	} {
		got, err := withDatabase(tc.in, "db1")
		if err != nil || got != tc.want {
			t.Errorf("withDatabase(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
