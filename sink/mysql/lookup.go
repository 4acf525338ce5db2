package mysql

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"github.com/tandemcdc/tandem/internal/mysqlurl"
	"github.com/tandemcdc/tandem/sink"
	"github.com/tandemcdc/tandem/sink/internal/sqlbatch"
)

// Lookup implements transform.Lookuper: SELECT * FROM table WHERE c1 = ? AND
// ... LIMIT 2, each value converted as Apply converts it (argFor). Values
// compare as the server compares them: a column with a case-insensitive
// collation matches text of another case, as its unique index does.
// Failures are *sink.Error.
//
// Values come back as capture/mysql types them: integers as int64 (BOOL is
// TINYINT: 0 or 1), but BIGINT UNSIGNED and BIT(64) as decimal text; FLOAT
// as the float64 of its shortest float32 text; binary strings, BLOBs and
// GEOMETRY as []byte; everything else as the server's text.
func (s *Sink) Lookup(ctx context.Context, table string, where map[string]any) (map[string]any, bool, error) {
	return sqlbatch.LookupBy(table, where, func(cols []string) (map[string]any, int, error) {
		t, err := s.describe(ctx, table)
		if err != nil {
			return nil, 0, classified(table, fmt.Errorf("lookup in %s: %w", table, err))
		}
		conds := make([]string, len(cols))
		args := make([]any, len(cols))
		for i, c := range cols {
			typ, ok := t.column(c)
			if !ok {
				return nil, 0, classified(table, fmt.Errorf("lookup in %s: target table has no column %q: %w", table, c, sink.ErrColumnNotFound))
			}
			if args[i], err = argFor(typ, where[c]); err != nil {
				return nil, 0, classified(table, fmt.Errorf("lookup in %s column %q: %w", table, c, err))
			}
			conds[i] = mysqlurl.QuoteIdent(c) + " = ?"
		}
		query := "SELECT * FROM " + t.ident + " WHERE " + strings.Join(conds, " AND ") + " LIMIT 2"
		row, n, err := s.lookup(ctx, query, args)
		if err != nil {
			return nil, 0, classified(table, fmt.Errorf("lookup in %s by (%s): %w", table, strings.Join(quoteAll(cols), ", "), err))
		}
		return row, n, nil
	})
}

// lookup runs query and returns its first row, decoded, and how many rows
// it returned.
func (s *Sink) lookup(ctx context.Context, query string, args []any) (map[string]any, int, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, 0, err
	}
	raw := make([]sql.RawBytes, len(types))
	ptrs := make([]any, len(types))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	var row map[string]any
	n := 0
	for ; rows.Next(); n++ {
		if n > 0 {
			continue
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, 0, err
		}
		row = make(map[string]any, len(types))
		for i, ct := range types {
			v, err := lookupValue(ct.DatabaseTypeName(), raw[i])
			if err != nil {
				return nil, 0, fmt.Errorf("column %q: %w", ct.Name(), err)
			}
			row[ct.Name()] = v
		}
	}
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	return row, n, nil
}

// lookupValue converts what the driver returned for a column of type typ
// (its DatabaseTypeName) to what capture/mysql makes of the same value;
// nil is NULL.
func lookupValue(typ string, raw sql.RawBytes) (any, error) {
	if raw == nil {
		return nil, nil
	}
	s := string(raw)
	switch typ {
	case "TINYINT", "SMALLINT", "MEDIUMINT", "INT", "BIGINT", "YEAR",
		"UNSIGNED TINYINT", "UNSIGNED SMALLINT", "UNSIGNED MEDIUMINT", "UNSIGNED INT":
		return strconv.ParseInt(s, 10, 64)
	case "FLOAT", "DOUBLE":
		// A FLOAT comes as its float32's shortest text, as the capturer reads it.
		return strconv.ParseFloat(s, 64)
	case "BIT":
		// Big-endian bytes, (width+7)/8 of them. Eight bytes are taken
		// for BIT(64), decimal text in the capturer (BIT(57) to BIT(63),
		// int64 there, are read so too).
		if len(raw) > 8 {
			return nil, fmt.Errorf("BIT value of %d bytes", len(raw))
		}
		var b [8]byte
		copy(b[8-len(raw):], raw)
		u := binary.BigEndian.Uint64(b[:])
		if len(raw) == 8 {
			return strconv.FormatUint(u, 10), nil
		}
		return int64(u), nil
	case "BINARY", "VARBINARY", "TINYBLOB", "BLOB", "MEDIUMBLOB", "LONGBLOB", "GEOMETRY":
		return []byte(s), nil
	}
	return s, nil // DECIMAL, BIGINT UNSIGNED, dates and times, text, ENUM, SET, JSON
}

// maxLookupKeys bounds the keys of one statement of LookupKeys.
const maxLookupKeys = 500

// LookupKeys is Lookup of each of keys (maps of the same columns to
// values) in few statements: rows[i] is the row Lookup would find by
// keys[i] (nil: none) and n[i] how many rows it matches, at most 2 (2:
// more than one, where Lookup fails with sink.ErrNotUnique). Each
// statement joins Lookup's own queries of up to maxLookupKeys keys, each
// tagged with the key's place,
//
//	(SELECT 0, t.* FROM table AS t WHERE c1 = ? AND c2 = ? LIMIT 2) UNION ALL
//	(SELECT 1, t.* FROM table AS t WHERE c1 = ? AND c2 = ? LIMIT 2) ...
//
// so each key is compared as Lookup compares it (a case-insensitive
// collation finds "ABC" by "abc") and each row is told by the key that
// found it, not by its values; rows are typed and named as Lookup types
// and names them. A key holding NULL finds no row without being sent. Each
// statement is a plain autocommitted SELECT. Failures are *sink.Error.
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
	types := make([]string, len(cols))
	conds := make([]string, len(cols))
	for i, c := range cols {
		typ, ok := t.column(c)
		if !ok {
			return nil, nil, classified(table, fmt.Errorf("lookup in %s: target table has no column %q: %w", table, c, sink.ErrColumnNotFound))
		}
		types[i], conds[i] = typ, mysqlurl.QuoteIdent(c)+" = ?"
	}
	where := " AS t WHERE " + strings.Join(conds, " AND ") + " LIMIT 2)"
	var sent []int // the place of a key sent in keys
	var args [][]any
	var sizes []int
keys:
	for j, k := range keys {
		for _, c := range cols {
			if k[c] == nil {
				continue keys // no row holds NULL = NULL, as Lookup finds none
			}
		}
		a := make([]any, len(cols))
		size := 32 + len(t.ident) + len(where)
		for i, c := range cols {
			if a[i], err = argFor(types[i], k[c]); err != nil {
				return nil, nil, classified(table, fmt.Errorf("lookup in %s column %q: %w", table, c, err))
			}
			size += argSize(a[i])
		}
		sent, args, sizes = append(sent, j), append(args, a), append(sizes, size)
	}
	for _, c := range chunks(sizes, len(cols), maxLookupKeys) {
		var q strings.Builder
		var qargs []any
		for i := c[0]; i < c[1]; i++ {
			if i > c[0] {
				q.WriteString(" UNION ALL ")
			}
			fmt.Fprintf(&q, "(SELECT %d, t.* FROM %s%s", i, t.ident, where)
			qargs = append(qargs, args[i]...)
		}
		if err := s.lookupMany(ctx, q.String(), qargs, func(i int, row map[string]any) error {
			if i < c[0] || i >= c[1] {
				return fmt.Errorf("a row of key %d of %d to %d", i, c[0], c[1])
			}
			j := sent[i]
			if n[j]++; n[j] == 1 {
				rows[j] = row
			}
			n[j] = min(n[j], 2)
			return nil
		}); err != nil {
			return nil, nil, classified(table, fmt.Errorf("lookup %d keys in %s by (%s): %w", c[1]-c[0], table, strings.Join(quoteAll(cols), ", "), err))
		}
	}
	return rows, n, nil
}

// lookupMany runs query, whose first column is an integer tag and the
// others a row of a table, and calls found with each row's tag and the
// row, decoded and named as lookup decodes and names it.
func (s *Sink) lookupMany(ctx context.Context, query string, args []any, found func(tag int, row map[string]any) error) error {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		return err
	}
	raw := make([]sql.RawBytes, len(types))
	ptrs := make([]any, len(types))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		tag, err := strconv.Atoi(string(raw[0]))
		if err != nil {
			return fmt.Errorf("the key's tag %q: %w", raw[0], err)
		}
		row := make(map[string]any, len(types)-1)
		for i, ct := range types[1:] {
			v, err := lookupValue(ct.DatabaseTypeName(), raw[i+1])
			if err != nil {
				return fmt.Errorf("column %q: %w", ct.Name(), err)
			}
			row[ct.Name()] = v
		}
		if err := found(tag, row); err != nil {
			return err
		}
	}
	return rows.Err()
}
