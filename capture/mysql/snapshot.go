package mysql

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	gm "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/tandemcdc/tandem/capture"
	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/mysqlurl"
	"github.com/tandemcdc/tandem/internal/pgtext"
)

// TableReader reads tables in primary key order for backfill, converting
// the server's text to the values the binlog capturer produces for the
// same content (so a copied row equals a streamed one).
type TableReader struct {
	db     *sql.DB
	tables map[change.Table][]column
	// sqlTypes are each table's columns' COLUMN_TYPE, as Describe read
	// them (for HashChunk).
	sqlTypes map[change.Table]map[string]string

	mu       sync.Mutex
	rowBytes map[change.Table]int // COPY text bytes per row of the last verbatim chunk
}

// NewTableReader connects to the source.
func NewTableReader(ctx context.Context, dsn string) (*TableReader, error) {
	db, err := mysqlurl.Open(dsn)
	if err != nil {
		return nil, fmt.Errorf("mysql source: %w", err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to source: %w", err)
	}
	return &TableReader{db: db, tables: map[change.Table][]column{}, sqlTypes: map[change.Table]map[string]string{}, rowBytes: map[change.Table]int{}}, nil
}

// Close closes the connections.
func (r *TableReader) Close() error { return r.db.Close() }

// dataTypes maps information_schema DATA_TYPE to the binlog column type
// the capturer decodes, so both agree on each column's logical type.
var dataTypes = map[string]byte{
	"tinyint": gm.MYSQL_TYPE_TINY, "smallint": gm.MYSQL_TYPE_SHORT, "mediumint": gm.MYSQL_TYPE_INT24,
	"int": gm.MYSQL_TYPE_LONG, "bigint": gm.MYSQL_TYPE_LONGLONG, "year": gm.MYSQL_TYPE_YEAR,
	"decimal": gm.MYSQL_TYPE_NEWDECIMAL, "float": gm.MYSQL_TYPE_FLOAT, "double": gm.MYSQL_TYPE_DOUBLE,
	"date": gm.MYSQL_TYPE_DATE, "datetime": gm.MYSQL_TYPE_DATETIME2, "timestamp": gm.MYSQL_TYPE_TIMESTAMP2,
	"time": gm.MYSQL_TYPE_TIME2, "json": gm.MYSQL_TYPE_JSON, "enum": gm.MYSQL_TYPE_ENUM, "set": gm.MYSQL_TYPE_SET,
	"bit": gm.MYSQL_TYPE_BIT, "geometry": gm.MYSQL_TYPE_GEOMETRY,
	"char": gm.MYSQL_TYPE_STRING, "binary": gm.MYSQL_TYPE_STRING, "varchar": gm.MYSQL_TYPE_VARCHAR, "varbinary": gm.MYSQL_TYPE_VARCHAR,
}

// Describe implements backfill.Reader.
func (r *TableReader) Describe(ctx context.Context, t change.Table) (*change.Schema, error) {
	info, err := readInfoSchema(ctx, r.db, t)
	if err != nil {
		return nil, err
	}
	out := &change.Schema{Name: t, Types: map[string]change.Type{}}
	cols := make([]column, len(info))
	sqlTypes := make(map[string]string, len(info))
	for i, ic := range info {
		sqlTypes[ic.name] = ic.columnType
		c := column{name: ic.name, unsigned: strings.Contains(ic.columnType, "unsigned"), binary: !ic.charset.Valid}
		tp, ok := dataTypes[ic.dataType]
		if !ok {
			tp = gm.MYSQL_TYPE_BLOB // text and blob kinds: binary or not by charset
		}
		c.mysqlTyp = tp
		if tp == gm.MYSQL_TYPE_BIT {
			fmt.Sscanf(ic.columnType, "bit(%d)", &c.bits)
		}
		c.typ = logicalType(c)
		if ic.dataType == "json" {
			c.typ = change.TypeJSON
		}
		cols[i] = c
		out.Columns = append(out.Columns, c.name)
		out.Types[c.name] = c.typ
	}
	rows, err := r.db.QueryContext(ctx, `SELECT COLUMN_NAME FROM information_schema.STATISTICS
WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX`, t.Schema, t.Name)
	if err != nil {
		return nil, fmt.Errorf("read the primary key of %s: %w", t, err)
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, fmt.Errorf("read the primary key of %s: %w", t, err)
		}
		out.Key = append(out.Key, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the primary key of %s: %w", t, err)
	}
	r.tables[t], r.sqlTypes[t] = cols, sqlTypes
	return out, nil
}

// Chunk implements backfill.Reader: one statement, so one snapshot.
func (r *TableReader) Chunk(ctx context.Context, t *change.Schema, after []string, limit int) ([]change.Row, []string, error) {
	return r.RangeChunk(ctx, t, after, nil, limit)
}

// RangeChunk implements backfill.SplitReader: Chunk, of the keys up to
// until (nil: no bound).
func (r *TableReader) RangeChunk(ctx context.Context, t *change.Schema, after, until []string, limit int) ([]change.Row, []string, error) {
	cols, ok := r.tables[t.Name]
	if !ok {
		return nil, nil, fmt.Errorf("backfill: %s read before Describe", t.Name)
	}
	var out []change.Row
	last, err := r.scan(ctx, t, cols, after, until, limit, func(raw []sql.RawBytes) error {
		row, err := textRow(cols, raw)
		out = append(out, row)
		return err
	})
	return out, last, err
}

// TextChunk implements backfill.TextReader: the values of cols that Chunk
// would read, in COPY's text format as the PostgreSQL sink writes them
// (pgtext.AppendCopy), without a row map. Decode gives each value as the
// text it was written as (a string; nil for NULL), which the sink writes
// as the same text.
func (r *TableReader) TextChunk(ctx context.Context, t *change.Schema, names []string, after []string, limit int) (*change.TextChunk, error) {
	return r.RangeTextChunk(ctx, t, names, after, nil, limit)
}

// RangeTextChunk implements backfill.SplitTextReader: TextChunk, of the
// keys up to until (nil: no bound).
func (r *TableReader) RangeTextChunk(ctx context.Context, t *change.Schema, names []string, after, until []string, limit int) (*change.TextChunk, error) {
	all, ok := r.tables[t.Name]
	if !ok {
		return nil, fmt.Errorf("backfill: %s read before Describe", t.Name)
	}
	cols := make([]column, len(names))
	for i, n := range names {
		j := slices.IndexFunc(all, func(c column) bool { return c.name == n })
		if j < 0 {
			return nil, fmt.Errorf("read %s verbatim: no column %q", t.Name, n)
		}
		cols[i] = all[j]
	}
	out := &change.TextChunk{Cols: names}
	r.mu.Lock()
	b := make([]byte, 0, limit*r.rowBytes[t.Name]*9/8) // as big as the last chunk's rows, and then some
	r.mu.Unlock()
	last, err := r.scan(ctx, t, cols, after, until, limit, func(raw []sql.RawBytes) error {
		for i := range cols {
			if i > 0 {
				b = append(b, '\t')
			}
			v, err := cols[i].textValue(raw[i])
			if err != nil {
				return err
			}
			if b, err = pgtext.AppendCopy(b, v); err != nil {
				return fmt.Errorf("column %s: %w", cols[i].name, err)
			}
		}
		b = append(b, '\n')
		out.Rows++
		return nil
	})
	if err != nil {
		return nil, err
	}
	out.Data, out.Last = b, last
	if out.Rows > 0 {
		r.mu.Lock()
		r.rowBytes[t.Name] = len(b)/out.Rows + 1
		r.mu.Unlock()
	}
	out.Decode = func() ([]change.Row, error) {
		rows := make([]change.Row, 0, out.Rows)
		for line := range bytes.Lines(b) {
			fields := pgtext.CopyFields(line[:len(line)-1])
			row := make(change.Row, len(names))
			for i, f := range fields {
				row[names[i]] = nil
				if f != nil {
					row[names[i]] = string(f)
				}
			}
			rows = append(rows, row)
		}
		return rows, nil
	}
	return out, nil
}

// scan reads a chunk of t, the values of sel (columns of t) of the keys
// after after up to until (either nil: no bound), calling row with each
// row's raw values, and returns the last row's key text. Every key column
// must be in sel.
func (r *TableReader) scan(ctx context.Context, t *change.Schema, sel []column, after, until []string, limit int, row func([]sql.RawBytes) error) ([]string, error) {
	keys := make([]string, len(t.Key))
	keyIdx := make([]int, len(t.Key))
	for i, k := range t.Key {
		keys[i] = mysqlurl.QuoteIdent(k)
		keyIdx[i] = slices.IndexFunc(sel, func(c column) bool { return c.name == k })
		if keyIdx[i] < 0 {
			return nil, fmt.Errorf("read %s: key column %q is not read", t.Name, k)
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "SELECT %s FROM %s.%s", selectList(sel), mysqlurl.QuoteIdent(t.Name.Schema), mysqlurl.QuoteIdent(t.Name.Name))
	where, args := keyBounds(keys, after, until)
	sb.WriteString(where)
	fmt.Fprintf(&sb, " ORDER BY %s LIMIT %d", strings.Join(keys, ", "), limit)
	rows, err := r.db.QueryContext(ctx, sb.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", t.Name, err)
	}
	defer rows.Close()
	raw := make([]sql.RawBytes, len(sel))
	ptrs := make([]any, len(sel))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	var last []string
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("read %s: %w", t.Name, err)
		}
		if err := row(raw); err != nil {
			return nil, fmt.Errorf("read %s: %w", t.Name, err)
		}
		last = make([]string, len(keyIdx))
		for i, j := range keyIdx {
			last[i] = string(raw[j])
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", t.Name, err)
	}
	return last, nil
}

// keyBounds is capture.KeyBounds with a placeholder for each value, and
// the values as its arguments.
func keyBounds(keys []string, after, until []string) (string, []any) {
	var args []any
	where := capture.KeyBounds(keys, after, until, func(v string) string { args = append(args, v); return "?" })
	return where, args
}

// Split implements backfill.SplitReader by a scan of the table's keys:
// from the table's row count by its statistics, each key that ends a
// range is the one a range's worth of rows after the one before (LIMIT 1
// OFFSET, in the primary key's order: InnoDB steps through the index
// without sending the rows). The scan reads the keys of all the ranges
// but the last; a count of the statistics' that is too high leaves the
// last ranges out, so the last one copied holds the rest.
func (r *TableReader) Split(ctx context.Context, t *change.Schema, n int, minRows int64) ([][]string, error) {
	all, ok := r.tables[t.Name]
	if !ok {
		return nil, fmt.Errorf("backfill: %s split before Describe", t.Name)
	}
	est, err := r.Estimate(ctx, t.Name)
	if err != nil {
		return nil, err
	}
	n = int(min(int64(n), est/max(minRows, 1)))
	if n < 2 {
		return nil, nil
	}
	keyCols := make([]column, len(t.Key))
	keys := make([]string, len(t.Key))
	for i, k := range t.Key {
		j := slices.IndexFunc(all, func(c column) bool { return c.name == k })
		if j < 0 {
			return nil, fmt.Errorf("split %s: no key column %q", t.Name, k)
		}
		keyCols[i], keys[i] = all[j], mysqlurl.QuoteIdent(k)
	}
	step := est / int64(n)
	var out [][]string
	var after []string
	for range n - 1 {
		where, args := keyBounds(keys, after, nil)
		q := fmt.Sprintf("SELECT %s FROM %s.%s%s ORDER BY %s LIMIT 1 OFFSET %d", selectList(keyCols),
			mysqlurl.QuoteIdent(t.Name.Schema), mysqlurl.QuoteIdent(t.Name.Name), where, strings.Join(keys, ", "), step-1)
		raw := make([]sql.RawBytes, len(keys))
		ptrs := make([]any, len(raw))
		for i := range raw {
			ptrs[i] = &raw[i]
		}
		rows, err := r.db.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("split %s: %w", t.Name, err)
		}
		var key []string
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				rows.Close()
				return nil, fmt.Errorf("split %s: %w", t.Name, err)
			}
			key = make([]string, len(raw))
			for i, v := range raw {
				key[i] = string(v)
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("split %s: %w", t.Name, err)
		}
		if key == nil {
			break // fewer rows than the statistics said
		}
		out = append(out, key)
		after = key
	}
	return out, nil
}

// selectList selects cols, each in the text textValue reads.
func selectList(cols []column) string {
	sel := make([]string, len(cols))
	for i, c := range cols {
		switch {
		case c.mysqlTyp == gm.MYSQL_TYPE_FLOAT:
			sel[i] = mysqlurl.QuoteIdent(c.name) + " + 0e0" // the float32 as a double: its every bit, not 6 digits
		case c.mysqlTyp == gm.MYSQL_TYPE_BIT:
			sel[i] = mysqlurl.QuoteIdent(c.name) + " + 0" // the number, not its bytes
		default:
			sel[i] = mysqlurl.QuoteIdent(c.name)
		}
	}
	return strings.Join(sel, ", ")
}

// textRow converts a row selected by selectList to the values the binlog
// capturer produces.
func textRow(cols []column, raw []sql.RawBytes) (change.Row, error) {
	row := make(change.Row, len(cols))
	for i := range cols {
		v, err := cols[i].textValue(raw[i])
		if err != nil {
			return nil, err
		}
		row[cols[i].name] = v
	}
	return row, nil
}

// textValue converts the server's text of a value (nil: NULL) to what the
// binlog capturer produces for it.
func (c *column) textValue(raw sql.RawBytes) (any, error) {
	if raw == nil {
		return nil, nil
	}
	s := string(raw)
	switch c.typ {
	case change.TypeInt:
		if c.unsigned || c.mysqlTyp == gm.MYSQL_TYPE_BIT {
			u, err := strconv.ParseUint(s, 10, 64)
			return int64(u), err
		}
		return strconv.ParseInt(s, 10, 64)
	case change.TypeFloat:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || c.mysqlTyp != gm.MYSQL_TYPE_FLOAT {
			return f, err
		}
		return c.value(float32(f))
	case change.TypeBytes:
		return bytes.Clone(raw), nil
	}
	return s, nil // decimals, times, text, ENUM and SET names, JSON
}

// Estimate implements backfill.Reader from information_schema statistics.
func (r *TableReader) Estimate(ctx context.Context, t change.Table) (int64, error) {
	var n sql.NullInt64
	if err := r.db.QueryRowContext(ctx, `SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?`,
		t.Schema, t.Name).Scan(&n); err != nil {
		return 0, fmt.Errorf("estimate rows of %s: %w", t, err)
	}
	return n.Int64, nil
}

// Load implements backfill's source-load probe: Threads_running, less this
// connection's own.
func (r *TableReader) Load(ctx context.Context) (int, error) {
	var name string
	var n int
	if err := r.db.QueryRowContext(ctx, `SHOW GLOBAL STATUS LIKE 'Threads_running'`).Scan(&name, &n); err != nil {
		return 0, fmt.Errorf("read source load (Threads_running): %w", err)
	}
	return max(0, n-1), nil
}
