package nettportal

import (
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
)

func TestMigrationsEmbeddedInOrder(t *testing.T) {
	migs, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(migs) < 2 || migs[0].Name != "baseline" || migs[1].Name != "freeradius" {
		t.Fatalf("migrations %+v", migs)
	}
	if migs[0].NoTransaction || !migs[1].NoTransaction {
		t.Fatalf("baseline runs in a transaction, 0002 outside: %v %v", migs[0].NoTransaction, migs[1].NoTransaction)
	}
	for _, m := range migs {
		if m.NoTransaction {
			for _, stmt := range SplitStatements(m.SQL) {
				if strings.Contains(strings.ToUpper(stmt), "CREATE INDEX") && !strings.Contains(strings.ToUpper(stmt), "CONCURRENTLY") &&
					strings.Contains(stmt, "radacct") {
					t.Errorf("%04d: index on radacct without CONCURRENTLY: %s", m.Version, stmt)
				}
			}
		}
	}
}

func TestParseMigrationsRejectsGapsAndBadNames(t *testing.T) {
	for name, files := range map[string]fstest.MapFS{
		"gap":    {"m/0001_a.sql": {Data: []byte("x")}, "m/0003_c.sql": {Data: []byte("x")}},
		"repeat": {"m/0001_a.sql": {Data: []byte("x")}, "m/0001_b.sql": {Data: []byte("x")}},
		"name":   {"m/1_a.sql": {Data: []byte("x")}},
		"empty":  {"m/README": {Data: []byte("x")}},
	} {
		if _, err := parseMigrations(files, "m"); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	migs, err := parseMigrations(fstest.MapFS{"m/0002_b.sql": {Data: []byte("-- nettportal:no-transaction\nB")},
		"m/0001_a.sql": {Data: []byte("A")}}, "m")
	if err != nil || len(migs) != 2 || migs[0].SQL != "A" || !migs[1].NoTransaction || migs[1].Version != 2 {
		t.Fatalf("%+v %v", migs, err)
	}
}

func TestSplitStatements(t *testing.T) {
	sql := `-- lead; comment
CREATE TABLE a (x text DEFAULT ';');
/* block; */ CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$;
DO $body$ BEGIN PERFORM 'a;b'; END $body$;
SELECT "we;ird" FROM a
-- trailing only
`
	got := SplitStatements(sql)
	want := []string{
		"-- lead; comment\nCREATE TABLE a (x text DEFAULT ';')",
		"/* block; */ CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$",
		"DO $body$ BEGIN PERFORM 'a;b'; END $body$",
		"SELECT \"we;ird\" FROM a\n-- trailing only",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}
