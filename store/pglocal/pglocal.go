// Package pglocal finds or starts a PostgreSQL server for `nettportal demo`
// and for the test suite, so neither needs any configuration on a machine
// that has PostgreSQL installed.
package pglocal

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os/user"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rs/zerolog"
)

// ErrNotFound is returned by Find when no local PostgreSQL server answers.
var ErrNotFound = errors.New("no reachable local PostgreSQL server found")

const (
	// localSearchTimeout bounds the whole local search: the demo must fall
	// back to a throwaway cluster quickly when nothing is running.
	localSearchTimeout = 2 * time.Second
	// probeTimeout bounds one candidate so a hung server cannot eat the
	// time of the candidates after it.
	probeTimeout = time.Second
	// explicitTimeout is longer because an explicit URL may point at a
	// remote server, where a slow handshake is still a working server.
	explicitTimeout = 5 * time.Second
)

// Find returns a connection URL for a reachable PostgreSQL server. A non-empty
// explicit URL is the only candidate: when it does not answer Find returns an
// error rather than silently using another server. Otherwise it tries the
// local server on the Unix sockets in /var/run/postgresql and /tmp as user
// "postgres" and then as the current user, then 127.0.0.1:5432 as
// "postgres", always database "postgres", and returns ErrNotFound when none
// answers within about two seconds.
func Find(ctx context.Context, explicit string) (string, error) {
	if explicit != "" {
		pctx, cancel := context.WithTimeout(ctx, explicitTimeout)
		defer cancel()
		if err := probe(pctx, explicit); err != nil {
			return "", fmt.Errorf("connect to %s: %w", redact(explicit), err)
		}
		return explicit, nil
	}

	sctx, cancel := context.WithTimeout(ctx, localSearchTimeout)
	defer cancel()
	var tried []string
	for _, candidate := range localCandidates() {
		if err := sctx.Err(); err != nil {
			break
		}
		pctx, pcancel := context.WithTimeout(sctx, probeTimeout)
		err := probe(pctx, candidate)
		pcancel()
		if err == nil {
			return candidate, nil
		}
		tried = append(tried, candidate)
	}
	if err := ctx.Err(); err != nil {
		// The caller gave up; that is not the same as "nothing is running".
		return "", fmt.Errorf("find local server: %w", err)
	}
	return "", fmt.Errorf("%w (tried %s)", ErrNotFound, strings.Join(tried, ", "))
}

// Open is the one call demo and tests use to get a database server: the
// explicit URL when given (an error if it does not answer), else a running
// local server, else a throwaway cluster started with the installed
// initdb/pg_ctl. stop stops and removes that cluster; for a server that was
// found it does nothing.
func Open(ctx context.Context, explicit string, log zerolog.Logger) (dbURL string, stop func() error, err error) {
	noop := func() error { return nil }
	dbURL, err = Find(ctx, explicit)
	if err == nil {
		log.Info().Str("url", redact(dbURL)).Msg("using PostgreSQL server")
		return dbURL, noop, nil
	}
	if explicit != "" || !errors.Is(err, ErrNotFound) {
		return "", nil, err
	}
	log.Info().Err(err).Msg("starting a throwaway PostgreSQL cluster")
	c, err := Start(ctx, log)
	if err != nil {
		return "", nil, err
	}
	return c.URL, c.Stop, nil
}

// localCandidates lists the URLs Find tries when no URL is given.
func localCandidates() []string {
	users := []string{"postgres"}
	// Debian's peer authentication maps OS user to role, so a developer's own
	// role is the next best guess after the superuser.
	if u, err := user.Current(); err == nil && u.Username != "" && u.Username != "postgres" {
		users = append(users, u.Username)
	}
	var out []string
	// Debian's packaged server puts its socket in /var/run/postgresql, a
	// server built from source in /tmp.
	for _, dir := range []string{"/var/run/postgresql", "/tmp"} {
		for _, u := range users {
			out = append(out, socketURL(u, dir, 5432, "postgres"))
		}
	}
	return append(out, tcpURL("postgres", "127.0.0.1", 5432, "postgres"))
}

// socketURL builds a URL for a Unix socket in dir, in the
// postgres://user@/db?host=/dir form that pgx and libpq both understand.
func socketURL(userName, dir string, port int, db string) string {
	q := url.Values{}
	q.Set("host", dir)
	q.Set("port", fmt.Sprint(port))
	u := url.URL{
		Scheme: "postgres",
		User:   url.User(userName),
		Path:   "/" + db,
		// '/' is legal in a query; leaving it unescaped keeps logged URLs
		// readable and copy-pasteable into psql.
		RawQuery: strings.ReplaceAll(q.Encode(), "%2F", "/"),
	}
	return u.String()
}

// tcpURL builds a URL for a server on host:port. TLS is off because the only
// servers we build URLs for are on loopback, where "prefer" would just cost a
// second round trip.
func tcpURL(userName, host string, port int, db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(userName),
		Host:     fmt.Sprintf("%s:%d", host, port),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// probe connects and authenticates; a server that completes the startup
// handshake is ready for queries.
func probe(ctx context.Context, connString string) error {
	conn, err := pgconn.Connect(ctx, connString)
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// redact hides a password before a connection string reaches a log or an
// error message.
func redact(connString string) string {
	u, err := url.Parse(connString)
	if err != nil || u.Scheme == "" {
		if strings.Contains(connString, "password") {
			return "(connection string)"
		}
		return connString
	}
	return u.Redacted()
}
