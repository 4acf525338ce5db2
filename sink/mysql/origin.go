package mysql

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/tandemcdc/tandem/internal/mysqlurl"
)

// OriginTable is the name of the state table, in the state database, whose
// marker row opens every transaction of a sink with an origin
// (Config.Origin): capture/mysql.Config.OriginTable names it.
const OriginTable = "origin"

// originTableDef is OriginTable's definition: one row per connection
// (CONNECTION_ID()), so that concurrent transactions never wait on one
// another's marker; n changes on every upsert, so that each one is a row
// change in the binlog.
const originTableDef = `(
	conn BIGINT UNSIGNED NOT NULL,
	name VARCHAR(64) NOT NULL,
	n    BIGINT NOT NULL,
	PRIMARY KEY (conn)
)`

func (s *Sink) originTable() string {
	return mysqlurl.QuoteIdent(s.state) + "." + mysqlurl.QuoteIdent(OriginTable)
}

// begin starts a transaction that writes: with an origin, it is marked
// first (mark), before any other row change.
func (s *Sink) begin(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error) {
	tx, err := s.db.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	if err := s.mark(ctx, tx); err != nil {
		tx.Rollback()
		return nil, err
	}
	return tx, nil
}

// mark makes tx one of the sink's own, when it has an origin: it sets
// @tandem_origin (which guard triggers let through) and upserts the
// connection's row of OriginTable, so that the transaction's first rows
// event in the binlog names the origin; a binlog capturer skipping it
// (capture/mysql.Config.SkipOrigins) skips the whole transaction.
func (s *Sink) mark(ctx context.Context, tx *sql.Tx) error {
	if s.origin == "" {
		return nil
	}
	if _, err := tx.ExecContext(ctx, "SET @tandem_origin = ?", s.origin); err != nil {
		return classified("", fmt.Errorf("set @tandem_origin for origin %s: %w", s.origin, err))
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO "+s.originTable()+" (conn, name, n) VALUES (CONNECTION_ID(), ?, 1)"+
		" ON DUPLICATE KEY UPDATE name = VALUES(name), n = n + 1", s.origin); err != nil {
		return classified(s.originTable(), fmt.Errorf("mark the transaction with origin %s: %w", s.origin, err))
	}
	return nil
}

// exec runs one statement that writes: on its own (autocommit) without an
// origin, else in a marked transaction (begin).
func (s *Sink) exec(ctx context.Context, query string, args ...any) error {
	if s.origin == "" {
		_, err := s.db.ExecContext(ctx, query, args...)
		return err
	}
	tx, err := s.begin(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, query, args...); err != nil {
		return err
	}
	return tx.Commit()
}
