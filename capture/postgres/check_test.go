package postgres

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/internal/preflight"
	"github.com/tandemcdc/tandem/internal/testenv"
)

func TestCheck_WarnsAboutColumnsWhoseTextDoesNotCarryTheirValue(t *testing.T) {
	f := newFixture(t, `CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
	CREATE DOMAIN small AS posint; -- a domain over a domain
	CREATE DOMAIN flag AS boolean;
	CREATE DOMAIN ratio AS double precision;
	CREATE DOMAIN blob AS bytea;
	CREATE DOMAIN cents AS money;
	CREATE DOMAIN label AS text;
	CREATE DOMAIN amount AS numeric(10,2);
	CREATE TABLE public.odd (id integer PRIMARY KEY, price money, prices money[], rel regclass, kinds regtype[],
		qty posint, n small, ok flag, r ratio, raw blob, c cents, l label, a amount, plain text, ints integer[],
		iv interval, j jsonb, span tstzrange)`)
	const obj = "source table public.odd"
	want := []preflight.Problem{
		{Severity: preflight.Warn, Object: obj,
			What: `column "price" (money) is carried as its text, which follows lc_monetary ("$1,234.56"): a server with another lc_monetary misreads or refuses it, and numeric columns refuse it`,
			Fix:  `ALTER TABLE "public"."odd" ALTER COLUMN "price" TYPE numeric(20,2); (money casts to numeric exactly), or write it only to money columns of a target with the same lc_monetary`},
		{Severity: preflight.Warn, Object: obj,
			What: `column "prices" (money[]) is carried as its text, which follows lc_monetary ("$1,234.56"): a server with another lc_monetary misreads or refuses it, and numeric columns refuse it`,
			Fix:  `ALTER TABLE "public"."odd" ALTER COLUMN "prices" TYPE numeric(20,2); (money casts to numeric exactly), or write it only to money columns of a target with the same lc_monetary`},
		{Severity: preflight.Warn, Object: obj,
			What: `column "rel" (regclass) is carried as its text, an object name that the target resolves in its own catalog, where it may be missing or another object`,
			Fix:  "map it to a text column, or store the name as text in the source"},
		{Severity: preflight.Warn, Object: obj,
			What: `column "kinds" (regtype[]) is carried as its text, an object name that the target resolves in its own catalog, where it may be missing or another object`,
			Fix:  "map it to a text column, or store the name as text in the source"},
		{Severity: preflight.Warn, Object: obj,
			What: `column "qty" (posint, a domain over integer) is carried as its text ("42"), not as a number: changes name the domain, not its base type`,
			Fix:  "convert it in the mapping: int(row.qty)"},
		{Severity: preflight.Warn, Object: obj,
			What: `column "n" (small, a domain over integer) is carried as its text ("42"), not as a number: changes name the domain, not its base type`,
			Fix:  "convert it in the mapping: int(row.n)"},
		{Severity: preflight.Warn, Object: obj,
			What: `column "ok" (flag, a domain over boolean) is carried as its text ("t" or "f"), not as a boolean: changes name the domain, not its base type`,
			Fix:  `convert it in the mapping: row.ok == "t"`},
		{Severity: preflight.Warn, Object: obj,
			What: `column "r" (ratio, a domain over double precision) is carried as its text ("1.5"), not as a number: changes name the domain, not its base type`,
			Fix:  "convert it in the mapping: double(row.r)"},
		{Severity: preflight.Warn, Object: obj,
			What: `column "raw" (blob, a domain over bytea) is carried as its text ("\x00ff"), not as bytes: changes name the domain, not its base type`,
			Fix:  `write it only to bytea columns of a PostgreSQL target, which read that text back; or ALTER TABLE "public"."odd" ALTER COLUMN "raw" TYPE bytea;`},
		{Severity: preflight.Warn, Object: obj,
			What: `column "c" (cents, a domain over money) is carried as its text, which follows lc_monetary ("$1,234.56"): a server with another lc_monetary misreads or refuses it, and numeric columns refuse it`,
			Fix:  `ALTER TABLE "public"."odd" ALTER COLUMN "c" TYPE numeric(20,2); (money casts to numeric exactly), or write it only to money columns of a target with the same lc_monetary`},
	}
	if diff := cmp.Diff(want, check(t, f.config("public.odd"))); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestCheck_WarnsAboutASQLASCIIDatabase(t *testing.T) {
	f := newFixture(t, "")
	name := f.db
	if len(name) > 57 {
		name = name[:57]
	}
	name += "_ascii"
	pg := testenv.Postgres(t)
	if err := pg.Exec(context.Background(), "postgres", "CREATE DATABASE "+name+" ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"); err != nil {
		t.Fatal(err)
	}
	if err := pg.Exec(context.Background(), name, "CREATE TABLE public.a (id integer PRIMARY KEY, v text)"); err != nil {
		t.Fatal(err)
	}
	cfg := f.config("public.a")
	cfg.DSN = pg.DSN(name)
	want := []preflight.Problem{{Severity: preflight.Warn, Object: "source",
		What: `database "` + name + `" has encoding SQL_ASCII: text is not checked, and a value that is not UTF-8 cannot be carried (capture stops at its change)`,
		Fix:  "make sure every text value is UTF-8, or move the data to a database created WITH ENCODING 'UTF8'"}}
	if diff := cmp.Diff(want, check(t, cfg)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
