package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"strings"
	"testing"

	"github.com/nettportal/nettportal/routeros"
	"github.com/nettportal/nettportal/store"
	"github.com/rs/zerolog"
)

// TestRouterTrustAndPin: `router trust` shows the fingerprint of the
// certificate an api-ssl listener presents; `router add
// --api-tls-fingerprint` stores it (normalised) and refuses nonsense.
func TestRouterTrustAndPin(t *testing.T) {
	certPEM, keyPEM, x := selfSigned(t, "router.example.net")
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()
	out := mustRun(t, "router", "trust", "--api-addr", ln.Addr().String())
	fp := routeros.CertFingerprint(x)
	if !strings.Contains(out, fp) || !strings.Contains(out, "router.example.net") {
		t.Fatalf("router trust printed:\n%s\nwant fingerprint %s", out, fp)
	}

	dbURL := migratedDB(t)
	upper := strings.ToUpper(fp[:2] + ":" + fp[2:])
	mustRun(t, "router", "add", "--db", dbURL, "--name", "core-1", "--ip", "127.0.0.21", "--secret", "s3cret",
		"--api-addr", ln.Addr().String(), "--api-user", "api", "--api-tls", "--api-tls-fingerprint", upper)
	var stderr bytes.Buffer
	err = run(context.Background(), []string{"router", "add", "--db", dbURL, "--name", "core-2", "--ip", "127.0.0.22", "--secret", "s3cret",
		"--api-tls", "--api-tls-fingerprint", "not-hex"}, noEnv, &bytes.Buffer{}, &stderr)
	if err == nil || !strings.Contains(err.Error(), "SHA-256") {
		t.Errorf("bad fingerprint: %v", err)
	}
	db, err := store.Open(context.Background(), dbURL, 2, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var got string
	err = db.Pool.QueryRow(context.Background(), "SELECT api_tls_fingerprint FROM nas WHERE shortname = 'core-1'").Scan(&got)
	if err != nil || got != fp {
		t.Errorf("stored fingerprint %q (%v), want %s", got, err, fp)
	}
}
