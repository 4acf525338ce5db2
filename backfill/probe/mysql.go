package probe

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/tandemcdc/tandem/internal/mysqlurl"
	"github.com/tandemcdc/tandem/sink"
)

// MySQL is a probe of a MySQL or MariaDB target.
type MySQL struct {
	db    *sql.DB
	conns chan *sql.Conn // each holding the temporary copies
	all   []*sql.Conn
}

// The MySQL sink's statement bounds, which the probe's statements keep.
const (
	maxPlaceholders   = 65535
	maxStatementBytes = 4 << 20
)

// OpenMySQL connects to the target with conns connections, each holding a
// temporary copy of every table of tables ("db.table", or "table" of the
// DSN's database).
func OpenMySQL(ctx context.Context, dsn string, tables []string, conns int) (*MySQL, error) {
	db, err := mysqlurl.Open(dsn)
	if err != nil {
		return nil, fmt.Errorf("mysql target: %w", err)
	}
	m := &MySQL{db: db, conns: make(chan *sql.Conn, max(1, conns))}
	for range max(1, conns) {
		c, err := db.Conn(ctx)
		if err != nil {
			m.Close()
			return nil, fmt.Errorf("connect to target: %w", err)
		}
		m.all = append(m.all, c)
		for _, t := range tables {
			if _, err := c.ExecContext(ctx, "CREATE TEMPORARY TABLE "+tempName(t)+" LIKE "+quote(t)); err != nil {
				m.Close()
				return nil, fmt.Errorf("make a temporary copy of %s: %w", t, err)
			}
		}
		m.conns <- c
	}
	return m, nil
}

// quote quotes a table name as mappings name it.
func quote(table string) string {
	if db, t, ok := strings.Cut(table, "."); ok {
		return mysqlurl.QuoteIdent(db) + "." + mysqlurl.QuoteIdent(t)
	}
	return mysqlurl.QuoteIdent(table)
}

// Apply implements sink.Sink: the batch's copies into the temporary
// copies of their tables, in multi-row INSERT ... ON DUPLICATE KEY UPDATE
// statements, in one transaction. Dead letters and the checkpoint are not
// written.
func (m *MySQL) Apply(ctx context.Context, b sink.Batch, _ sink.Checkpoint) error {
	gs, err := groups(b.Writes)
	if err != nil {
		return err
	}
	var c *sql.Conn
	select {
	case c = <-m.conns:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { m.conns <- c }()
	tx, err := c.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("probe: begin: %w", err)
	}
	defer tx.Rollback()
	for _, g := range gs {
		cols := make([]string, len(g.cols))
		for i, col := range g.cols {
			cols[i] = mysqlurl.QuoteIdent(col)
		}
		head := "INSERT INTO " + tempName(g.table) + " (" + strings.Join(cols, ", ") + ") VALUES "
		tuple := "(" + strings.Repeat("?, ", len(cols)-1) + "?)"
		tail := " ON DUPLICATE KEY UPDATE " + mysqlurl.QuoteIdent(g.key[0]) + " = " + mysqlurl.QuoteIdent(g.key[0])
		for lo := 0; lo < len(g.rows); {
			var sb strings.Builder
			sb.WriteString(head)
			var args []any
			bytes := 0
			hi := lo
			for ; hi < len(g.rows) && len(args)+len(cols) <= maxPlaceholders && (hi == lo || bytes < maxStatementBytes); hi++ {
				if hi > lo {
					sb.WriteString(", ")
				}
				sb.WriteString(tuple)
				for _, col := range g.cols {
					v := g.rows[hi][col]
					args = append(args, v)
					bytes += size(v)
				}
			}
			sb.WriteString(tail)
			if _, err := tx.ExecContext(ctx, sb.String(), args...); err != nil {
				return fmt.Errorf("probe: insert into the temporary copy of %s: %w", g.table, err)
			}
			lo = hi
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("probe: commit: %w", err)
	}
	return nil
}

// size is about a value's bytes in a statement.
func size(v any) int {
	switch v := v.(type) {
	case string:
		return len(v)
	case []byte:
		return len(v)
	}
	return 8
}

// ColumnTypes returns the SQL type of each column of the real table.
func (m *MySQL) ColumnTypes(ctx context.Context, table string) (map[string]string, error) {
	db, t, ok := strings.Cut(table, ".")
	if !ok {
		db, t = "", table
	}
	rows, err := m.db.QueryContext(ctx, `SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS
WHERE TABLE_SCHEMA = COALESCE(NULLIF(?, ''), DATABASE()) AND TABLE_NAME = ?`, db, t)
	if err != nil {
		return nil, fmt.Errorf("read the column types of %s: %w", table, err)
	}
	defer rows.Close()
	types := map[string]string{}
	for rows.Next() {
		var col, typ string
		if err := rows.Scan(&col, &typ); err != nil {
			return nil, fmt.Errorf("read the column types of %s: %w", table, err)
		}
		types[col] = strings.ToLower(typ)
	}
	return types, rows.Err()
}

// Offsets implements sink.Sink: a probe stores none.
func (m *MySQL) Offsets(context.Context, string, string) ([]sink.Offset, error) { return nil, nil }

// Close drops the temporary copies and closes the connections.
func (m *MySQL) Close() error {
	for _, c := range m.all {
		c.Close() // the session ends, and its temporary tables with it
	}
	return m.db.Close()
}
