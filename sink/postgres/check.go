package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/tandemcdc/tandem/internal/pgdsn"
	"github.com/tandemcdc/tandem/internal/preflight"
	"github.com/tandemcdc/tandem/sink"
)

// Check inspects the target without changing it: each table exists with
// every written column, its key has a unique index (ON CONFLICT needs one),
// and the user may insert, update and delete.
func Check(ctx context.Context, target Config, uses []sink.TableUse) []preflight.Problem {
	dsn := target.DSN
	var ps []preflight.Problem
	fail := func(obj, what, fix string) {
		ps = append(ps, preflight.Problem{Severity: preflight.Fail, Object: obj, What: what, Fix: fix})
	}
	conn, err := pgdsn.Connect(ctx, dsn)
	if err != nil {
		ps = append(ps, preflight.UnreachableProblem("target", err, "check target.dsn, that the server is up and that pg_hba.conf lets this host in"))
		return ps
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, u := range uses {
		obj := "target table " + u.Table
		ident := splitTable(u.Table).Sanitize()
		var oid *uint32
		if err := conn.QueryRow(ctx, `SELECT to_regclass($1)::oid`, ident).Scan(&oid); err != nil || oid == nil {
			fail(obj, "does not exist", "create it in the target, or correct the mapping's table")
			continue
		}
		rows, err := conn.Query(ctx, `SELECT attname FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped`, *oid)
		if err != nil {
			fail(obj, fmt.Sprintf("cannot inspect: %v", err), "")
			continue
		}
		have, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			fail(obj, fmt.Sprintf("cannot inspect: %v", err), "")
			continue
		}
		for _, c := range u.Columns {
			if !slices.Contains(have, c) {
				fail(fmt.Sprintf("target column %s.%s", u.Table, c), "does not exist",
					fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s <type>; or correct the mapping", ident, pgx.Identifier{c}.Sanitize()))
			}
		}
		var unique bool
		err = conn.QueryRow(ctx, `SELECT EXISTS (
	SELECT 1 FROM pg_index i WHERE i.indrelid = $1 AND i.indisunique AND i.indimmediate AND i.indpred IS NULL AND i.indexprs IS NULL
	AND (SELECT array_agg(a.attname::text ORDER BY a.attname::text) FROM pg_attribute a WHERE a.attrelid = i.indrelid
	     AND a.attnum = ANY((i.indkey::int2[])[0:i.indnkeyatts-1]))
	    = (SELECT array_agg(k ORDER BY k) FROM unnest($2::text[]) k))`, *oid, u.Key).Scan(&unique)
		if err != nil {
			fail(obj, fmt.Sprintf("cannot inspect its unique indexes: %v", err), "")
		} else if !unique {
			fail(obj, fmt.Sprintf("has no primary key or unique index on the mapping key (%s), which upserts need", strings.Join(u.Key, ", ")),
				fmt.Sprintf("CREATE UNIQUE INDEX ON %s (%s);", ident, strings.Join(quoteAll(u.Key), ", ")))
		}
		var ins, upd, del bool
		err = conn.QueryRow(ctx, `SELECT has_table_privilege($1::oid, 'INSERT'), has_table_privilege($1::oid, 'UPDATE'), has_table_privilege($1::oid, 'DELETE')`, *oid).Scan(&ins, &upd, &del)
		if err != nil {
			fail(obj, fmt.Sprintf("cannot inspect privileges: %v", err), "")
		} else if !(ins && upd && del) {
			fail(obj, "the target user may not insert, update and delete rows", fmt.Sprintf("GRANT INSERT, UPDATE, DELETE, SELECT ON %s TO <target user>;", ident))
		}
	}
	schema := target.StateSchema
	if schema == "" {
		schema = "tandem"
	}
	ps = append(ps, checkState(ctx, conn, schema)...)
	return ps
}

// checkState checks that the target user can create tandem's state
// schema, or use it and its tables when they exist, which the sink does at
// start (CREATE SCHEMA / TABLE IF NOT EXISTS, then reads and writes them):
// each missing privilege with the GRANT that adds it.
func checkState(ctx context.Context, conn *pgx.Conn, schema string) []preflight.Problem {
	obj := "target state schema " + schema
	ident := pgx.Identifier{schema}.Sanitize()
	var user, db string
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT current_user, current_database(), EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, schema).Scan(&user, &db, &exists); err != nil {
		return []preflight.Problem{{Severity: preflight.Fail, Object: obj, What: fmt.Sprintf("cannot inspect: %v", err)}}
	}
	who := pgx.Identifier{user}.Sanitize()
	if !exists {
		var create bool
		if err := conn.QueryRow(ctx, `SELECT has_database_privilege(current_database(), 'CREATE')`).Scan(&create); err != nil {
			return []preflight.Problem{{Severity: preflight.Fail, Object: obj, What: fmt.Sprintf("cannot inspect privileges: %v", err)}}
		}
		if !create {
			return []preflight.Problem{{Severity: preflight.Fail, Object: obj,
				What: fmt.Sprintf("does not exist, and the target user %s may not create it", user),
				Fix:  fmt.Sprintf("GRANT CREATE ON DATABASE %s TO %s; or CREATE SCHEMA %s AUTHORIZATION %s;", pgx.Identifier{db}.Sanitize(), who, ident, who)}}
		}
		return nil
	}
	var usage, create bool
	if err := conn.QueryRow(ctx, `SELECT has_schema_privilege($1, 'USAGE'), has_schema_privilege($1, 'CREATE')`, schema).Scan(&usage, &create); err != nil {
		return []preflight.Problem{{Severity: preflight.Fail, Object: obj, What: fmt.Sprintf("cannot inspect privileges: %v", err)}}
	}
	if !usage || !create {
		return []preflight.Problem{{Severity: preflight.Fail, Object: obj,
			What: fmt.Sprintf("the target user %s may not use it and create tandem's tables in it", user),
			Fix:  fmt.Sprintf("GRANT USAGE, CREATE ON SCHEMA %s TO %s;", ident, who)}}
	}
	rows, err := conn.Query(ctx, `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT (has_table_privilege(c.oid, 'SELECT') AND has_table_privilege(c.oid, 'INSERT')
	AND has_table_privilege(c.oid, 'UPDATE') AND has_table_privilege(c.oid, 'DELETE')) ORDER BY 1`, schema)
	if err != nil {
		return []preflight.Problem{{Severity: preflight.Fail, Object: obj, What: fmt.Sprintf("cannot inspect privileges: %v", err)}}
	}
	denied, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return []preflight.Problem{{Severity: preflight.Fail, Object: obj, What: fmt.Sprintf("cannot inspect privileges: %v", err)}}
	}
	if len(denied) > 0 {
		return []preflight.Problem{{Severity: preflight.Fail, Object: obj,
			What: fmt.Sprintf("the target user %s may not read and write tandem's tables %s", user, strings.Join(denied, ", ")),
			Fix:  fmt.Sprintf("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %s TO %s;", ident, who)}}
	}
	return nil
}
