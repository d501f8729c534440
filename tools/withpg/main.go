// Command withpg runs a command with DATABASE_URL pointing at a PostgreSQL
// server: the one in DATABASE_URL, else the local server, else a throwaway
// cluster made with the installed initdb/pg_ctl (the same code as `nettportal
// demo`), removed when the command ends. `make test` runs the tests under it.
//
//	go run ./tools/withpg -- go test ./...
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/nettportal/nettportal/store/pglocal"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code, err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "withpg:", err)
	}
	os.Exit(code)
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) (int, error) {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		return 2, errors.New("usage: withpg -- command [args...]")
	}
	log := zerolog.New(zerolog.ConsoleWriter{Out: stderr}).With().Timestamp().Logger()
	url, stopDB, err := pglocal.Open(ctx, getenv("DATABASE_URL"), log)
	if err != nil {
		if getenv("CI") == "" {
			// Outside CI the database tests skip themselves; say why once.
			fmt.Fprintf(stderr, "withpg: no PostgreSQL (%v); database tests will skip\n", err)
		} else {
			return 1, fmt.Errorf("find or start PostgreSQL: %w", err)
		}
	}
	if stopDB != nil {
		defer func() {
			if err := stopDB(); err != nil {
				fmt.Fprintln(stderr, "withpg: stop PostgreSQL:", err)
			}
		}()
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr, cmd.Stdin = stdout, stderr, os.Stdin
	cmd.Env = os.Environ()
	if url != "" {
		cmd.Env = append(cmd.Env, "DATABASE_URL="+url)
	}
	err = cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), nil
	}
	if err != nil {
		return 1, fmt.Errorf("run %s: %w", args[0], err)
	}
	return 0, nil
}
