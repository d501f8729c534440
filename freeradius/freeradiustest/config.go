package freeradiustest

// The FreeRADIUS configuration a test server runs: the stock raddb copied
// to a temporary directory, rewritten for its own ports, database and
// clients.

import (
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// writeConfig copies ConfigDir into dir and rewrites what this test needs.
func writeConfig(dir string, cfg Config, s *Server) error {
	if err := copyTree(ConfigDir, dir); err != nil {
		return fmt.Errorf("copy %s: %w", ConfigDir, err)
	}
	if err := rewriteMain(dir); err != nil {
		return err
	}
	for _, name := range []string{"default", "inner-tunnel"} {
		extra := ""
		if name == "default" {
			extra = listen("auth", s.auth) + listen("acct", s.acct)
		}
		if err := rewriteSite(filepath.Join(dir, "sites-enabled", name), extra); err != nil {
			return err
		}
	}
	if cfg.CoA {
		coa := filepath.Join(dir, "sites-enabled", "coa")
		if err := copyFile(filepath.Join(dir, "sites-available", "coa"), coa); err != nil {
			return fmt.Errorf("enable coa site: %w", err)
		}
		if err := rewriteSite(coa, listen("coa", s.coa)); err != nil {
			return err
		}
	}
	if cfg.DatabaseURL != "" {
		if err := writeSQL(dir, cfg); err != nil {
			return err
		}
	}
	return writeClients(dir, cfg)
}

// rewriteMain keeps run-time files in dir and the process as the current
// user: dropping to freerad would lose access to the temp dir.
func rewriteMain(dir string) error {
	path := filepath.Join(dir, "radiusd.conf")
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read radiusd.conf: %w", err)
	}
	text := string(b)
	for _, r := range []struct{ re, to string }{
		{`(?m)^raddbdir = .*$`, "raddbdir = " + dir},
		{`(?m)^logdir = .*$`, "logdir = " + filepath.Join(dir, "log")},
		{`(?m)^run_dir = .*$`, "run_dir = " + filepath.Join(dir, "run")},
		{`(?m)^\s*user = freerad\s*$`, ""},
		{`(?m)^\s*group = freerad\s*$`, ""},
	} {
		re := regexp.MustCompile(r.re)
		if !re.MatchString(text) {
			return fmt.Errorf("radiusd.conf: no line matches %s (FreeRADIUS layout changed?)", r.re)
		}
		text = re.ReplaceAllLiteralString(text, r.to)
	}
	for _, d := range []string{"log", "run", "log/radacct"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return fmt.Errorf("make %s: %w", d, err)
		}
	}
	return os.WriteFile(path, []byte(text), 0o640)
}

func listen(typ string, at netip.AddrPort) string {
	return fmt.Sprintf("listen {\n\ttype = %s\n\tipaddr = %s\n\tport = %d\n}\n", typ, at.Addr(), at.Port())
}

// rewriteSite drops a virtual server's listen sections (the stock ones bind
// the well-known ports on every address) and puts extra in their place.
func rewriteSite(path, extra string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read site: %w", err)
	}
	var out strings.Builder
	depth, skip := 0, -1
	inserted := extra == ""
	for _, line := range strings.SplitAfter(string(b), "\n") {
		code := line
		if i := strings.IndexByte(code, '#'); i >= 0 {
			code = code[:i]
		}
		trimmed := strings.TrimSpace(code)
		// At the top level too: the stock coa site listens outside its server.
		if skip < 0 && depth <= 1 && strings.HasPrefix(trimmed, "listen") && strings.HasSuffix(trimmed, "{") {
			skip = depth
		}
		depth += strings.Count(code, "{") - strings.Count(code, "}")
		if skip >= 0 {
			if depth <= skip {
				skip = -1
			}
			continue
		}
		out.WriteString(line)
		if !inserted && depth == 1 && strings.HasPrefix(trimmed, "server ") {
			out.WriteString(extra)
			inserted = true
		}
	}
	if !inserted {
		return fmt.Errorf("%s: no server section found", path)
	}
	// A regular file replaces the symlink, so the stock file is untouched.
	_ = os.Remove(path)
	return os.WriteFile(path, []byte(out.String()), 0o640)
}

// writeSQL enables the stock sql module for PostgreSQL on cfg.DatabaseURL.
func writeSQL(dir string, cfg Config) error {
	pc, err := pgconn.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("parse database URL: %w", err)
	}
	conninfo := fmt.Sprintf("host=%s port=%d dbname=%s user=%s", pc.Host, pc.Port, pc.Database, pc.User)
	if pc.Password != "" {
		conninfo += " password=" + pc.Password
	}
	b, err := os.ReadFile(filepath.Join(dir, "mods-available", "sql"))
	if err != nil {
		return fmt.Errorf("read sql module: %w", err)
	}
	text := string(b)
	edits := []struct{ re, to string }{
		{`(?m)^\s*dialect = "sqlite"\s*$`, "\tdialect = \"postgresql\""},
		{`(?m)^\s*driver = "rlm_sql_null"\s*$`, "\tdriver = \"rlm_sql_${dialect}\""},
		// A radius_db holding '=' is passed to libpq as the whole conninfo.
		{`(?m)^\s*radius_db = "radius"\s*$`, "\tradius_db = \"" + conninfo + "\""},
	}
	if cfg.ReadClients {
		edits = append(edits, struct{ re, to string }{`(?m)^#\s*read_clients = yes\s*$`, "\tread_clients = yes"})
	}
	for _, e := range edits {
		re := regexp.MustCompile(e.re)
		if !re.MatchString(text) {
			return fmt.Errorf("sql module: no line matches %s (FreeRADIUS layout changed?)", e.re)
		}
		text = re.ReplaceAllLiteralString(text, e.to)
	}
	return os.WriteFile(filepath.Join(dir, "mods-enabled", "sql"), []byte(text), 0o640)
}

func writeClients(dir string, cfg Config) error {
	var b strings.Builder
	b.WriteString("# written by freeradiustest\n")
	clients := cfg.Clients
	if cfg.ReadClients {
		clients = nil
	} else if len(clients) == 0 {
		clients = []Client{{Addr: "127.0.0.0/8", Secret: cfg.Secret, Name: "loopback"}}
	}
	for i, c := range clients {
		secret := c.Secret
		if secret == "" {
			secret = DefaultSecret
		}
		name := c.Name
		if name == "" {
			name = fmt.Sprintf("client%d", i)
		}
		fmt.Fprintf(&b, "client %s {\n\tipaddr = %s\n\tsecret = %q\n\tshortname = %q\n\trequire_message_authenticator = no\n}\n",
			name, c.Addr, secret, name)
	}
	return os.WriteFile(filepath.Join(dir, "clients.conf"), []byte(b.String()), 0o640)
}

// copyTree copies src into dst following symlinks, so the copy does not
// depend on links into the installed tree.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := os.Stat(path)
		if err != nil {
			return err
		}
		if info.IsDir() {
			if d.Type()&fs.ModeSymlink != 0 {
				return copyTree(path, target)
			}
			return os.MkdirAll(target, 0o755)
		}
		return copyFile(path, target)
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
