package postgres

import (
	"context"
	"fmt"
	"strconv"
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

// LookupKeys is Lookup of each of keys (maps of the same columns to
// values) in one statement whatever their number: rows[i] is the row
// Lookup would find by keys[i] (nil: none) and n[i] how many rows it
// matches, at most 2 (2: more than one, where Lookup fails with
// sink.ErrNotUnique). Each key is matched as Lookup matches it, its values
// sent as text and cast to their columns' types,
//
//	SELECT u.n, t.* FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(c1, c2, n)
//	    JOIN table AS t ON t.k1 = u.c1::type1 AND t.k2 = u.c2::type2
//
// and each row found is told by the ordinal of the key it was found by,
// not by its values (a numeric "1.0" finds the row holding 1), and typed
// and named as Lookup types and names it. A key holding NULL finds no row
// without being sent. The statement is a plain SELECT in its own implicit
// transaction. Failures are *sink.Error.
func (s *Sink) LookupKeys(ctx context.Context, table string, keys []map[string]any) (rows []map[string]any, n []int, err error) {
	rows, n = make([]map[string]any, len(keys)), make([]int, len(keys))
	cols, err := sqlbatch.KeyColumns(table, keys)
	if err != nil || len(keys) == 0 {
		return rows, n, err
	}
	t, err := s.describe(ctx, table)
	if err != nil {
		return nil, nil, classified(table, fmt.Errorf("lookup in %s: %w", table, err))
	}
	conds := make([]string, len(cols))
	aliases := make([]string, len(cols))
	params := make([]string, len(cols))
	vals := make([][]*string, len(cols))
	for i, c := range cols {
		typ, ok := t.types[c]
		if !ok {
			return nil, nil, classified(table, fmt.Errorf("lookup in %s: target table has no column %q: %w", table, c, sink.ErrColumnNotFound))
		}
		params[i] = fmt.Sprintf("$%d::text[]", i+1)
		aliases[i] = fmt.Sprintf("c%d", i+1)
		conds[i] = fmt.Sprintf("t.%s = u.c%d::%s", pgx.Identifier{c}.Sanitize(), i+1, typ)
	}
	var sent []int // the ordinal of a key sent - 1 -> its place in keys
keys:
	for j, k := range keys {
		for _, c := range cols {
			if k[c] == nil {
				continue keys // no row holds NULL = NULL, as Lookup finds none
			}
		}
		for i, c := range cols {
			v, err := pgtext.Encode(k[c])
			if err != nil {
				return nil, nil, classified(table, fmt.Errorf("lookup in %s column %q: %w", table, c, err))
			}
			vals[i] = append(vals[i], v)
		}
		sent = append(sent, j)
	}
	if len(sent) == 0 {
		return rows, n, nil
	}
	args := make([]any, len(cols))
	for i := range vals {
		args[i] = vals[i]
	}
	query := "SELECT u.n, t.* FROM unnest(" + strings.Join(params, ", ") + ") WITH ORDINALITY AS u(" +
		strings.Join(aliases, ", ") + ", n) JOIN " + t.ident + " AS t ON " + strings.Join(conds, " AND ")
	err = s.lookupMany(ctx, query, args, func(ord int64, row map[string]any) error {
		if ord < 1 || ord > int64(len(sent)) {
			return fmt.Errorf("a row of key %d of %d", ord, len(sent))
		}
		j := sent[ord-1]
		if n[j]++; n[j] == 1 {
			rows[j] = row
		}
		n[j] = min(n[j], 2)
		return nil
	})
	if err != nil {
		return nil, nil, classified(table, fmt.Errorf("lookup %d keys in %s by (%s): %w", len(sent), table, strings.Join(quoteAll(cols), ", "), err))
	}
	return rows, n, nil
}

// lookupMany runs query, whose first column is an ordinal (bigint) and
// the others a row of a table, with args ([]*string, as text[]) after
// pgtext.Settings, in one round trip, and calls found with each row's
// ordinal and the row, decoded and named as lookup decodes and names it.
func (s *Sink) lookupMany(ctx context.Context, query string, args []any, found func(ord int64, row map[string]any) error) error {
	return s.query(ctx, query, args, func(fields []pgconn.FieldDescription, vals [][]byte) error {
		ord, err := strconv.ParseInt(string(vals[0]), 10, 64)
		if err != nil {
			return fmt.Errorf("the key's ordinal %q: %w", vals[0], err)
		}
		row := make(map[string]any, len(fields)-1)
		for i, f := range fields[1:] {
			v, err := pgtext.Value(f.DataTypeOID, vals[i+1])
			if err != nil {
				return fmt.Errorf("column %q: %w", f.Name, err)
			}
			row[f.Name] = v
		}
		return found(ord, row)
	})
}
