package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tandemcdc/tandem/internal/pgtext"
	"github.com/tandemcdc/tandem/sink"
	"github.com/tandemcdc/tandem/sink/internal/sqlbatch"
)

// Lookup implements transform.Lookuper: SELECT * FROM table WHERE c1 = $1 AND
// ... LIMIT 2, each value sent as text and cast to its column's type in
// SQL, as Apply writes it. Failures are *sink.Error.
func (s *Sink) Lookup(ctx context.Context, table string, where map[string]any) (map[string]any, bool, error) {
	return sqlbatch.LookupBy(table, where, func(cols []string) (map[string]any, int, error) {
		t, err := s.describe(ctx, table)
		if err != nil {
			return nil, 0, classified(table, fmt.Errorf("lookup in %s: %w", table, err))
		}
		conds := make([]string, len(cols))
		params := make([][]byte, len(cols))
		for i, c := range cols {
			typ, ok := t.types[c]
			if !ok {
				return nil, 0, classified(table, fmt.Errorf("lookup in %s: target table has no column %q: %w", table, c, sink.ErrColumnNotFound))
			}
			v, err := pgtext.Encode(where[c])
			if err != nil {
				return nil, 0, classified(table, fmt.Errorf("lookup in %s column %q: %w", table, c, err))
			}
			params[i] = []byte(*v)
			conds[i] = fmt.Sprintf("%s = $%d::text::%s", pgx.Identifier{c}.Sanitize(), i+1, typ)
		}
		query := "SELECT * FROM " + t.ident + " WHERE " + strings.Join(conds, " AND ") + " LIMIT 2"
		row, n, err := s.lookup(ctx, query, params)
		if err != nil {
			return nil, 0, classified(table, fmt.Errorf("lookup in %s by (%s): %w", table, strings.Join(quoteAll(cols), ", "), err))
		}
		return row, n, nil
	})
}

// lookup runs query with text params after pgtext.Settings, in one round
// trip, and returns its first row, decoded, and how many rows it returned.
func (s *Sink) lookup(ctx context.Context, query string, params [][]byte) (map[string]any, int, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, 0, err
	}
	defer conn.Release()
	b := &pgconn.Batch{}
	b.ExecParams(pgtext.Settings, nil, nil, nil, nil)
	b.ExecParams(query, params, nil, nil, nil)
	results, err := conn.Conn().PgConn().ExecBatch(ctx, b).ReadAll()
	if err != nil {
		return nil, 0, err
	}
	if len(results) != 2 {
		return nil, 0, fmt.Errorf("%d results for 2 statements", len(results))
	}
	res := results[1]
	if len(res.Rows) == 0 {
		return nil, 0, nil
	}
	row := make(map[string]any, len(res.FieldDescriptions))
	for i, f := range res.FieldDescriptions {
		v, err := pgtext.Value(f.DataTypeOID, res.Rows[0][i])
		if err != nil {
			return nil, 0, fmt.Errorf("column %q: %w", f.Name, err)
		}
		row[f.Name] = v
	}
	return row, len(res.Rows), nil
}
