package store

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The accounting statements are composed from Go tables; the golden file
// holds them as PostgreSQL receives them, so a change to a rule shows as a
// diff of SQL a reviewer can read and paste into psql. When a change is
// intended, the test writes the new text next to the golden file: review
// it and move it over.
func TestAccountingStatementsGolden(t *testing.T) {
	var b strings.Builder
	for _, st := range []struct{ name, sql string }{
		{"upsertAccountingSQL: the full upsert ($n are recordColumns with full)", upsertAccountingSQL},
		{"updateExistingSQL: the narrow update ($n are recordColumns with narrow)", updateExistingSQL},
		{"lockRoundSQL", lockRoundSQL},
		{"closeRouterSessionsSQL: Accounting-On/Off", closeRouterSessionsSQL},
		{"retireAPIRowsSQL", retireAPIRowsSQL},
	} {
		b.WriteString("-- " + st.name + "\n" + strings.TrimSpace(st.sql) + ";\n\n")
	}
	got := b.String()
	golden := filepath.Join("testdata", "accounting.golden.sql")
	want, err := os.ReadFile(golden)
	if err == nil && string(want) == got {
		return
	}
	if werr := os.WriteFile(golden+".new", []byte(got), 0o644); werr != nil {
		t.Fatalf("write %s.new: %v", golden, werr)
	}
	if err != nil {
		t.Fatalf("read golden file: %v (the statements are in %s.new: review it and rename it)", err, golden)
	}
	t.Fatalf("the composed accounting statements differ from %s: review %s.new (diff -u %s %s.new) and move it over when the change is intended",
		golden, golden, golden, golden)
}

// Every column the shared rules read from the incoming row must be one the
// narrow update's row e has: EXCLUDED.x becomes e.x there.
func TestNarrowRowHasWhatRulesRead(t *testing.T) {
	has := map[string]bool{}
	for _, v := range incomingRow {
		if v.narrow {
			has[v.column] = true
		}
	}
	for _, r := range progressRules {
		rest := r.expr
		for {
			i := strings.Index(rest, "EXCLUDED.")
			if i < 0 {
				break
			}
			rest = rest[i+len("EXCLUDED."):]
			end := strings.IndexFunc(rest, func(c rune) bool { return !(c == '_' || c >= 'a' && c <= 'z') })
			if end < 0 {
				end = len(rest)
			}
			if col := rest[:end]; !has[col] {
				t.Errorf("rule for %s reads EXCLUDED.%s, which the narrow update's row does not have", r.column, col)
			}
		}
	}
}
