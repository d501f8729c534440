package store_test

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/store"
	"github.com/nettportal/nettportal/store/storetest"
)

func mustKey(t *testing.T) []byte {
	t.Helper()
	text, err := store.NewSecretKey()
	if err != nil {
		t.Fatal(err)
	}
	key, err := store.ParseSecretKey(text)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func openURL(t *testing.T, url string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), url, 2, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return db
}

// storedCredentials reads nas.secret and nas.api_password as they are on disk.
func storedCredentials(t *testing.T, db *store.DB, name string) (secret, apiPassword string) {
	t.Helper()
	if err := db.Pool.QueryRow(context.Background(), "SELECT secret, api_password FROM nas WHERE shortname = $1", name).
		Scan(&secret, &apiPassword); err != nil {
		t.Fatal(err)
	}
	return secret, apiPassword
}

func TestRouterCredentialsEncrypted(t *testing.T) {
	ctx := context.Background()
	url := storetest.MustCreateDatabase(t)
	db := openURL(t, url)

	// A row from before encryption: plaintext, written without a key.
	old := nettportal.Router{Name: "old", IP: netip.MustParseAddr("10.9.0.1"), Secret: "old-radius-secret",
		APIAddr: "10.9.0.1:8728", APIUser: "api", APIPassword: "old-api-password"}
	if err := db.CreateRouter(ctx, &old); err != nil {
		t.Fatal(err)
	}

	key := mustKey(t)
	if err := db.UseSecretKey(ctx, key); err != nil {
		t.Fatal(err)
	}
	r := nettportal.Router{Name: "new", IP: netip.MustParseAddr("10.9.0.2"), Secret: "new-radius-secret",
		APIAddr: "10.9.0.2:8728", APIUser: "api", APIPassword: "new-api-password"}
	if err := db.CreateRouter(ctx, &r); err != nil {
		t.Fatal(err)
	}
	sec, pw := storedCredentials(t, db, "new")
	if !strings.HasPrefix(pw, "enc:v1:") || strings.Contains(pw, "new-") {
		t.Fatalf("stored API password %q is not encrypted", pw)
	}
	// FreeRADIUS reads nas.secret as it is: it stays as FreeRADIUS keeps it.
	if sec != "new-radius-secret" {
		t.Fatalf("stored RADIUS secret %q, want it as FreeRADIUS reads it", sec)
	}
	// A random nonce: the same value twice encrypts differently.
	r2 := r
	r2.Name, r2.IP = "new2", netip.MustParseAddr("10.9.0.3")
	if err := db.CreateRouter(ctx, &r2); err != nil {
		t.Fatal(err)
	}
	if _, pw2 := storedCredentials(t, db, "new2"); pw2 == pw {
		t.Fatalf("same password encrypted to the same text twice")
	}

	got, err := db.Router(ctx, "new")
	if err != nil {
		t.Fatal(err)
	}
	if got.Secret != "new-radius-secret" || got.APIPassword != "new-api-password" {
		t.Fatalf("decrypted %q / %q", got.Secret, got.APIPassword)
	}

	// The plaintext row reads as it is and is encrypted by its next write.
	got, err = db.Router(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}
	if got.Secret != "old-radius-secret" || got.APIPassword != "old-api-password" {
		t.Fatalf("plaintext row read as %q / %q", got.Secret, got.APIPassword)
	}
	if err := db.UpdateRouter(ctx, &got); err != nil {
		t.Fatal(err)
	}
	if _, pw := storedCredentials(t, db, "old"); strings.Contains(pw, "old-") {
		t.Fatalf("plaintext API password not encrypted by its update: %q", pw)
	}
	routers, err := db.Routers(ctx)
	if err != nil || len(routers) != 3 || routers[2].Secret != "old-radius-secret" {
		t.Fatalf("routers after update: %v %+v", err, routers)
	}

	// Another handle with a different key is refused before it writes.
	other := openURL(t, url)
	if err := other.UseSecretKey(ctx, mustKey(t)); !errors.Is(err, store.ErrSecretKeyMismatch) {
		t.Fatalf("wrong key: %v", err)
	}
	// Without a key, encrypted values are an error, not ciphertext used
	// as a RADIUS secret.
	if _, err := other.Router(ctx, "new"); !errors.Is(err, store.ErrNoSecretKey) {
		t.Fatalf("read without key: %v", err)
	}
	if err := other.UseSecretKey(ctx, key); err != nil {
		t.Fatalf("right key: %v", err)
	}
	if has, err := other.HasSecretKeyCheck(ctx); err != nil || !has {
		t.Fatalf("HasSecretKeyCheck = %v, %v", has, err)
	}
}

func TestSecretKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "secret.key")
	if _, err := store.ReadSecretKeyFile(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	key, err := store.CreateSecretKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", fi.Mode(), err)
	}
	again, err := store.ReadSecretKeyFile(path)
	if err != nil || string(again) != string(key) {
		t.Fatalf("read back: %v", err)
	}
	if _, err := store.CreateSecretKeyFile(path); err == nil {
		t.Fatalf("an existing key file was overwritten")
	}
	if _, err := store.ParseSecretKey("c2hvcnQ="); err == nil {
		t.Fatalf("short key accepted")
	}
}
