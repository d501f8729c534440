package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/nettportal/nettportal"
)

// MinPasswordLength is the shortest password CreateUser accepts.
const MinPasswordLength = 8

// timingHash is compared against when the user does not exist, so a login
// for an unknown name takes as long as one with a wrong password and does
// not reveal which names exist.
const timingHash = "$2a$10$TYk4PQu2y8kUXhG1dxkVr.xZwJ29WmWmIk3lVrkcuOavvnqCxTn6G"

// tokenPrefix marks NettPortal API tokens, so a leaked one is recognisable
// by secret scanners and in logs.
const tokenPrefix = "npt_"

func validName(kind, name string) error {
	if name == "" || len(name) > 100 || strings.TrimSpace(name) != name {
		return fmt.Errorf("%s name %q must be 1-100 characters without surrounding spaces: %w", kind, name, nettportal.ErrInvalid)
	}
	return nil
}

// CreateUser adds a web user with a bcrypt hash of password.
func (db *DB) CreateUser(ctx context.Context, name, password string, role nettportal.Role) (nettportal.User, error) {
	u := nettportal.User{Name: name, Role: role}
	if err := validName("user", name); err != nil {
		return u, err
	}
	if _, err := nettportal.ParseRole(string(role)); err != nil {
		return u, err
	}
	hash, err := hashPassword(name, password)
	if err != nil {
		return u, err
	}
	err = db.Pool.QueryRow(ctx, "INSERT INTO users (name, password_hash, role) VALUES ($1, $2, $3) RETURNING id, created_at",
		name, hash, string(role)).Scan(&u.ID, &u.CreatedAt)
	if uniqueViolation(err) {
		return u, fmt.Errorf("user %q exists already: %w", name, nettportal.ErrConflict)
	}
	if err != nil {
		return u, fmt.Errorf("create user %q: %w", name, err)
	}
	return u, nil
}

// hashPassword checks a new password and returns its bcrypt hash.
func hashPassword(name, password string) (string, error) {
	if len(password) < MinPasswordLength {
		return "", fmt.Errorf("password for %q must be at least %d characters: %w", name, MinPasswordLength, nettportal.ErrInvalid)
	}
	if len(password) > 72 {
		// bcrypt ignores everything after 72 bytes; refusing is more honest.
		return "", fmt.Errorf("password for %q must be at most 72 bytes: %w", name, nettportal.ErrInvalid)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("hash password of %q: %w", name, err)
	}
	return string(hash), nil
}

// SetPassword replaces a user's password and ends their logins.
func (db *DB) SetPassword(ctx context.Context, name, password string) error {
	hash, err := hashPassword(name, password)
	if err != nil {
		return err
	}
	var id int64
	err = db.Pool.QueryRow(ctx, "UPDATE users SET password_hash = $2 WHERE name = $1 RETURNING id", name, hash).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("user %q: %w", name, nettportal.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("set password of %q: %w", name, err)
	}
	if _, err := db.Pool.Exec(ctx, "DELETE FROM web_sessions WHERE user_id = $1", id); err != nil {
		return fmt.Errorf("end logins of %q: %w", name, err)
	}
	return db.notifyAuthChanged(ctx)
}

// Authenticate checks a user's password. Any failure (unknown user, wrong
// password, disabled user) is ErrUnauthorized, without saying which.
func (db *DB) Authenticate(ctx context.Context, name, password string) (nettportal.User, error) {
	var u nettportal.User
	var hash string
	err := db.Pool.QueryRow(ctx, "SELECT id, name, role, created_at, disabled, password_hash FROM users WHERE name = $1", name).
		Scan(&u.ID, &u.Name, &u.Role, &u.CreatedAt, &u.Disabled, &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		bcrypt.CompareHashAndPassword([]byte(timingHash), []byte(password)) //nolint:errcheck // only for the time it takes
		return nettportal.User{}, fmt.Errorf("login %q: %w", name, nettportal.ErrUnauthorized)
	}
	if err != nil {
		return nettportal.User{}, fmt.Errorf("login %q: %w", name, err)
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) != nil || u.Disabled {
		return nettportal.User{}, fmt.Errorf("login %q: %w", name, nettportal.ErrUnauthorized)
	}
	return u, nil
}

// Users lists the web users by name.
func (db *DB) Users(ctx context.Context) ([]nettportal.User, error) {
	rows, err := db.Pool.Query(ctx, "SELECT id, name, role, created_at, disabled FROM users ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (nettportal.User, error) {
		var u nettportal.User
		err := row.Scan(&u.ID, &u.Name, &u.Role, &u.CreatedAt, &u.Disabled)
		return u, err
	})
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return out, nil
}

// DeleteUser removes a user by name (or id); their logins end with them.
func (db *DB) DeleteUser(ctx context.Context, nameOrID string) error {
	tag, err := db.Pool.Exec(ctx, "DELETE FROM users WHERE name = $1 OR id::text = $1", nameOrID)
	if err != nil {
		return fmt.Errorf("delete user %q: %w", nameOrID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("user %q: %w", nameOrID, nettportal.ErrNotFound)
	}
	return db.notifyAuthChanged(ctx)
}

// randomSecret returns n random bytes as unpadded base64url.
func randomSecret(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// secretHash is how tokens and login cookies are stored: a database dump
// does not hand out working credentials. The secrets are 256-bit random,
// so a plain SHA-256 is enough (no need for a slow hash).
func secretHash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// CreateToken makes an API token and returns its secret, which is stored
// only as a hash: this is the one time anybody sees it. A revoked token's
// name may be reused.
func (db *DB) CreateToken(ctx context.Context, name string, role nettportal.Role) (string, error) {
	if err := validName("token", name); err != nil {
		return "", err
	}
	if _, err := nettportal.ParseRole(string(role)); err != nil {
		return "", err
	}
	secret, err := randomSecret(32)
	if err != nil {
		return "", err
	}
	secret = tokenPrefix + secret
	err = db.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "DELETE FROM api_tokens WHERE name = $1 AND revoked_at IS NOT NULL", name); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "INSERT INTO api_tokens (name, token_hash, role) VALUES ($1, $2, $3)", name, secretHash(secret), string(role))
		return err
	})
	if uniqueViolation(err) {
		return "", fmt.Errorf("token %q exists already (revoke it first): %w", name, nettportal.ErrConflict)
	}
	if err != nil {
		return "", fmt.Errorf("create token %q: %w", name, err)
	}
	return secret, nil
}

// TokenUser returns the identity of a valid (not revoked) token. It notes
// when the token was used, at most once a minute, so scripts polling every
// second do not turn reads into a stream of writes.
func (db *DB) TokenUser(ctx context.Context, secret string) (nettportal.User, error) {
	var u nettportal.User
	if !strings.HasPrefix(secret, tokenPrefix) {
		return u, fmt.Errorf("api token: %w", nettportal.ErrUnauthorized)
	}
	err := db.Pool.QueryRow(ctx, `WITH touch AS (
			UPDATE api_tokens SET last_used_at = now()
			WHERE token_hash = $1 AND revoked_at IS NULL AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute'))
		SELECT id, name, role, created_at FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL`, secretHash(secret)).
		Scan(&u.ID, &u.Name, &u.Role, &u.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return u, fmt.Errorf("api token: %w", nettportal.ErrUnauthorized)
	}
	if err != nil {
		return u, fmt.Errorf("check api token: %w", err)
	}
	u.Token = true
	return u, nil
}

// RevokeToken ends a token by name (or id). Its row stays for the record.
func (db *DB) RevokeToken(ctx context.Context, nameOrID string) error {
	tag, err := db.Pool.Exec(ctx, "UPDATE api_tokens SET revoked_at = now() WHERE (name = $1 OR id::text = $1) AND revoked_at IS NULL", nameOrID)
	if err != nil {
		return fmt.Errorf("revoke token %q: %w", nameOrID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("token %q (not revoked): %w", nameOrID, nettportal.ErrNotFound)
	}
	return db.notifyAuthChanged(ctx)
}

// Tokens lists the API tokens, revoked ones included, by name.
func (db *DB) Tokens(ctx context.Context) ([]nettportal.Token, error) {
	rows, err := db.Pool.Query(ctx, "SELECT id, name, role, created_at, last_used_at, revoked_at FROM api_tokens ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (nettportal.Token, error) {
		var t nettportal.Token
		err := row.Scan(&t.ID, &t.Name, &t.Role, &t.CreatedAt, &t.LastUsedAt, &t.RevokedAt)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return out, nil
}

// CreateLogin starts a web login for a user that lasts ttl from its last
// use. It returns the cookie value and the CSRF token of the login.
func (db *DB) CreateLogin(ctx context.Context, userID int64, ttl time.Duration) (cookie, csrf string, err error) {
	if cookie, err = randomSecret(32); err != nil {
		return "", "", err
	}
	if csrf, err = randomSecret(32); err != nil {
		return "", "", err
	}
	// Expired logins are removed here rather than by a timer: logins are
	// rare, and the index makes this cheap.
	if _, err := db.Pool.Exec(ctx, "DELETE FROM web_sessions WHERE expires_at < now()"); err != nil {
		return "", "", fmt.Errorf("create login: %w", err)
	}
	_, err = db.Pool.Exec(ctx, `INSERT INTO web_sessions (id_hash, user_id, csrf_token, expires_at)
		VALUES ($1, $2, $3, now() + make_interval(secs => $4))`, secretHash(cookie), userID, csrf, ttl.Seconds())
	if err != nil {
		return "", "", fmt.Errorf("create login: %w", err)
	}
	return cookie, csrf, nil
}

// LoginUser returns the user and CSRF token of a live login, extending it
// by ttl (at most once a minute).
func (db *DB) LoginUser(ctx context.Context, cookie string, ttl time.Duration) (nettportal.User, string, error) {
	var u nettportal.User
	var csrf string
	err := db.Pool.QueryRow(ctx, `WITH touch AS (
			UPDATE web_sessions SET last_seen_at = now(), expires_at = now() + make_interval(secs => $2)
			WHERE id_hash = $1 AND expires_at > now() AND last_seen_at < now() - interval '1 minute')
		SELECT u.id, u.name, u.role, u.created_at, s.csrf_token
		FROM web_sessions s JOIN users u ON u.id = s.user_id
		WHERE s.id_hash = $1 AND s.expires_at > now() AND NOT u.disabled`, secretHash(cookie), ttl.Seconds()).
		Scan(&u.ID, &u.Name, &u.Role, &u.CreatedAt, &csrf)
	if errors.Is(err, pgx.ErrNoRows) {
		return u, "", fmt.Errorf("login: %w", nettportal.ErrUnauthorized)
	}
	if err != nil {
		return u, "", fmt.Errorf("check login: %w", err)
	}
	return u, csrf, nil
}

// DeleteLogin ends a web login (logout). Ending one that does not exist is
// not an error.
func (db *DB) DeleteLogin(ctx context.Context, cookie string) error {
	tag, err := db.Pool.Exec(ctx, "DELETE FROM web_sessions WHERE id_hash = $1", secretHash(cookie))
	if err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return nil
	}
	return db.notifyAuthChanged(ctx)
}
