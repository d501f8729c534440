package nettportal

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// Migration is one numbered schema change, applied once and recorded in
// the schema_migrations table.
//
// Adding a schema change is adding one file migrations/NNNN_name.sql with
// the next number. A file whose first line is
//
//	-- nettportal:no-transaction
//
// runs statement by statement outside a transaction, which CREATE INDEX
// CONCURRENTLY needs (for tables that may be large, such as radacct); each
// of its statements must then be idempotent, as a failure leaves the ones
// before it applied and the migration is run again from its start.
type Migration struct {
	Version       int
	Name          string
	SQL           string
	NoTransaction bool
}

const noTransactionMarker = "-- nettportal:no-transaction"

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations returns the embedded migrations in order. Their numbers run
// from 1 without a gap; a file that breaks that is a build mistake, and
// the error says which.
func Migrations() ([]Migration, error) {
	return parseMigrations(migrationFiles, "migrations")
}

func parseMigrations(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var out []Migration
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".sql") {
			continue
		}
		num, rest, ok := strings.Cut(strings.TrimSuffix(name, ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || len(num) != 4 || rest == "" {
			return nil, fmt.Errorf("migration file %q: want NNNN_name.sql", name)
		}
		body, err := fs.ReadFile(fsys, path.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("read migration %q: %w", name, err)
		}
		sql := string(body)
		out = append(out, Migration{Version: v, Name: rest, SQL: sql,
			NoTransaction: strings.HasPrefix(sql, noTransactionMarker)})
	}
	// ReadDir sorts by name, and the names start with four digits.
	for i, m := range out {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migration %04d_%s: expected number %04d (numbers run from 0001 without gaps or repeats)",
				m.Version, m.Name, i+1)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no migrations in %s", dir)
	}
	return out, nil
}

// SplitStatements cuts SQL into its statements at top-level semicolons
// (not inside quotes, dollar quotes or comments) and drops the empty ones.
func SplitStatements(sql string) []string {
	var out []string
	start := 0
	emit := func(end int) {
		stmt := strings.TrimSpace(sql[start:end])
		if stripComments(stmt) != "" {
			out = append(out, stmt)
		}
		start = end + 1
	}
	for i := 0; i < len(sql); i++ {
		switch c := sql[i]; {
		case c == '-' && strings.HasPrefix(sql[i:], "--"):
			if j := strings.IndexByte(sql[i:], '\n'); j >= 0 {
				i += j
			} else {
				i = len(sql)
			}
		case c == '/' && strings.HasPrefix(sql[i:], "/*"):
			if j := strings.Index(sql[i+2:], "*/"); j >= 0 {
				i += j + 3
			} else {
				i = len(sql)
			}
		case c == '\'' || c == '"':
			if j := strings.IndexByte(sql[i+1:], c); j >= 0 {
				i += j + 1
			} else {
				i = len(sql)
			}
		case c == '$':
			tag := dollarTag(sql[i:])
			if tag == "" {
				continue
			}
			if j := strings.Index(sql[i+len(tag):], tag); j >= 0 {
				i += len(tag) + j + len(tag) - 1
			} else {
				i = len(sql)
			}
		case c == ';':
			emit(i)
		}
	}
	if start < len(sql) {
		emit(len(sql))
	}
	return out
}

// dollarTag returns the $tag$ that s starts with, or "".
func dollarTag(s string) string {
	for j := 1; j < len(s); j++ {
		c := s[j]
		if c == '$' {
			return s[:j+1]
		}
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || j > 1 && c >= '0' && c <= '9') {
			return ""
		}
	}
	return ""
}

func stripComments(stmt string) string {
	var b strings.Builder
	for _, line := range strings.Split(stmt, "\n") {
		if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "--") {
			b.WriteString(l)
		}
	}
	return b.String()
}
