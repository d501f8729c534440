package routeros

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
)

// NormalizeFingerprint turns a SHA-256 certificate fingerprint as people
// write it (hex, any case, with or without colons or spaces) into 64
// lower-case hex digits, or says what is wrong with it.
func NormalizeFingerprint(fp string) (string, error) {
	s := strings.ToLower(strings.NewReplacer(":", "", " ", "", "-", "").Replace(strings.TrimSpace(fp)))
	if b, err := hex.DecodeString(s); err != nil || len(b) != sha256.Size {
		return "", fmt.Errorf("TLS fingerprint %q is not a SHA-256 (64 hex digits, colons allowed)", fp)
	}
	return s, nil
}

// CertFingerprint is the hex SHA-256 of a certificate's DER.
func CertFingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// tlsConfig is how the API certificate is checked. By default it is
// verified against the system roots and the host name in Addr, like any
// TLS client: the API password must not go to whoever answers. A pinned
// fingerprint accepts exactly that certificate (RouterOS's self-signed
// one included); a CA file replaces the system roots.
func (cfg Config) tlsConfig() (*tls.Config, error) {
	if cfg.TLSConfig != nil {
		return cfg.TLSConfig, nil
	}
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		host = cfg.Addr
	}
	switch {
	case cfg.TLSFingerprint != "":
		want, err := NormalizeFingerprint(cfg.TLSFingerprint)
		if err != nil {
			return nil, err
		}
		return &tls.Config{
			// The chain and name checks are replaced by the pin, which
			// VerifyConnection enforces on every handshake.
			InsecureSkipVerify: true, //nolint:gosec // pinned below
			VerifyConnection: func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 {
					return errors.New("router sent no certificate")
				}
				got := CertFingerprint(cs.PeerCertificates[0])
				if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
					return fmt.Errorf("router certificate SHA-256 %s is not the pinned %s (run `nettportal router trust` to see it)", got, want)
				}
				return nil
			},
		}, nil
	case cfg.TLSCAFile != "":
		pem, err := os.ReadFile(cfg.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("read API TLS CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("API TLS CA file %s holds no PEM certificate", cfg.TLSCAFile)
		}
		return &tls.Config{RootCAs: pool, ServerName: host}, nil
	case cfg.TLSInsecure:
		return &tls.Config{InsecureSkipVerify: true}, nil //nolint:gosec // the operator asked, and is warned
	}
	return &tls.Config{ServerName: host}, nil
}

// FetchCertificate connects to a RouterOS api-ssl address without
// verifying it and returns the certificate it presents, for the operator
// to compare and pin (`router trust`). Nothing is sent but the handshake.
func FetchCertificate(ctx context.Context, addr string) (*x509.Certificate, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, "8729")
	}
	d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // only to show the certificate
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	defer nc.Close()
	certs := nc.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s sent no certificate", addr)
	}
	return certs[0], nil
}
