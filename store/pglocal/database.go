package pglocal

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"
)

// DefaultTestPrefix names the databases CreateDatabase makes for tests, so
// leftovers from a killed test run are easy to find and drop.
const DefaultTestPrefix = "nettportal_test_"

// maxIdentLen is PostgreSQL's NAMEDATALEN-1; longer names are silently
// truncated, which could make two "unique" names collide.
const maxIdentLen = 63

// CreateDatabase creates a new, uniquely named database (prefix, or
// DefaultTestPrefix when prefix is empty, followed by random hex) on the
// server at baseURL, and returns its URL and a func that drops it. The drop
// uses WITH (FORCE), so connections a test forgot to close do not block it;
// that needs PostgreSQL 13 or later. baseURL may be a postgres:// URL or a
// keyword/value connection string.
func CreateDatabase(ctx context.Context, baseURL string, prefix string) (dbURL string, drop func(context.Context) error, err error) {
	if prefix == "" {
		prefix = DefaultTestPrefix
	}
	if !validPrefix(prefix) {
		return "", nil, fmt.Errorf("create database: prefix %q must be lower-case letters, digits and _ and start with a letter or _", prefix)
	}
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", nil, fmt.Errorf("create database: %w", err)
	}
	name := prefix + hex.EncodeToString(rnd[:])
	if len(name) > maxIdentLen {
		return "", nil, fmt.Errorf("create database: prefix %q is too long", prefix)
	}
	dbURL, err = withDatabase(baseURL, name)
	if err != nil {
		return "", nil, fmt.Errorf("create database: %w", err)
	}
	ident := pgx.Identifier{name}.Sanitize()
	if err := execOn(ctx, baseURL, "CREATE DATABASE "+ident); err != nil {
		return "", nil, fmt.Errorf("create database %s: %w", name, err)
	}
	drop = func(ctx context.Context) error {
		if err := execOn(ctx, baseURL, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("drop database %s: %w", name, err)
		}
		return nil
	}
	return dbURL, drop, nil
}

// execOn runs one statement on its own connection. CREATE/DROP DATABASE
// cannot run inside a transaction, and a pool would be overkill for one.
func execOn(ctx context.Context, connString, sql string) error {
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}

// withDatabase returns connString pointing at database name instead.
func withDatabase(connString, name string) (string, error) {
	if strings.HasPrefix(connString, "postgres://") || strings.HasPrefix(connString, "postgresql://") {
		u, err := url.Parse(connString)
		if err != nil {
			return "", fmt.Errorf("parse base URL: %w", err)
		}
		u.Path = "/" + name
		u.RawPath = ""
		return u.String(), nil
	}
	// In a keyword/value string the last occurrence of a keyword wins, so
	// appending overrides any dbname already there. name needs no quoting:
	// validPrefix and hex leave only [a-z0-9_].
	return strings.TrimSpace(connString) + " dbname=" + name, nil
}

func validPrefix(p string) bool {
	for i, r := range p {
		switch {
		case r >= 'a' && r <= 'z', r == '_':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
