package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/tandemcdc/tandem/internal/mysqlurl"
	"github.com/tandemcdc/tandem/sink"
	"github.com/tandemcdc/tandem/sink/internal/sqlbatch"
)

// maxReadKeys bounds the keys of one SELECT of ReadKeys. Measured with 5000
// random keys of a 1,000,000-row MariaDB 10.11 table (fastest of 12
// interleaved runs): a composite key took 38 ms in statements of 1000 keys,
// 40 in 2500, 43 in one of 5000, 46 in 250; a single column 18, 17, 15 and
// 26 ms. Every size was a range scan of the key's index.
const maxReadKeys = 1000

// ColumnTypes implements reconcile.RowReader: each column's COLUMN_TYPE, as
// the server names it ("decimal(12,2)", "datetime(6)", "bigint(20)
// unsigned", "tinyint(1)", "enum('a','B')"), except that a MariaDB JSON
// column, a LONGTEXT checked by json_valid, is "json" as on MySQL. Column
// names are as the table spells them. A missing table is a *sink.Error
// wrapping sink.ErrTableNotFound.
func (s *Sink) ColumnTypes(ctx context.Context, table string) (map[string]string, error) {
	types, err := s.columnTypes(ctx, table)
	if err != nil {
		return nil, classified(table, fmt.Errorf("read the column types of %s: %w", table, err))
	}
	return types, nil
}

func (s *Sink) columnTypes(ctx context.Context, table string) (map[string]string, error) {
	t, err := s.describe(ctx, table)
	if err != nil {
		return nil, err
	}
	_, tbl := splitTable(table)
	rows, err := s.db.QueryContext(ctx, `SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS
WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?`, t.schema, tbl)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	types := map[string]string{}
	longtext := false
	for rows.Next() {
		var col, typ string
		if err := rows.Scan(&col, &typ); err != nil {
			return nil, err
		}
		types[col] = typ
		longtext = longtext || typ == "longtext"
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(types) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrTableNotFound, table)
	}
	if longtext {
		// MariaDB names a JSON column's check after the column. MySQL's
		// CHECK_CONSTRAINTS has no TABLE_NAME (its JSON is its own type).
		checks, err := s.db.QueryContext(ctx, `SELECT CONSTRAINT_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS
WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?`, t.schema, tbl)
		if errNumber(err) == 1054 { // unknown column
			return types, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read check constraints: %w", err)
		}
		defer checks.Close()
		for checks.Next() {
			var col, clause string
			if err := checks.Scan(&col, &clause); err != nil {
				return nil, fmt.Errorf("read check constraints: %w", err)
			}
			if types[col] == "longtext" && clause == "json_valid("+mysqlurl.QuoteIdent(col)+")" {
				types[col] = "json"
			}
		}
		if err := checks.Err(); err != nil {
			return nil, fmt.Errorf("read check constraints: %w", err)
		}
	}
	return types, nil
}

// ReadKeys implements reconcile.RowReader with statements of up to maxReadKeys
// keys (fewer when their values are long: see chunks):
//
//	SELECT cols FROM t WHERE (k1, k2) IN ((?, ?), (?, ?), ...)
//
// (k IN (?, ?, ...) for one key column), a range scan of the key's index,
// each value converted as Apply converts it. The keys sent are
// sqlbatch.DistinctKeys: a key given twice is sent once, one holding NULL not
// at all. Values compare as the server compares them: with a
// case-insensitive collation, "abc" finds the row whose key is "ABC".
//
// Values come back typed as Lookup types them, under the names of cols.
// Each statement is a plain autocommitted SELECT, a consistent read that
// neither takes nor waits for row locks. Failures are *sink.Error.
func (s *Sink) ReadKeys(ctx context.Context, table string, key, cols []string, keys []map[string]any) ([]map[string]any, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	t, err := s.readTable(ctx, table, key, cols)
	if err != nil {
		return nil, classified(table, fmt.Errorf("read rows of %s: %w", table, err))
	}
	keys = sqlbatch.DistinctKeys(key, keys)
	rows := make([][]any, len(keys))
	sizes := make([]int, len(keys))
	for j, kv := range keys {
		rows[j] = make([]any, len(key))
		for i, k := range key {
			typ, _ := t.column(k)
			if rows[j][i], err = argFor(typ, kv[k]); err != nil {
				return nil, classified(table, fmt.Errorf("read rows of %s: key column %q: %w", table, k, err))
			}
			sizes[j] += argSize(rows[j][i])
		}
	}
	lhs, tuple := mysqlurl.QuoteIdent(key[0]), "?"
	if len(key) > 1 {
		lhs = "(" + strings.Join(quoteAll(key), ", ") + ")"
		tuple = "(" + strings.TrimSuffix(strings.Repeat("?, ", len(key)), ", ") + ")"
	}
	prefix := "SELECT " + strings.Join(quoteAll(cols), ", ") + " FROM " + t.ident + " WHERE " + lhs + " IN ("
	var out []map[string]any
	for _, c := range chunks(sizes, len(key), maxReadKeys) {
		args := make([]any, 0, (c[1]-c[0])*len(key))
		for _, r := range rows[c[0]:c[1]] {
			args = append(args, r...)
		}
		query := prefix + strings.TrimSuffix(strings.Repeat(tuple+", ", c[1]-c[0]), ", ") + ")"
		got, err := s.read(ctx, query, args, cols)
		if err != nil {
			return nil, classified(table, fmt.Errorf("read %d rows of %s by (%s): %w", c[1]-c[0], table, strings.Join(quoteAll(key), ", "), err))
		}
		out = append(out, got...)
	}
	return out, nil
}

// ScanRows implements reconcile.RowReader: it reads up to limit rows of table
// (maps of each column of cols to its value) in key order, after the key
// after, by keyset pagination, after the key (a, b, c) spelled out as
//
//	SELECT cols FROM t WHERE (a > ? OR (a = ? AND b > ?) OR (a = ? AND b = ? AND c > ?))
//	    AND a IS NOT NULL AND b IS NOT NULL AND c IS NOT NULL ORDER BY a, b, c LIMIT n
//
// a range scan of an index on (a, b, c) that reads n entries. (MariaDB
// 10.11 does not turn the row comparison (a, b) > (?, ?) into a range:
// every page would read the index from its start.) A row whose key holds
// NULL has no key to be read by and is left out; NULLs sort first, where
// they would end the pages early. Strings compare and sort in their
// columns' collations, consistently. after's values are converted as Apply
// converts them (ScanRows' own results do). Failures are *sink.Error.
func (s *Sink) ScanRows(ctx context.Context, table string, key, cols []string, after map[string]any, limit int) ([]map[string]any, error) {
	if limit <= 0 {
		return nil, nil
	}
	t, err := s.readTable(ctx, table, key, cols)
	if err != nil {
		return nil, classified(table, fmt.Errorf("scan the keys of %s: %w", table, err))
	}
	quoted := quoteAll(key)
	var cond string
	var args []any
	if after != nil {
		vals := make([]any, len(key))
		for i, k := range key {
			typ, _ := t.column(k)
			if vals[i], err = argFor(typ, after[k]); err != nil {
				return nil, classified(table, fmt.Errorf("scan the keys of %s after column %q: %w", table, k, err))
			}
		}
		or := make([]string, len(key))
		for i := range key {
			and := make([]string, 0, i+1)
			for j := range i {
				and = append(and, quoted[j]+" = ?")
				args = append(args, vals[j])
			}
			and = append(and, quoted[i]+" > ?")
			args = append(args, vals[i])
			or[i] = "(" + strings.Join(and, " AND ") + ")"
		}
		cond = "(" + strings.Join(or, " OR ") + ")"
	}
	query := sqlbatch.ScanQuery(t.ident, quoted, quoteAll(cols), cond, limit)
	out, err := s.read(ctx, query, args, cols)
	if err != nil {
		return nil, classified(table, fmt.Errorf("scan the keys of %s by (%s): %w", table, strings.Join(quoted, ", "), err))
	}
	return out, nil
}

// readTable describes table and checks that it has every column of key
// and cols.
func (s *Sink) readTable(ctx context.Context, table string, key, cols []string) (*table, error) {
	if len(key) == 0 {
		return nil, fmt.Errorf("no key columns")
	}
	t, err := s.describe(ctx, table)
	if err != nil {
		return nil, err
	}
	for _, c := range append(key[:len(key):len(key)], cols...) {
		if _, ok := t.column(c); !ok {
			return nil, fmt.Errorf("target table has no column %q: %w", c, sink.ErrColumnNotFound)
		}
	}
	return t, nil
}

// read runs query and returns its rows decoded as Lookup decodes them,
// each value under the name in names of its place in the select list.
func (s *Sink) read(ctx context.Context, query string, args []any, names []string) ([]map[string]any, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, err
	}
	if len(types) != len(names) {
		return nil, fmt.Errorf("%d columns for %d names", len(types), len(names))
	}
	raw := make([]sql.RawBytes, len(types))
	ptrs := make([]any, len(types))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	var out []map[string]any
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		row := make(map[string]any, len(names))
		for i, ct := range types {
			if row[names[i]], err = lookupValue(ct.DatabaseTypeName(), raw[i]); err != nil {
				return nil, fmt.Errorf("column %q: %w", names[i], err)
			}
		}
		out = append(out, row)
	}
	return out, rows.Err()
}
