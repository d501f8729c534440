package store

// Router credentials (RADIUS shared secrets and RouterOS API passwords) are
// stored encrypted: a database dump, a replica or a billing tool with read
// access must not hand out the keys to every router. The key lives outside
// the database (a file or the environment), so the database alone is not
// enough to decrypt them.

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5"
)

// SecretKeySize is the length of the key in bytes (AES-256).
const SecretKeySize = 32

const (
	// encPrefix marks an encrypted value; anything else is a plaintext
	// value from before encryption, read as-is and encrypted on its next
	// write.
	encPrefix = "enc:v1:"
	// keyCheckSetting names the settings row holding the key check value.
	keyCheckSetting = "secret_key_check"
	// keyCheckMessage is what the check value is the HMAC of.
	keyCheckMessage = "nettportal secret key check v1"
)

// ErrSecretKeyMismatch means the configured key is not the one the
// database's credentials were encrypted with.
var ErrSecretKeyMismatch = errors.New("the secret key does not match the one this database was encrypted with")

// ErrNoSecretKey means a value is encrypted but no key is configured.
var ErrNoSecretKey = errors.New("router credentials are encrypted but no secret key is configured (--secret-key-file or NETTPORTAL_SECRET_KEY)")

// sealer encrypts and decrypts credential values with AES-256-GCM and a
// random nonce per value.
type sealer struct {
	aead cipher.AEAD
}

func newSealer(key []byte) (*sealer, error) {
	if len(key) != SecretKeySize {
		return nil, fmt.Errorf("secret key: need %d bytes, have %d", SecretKeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	return &sealer{aead: aead}, nil
}

// seal returns enc:v1:base64(nonce || ciphertext). An empty value stays
// empty, so "no API password" is still visible as such.
func (s *sealer) seal(plain string) (string, error) {
	if plain == "" {
		return "", nil
	}
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("encrypt credential: %w", err)
	}
	out := s.aead.Seal(nonce, nonce, []byte(plain), nil)
	return encPrefix + base64.StdEncoding.EncodeToString(out), nil
}

// open decrypts a value written by seal; plaintext values pass unchanged.
func (s *sealer) open(v string) (string, error) {
	b64, ok := strings.CutPrefix(v, encPrefix)
	if !ok {
		return v, nil
	}
	if s == nil {
		return "", ErrNoSecretKey
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(raw) < s.aead.NonceSize() {
		return "", fmt.Errorf("decrypt credential: malformed value")
	}
	n := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, raw[:n], raw[n:], nil)
	if err != nil {
		return "", fmt.Errorf("decrypt credential: %w", ErrSecretKeyMismatch)
	}
	return string(plain), nil
}

// sealValue encrypts when a key is configured; without one it keeps the
// plaintext, as before encryption existed (tools and tests on a database
// without a key).
func (db *DB) sealValue(plain string) (string, error) {
	if db.sealer == nil {
		return plain, nil
	}
	return db.sealer.seal(plain)
}

// NewSecretKey returns a new random key in its text form (base64).
func NewSecretKey() (string, error) {
	key := make([]byte, SecretKeySize)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("generate secret key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(key), nil
}

// ParseSecretKey decodes a key's text form: base64 of 32 bytes.
func ParseSecretKey(text string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(text))
	if err != nil {
		return nil, fmt.Errorf("parse secret key: not base64: %w", err)
	}
	if len(key) != SecretKeySize {
		return nil, fmt.Errorf("parse secret key: need %d bytes, have %d", SecretKeySize, len(key))
	}
	return key, nil
}

// ReadSecretKeyFile reads a key file. A missing file returns an error
// that satisfies errors.Is(err, os.ErrNotExist).
func ReadSecretKeyFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read secret key file: %w", err)
	}
	key, err := ParseSecretKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("secret key file %s: %w", path, err)
	}
	return key, nil
}

// CreateSecretKeyFile writes a new random key to path (mode 0600, its
// directory 0700 when created) and returns it. It never overwrites: a key
// file that appeared meanwhile is an error, not something to replace.
func CreateSecretKeyFile(path string) ([]byte, error) {
	text, err := NewSecretKey()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create secret key file: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create secret key file: %w", err)
	}
	_, werr := f.WriteString(text + "\n")
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("create secret key file %s: %w", path, err)
	}
	return ParseSecretKey(text)
}

func keyCheckValue(key []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(keyCheckMessage))
	return hex.EncodeToString(m.Sum(nil))
}

// ensureSettings creates the settings table. It lives here rather than in
// the migrations because only the key check uses it, and a database older than
// it must still open.
func (db *DB) ensureSettings(ctx context.Context) error {
	_, err := db.Pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS settings (
		name       text PRIMARY KEY,
		value      text NOT NULL,
		updated_at timestamptz NOT NULL DEFAULT now()
	)`)
	return err
}

// HasSecretKeyCheck reports whether a key was ever set on this database,
// so a missing key file is an error rather than a reason to make a new key.
func (db *DB) HasSecretKeyCheck(ctx context.Context) (bool, error) {
	if err := db.ensureSettings(ctx); err != nil {
		return false, fmt.Errorf("read secret key check: %w", err)
	}
	var n int
	if err := db.Pool.QueryRow(ctx, "SELECT count(*) FROM settings WHERE name = $1", keyCheckSetting).Scan(&n); err != nil {
		return false, fmt.Errorf("read secret key check: %w", err)
	}
	return n > 0, nil
}

// UseSecretKey makes db encrypt router credentials with key from now on.
// The first key set on a database is recorded as a check value (an HMAC,
// which does not reveal the key); any later key must match it, or
// UseSecretKey returns ErrSecretKeyMismatch and nothing is written.
func (db *DB) UseSecretKey(ctx context.Context, key []byte) error {
	s, err := newSealer(key)
	if err != nil {
		return err
	}
	if err := db.ensureSettings(ctx); err != nil {
		return fmt.Errorf("check secret key: %w", err)
	}
	want := keyCheckValue(key)
	// Two instances starting at once on a new database: the first insert
	// wins, the second compares against it.
	if _, err := db.Pool.Exec(ctx, "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
		keyCheckSetting, want); err != nil {
		return fmt.Errorf("check secret key: %w", err)
	}
	var have string
	err = db.Pool.QueryRow(ctx, "SELECT value FROM settings WHERE name = $1", keyCheckSetting).Scan(&have)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("check secret key: the check value vanished while starting")
	}
	if err != nil {
		return fmt.Errorf("check secret key: %w", err)
	}
	if !hmac.Equal([]byte(have), []byte(want)) {
		return ErrSecretKeyMismatch
	}
	db.sealer = s
	return nil
}
