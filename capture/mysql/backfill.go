package mysql

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"

	gm "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/tandemcdc/tandem/capture/backfill"
	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/mysqlurl"
)

var _ backfill.Reader = (*TableReader)(nil)

// TableReader reads tables in primary key order for backfill, converting
// the server's text to the values the binlog capturer produces for the
// same content (so a copied row equals a streamed one).
type TableReader struct {
	db     *sql.DB
	tables map[change.Table][]column
}

// NewTableReader connects to the source.
func NewTableReader(dsn string) (*TableReader, error) {
	db, err := mysqlurl.Open(dsn)
	if err != nil {
		return nil, fmt.Errorf("mysql source: %w", err)
	}
	return &TableReader{db: db, tables: map[change.Table][]column{}}, nil
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
func (r *TableReader) Describe(ctx context.Context, t change.Table) (*backfill.Table, error) {
	info, err := readInfoSchema(ctx, r.db, t)
	if err != nil {
		return nil, err
	}
	out := &backfill.Table{Name: t, Types: map[string]change.Type{}}
	cols := make([]column, len(info))
	for i, ic := range info {
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
	r.tables[t] = cols
	return out, nil
}

// Chunk implements backfill.Reader: one statement, so one consistent read.
func (r *TableReader) Chunk(ctx context.Context, t *backfill.Table, after []string, limit int) ([]change.Row, []string, error) {
	cols, ok := r.tables[t.Name]
	if !ok {
		return nil, nil, fmt.Errorf("backfill: %s read before Describe", t.Name)
	}
	keys := make([]string, len(t.Key))
	keyIdx := make([]int, len(t.Key))
	for i, k := range t.Key {
		keys[i] = mysqlurl.QuoteIdent(k)
		for j, c := range cols {
			if c.name == k {
				keyIdx[i] = j
			}
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "SELECT %s FROM %s.%s", selectList(cols), mysqlurl.QuoteIdent(t.Name.Schema), mysqlurl.QuoteIdent(t.Name.Name))
	args := make([]any, len(after))
	if after != nil {
		ph := make([]string, len(after))
		for i, v := range after {
			ph[i], args[i] = "?", v
		}
		fmt.Fprintf(&sb, " WHERE (%s) > (%s)", strings.Join(keys, ", "), strings.Join(ph, ", "))
	}
	fmt.Fprintf(&sb, " ORDER BY %s LIMIT %d", strings.Join(keys, ", "), limit)
	rows, err := r.db.QueryContext(ctx, sb.String(), args...)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", t.Name, err)
	}
	defer rows.Close()
	raw := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	var out []change.Row
	var last []string
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", t.Name, err)
		}
		row, err := textRow(cols, raw)
		if err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", t.Name, err)
		}
		last = make([]string, len(keyIdx))
		for i, j := range keyIdx {
			last[i] = string(raw[j])
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", t.Name, err)
	}
	return out, last, nil
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
