package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSigned returns a PEM certificate and key for 127.0.0.1 with the
// given common name, and the parsed certificate.
func selfSigned(t *testing.T, cn string) (certPEM, keyPEM []byte, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{cn},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ = x509.ParseCertificate(der)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), cert
}

// TestServeTLSReloadsCertificate: serve --tls-cert/--tls-key answers over
// HTTPS with a Secure cookie and HSTS, and picks up a renewed certificate
// written over the old files without a restart.
func TestServeTLSReloadsCertificate(t *testing.T) {
	dbURL := migratedDB(t)
	mustRun(t, "user", "add", "--db", dbURL, "--name", "ada", "--role", "admin", "--password", "admin-password")
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	c1, k1, x1 := selfSigned(t, "first.example.net")
	os.WriteFile(certFile, c1, 0o600)
	os.WriteFile(keyFile, k1, 0o600)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	log := &lockedBuffer{}
	bound := make(chan string, 1)
	go func() {
		done <- runServeWith(ctx, []string{"--db", dbURL, "--acct-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
			"--spool-dir", "off", "--tls-cert", certFile, "--tls-key", keyFile}, noEnv, log, nil,
			func(srv *server) { bound <- srv.httpAddr })
	}()
	t.Cleanup(func() { cancel(); <-done })
	var httpAddr string
	select {
	case httpAddr = <-bound:
	case err := <-done:
		t.Fatalf("serve exited: %v\n%s", err, log.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("serve not ready\n%s", log.String())
	}

	// A client that trusts only what it is told to, and says which
	// certificate it was shown.
	get := func(trust *x509.Certificate, path string) (*http.Response, error) {
		pool := x509.NewCertPool()
		pool.AddCert(trust)
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
		defer tr.CloseIdleConnections()
		hc := &http.Client{Transport: tr, Timeout: 5 * time.Second}
		if path == "/api/login" {
			return hc.Post("https://"+httpAddr+path, "application/json", strings.NewReader(`{"username":"ada","password":"admin-password"}`))
		}
		return hc.Get("https://" + httpAddr + path)
	}
	resp, err := get(x1, "/api/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Set-Cookie"), "Secure") || resp.Header.Get("Strict-Transport-Security") == "" {
		t.Errorf("login over TLS: %d, Set-Cookie %q, HSTS %q", resp.StatusCode, resp.Header.Get("Set-Cookie"), resp.Header.Get("Strict-Transport-Security"))
	}

	// Renewal: new files over the old ones.
	c2, k2, x2 := selfSigned(t, "second.example.net")
	os.WriteFile(keyFile, k2, 0o600)
	os.WriteFile(certFile, c2, 0o600)
	// The server looks at the files during a handshake, at most once a
	// second by the wall clock: handshakes until one shows the new one.
	eventually(t, 10*time.Second, 100*time.Millisecond, "the renewed certificate served", func() (string, bool) {
		resp, err := get(x2, "/healthz")
		if err != nil {
			return fmt.Sprintf("%v\n%s", err, log.String()), false
		}
		resp.Body.Close()
		return "", true
	})
	if !strings.Contains(log.String(), "TLS certificate reloaded") {
		t.Errorf("reload not logged:\n%s", log.String())
	}
}
