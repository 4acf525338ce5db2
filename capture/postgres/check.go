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
	"github.com/tandemcdc/tandem/internal/preflight"
)

// Check inspects the source without changing it: connection, wal_level,
// replication privilege, slot and sender capacity, each table and its
// replica identity key, the publication and the slot.
func (s *Source) Check(ctx context.Context) []preflight.Problem {
	var ps []preflight.Problem
	fail := func(obj, what, fix string) {
		ps = append(ps, preflight.Problem{Severity: preflight.Fail, Object: obj, What: what, Fix: fix})
	}
	warn := func(obj, what, fix string) {
		ps = append(ps, preflight.Problem{Severity: preflight.Warn, Object: obj, What: what, Fix: fix})
	}
	conn, err := pgx.Connect(ctx, s.cfg.DSN)
	if err != nil {
		fail("source", fmt.Sprintf("cannot connect: %v", err), "check source.dsn, that the server is up and that pg_hba.conf lets this host in")
		return ps
	}
	defer conn.Close(context.WithoutCancel(ctx))

	var walLevel, maxSlots, maxSenders, user, db string
	var super, repl, canCreate bool
	err = conn.QueryRow(ctx, `SELECT current_setting('wal_level'), current_setting('max_replication_slots'),
	current_setting('max_wal_senders'), current_user, current_database(), r.rolsuper, r.rolreplication,
	has_database_privilege(current_database(), 'CREATE')
	FROM pg_roles r WHERE r.rolname = current_user`).Scan(&walLevel, &maxSlots, &maxSenders, &user, &db, &super, &repl, &canCreate)
	if err != nil {
		fail("source", fmt.Sprintf("cannot read server settings: %v", err), "grant the source user access to pg_roles and current_setting()")
		return ps
	}
	if walLevel != "logical" {
		fail("source", fmt.Sprintf("wal_level is %q, logical replication needs \"logical\"", walLevel),
			"ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL")
	}
	if !super && !repl {
		fail("source", fmt.Sprintf("role %q may not use replication", user),
			fmt.Sprintf("ALTER ROLE %s WITH REPLICATION;", pgx.Identifier{user}.Sanitize()))
	}

	// Tables and their replica identity keys.
	for _, t := range s.cfg.Tables {
		obj := "source table " + t.String()
		var ident string
		var hasKey, owner bool
		err := conn.QueryRow(ctx, `SELECT c.relreplident::text,
	EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND (i.indisprimary OR i.indisreplident)),
	pg_has_role(c.relowner, 'USAGE')
	FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`, t.Schema, t.Name).Scan(&ident, &hasKey, &owner)
		if errors.Is(err, pgx.ErrNoRows) {
			fail(obj, "does not exist", "create it, or correct source.tables in the config")
			continue
		}
		if err != nil {
			fail(obj, fmt.Sprintf("cannot inspect: %v", err), "grant the source user USAGE on the schema")
			continue
		}
		switch {
		case ident == "n":
			fail(obj, "has REPLICA IDENTITY NOTHING: updates and deletes carry no key", fmt.Sprintf("ALTER TABLE %s REPLICA IDENTITY DEFAULT;", pgx.Identifier{t.Schema, t.Name}.Sanitize()))
		case ident == "d" && !hasKey:
			fail(obj, "has no primary key, so its changes carry no key", fmt.Sprintf("ALTER TABLE %s ADD PRIMARY KEY (...);", pgx.Identifier{t.Schema, t.Name}.Sanitize()))
		}
		if !owner && !super {
			warn(obj, fmt.Sprintf("is not owned by %q, which cannot add it to a publication", user),
				"create the publication as the table owner, or run tandem as the owner")
		}
	}

	// Publication.
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`, s.cfg.Publication).Scan(&exists); err != nil {
		fail("source publication "+s.cfg.Publication, fmt.Sprintf("cannot inspect: %v", err), "")
	} else if !exists && !canCreate && !super {
		fail("source publication "+s.cfg.Publication, fmt.Sprintf("does not exist and %q may not create it in database %q", user, db),
			fmt.Sprintf("CREATE PUBLICATION %s FOR TABLE ...; as the table owner, or GRANT CREATE ON DATABASE %s TO %s;",
				pgx.Identifier{s.cfg.Publication}.Sanitize(), pgx.Identifier{db}.Sanitize(), pgx.Identifier{user}.Sanitize()))
	}

	// Slot.
	obj := "source replication slot " + s.cfg.Slot
	var plugin, slotDB, walStatus string
	var active bool
	var used int
	var retained int64
	err = conn.QueryRow(ctx, `SELECT coalesce(plugin, ''), coalesce(database, ''), active, coalesce(wal_status, ''),
	coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), 0)::bigint
	FROM pg_replication_slots WHERE slot_name = $1`, s.cfg.Slot).Scan(&plugin, &slotDB, &active, &walStatus, &retained)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_replication_slots`).Scan(&used); err == nil && atoi(maxSlots) <= used {
			fail(obj, fmt.Sprintf("does not exist and all max_replication_slots=%s are in use", maxSlots),
				"raise max_replication_slots (restart needed) or drop an unused slot")
		}
	case err != nil:
		fail(obj, fmt.Sprintf("cannot inspect: %v", err), "")
	case plugin != "pgoutput":
		fail(obj, fmt.Sprintf("exists with plugin %q, tandem needs pgoutput", plugin), "SELECT pg_drop_replication_slot('"+s.cfg.Slot+"'); or set source.postgres.slot to another name")
	case slotDB != db:
		fail(obj, fmt.Sprintf("belongs to database %q, not %q", slotDB, db), "set source.postgres.slot to another name")
	case walStatus == "lost":
		fail(obj, "was invalidated: the server removed WAL it still needed (max_slot_wal_keep_size), so changes were lost",
			"`tandem slot drop`, then start again with a backfill")
	default:
		if active {
			warn(obj, "is in use by another connection (another tandem capture?)", "stop the other capture; only one may stream from a slot")
		}
		if retained > s.cfg.RetainedWALWarn {
			warn(obj, fmt.Sprintf("holds back %d MiB of WAL on the source (tandem is behind or stopped)", retained>>20),
				"start tandem so it catches up; if the migration is abandoned, `tandem slot drop`")
		}
	}
	if atoi(maxSenders) < 1 {
		fail("source", "max_wal_senders is 0", "ALTER SYSTEM SET max_wal_senders = 10; then restart PostgreSQL")
	}
	return ps
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
	conn, err := pgx.Connect(ctx, s.cfg.DSN)
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
