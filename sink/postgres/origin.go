package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// OriginSeparator joins an origin family's name and a connection's number
// in the name of its session origin (see Config.Origin):
// "tandem_forward", "tandem_forward#1", "tandem_forward#2", ...
// capture/postgres.Config.SkipOrigins matches the same names.
const OriginSeparator = "#"

// SessionOrigin is the name of the n-th replication origin of family
// origin: origin itself for n = 0, else origin#n.
func SessionOrigin(origin string, n int) string {
	if n == 0 {
		return origin
	}
	return origin + OriginSeparator + strconv.Itoa(n)
}

// PostgreSQL error codes setupOrigin reacts to.
const (
	codeUndefinedObject    = "42704" // the origin does not exist
	codeObjectInUse        = "55006" // another session has set the origin up
	codeUniqueViolation    = "23505" // pg_replication_origin_create lost a race
	codeDuplicateObject    = "42710"
	codeConfigurationLimit = "53400" // no free origin state (max_replication_slots)
)

// maxSessionOrigins bounds the family of an origin: the sessions that may
// use it at once, in every sink (every process) writing with it. The
// server's origin states (max_replication_slots) are the tighter bound.
const maxSessionOrigins = 1000

// setupOrigin marks every later transaction of conn with a replication
// origin of family origin: the first of origin, origin#1, origin#2, ...
// (SessionOrigin) that no other session uses, created if absent.
// PostgreSQL 15 lets one session at a time set an origin up, so each
// connection needs its own; numbering them from 0 reuses the same few, as
// many as sessions were open at once (each occupies one of the server's
// max_replication_slots origin states for as long as it exists).
func setupOrigin(ctx context.Context, conn *pgx.Conn, origin string) error {
	const n = maxSessionOrigins
	for i := range n {
		name := SessionOrigin(origin, i)
		err := sessionSetup(ctx, conn, name)
		if code(err) == codeUndefinedObject {
			// Two sinks may create it at once: the loser's unique
			// violation means it exists now, which is all we need.
			_, cerr := conn.Exec(ctx, `SELECT pg_replication_origin_create($1)`, name)
			if c := code(cerr); cerr != nil && c != codeUniqueViolation && c != codeDuplicateObject {
				return fmt.Errorf("create replication origin %q: %w", name, cerr)
			}
			err = sessionSetup(ctx, conn, name)
		}
		switch {
		case err == nil:
			return nil
		case code(err) == codeObjectInUse:
			continue
		case code(err) == codeConfigurationLimit:
			return fmt.Errorf("set up replication origin %q for the session: %w (each open connection of a sink with an origin takes one of max_replication_slots' origin states: raise max_replication_slots, or lower the sinks' pool_max_conns)", name, err)
		default:
			return fmt.Errorf("set up replication origin %q for the session: %w", name, err)
		}
	}
	return fmt.Errorf("set up a replication origin of %q for the session: all %d (%s to %s) are in use by other sessions",
		origin, n, SessionOrigin(origin, 0), SessionOrigin(origin, n-1))
}

func sessionSetup(ctx context.Context, conn *pgx.Conn, name string) error {
	_, err := conn.Exec(ctx, `SELECT pg_replication_origin_session_setup($1)`, name)
	return err
}

// code is the SQLSTATE of err, "" if it is not a PostgreSQL error.
func code(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}
