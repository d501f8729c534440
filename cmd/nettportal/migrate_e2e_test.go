package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/nettportal/nettportal/store/storetest"
)

// Only migrate (and serve) change the schema: the other commands on a
// database that is behind say what to do and touch nothing.
func TestCommandsCheckSchemaVersion(t *testing.T) {
	t.Parallel()
	dbURL := storetest.MustCreateDatabase(t)
	for _, args := range [][]string{
		{"user", "list", "--db", dbURL},
		{"router", "list", "--db", dbURL},
	} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), args, noEnv, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), "database schema is at 0, this binary needs") ||
			!strings.Contains(err.Error(), "run nettportal migrate") {
			t.Fatalf("%v on an empty database: %v", args, err)
		}
	}
	if out := mustRun(t, "migrate", "--db", dbURL); !strings.Contains(out, "schema migrated from version 0 to") {
		t.Fatalf("migrate: %q", out)
	}
	if out := mustRun(t, "migrate", "--db", dbURL); !strings.Contains(out, "schema is current") {
		t.Fatalf("second migrate: %q", out)
	}
	mustRun(t, "router", "list", "--db", dbURL)
}
