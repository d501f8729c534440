package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/nettportal/nettportal/store"
)

const usage = `usage: nettportal <command> [flags]

commands:
  serve      run the accounting listener, CoA, reconciler and web server
  migrate    apply the database schema and exit
  router     add | list | rm routers (RADIUS clients)
  user       add | list | rm web users (admin, operator, viewer)
  token      create | list | revoke API tokens (Authorization: Bearer)
  demo       run serve with a simulated MikroTik fleet, nothing to configure
  sim        run the MikroTik fleet simulator on its own

Every flag can also be set as NETTPORTAL_<FLAG> (upper case, - as _);
--db also reads DATABASE_URL. Run 'nettportal <command> -h' for its flags.
`

// run is the whole program; main only calls it, so tests run the real
// wiring in-process.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("no command given")
	}
	cmd, rest := args[0], args[1:]
	commands := map[string]func(context.Context, []string, func(string) string, io.Writer, io.Writer) error{
		"serve":   runServe,
		"migrate": runMigrate,
		"router":  runRouter,
		"user":    runUser,
		"token":   runToken,
		"sim":     runSim,
		"demo":    runDemo,
	}
	if c, ok := commands[cmd]; ok {
		return c(ctx, rest, getenv, stdout, stderr)
	}
	switch cmd {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

// newFlagSet makes a flag set whose errors go to stderr and do not exit.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("nettportal "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// subcommandFlags splits the subcommand off a command's args and makes its
// flag set, with --db; subs lists the subcommands for the error when there
// is none.
func subcommandFlags(cmd, subs string, args []string, stderr io.Writer) (sub string, rest []string, fs *flag.FlagSet, dbURL *string, err error) {
	if len(args) == 0 {
		return "", nil, nil, nil, fmt.Errorf("%s needs a subcommand: %s", cmd, subs)
	}
	sub, rest = args[0], args[1:]
	fs = newFlagSet(cmd+" "+sub, stderr)
	dbURL = fs.String("db", "", "PostgreSQL URL (also DATABASE_URL)")
	return sub, rest, fs, dbURL, nil
}

// parseNamed is parseFlags for a subcommand that may take its --name as
// its argument (positional): then, without --name, the first argument is
// the name.
func parseNamed(fs *flag.FlagSet, args []string, getenv func(string) string, positional bool, name *string) error {
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	if positional && *name == "" {
		*name = fs.Arg(0)
	}
	return nil
}

// parseFlags parses args, then fills every flag not given on the command
// line from NETTPORTAL_<FLAG>, and --db from DATABASE_URL as a last resort.
func parseFlags(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%s: %w", fs.Name(), err)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		env := "NETTPORTAL_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		v := getenv(env)
		if v == "" && f.Name == "db" {
			v = getenv("DATABASE_URL")
		}
		if v != "" {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", env, v, e)
			}
		}
	})
	return err
}

func newLogger(stderr io.Writer, level string) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil {
		return zerolog.Nop(), fmt.Errorf("--log-level %q: %w", level, err)
	}
	var w io.Writer = stderr
	if f, ok := stderr.(*os.File); ok && isTerminal(f) {
		w = zerolog.ConsoleWriter{Out: stderr, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// openDB opens the database named by --db and checks that its schema is
// current. Only migrate and serve change the schema: every other command
// (user list, router add, ...) must never lock a table of a live database.
func openDB(ctx context.Context, url string, maxConns int32, log zerolog.Logger) (*store.DB, error) {
	db, err := openStore(ctx, url, maxConns, log)
	if err != nil {
		return nil, err
	}
	if err := db.CheckSchema(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// openMigratedDB opens the database with every pool setting and applies
// the migrations it lacks (none, and no lock taken, when it is current).
// A database a newer binary migrated is used as it is: that is a rollback,
// and migrations only add, so this binary's queries still hold on it.
func openMigratedDB(ctx context.Context, url string, opt store.Options, log zerolog.Logger) (*store.DB, error) {
	db, err := openStoreWith(ctx, url, opt, log)
	if err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx); err != nil {
		if errors.Is(err, store.ErrSchemaNewer) {
			log.Warn().Err(err).Msg("database schema is newer than this binary (a rollback?): running on it without migrating")
			return db, nil
		}
		db.Close()
		return nil, err
	}
	return db, nil
}

// openStore opens the database with maxConns general connections, one for
// accounting and the default statement timeout.
func openStore(ctx context.Context, url string, maxConns int32, log zerolog.Logger) (*store.DB, error) {
	return openStoreWith(ctx, url, store.Options{MaxConns: maxConns, AccountingConns: 1}, log)
}

func openStoreWith(ctx context.Context, url string, opt store.Options, log zerolog.Logger) (*store.DB, error) {
	if url == "" {
		return nil, fmt.Errorf("no database: pass --db postgres://... or set DATABASE_URL")
	}
	return store.OpenWith(ctx, url, opt, log)
}

func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("migrate", stderr)
	dbURL := fs.String("db", "", "PostgreSQL URL (also DATABASE_URL)")
	lockTimeout := fs.Duration("lock-timeout", store.DefaultMigrateLockTimeout,
		"longest wait for a table lock before a migration gives way to the sessions holding it and retries")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	log, err := newLogger(stderr, "info")
	if err != nil {
		return err
	}
	db, err := openStore(ctx, *dbURL, 2, log)
	if err != nil {
		return err
	}
	defer db.Close()
	db.MigrateLockTimeout = *lockTimeout
	before, _, err := db.SchemaState(ctx)
	if err != nil {
		return err
	}
	if err := db.Migrate(ctx); err != nil {
		return err
	}
	v, err := db.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	if v == before {
		fmt.Fprintf(stdout, "schema is current (version %d)\n", v)
	} else {
		fmt.Fprintf(stdout, "schema migrated from version %d to %d\n", before, v)
	}
	return nil
}

// defaultSecretKeyFile sits in the service's state directory, next to the
// spool (deploy/nettportal.service makes /var/lib/nettportal).
const defaultSecretKeyFile = "/var/lib/nettportal/secret.key"

// secretKeyEnv holds the key itself (base64 of 32 bytes). There is no flag
// for it: a key on the command line is visible in ps to every local user.
const secretKeyEnv = "NETTPORTAL_SECRET_KEY"

// useSecretKey makes db encrypt router credentials with the key from
// NETTPORTAL_SECRET_KEY, else from keyFile. A missing key file is created
// only for a database that never had a key; otherwise the old key is
// needed, and a new one would make every stored credential unreadable.
func useSecretKey(ctx context.Context, db *store.DB, keyFile, envKey string) error {
	var key []byte
	var source string
	var err error
	switch {
	case envKey != "":
		source = secretKeyEnv
		if key, err = store.ParseSecretKey(envKey); err != nil {
			return fmt.Errorf("%s: %w", secretKeyEnv, err)
		}
	case keyFile == "":
		return fmt.Errorf("no secret key: pass --secret-key-file or set %s", secretKeyEnv)
	default:
		source = keyFile
		key, err = store.ReadSecretKeyFile(keyFile)
		if errors.Is(err, os.ErrNotExist) {
			var has bool
			if has, err = db.HasSecretKeyCheck(ctx); err != nil {
				return err
			}
			if has {
				return fmt.Errorf("secret key file %s is missing, but this database's router credentials were encrypted with a key: "+
					"restore that file (or set %s to the key)", keyFile, secretKeyEnv)
			}
			key, err = store.CreateSecretKeyFile(keyFile)
			if err != nil {
				return fmt.Errorf("%w (pass --secret-key-file with a writable path, or set %s)", err, secretKeyEnv)
			}
		}
		if err != nil {
			return err
		}
	}
	if err := db.UseSecretKey(ctx, key); err != nil {
		if errors.Is(err, store.ErrSecretKeyMismatch) {
			return fmt.Errorf("%w: the key from %s is a different one; use the key this database was first used with", err, source)
		}
		return err
	}
	return nil
}
