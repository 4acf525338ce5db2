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
