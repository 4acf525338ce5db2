package probe

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandemcdc/tandem/internal/pgtext"
	"github.com/tandemcdc/tandem/sink"
)

// Postgres is a probe of a PostgreSQL target.
type Postgres struct {
	pool *pgxpool.Pool
}

// OpenPostgres connects to the target with at most conns connections,
// each holding a temporary copy of every table of tables ("schema.table"
// or "table", as mappings name them) once connected.
func OpenPostgres(ctx context.Context, dsn string, tables []string, conns int) (*Postgres, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse target dsn: %w", err)
	}
	cfg.MaxConns = int32(max(1, conns))
	cfg.ConnConfig.RuntimeParams["application_name"] = "tandem-estimate"
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		for _, t := range tables {
			// pg_temp: the session's own schema, dropped with it.
			if _, err := c.Exec(ctx, "CREATE TEMPORARY TABLE "+tempName(t)+" (LIKE "+ident(t)+" INCLUDING ALL)"); err != nil {
				return fmt.Errorf("make a temporary copy of %s: %w", t, err)
			}
		}
		return nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to target: %w", err)
	}
	// Every connection made, with its copies, before anything is timed.
	held := make([]*pgxpool.Conn, 0, cfg.MaxConns)
	defer func() {
		for _, c := range held {
			c.Release()
		}
	}()
	for range cfg.MaxConns {
		c, err := pool.Acquire(ctx)
		if err != nil {
			pool.Close()
			return nil, fmt.Errorf("connect to target: %w", err)
		}
		held = append(held, c)
	}
	return &Postgres{pool: pool}, nil
}

// ident quotes a table name as mappings name it.
func ident(table string) string {
	if schema, t, ok := strings.Cut(table, "."); ok {
		return pgx.Identifier{schema, t}.Sanitize()
	}
	return pgx.Identifier{table}.Sanitize()
}

// Apply implements sink.Sink: the batch's copies, as COPY text, into the
// temporary copies of their tables, in one transaction. Dead letters and
// the checkpoint are not written.
func (p *Postgres) Apply(ctx context.Context, b sink.Batch, _ sink.Checkpoint) error {
	gs, err := groups(b.Writes)
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		for _, g := range gs {
			var data []byte
			for _, row := range g.rows {
				for i, c := range g.cols {
					if i > 0 {
						data = append(data, '\t')
					}
					if data, err = pgtext.AppendCopy(data, row[c]); err != nil {
						return fmt.Errorf("probe %s column %s: %w", g.table, c, err)
					}
				}
				data = append(data, '\n')
			}
			if err := copyFrom(ctx, tx, g.table, g.cols, data); err != nil {
				return err
			}
		}
		return nil
	})
}

// CopyText implements sink.TextCopier: data into the temporary copy of
// table, in a transaction of its own.
func (p *Postgres) CopyText(ctx context.Context, table string, cols []string, data []byte, _ *sink.TextKey) error {
	return pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error { return copyFrom(ctx, tx, table, cols, data) })
}

func copyFrom(ctx context.Context, tx pgx.Tx, table string, cols []string, data []byte) error {
	quoted := make([]string, len(cols))
	for i, c := range cols {
		quoted[i] = pgx.Identifier{c}.Sanitize()
	}
	if _, err := tx.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(data), "COPY "+tempName(table)+" ("+strings.Join(quoted, ", ")+") FROM STDIN"); err != nil {
		return fmt.Errorf("probe: copy into the temporary copy of %s: %w", table, err)
	}
	return nil
}

// ColumnTypes returns the SQL type of each column of the real table, as
// the PostgreSQL sink does.
func (p *Postgres) ColumnTypes(ctx context.Context, table string) (map[string]string, error) {
	rows, err := p.pool.Query(ctx, `SELECT a.attname, format_type(a.atttypid, a.atttypmod)
FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`, ident(table))
	if err != nil {
		return nil, fmt.Errorf("read the column types of %s: %w", table, err)
	}
	types := map[string]string{}
	var col, typ string
	if _, err := pgx.ForEachRow(rows, []any{&col, &typ}, func() error { types[col] = typ; return nil }); err != nil {
		return nil, fmt.Errorf("read the column types of %s: %w", table, err)
	}
	return types, nil
}

// Offsets implements sink.Sink: a probe stores none.
func (p *Postgres) Offsets(context.Context, string, string) ([]sink.Offset, error) { return nil, nil }

// Close ends the sessions, and with them their temporary copies.
func (p *Postgres) Close() error {
	p.pool.Close()
	return nil
}
