package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// The user, token and router commands: a missing or unknown subcommand
// is an error that lists them, and rm and revoke take the name as
// --name or as their argument.
func TestSubcommandsAndPositionalNames(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"user"}, "user needs a subcommand: add, passwd, list or rm"},
		{[]string{"token"}, "token needs a subcommand: create, list or revoke"},
		{[]string{"router"}, "router needs a subcommand: add, list or rm"},
		{[]string{"user", "nope"}, `unknown user subcommand "nope" (add, passwd, list, rm)`},
		{[]string{"token", "nope"}, `unknown token subcommand "nope" (create, list, revoke)`},
		{[]string{"user", "rm", "--db", "postgres://unused"}, "user rm needs --name"},
		{[]string{"token", "revoke", "--db", "postgres://unused"}, "token revoke needs --name"},
	} {
		var out, errOut bytes.Buffer
		if err := run(context.Background(), c.args, noEnv, &out, &errOut); err == nil || err.Error() != c.want {
			t.Errorf("%v: error %v, want %q", c.args, err, c.want)
		}
	}

	dbURL := migratedDB(t)
	mustRun(t, "user", "add", "--db", dbURL, "--name", "ann", "--password", "ann-password", "--role", "viewer")
	mustRun(t, "user", "add", "--db", dbURL, "--name", "bob", "--password", "bob-password", "--role", "operator")
	mustRun(t, "token", "create", "--db", dbURL, "--name", "billing")
	mustRun(t, "token", "create", "--db", dbURL, "--name", "noc")
	mustRun(t, "router", "add", "--db", dbURL, "--name", "core-1", "--ip", "192.0.2.1", "--secret", "s3cret")
	mustRun(t, "router", "add", "--db", dbURL, "--name", "core-2", "--ip", "192.0.2.2", "--secret", "s3cret")
	for _, c := range [][]string{
		{"user", "rm", "--db", dbURL, "ann"},
		{"user", "rm", "--db", dbURL, "--name", "bob"},
		{"token", "revoke", "--db", dbURL, "billing"},
		{"token", "revoke", "--db", dbURL, "--name", "noc"},
		{"router", "rm", "--db", dbURL, "core-1"},
		{"router", "rm", "--db", dbURL, "--name", "core-2"},
	} {
		mustRun(t, c...)
	}
	for _, list := range []string{"user", "router"} {
		out := mustRun(t, list, "list", "--db", dbURL)
		for _, gone := range []string{"ann", "bob", "core-1", "core-2"} {
			if strings.Contains(out, gone) {
				t.Errorf("%s list after rm still shows %s:\n%s", list, gone, out)
			}
		}
	}
	// A revoked token stays listed, with the time it was revoked last.
	out := mustRun(t, "token", "list", "--db", dbURL)
	for _, line := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		if f := strings.Fields(line); len(f) < 2 || f[len(f)-1] == "-" {
			t.Errorf("token not revoked: %q\n%s", line, out)
		}
	}
	if n := strings.Count(out, "\n"); n != 3 {
		t.Errorf("token list has %d lines, want a header and 2 tokens:\n%s", n, out)
	}
}
