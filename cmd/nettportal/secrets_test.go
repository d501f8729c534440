package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nettportal/nettportal/routeros/routerostest"
	"github.com/nettportal/nettportal/sim"
	"github.com/nettportal/nettportal/store"
)

// TestSecretsNeverLeak registers routers through the command line and the
// API, runs accounting (right and wrong secrets), the reconciler against an
// unreachable RouterOS API and router edits through a debug-level serve,
// then requires that no RADIUS secret or API password is in the database
// in plaintext, in serve's log, in `router list` or in any API answer; and
// that serve refuses a key other than the database's.
func TestSecretsNeverLeak(t *testing.T) {
	ctx := context.Background()
	dbURL := migratedDB(t)
	const (
		radSecret  = "rad-Secret-4f1c9e"
		apiPass    = "api-Password-77ad02"
		radSecret2 = "rad-Secret-via-api-0b3e"
		apiPass2   = "api-Password-via-api-9c1d"
		radSecret3 = "rad-Secret-updated-5a5a"
		apiPass3   = "api-Password-updated-e0e0"
	)
	all := []string{radSecret, apiPass, radSecret2, apiPass2, radSecret3, apiPass3}
	apiPasswords := []string{apiPass, apiPass2, apiPass3}
	closedAPI := hangUpListener(t) // an API that hangs up at once: the reconciler fails and logs
	// A RouterOS API that refuses the password: login failures are where
	// a careless error message would quote it.
	ros := routerostest.NewUnstartedServer("127.0.0.1:0")
	ros.Username, ros.Password = "nettportal", "not-the-stored-one"
	if err := ros.Start(); err != nil {
		t.Fatal(err)
	}
	defer ros.Close()
	mustRun(t, "router", "add", "--db", dbURL, "--name", "sec-01", "--ip", "127.0.43.1", "--secret", radSecret,
		"--api-addr", ros.Addr, "--api-user", "nettportal", "--api-password", apiPass)
	if out := mustRun(t, "router", "list", "--db", dbURL); !strings.Contains(out, "sec-01") || containsAny(out, all) {
		t.Fatalf("router list:\n%s", out)
	}
	token := strings.TrimSpace(mustRun(t, "token", "create", "--db", dbURL, "--name", "secrets", "--role", "admin"))

	ts := startServe(t, dbURL, "--reconcile-interval", "200ms", "--api-poll-interval", "200ms", "--api-timeout", "300ms")

	// Accounting with the right secret, and with a wrong one (dropped,
	// counted, logged).
	good := sim.LoadConfig{Server: ts.AcctAddr, Secret: radSecret, Routers: 1, SessionsPerRouter: 20,
		InterimsPerSession: 2, BaseIP: netip.MustParseAddr("127.0.43.1")}
	res, err := sim.RunLoad(ctx, good)
	if err != nil || res.Acked != res.Sent {
		t.Fatalf("load with the right secret: %v, %d of %d acknowledged", err, res.Acked, res.Sent)
	}
	bad := good
	bad.Secret, bad.SessionsPerRouter, bad.InterimsPerSession, bad.Timeout, bad.Retries = "wrong-secret", 3, 0, 100*time.Millisecond, -1
	if res, _ := sim.RunLoad(ctx, bad); res.Acked != 0 {
		t.Fatalf("%d packets with a wrong secret acknowledged", res.Acked)
	}

	// Routers through the API: create, update; no answer carries a secret.
	body := api(t, ts.HTTPURL, token, "POST", "/api/routers", map[string]any{"name": "sec-02", "ip": "127.0.43.2",
		"secret": radSecret2, "api_addr": closedAPI, "api_user": "nettportal", "api_password": apiPass2}, http.StatusCreated)
	var created struct {
		ID int64 `json:"id"`
	}
	if err := json.Unmarshal([]byte(body), &created); err != nil {
		t.Fatal(err)
	}
	bodies := []string{body}
	bodies = append(bodies, api(t, ts.HTTPURL, token, "PUT", "/api/routers/"+strconv.FormatInt(created.ID, 10),
		map[string]any{"name": "sec-02", "ip": "127.0.43.2", "secret": radSecret3, "api_addr": closedAPI,
			"api_user": "nettportal", "api_password": apiPass3}, http.StatusOK))
	list := api(t, ts.HTTPURL, token, "GET", "/api/routers", nil, http.StatusOK)
	if !strings.Contains(list, `"secret_set":true`) || !strings.Contains(list, `"api_password_set":true`) {
		t.Fatalf("GET /api/routers does not say the credentials are set: %s", list)
	}
	bodies = append(bodies, list)
	for _, b := range bodies {
		if containsAny(b, all) {
			t.Fatalf("API answer carries a secret: %s", b)
		}
	}

	// A reconcile pass against both routers, after the last edit.
	offset := len(ts.Log.String())
	passed := map[string]bool{}
	if _, ok := ts.Log.await(10*time.Second, nil, func(log string) (string, bool) {
		for _, line := range strings.Split(log[offset:], "\n") {
			var l struct{ Message, Router string }
			if json.Unmarshal([]byte(line), &l) == nil && l.Message == "reconciled" {
				passed[l.Router] = true
			}
		}
		return "", passed["sec-01"] && passed["sec-02"]
	}); !ok {
		t.Fatalf("no reconcile pass against both routers (%v):\n%s", passed, ts.Log.String()[offset:])
	}
	ts.stop()

	// Nothing in plaintext in the database.
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT shortname, secret, api_password FROM nas ORDER BY shortname")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var name, sec, pw string
		if err := rows.Scan(&name, &sec, &pw); err != nil {
			t.Fatal(err)
		}
		n++
		// nas.secret stays as FreeRADIUS keeps it; the API password is sealed.
		if !strings.HasPrefix(pw, "enc:v1:") || containsAny(pw, apiPasswords) || sec == "" {
			t.Errorf("router %s stored as api_password=%q", name, pw)
		}
	}
	if rows.Err() != nil || n != 2 {
		t.Fatalf("%d routers, %v", n, rows.Err())
	}
	var dump string
	if err := conn.QueryRow(ctx, "SELECT string_agg(nas::text, ' ') FROM nas").Scan(&dump); err != nil {
		t.Fatal(err)
	}
	if containsAny(dump, apiPasswords) {
		t.Fatalf("nas rows carry an API password: %s", dump)
	}

	// Serve's whole debug log: the reconciler's failures, the dropped
	// packets, the router edits, but no secret.
	log := ts.Log.String()
	if !strings.Contains(log, "sec-01") || !strings.Contains(log, "wrong secret") {
		t.Fatalf("the log does not even mention the router; the check would prove nothing:\n%s", log)
	}
	for _, s := range all {
		if strings.Contains(log, s) {
			t.Fatalf("serve's log contains %q:\n%s", s, log)
		}
	}

	// A different key is refused before serve listens.
	otherKey, err := store.NewSecretKey()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	serveArgs := []string{"serve", "--db", dbURL, "--acct-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--spool-dir", t.TempDir()}
	err = run(ctx, serveArgs, func(k string) string {
		if k == secretKeyEnv {
			return otherKey
		}
		return ""
	}, io.Discard, &stderr)
	if err == nil || !strings.Contains(err.Error(), "the secret key does not match the one this database was encrypted with") {
		t.Fatalf("serve with another key: %v", err)
	}
	// So is a key file that went missing: making a new key would orphan
	// every stored credential.
	missing := filepath.Join(t.TempDir(), "secret.key")
	err = run(ctx, append(serveArgs, "--secret-key-file", missing), func(string) string { return "" }, io.Discard, &stderr)
	if err == nil || !strings.Contains(err.Error(), "is missing") {
		t.Fatalf("serve with a missing key file: %v", err)
	}
}

// TestSecretKeyFileCreated: on a new database without any key configured,
// serve makes the key file (0600) and uses it from then on.
func TestSecretKeyFileCreated(t *testing.T) {
	dbURL := migratedDB(t)
	keyFile := filepath.Join(t.TempDir(), "state", "secret.key")
	env := func(string) string { return "" }
	var out bytes.Buffer
	args := []string{"router", "add", "--db", dbURL, "--secret-key-file", keyFile, "--name", "k-01", "--ip", "127.0.43.9",
		"--secret", "k-secret"}
	if err := run(context.Background(), args, env, &out, &out); err != nil {
		t.Fatalf("router add: %v\n%s", err, out.String())
	}
	if _, err := store.ReadSecretKeyFile(keyFile); err != nil {
		t.Fatalf("key file not created: %v", err)
	}
	// The same file works again; the in-process tests' key does not.
	if err := run(context.Background(), []string{"router", "list", "--db", dbURL, "--secret-key-file", keyFile}, env, &out, &out); err != nil {
		t.Fatalf("router list with the created key: %v", err)
	}
	err := run(context.Background(), []string{"router", "list", "--db", dbURL}, noEnv, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("router list with another key: %v", err)
	}
}

func containsAny(s string, subs []string) bool {
	for _, x := range subs {
		if strings.Contains(s, x) {
			return true
		}
	}
	return false
}

// api sends one authenticated JSON request and returns the answer's body.
func api(t *testing.T, base, token, method, path string, in any, want int) string {
	t.Helper()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, b, want)
	}
	return string(b)
}

// hangUpListener is a TCP address whose listener closes every connection
// at once; it is held for the test, so no other process can take the port.
func hangUpListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln.Addr().String()
}
