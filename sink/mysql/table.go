package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/tandemcdc/tandem/internal/mysqlurl"
)

func quoteAll(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = mysqlurl.QuoteIdent(n)
	}
	return out
}

// containsFold reports whether names holds name, compared as MySQL compares
// column names: case-insensitively.
func containsFold(names []string, name string) bool {
	return slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(n, name) })
}

// splitTable splits "db.table" at its first dot; db is "" for "table",
// which then lives in the DSN's database.
func splitTable(name string) (db, tbl string) {
	if d, t, ok := strings.Cut(name, "."); ok {
		return d, t
	}
	return "", name
}

// tableIdent is the quoted name of a configured table.
func tableIdent(name string) string {
	db, tbl := splitTable(name)
	if db == "" {
		return mysqlurl.QuoteIdent(tbl)
	}
	return mysqlurl.QuoteIdent(db) + "." + mysqlurl.QuoteIdent(tbl)
}

// table is a described target table.
type table struct {
	ident   string            // quoted name
	schema  string            // the database it is in
	types   map[string]string // lowercased column name -> DATA_TYPE
	uniques []index           // its primary key and unique indexes
}

// index is a unique index.
type index struct {
	name string
	cols []string // lowercased; "" for an expression (MySQL 8 functional key part)
	// prefix is true when a key part indexes a prefix of its column: it
	// is then unique on less than the column's value.
	prefix bool
}

// column returns the type of column c.
func (t *table) column(c string) (string, bool) {
	typ, ok := t.types[strings.ToLower(c)]
	return typ, ok
}

// sameColumns reports whether the index is on exactly the columns of key,
// in any order, so ON DUPLICATE KEY UPDATE finds the row key names.
func (ix index) sameColumns(key []string) bool {
	if ix.prefix || len(ix.cols) != len(key) {
		return false
	}
	for _, c := range ix.cols {
		if c == "" || !containsFold(key, c) {
			return false
		}
	}
	for _, k := range key {
		if !slices.Contains(ix.cols, strings.ToLower(k)) {
			return false
		}
	}
	return true
}

// uniqueOn reports whether a primary key or unique index is on exactly key.
func (t *table) uniqueOn(key []string) bool {
	return slices.ContainsFunc(t.uniques, func(ix index) bool { return ix.sameColumns(key) })
}

// describe returns the description of the configured table name, read
// from information_schema once and cached until Forget.
func (s *Sink) describe(ctx context.Context, name string) (*table, error) {
	s.mu.Lock()
	t, ok := s.tables[name]
	s.mu.Unlock()
	if ok {
		return t, nil
	}
	t, err := describeTable(ctx, s.db, name)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.tables[name] = t
	s.mu.Unlock()
	return t, nil
}

// errNoDatabase is wrapped when a table without a database is looked for
// on a connection without one.
var errNoDatabase = errors.New("the target DSN names no database to find it in")

// describeTable reads the columns and unique indexes of table name. A table
// the user may not see is missing (ErrTableNotFound).
func describeTable(ctx context.Context, q querier, name string) (*table, error) {
	db, tbl := splitTable(name)
	var schema any // NULL: the DSN's database
	if db != "" {
		schema = db
	}
	rows, err := q.QueryContext(ctx, `SELECT TABLE_SCHEMA, COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS
WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?`, schema, tbl)
	if err != nil {
		return nil, fmt.Errorf("describe target table %s: %w", name, err)
	}
	defer rows.Close()
	t := &table{ident: tableIdent(name), types: map[string]string{}}
	for rows.Next() {
		var col, typ string
		if err := rows.Scan(&t.schema, &col, &typ); err != nil {
			return nil, fmt.Errorf("describe target table %s: %w", name, err)
		}
		t.types[strings.ToLower(col)] = typ
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("describe target table %s: %w", name, err)
	}
	if len(t.types) == 0 {
		if db == "" {
			var current sql.NullString
			if err := q.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&current); err == nil && !current.Valid {
				return nil, fmt.Errorf("%w: %s (%w)", ErrTableNotFound, name, errNoDatabase)
			}
		}
		return nil, fmt.Errorf("%w: %s", ErrTableNotFound, name)
	}
	rows, err = q.QueryContext(ctx, `SELECT INDEX_NAME, COLUMN_NAME, SUB_PART FROM information_schema.STATISTICS
WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 ORDER BY INDEX_NAME, SEQ_IN_INDEX`, t.schema, tbl)
	if err != nil {
		return nil, fmt.Errorf("describe the unique indexes of target table %s: %w", name, err)
	}
	defer rows.Close()
	for rows.Next() {
		var ix string
		var col sql.NullString
		var sub sql.NullInt64
		if err := rows.Scan(&ix, &col, &sub); err != nil {
			return nil, fmt.Errorf("describe the unique indexes of target table %s: %w", name, err)
		}
		if n := len(t.uniques); n == 0 || t.uniques[n-1].name != ix {
			t.uniques = append(t.uniques, index{name: ix})
		}
		last := &t.uniques[len(t.uniques)-1]
		last.cols = append(last.cols, strings.ToLower(col.String))
		last.prefix = last.prefix || sub.Valid
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("describe the unique indexes of target table %s: %w", name, err)
	}
	return t, nil
}
