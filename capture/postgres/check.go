package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/pgdsn"
	"github.com/tandemcdc/tandem/internal/preflight"
)

// Check inspects the source without changing it: connection, wal_level,
// replication privilege, slot and sender capacity, each table and its
// replica identity key, the publication and the slot.
func (s *Source) Check(ctx context.Context) []preflight.Problem {
	var ps problems
	conn, err := pgdsn.Connect(ctx, s.cfg.DSN)
	if err != nil {
		ps = append(ps, preflight.UnreachableProblem("source", err, "check source.dsn, that the server is up and that pg_hba.conf lets this host in"))
		return ps
	}
	defer conn.Close(context.WithoutCancel(ctx))
	srv, ok := ps.checkServer(ctx, conn)
	if !ok {
		return ps
	}
	for _, t := range s.cfg.Tables {
		ps.checkTable(ctx, conn, t, srv)
	}
	ps.checkPublication(ctx, conn, s.cfg.Publication, srv)
	ps.checkSlot(ctx, conn, s.cfg.Slot, s.cfg.RetainedWALWarn, srv)
	if atoi(srv.maxSenders) < 1 {
		ps.fail("source", "max_wal_senders is 0", "ALTER SYSTEM SET max_wal_senders = 10; then restart PostgreSQL")
	}
	return ps
}

// problems collects what a check finds.
type problems []preflight.Problem

func (ps *problems) fail(obj, what, fix string) {
	*ps = append(*ps, preflight.Problem{Severity: preflight.Fail, Object: obj, What: what, Fix: fix})
}

func (ps *problems) warn(obj, what, fix string) {
	*ps = append(*ps, preflight.Problem{Severity: preflight.Warn, Object: obj, What: what, Fix: fix})
}

// server is what Check reads of the server and the role once.
type server struct {
	walLevel, maxSlots, maxSenders, user, db, encoding string
	super, repl, canCreate                             bool
}

// checkServer reads the server's settings and the role's rights, and
// checks those logical replication needs; ok is false when they cannot be
// read (nothing else can be checked then).
func (ps *problems) checkServer(ctx context.Context, conn *pgx.Conn) (srv server, ok bool) {
	err := conn.QueryRow(ctx, `SELECT current_setting('wal_level'), current_setting('max_replication_slots'),
	current_setting('max_wal_senders'), current_user, current_database(), r.rolsuper, r.rolreplication,
	has_database_privilege(current_database(), 'CREATE'), current_setting('server_encoding')
	FROM pg_roles r WHERE r.rolname = current_user`).Scan(&srv.walLevel, &srv.maxSlots, &srv.maxSenders, &srv.user, &srv.db, &srv.super, &srv.repl, &srv.canCreate, &srv.encoding)
	if err != nil {
		ps.fail("source", fmt.Sprintf("cannot read server settings: %v", err), "grant the source user access to pg_roles and current_setting()")
		return srv, false
	}
	if srv.walLevel != "logical" {
		ps.fail("source", fmt.Sprintf("wal_level is %q, logical replication needs \"logical\"", srv.walLevel),
			"ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL")
	}
	if !srv.super && !srv.repl {
		ps.fail("source", fmt.Sprintf("role %q may not use replication", srv.user),
			fmt.Sprintf("ALTER ROLE %s WITH REPLICATION;", pgx.Identifier{srv.user}.Sanitize()))
	}
	if srv.encoding == "SQL_ASCII" {
		// The server neither checks nor converts SQL_ASCII text, and the
		// change envelope is UTF-8 JSON.
		ps.warn("source", fmt.Sprintf("database %q has encoding SQL_ASCII: text is not checked, and a value that is not UTF-8 cannot be carried (capture stops at its change)", srv.db),
			"make sure every text value is UTF-8, or move the data to a database created WITH ENCODING 'UTF8'")
	}
	return srv, true
}

// checkTable checks that t exists with a replica identity key, that the
// role may publish it, and its column types.
func (ps *problems) checkTable(ctx context.Context, conn *pgx.Conn, t change.Table, srv server) {
	obj := "source table " + t.String()
	var ident string
	var hasKey, owner bool
	err := conn.QueryRow(ctx, `SELECT c.relreplident::text,
	EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND (i.indisprimary OR i.indisreplident)),
	pg_has_role(c.relowner, 'USAGE')
	FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`, t.Schema, t.Name).Scan(&ident, &hasKey, &owner)
	if errors.Is(err, pgx.ErrNoRows) {
		ps.fail(obj, "does not exist", "create it, or correct source.tables in the config")
		return
	}
	if err != nil {
		ps.fail(obj, fmt.Sprintf("cannot inspect: %v", err), "grant the source user USAGE on the schema")
		return
	}
	switch {
	case ident == "n":
		ps.fail(obj, "has REPLICA IDENTITY NOTHING: updates and deletes carry no key", fmt.Sprintf("ALTER TABLE %s REPLICA IDENTITY DEFAULT;", pgx.Identifier{t.Schema, t.Name}.Sanitize()))
	case ident == "d" && !hasKey:
		ps.fail(obj, "has no primary key, so its changes carry no key", fmt.Sprintf("ALTER TABLE %s ADD PRIMARY KEY (...);", pgx.Identifier{t.Schema, t.Name}.Sanitize()))
	}
	if !owner && !srv.super {
		ps.warn(obj, fmt.Sprintf("is not owned by %q, which cannot add it to a publication", srv.user),
			"create the publication as the table owner, or run tandem as the owner")
	}
	*ps = append(*ps, checkColumnTypes(ctx, conn, t)...)
}

// checkPublication checks that the publication exists or may be created.
func (ps *problems) checkPublication(ctx context.Context, conn *pgx.Conn, pub string, srv server) {
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`, pub).Scan(&exists); err != nil {
		ps.fail("source publication "+pub, fmt.Sprintf("cannot inspect: %v", err), "")
	} else if !exists && !srv.canCreate && !srv.super {
		ps.fail("source publication "+pub, fmt.Sprintf("does not exist and %q may not create it in database %q", srv.user, srv.db),
			fmt.Sprintf("CREATE PUBLICATION %s FOR TABLE ...; as the table owner, or GRANT CREATE ON DATABASE %s TO %s;",
				pgx.Identifier{pub}.Sanitize(), pgx.Identifier{srv.db}.Sanitize(), pgx.Identifier{srv.user}.Sanitize()))
	}
}

// checkSlot checks the replication slot: free capacity for a new one, or
// an existing one of pgoutput in this database, not lost, not in use, not
// holding back more than retainedWarn bytes of WAL.
func (ps *problems) checkSlot(ctx context.Context, conn *pgx.Conn, slot string, retainedWarn int64, srv server) {
	obj := "source replication slot " + slot
	var plugin, slotDB, walStatus string
	var active bool
	var used int
	var retained int64
	err := conn.QueryRow(ctx, `SELECT coalesce(plugin, ''), coalesce(database, ''), active, coalesce(wal_status, ''),
	coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), 0)::bigint
	FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&plugin, &slotDB, &active, &walStatus, &retained)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_replication_slots`).Scan(&used); err == nil && atoi(srv.maxSlots) <= used {
			ps.fail(obj, fmt.Sprintf("does not exist and all max_replication_slots=%s are in use", srv.maxSlots),
				"raise max_replication_slots (restart needed) or drop an unused slot")
		}
	case err != nil:
		ps.fail(obj, fmt.Sprintf("cannot inspect: %v", err), "")
	case plugin != "pgoutput":
		ps.fail(obj, fmt.Sprintf("exists with plugin %q, tandem needs pgoutput", plugin), "SELECT pg_drop_replication_slot('"+slot+"'); or set source.postgres.slot to another name")
	case slotDB != srv.db:
		ps.fail(obj, fmt.Sprintf("belongs to database %q, not %q", slotDB, srv.db), "set source.postgres.slot to another name")
	case walStatus == "lost":
		ps.fail(obj, "was invalidated: the server removed WAL it still needed (max_slot_wal_keep_size), so changes were lost",
			"`tandem slot drop`, then start again with a backfill")
	default:
		if active {
			ps.warn(obj, "is in use by another connection (another tandem capture?)", "stop the other capture; only one may stream from a slot")
		}
		if retained > retainedWarn {
			ps.warn(obj, fmt.Sprintf("holds back %d MiB of WAL on the source (tandem is behind or stopped)", retained>>20),
				"start tandem so it catches up; if the migration is abandoned, `tandem slot drop`")
		}
	}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// CheckBeforeImages checks that deletes will carry the source columns each
// table's mapping keys are computed from (needs; nil means the whole row).
// Under REPLICA IDENTITY DEFAULT a delete carries only the primary key, so
// a target key computed from any other column could not be found and the
// deleted rows would stay in the target.
func (s *Source) CheckBeforeImages(ctx context.Context, needs map[change.Table][]string) []preflight.Problem {
	if len(needs) == 0 {
		return nil
	}
	conn, err := pgdsn.Connect(ctx, s.cfg.DSN)
	if err != nil {
		return nil // Check reports the connection
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var ps []preflight.Problem
	for _, t := range s.cfg.Tables {
		need, ok := needs[t]
		if !ok {
			continue
		}
		var ident string
		var carried []string
		err := conn.QueryRow(ctx, `SELECT c.relreplident::text, coalesce((SELECT array_agg(a.attname::text) FROM pg_index i
	JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
	WHERE i.indrelid = c.oid AND (CASE WHEN c.relreplident = 'i' THEN i.indisreplident ELSE i.indisprimary END)), '{}')
	FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2`,
			t.Schema, t.Name).Scan(&ident, &carried)
		if err != nil || ident == "f" || len(carried) == 0 {
			continue // missing or keyless tables are Check's; FULL carries everything
		}
		var missing []string
		if need == nil {
			missing = []string{"(the whole row)"}
		}
		for _, c := range need {
			if !slices.Contains(carried, c) {
				missing = append(missing, c)
			}
		}
		if len(missing) > 0 {
			ps = append(ps, preflight.Problem{Severity: preflight.Fail, Object: "source table " + t.String(),
				What: fmt.Sprintf("a mapping computes its target key from %s, which its deletes do not carry (they carry %s)",
					strings.Join(missing, ", "), strings.Join(carried, ", ")),
				Fix: fmt.Sprintf("ALTER TABLE %s REPLICA IDENTITY FULL; or compute the target key from the primary key",
					pgx.Identifier{t.Schema, t.Name}.Sanitize())})
		}
	}
	return ps
}

// Type OIDs whose text does not carry the value from one server to another.
const (
	oidMoney         = 790
	oidRegproc       = 24
	oidRegprocedure  = 2202
	oidRegoper       = 2203
	oidRegoperator   = 2204
	oidRegclass      = 2205
	oidRegtype       = 2206
	oidRegconfig     = 3734
	oidRegdictionary = 3769
	oidRegnamespace  = 4089
	oidRegrole       = 4096
	oidRegcollation  = 4191
)

// isReg reports whether oid is an object identifier alias type (regclass,
// regtype, ...): its text is an object name, read in the catalog of the
// server that parses it.
func isReg(oid uint32) bool {
	switch oid {
	case oidRegproc, oidRegprocedure, oidRegoper, oidRegoperator, oidRegclass, oidRegtype, oidRegconfig,
		oidRegdictionary, oidRegnamespace, oidRegrole, oidRegcollation:
		return true
	}
	return false
}

// checkColumnTypes warns about the columns of table t whose values do not
// travel as they are. Every column is carried (types tandem does not
// decode travel as their text form, which PostgreSQL targets cast back),
// so these are warnings: the mapping or the schema may still need a fix.
//
//   - money: its text follows lc_monetary ("$1,234.56"), which a server
//     with another lc_monetary misreads or refuses, and numeric refuses.
//   - reg* types (regclass, regtype, ...): their text is an object name,
//     resolved in the target's catalog.
//   - domains over integer, floating point, boolean or bytea types: pgoutput
//     names the domain, not its base type, so values arrive as text ("42",
//     "t", "\x00ff") rather than as numbers, booleans or bytes.
func checkColumnTypes(ctx context.Context, conn *pgx.Conn, t change.Table) []preflight.Problem {
	rows, err := conn.Query(ctx, `WITH RECURSIVE dom(oid, base) AS (
	SELECT oid, typbasetype FROM pg_type WHERE typtype = 'd'
	UNION ALL
	SELECT d.oid, b.typbasetype FROM dom d JOIN pg_type b ON b.oid = d.base AND b.typtype = 'd')
SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), e.typ::int8, format_type(e.typ, NULL),
	a.atttypid <> e.typ, CASE WHEN et.typcategory = 'A' THEN et.typelem ELSE 0 END::int8
FROM pg_attribute a
CROSS JOIN LATERAL (SELECT coalesce((SELECT d.base FROM dom d JOIN pg_type b ON b.oid = d.base
	WHERE d.oid = a.atttypid AND b.typtype <> 'd'), a.atttypid) AS typ) e
JOIN pg_type et ON et.oid = e.typ
WHERE a.attrelid = (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE n.nspname = $1 AND c.relname = $2)
	AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum`, t.Schema, t.Name)
	if err != nil {
		return []preflight.Problem{{Severity: preflight.Warn, Object: "source table " + t.String(),
			What: fmt.Sprintf("cannot read its column types: %v", err), Fix: "grant the source user access to pg_attribute and pg_type"}}
	}
	type column struct {
		name, typ, base string
		baseOID, elem   int64
		domain          bool
	}
	cols, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (column, error) {
		var c column
		err := r.Scan(&c.name, &c.typ, &c.baseOID, &c.base, &c.domain, &c.elem)
		return c, err
	})
	if err != nil {
		return []preflight.Problem{{Severity: preflight.Warn, Object: "source table " + t.String(),
			What: fmt.Sprintf("cannot read its column types: %v", err), Fix: "grant the source user access to pg_attribute and pg_type"}}
	}
	var ps []preflight.Problem
	warn := func(what, fix string) {
		ps = append(ps, preflight.Problem{Severity: preflight.Warn, Object: "source table " + t.String(), What: what, Fix: fix})
	}
	ident := pgx.Identifier{t.Schema, t.Name}.Sanitize()
	for _, c := range cols {
		base, elem := uint32(c.baseOID), uint32(c.elem)
		col := fmt.Sprintf("column %q (%s)", c.name, c.typ)
		if c.domain {
			col = fmt.Sprintf("column %q (%s, a domain over %s)", c.name, c.typ, c.base)
		}
		switch {
		case base == oidMoney || elem == oidMoney:
			warn(col+` is carried as its text, which follows lc_monetary ("$1,234.56"): a server with another lc_monetary misreads or refuses it, and numeric columns refuse it`,
				fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s TYPE numeric(20,2); (money casts to numeric exactly), or write it only to money columns of a target with the same lc_monetary",
					ident, pgx.Identifier{c.name}.Sanitize()))
		case isReg(base) || isReg(elem):
			warn(col+" is carried as its text, an object name that the target resolves in its own catalog, where it may be missing or another object",
				"map it to a text column, or store the name as text in the source")
		case c.domain:
			switch logicalType(base) {
			case change.TypeInt:
				warn(col+` is carried as its text ("42"), not as a number: changes name the domain, not its base type`,
					fmt.Sprintf("convert it in the mapping: int(row.%s)", c.name))
			case change.TypeFloat:
				warn(col+` is carried as its text ("1.5"), not as a number: changes name the domain, not its base type`,
					fmt.Sprintf("convert it in the mapping: double(row.%s)", c.name))
			case change.TypeBool:
				warn(col+` is carried as its text ("t" or "f"), not as a boolean: changes name the domain, not its base type`,
					fmt.Sprintf(`convert it in the mapping: row.%s == "t"`, c.name))
			case change.TypeBytes:
				warn(col+` is carried as its text ("\x00ff"), not as bytes: changes name the domain, not its base type`,
					fmt.Sprintf("write it only to bytea columns of a PostgreSQL target, which read that text back; or ALTER TABLE %s ALTER COLUMN %s TYPE bytea;",
						ident, pgx.Identifier{c.name}.Sanitize()))
			}
		}
	}
	return ps
}
