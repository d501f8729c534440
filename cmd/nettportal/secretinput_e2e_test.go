package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/store"
)

// withStdin runs fn with os.Stdin reading input.
func withStdin(t *testing.T, input string, fn func()) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() { w.WriteString(input); w.Close() }()
	old := os.Stdin
	os.Stdin = r
	defer func() { os.Stdin = old; r.Close() }()
	fn()
}

// TestSecretsOffTheCommandLine: router and user secrets come from a file,
// stdin ("-") or the environment, so they need not be in ps or the shell
// history; the plain flags still work for scripts; --help says so.
func TestSecretsOffTheCommandLine(t *testing.T) {
	dbURL := migratedDB(t)
	dir := t.TempDir()
	secretFile, pwFile := filepath.Join(dir, "radius.secret"), filepath.Join(dir, "api.pw")
	os.WriteFile(secretFile, []byte("from-a-file\n"), 0o600)
	os.WriteFile(pwFile, []byte("api-from-file\r\n"), 0o600)
	env := func(extra map[string]string) func(string) string {
		return func(k string) string {
			if v, ok := extra[k]; ok {
				return v
			}
			return noEnv(k)
		}
	}
	ctx := context.Background()
	runEnv := func(getenv func(string) string, args ...string) error {
		return run(ctx, args, getenv, &bytes.Buffer{}, &bytes.Buffer{})
	}
	if err := runEnv(noEnv, "router", "add", "--db", dbURL, "--name", "r-file", "--ip", "127.0.0.31", "--secret-file", secretFile,
		"--api-addr", "127.0.0.31:8728", "--api-user", "api", "--api-password-file", pwFile); err != nil {
		t.Fatal(err)
	}
	if err := runEnv(env(map[string]string{"NETTPORTAL_SECRET": "from-the-env", "NETTPORTAL_API_PASSWORD": "api-env"}),
		"router", "add", "--db", dbURL, "--name", "r-env", "--ip", "127.0.0.32", "--api-addr", "127.0.0.32:8728", "--api-user", "api"); err != nil {
		t.Fatal(err)
	}
	var err error
	withStdin(t, "from-stdin\n", func() {
		err = runEnv(noEnv, "router", "add", "--db", dbURL, "--name", "r-stdin", "--ip", "127.0.0.33", "--secret-file", "-")
	})
	if err != nil {
		t.Fatal(err)
	}
	addRouter(t, dbURL, "r-flag", "127.0.0.34", "from-the-flag")
	withStdin(t, "user-pw-from-stdin\n", func() {
		err = runEnv(noEnv, "user", "add", "--db", dbURL, "--name", "kari", "--role", "viewer", "--password-file", "-")
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := runEnv(env(map[string]string{"NETTPORTAL_PASSWORD": "user-pw-from-env"}), "user", "add", "--db", dbURL, "--name", "ola", "--role", "viewer"); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(secretFile, nil, 0o600)
	if err := runEnv(noEnv, "router", "add", "--db", dbURL, "--name", "r-empty", "--ip", "127.0.0.35", "--secret-file", secretFile); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty secret file: %v", err)
	}
	if err := runEnv(noEnv, "router", "add", "--db", dbURL, "--name", "r-none", "--ip", "127.0.0.36", "--secret-file", filepath.Join(dir, "missing")); err == nil {
		t.Error("missing secret file accepted")
	}

	db, err := store.Open(ctx, dbURL, 2, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := useSecretKey(ctx, db, "", testSecretKey); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][2]string{"r-file": {"from-a-file", "api-from-file"}, "r-env": {"from-the-env", "api-env"},
		"r-stdin": {"from-stdin", ""}, "r-flag": {"from-the-flag", ""}} {
		r, err := db.Router(ctx, name)
		if err != nil || r.Secret != want[0] || r.APIPassword != want[1] {
			t.Errorf("%s: secret %q, API password %q (%v); want %q, %q", name, r.Secret, r.APIPassword, err, want[0], want[1])
		}
	}
	for user, pw := range map[string]string{"kari": "user-pw-from-stdin", "ola": "user-pw-from-env"} {
		if _, err := db.Authenticate(ctx, user, pw); err != nil {
			t.Errorf("%s with the password given off the command line: %v", user, err)
		}
	}
	if _, err := db.Authenticate(ctx, "kari", "wrong"); !errors.Is(err, nettportal.ErrUnauthorized) {
		t.Errorf("wrong password: %v", err)
	}

	var help bytes.Buffer
	run(ctx, []string{"router", "add", "--help"}, noEnv, &bytes.Buffer{}, &help)
	for _, want := range []string{"-secret-file", "-api-password-file", "NETTPORTAL_SECRET", "visible in ps"} {
		if !strings.Contains(help.String(), want) {
			t.Errorf("router add --help lacks %q:\n%s", want, help.String())
		}
	}
}
