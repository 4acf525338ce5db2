package mysql

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"

	gm "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/tandemcdc/tandem/internal/change"
)

// binaryCollation is the collation id of binary strings (BINARY, VARBINARY, BLOB).
const binaryCollation = 63

// column is what decoding one column needs.
type column struct {
	name     string
	typ      change.Type
	mysqlTyp byte // binlog column type (the real type for ENUM/SET/STRING)
	unsigned bool
	binary   bool     // a byte string, not text
	enum     []string // ENUM values, 1-based in the binlog
	set      []string // SET members, bit i is set[i]
	bits     int      // BIT width
	padTo    int      // BINARY(n): the binlog drops trailing 0x00 bytes the column holds
}

// table is a captured table as the binlog describes it for one table id.
type table struct {
	name    change.Table
	cols    []column
	names   []string // column names in table order (shared by events)
	types   map[string]change.Type
	sql     map[string]string // source types, as change.Event.SQLTypes names them
	key     []string          // primary key columns, in table order
	fromMap bool              // names came with the table map (binlog_row_metadata=FULL)
}

// infoColumn is a column as information_schema describes it now.
type infoColumn struct {
	name, dataType, columnType string
	charset                    sql.NullString
	primary                    bool
}

// readInfoSchema reads a table's columns and primary key from
// information_schema: the schema as it is now, which is the schema of the
// rows being read only when no DDL happened since. It is used for what the
// table map does not carry.
func readInfoSchema(ctx context.Context, db *sql.DB, t change.Table) ([]infoColumn, error) {
	rows, err := db.QueryContext(ctx, `SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, CHARACTER_SET_NAME, COLUMN_KEY = 'PRI'
FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`, t.Schema, t.Name)
	if err != nil {
		return nil, fmt.Errorf("read columns of %s from information_schema: %w", t, err)
	}
	defer rows.Close()
	var out []infoColumn
	for rows.Next() {
		var c infoColumn
		if err := rows.Scan(&c.name, &c.dataType, &c.columnType, &c.charset, &c.primary); err != nil {
			return nil, fmt.Errorf("read columns of %s from information_schema: %w", t, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read columns of %s from information_schema: %w", t, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("table %s: not found in information_schema (dropped, or no SELECT privilege)", t)
	}
	return out, nil
}

// describe builds a table from its table map event, filling in from
// information_schema what the map lacks. With binlog_row_metadata=FULL the
// map names every column as it was when the row was written, so a DDL
// between then and now cannot misname a value; without it the names come
// from information_schema, and a column count that differs from the map's
// is an error rather than a guess.
func describe(tm *replication.TableMapEvent, info []infoColumn) (*table, error) {
	name := change.Table{Schema: string(tm.Schema), Name: string(tm.Table)}
	n := int(tm.ColumnCount)
	names := tm.ColumnNameString()
	fromMap := len(names) == n
	if !fromMap {
		if len(info) != n {
			return nil, fmt.Errorf("table %s: the binlog row has %d columns but the table has %d now, and the server does not send column names (set binlog_row_metadata=FULL): cannot tell which value is which", name, n, len(info))
		}
		names = make([]string, n)
		for i, c := range info {
			names[i] = c.name
		}
	}
	byName := make(map[string]infoColumn, len(info))
	for _, c := range info {
		byName[c.name] = c
	}
	unsigned := tm.UnsignedMap()
	collations := tm.CollationMap()
	enums, sets := tm.EnumStrValueMap(), tm.SetStrValueMap()
	t := &table{name: name, cols: make([]column, n), names: names, types: make(map[string]change.Type, n), sql: make(map[string]string, n), fromMap: fromMap}
	for i := 0; i < n; i++ {
		ic, known := byName[names[i]]
		c := column{name: names[i], mysqlTyp: realType(tm, i)}
		if u, ok := unsigned[i]; ok {
			c.unsigned = u
		} else if known {
			c.unsigned = strings.Contains(ic.columnType, "unsigned")
		}
		if coll, ok := collations[i]; ok {
			c.binary = coll == binaryCollation
		} else if known {
			c.binary = !ic.charset.Valid
		}
		c.enum, c.set = enums[i], sets[i]
		if known && c.enum == nil && c.mysqlTyp == gm.MYSQL_TYPE_ENUM {
			c.enum = parseValueList(ic.columnType, "enum(")
		}
		if known && c.set == nil && c.mysqlTyp == gm.MYSQL_TYPE_SET {
			c.set = parseValueList(ic.columnType, "set(")
		}
		if c.mysqlTyp == gm.MYSQL_TYPE_BIT {
			meta := tm.ColumnMeta[i]
			c.bits = int(meta>>8)*8 + int(meta&0xFF)
		}
		if c.binary && c.mysqlTyp == gm.MYSQL_TYPE_STRING {
			c.padTo = stringLength(tm.ColumnMeta[i])
		}
		c.typ = logicalType(c)
		if known && ic.dataType == "json" {
			c.typ = change.TypeJSON
		}
		t.cols[i] = c
		t.types[c.name] = c.typ
		if st := sqlType(c, tm.ColumnMeta[i]); st != "" {
			t.sql[c.name] = st
		}
		if known && ic.primary {
			t.key = append(t.key, c.name)
		}
	}
	if len(tm.PrimaryKey) > 0 {
		t.key = t.key[:0]
		for _, i := range tm.PrimaryKey {
			if int(i) < n {
				t.key = append(t.key, names[i])
			}
		}
	}
	return t, nil
}

// realType is the column's type, with the ENUM and SET that the binlog
// sends as STRING unwrapped from the metadata.
func realType(tm *replication.TableMapEvent, i int) byte {
	tp := tm.ColumnType[i]
	if tp == gm.MYSQL_TYPE_STRING {
		if meta := tm.ColumnMeta[i]; meta >= 256 {
			if b0 := byte(meta >> 8); b0&0x30 == 0x30 {
				return b0
			}
		}
	}
	return tp
}

// stringLength is the declared byte length of a CHAR / BINARY column from
// its table map metadata (the same arithmetic the binlog decoder uses).
func stringLength(meta uint16) int {
	if meta >= 256 {
		b0, b1 := uint8(meta>>8), uint8(meta&0xFF)
		if b0&0x30 != 0x30 {
			return int(uint16(b1) | uint16((b0&0x30)^0x30)<<4)
		}
		return int(meta & 0xFF)
	}
	return int(meta)
}

// logicalType maps a column onto the envelope's logical types.
func logicalType(c column) change.Type {
	switch c.mysqlTyp {
	case gm.MYSQL_TYPE_TINY, gm.MYSQL_TYPE_SHORT, gm.MYSQL_TYPE_INT24, gm.MYSQL_TYPE_LONG, gm.MYSQL_TYPE_YEAR:
		return change.TypeInt
	case gm.MYSQL_TYPE_LONGLONG:
		if c.unsigned {
			return change.TypeDecimal // up to 18446744073709551615: past int64
		}
		return change.TypeInt
	case gm.MYSQL_TYPE_BIT:
		if c.bits == 64 {
			return change.TypeDecimal
		}
		return change.TypeInt
	case gm.MYSQL_TYPE_NEWDECIMAL, gm.MYSQL_TYPE_DECIMAL:
		return change.TypeDecimal
	case gm.MYSQL_TYPE_FLOAT, gm.MYSQL_TYPE_DOUBLE:
		return change.TypeFloat
	case gm.MYSQL_TYPE_DATE, gm.MYSQL_TYPE_NEWDATE, gm.MYSQL_TYPE_DATETIME, gm.MYSQL_TYPE_DATETIME2,
		gm.MYSQL_TYPE_TIMESTAMP, gm.MYSQL_TYPE_TIMESTAMP2, gm.MYSQL_TYPE_TIME, gm.MYSQL_TYPE_TIME2:
		return change.TypeTime
	case gm.MYSQL_TYPE_JSON:
		return change.TypeJSON
	case gm.MYSQL_TYPE_ENUM, gm.MYSQL_TYPE_SET:
		return change.TypeString
	case gm.MYSQL_TYPE_GEOMETRY:
		return change.TypeBytes
	}
	if c.binary {
		return change.TypeBytes
	}
	return change.TypeString
}

// sqlType names a column's type for change.Event.SQLTypes: what Debezium's
// value mapping depends on (the fractional digits of temporal types from
// the table map's metadata, BIT's width, unsigned); "" for types whose
// values are written as their logical type holds them.
func sqlType(c column, meta uint16) string {
	u := ""
	if c.unsigned {
		u = " unsigned"
	}
	switch c.mysqlTyp {
	case gm.MYSQL_TYPE_TINY:
		return "tinyint" + u
	case gm.MYSQL_TYPE_SHORT:
		return "smallint" + u
	case gm.MYSQL_TYPE_INT24:
		return "mediumint" + u
	case gm.MYSQL_TYPE_LONG:
		return "int" + u
	case gm.MYSQL_TYPE_LONGLONG:
		return "bigint" + u
	case gm.MYSQL_TYPE_YEAR:
		return "year"
	case gm.MYSQL_TYPE_FLOAT:
		return "float"
	case gm.MYSQL_TYPE_DOUBLE:
		return "double"
	case gm.MYSQL_TYPE_NEWDECIMAL, gm.MYSQL_TYPE_DECIMAL:
		return fmt.Sprintf("decimal(%d,%d)", meta>>8, meta&0xFF)
	case gm.MYSQL_TYPE_BIT:
		return fmt.Sprintf("bit(%d)", c.bits)
	case gm.MYSQL_TYPE_DATE, gm.MYSQL_TYPE_NEWDATE:
		return "date"
	case gm.MYSQL_TYPE_DATETIME, gm.MYSQL_TYPE_TIMESTAMP, gm.MYSQL_TYPE_TIME:
		return map[byte]string{gm.MYSQL_TYPE_DATETIME: "datetime(0)", gm.MYSQL_TYPE_TIMESTAMP: "timestamp(0)", gm.MYSQL_TYPE_TIME: "time(0)"}[c.mysqlTyp]
	case gm.MYSQL_TYPE_DATETIME2:
		return fmt.Sprintf("datetime(%d)", meta)
	case gm.MYSQL_TYPE_TIMESTAMP2:
		return fmt.Sprintf("timestamp(%d)", meta)
	case gm.MYSQL_TYPE_TIME2:
		return fmt.Sprintf("time(%d)", meta)
	case gm.MYSQL_TYPE_ENUM:
		return "enum"
	case gm.MYSQL_TYPE_SET:
		return "set"
	case gm.MYSQL_TYPE_JSON:
		return "json"
	case gm.MYSQL_TYPE_GEOMETRY:
		return "geometry"
	}
	if c.typ == change.TypeJSON {
		return "json"
	}
	return ""
}

// parseValueList reads the quoted values of "enum('a','b')" or "set(...)".
func parseValueList(columnType, prefix string) []string {
	s, ok := strings.CutPrefix(columnType, prefix)
	if !ok {
		return nil
	}
	s = strings.TrimSuffix(s, ")")
	var out []string
	for len(s) > 0 && s[0] == '\'' {
		var sb strings.Builder
		i := 1
		for i < len(s) {
			if s[i] == '\'' {
				if i+1 < len(s) && s[i+1] == '\'' {
					sb.WriteByte('\'')
					i += 2
					continue
				}
				break
			}
			sb.WriteByte(s[i])
			i++
		}
		out = append(out, sb.String())
		s = strings.TrimPrefix(s[min(i+1, len(s)):], ",")
	}
	return out
}

// value converts what go-mysql decoded for c into the envelope's Go value
// for c.typ: int64, float64, string, []byte or nil. Nothing is rounded:
// DECIMAL stays its exact text, BIGINT UNSIGNED its decimal digits, FLOAT
// the shortest text that reads back as the same float32.
func (c *column) value(v any) (any, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case int8:
		if c.unsigned {
			return int64(uint8(v)), nil
		}
		return int64(v), nil
	case int16:
		if c.unsigned {
			return int64(uint16(v)), nil
		}
		return int64(v), nil
	case int32:
		if c.unsigned {
			if c.mysqlTyp == gm.MYSQL_TYPE_INT24 {
				return int64(uint32(v) & 0xFFFFFF), nil
			}
			return int64(uint32(v)), nil
		}
		return int64(v), nil
	case int64:
		switch {
		case c.mysqlTyp == gm.MYSQL_TYPE_ENUM:
			return c.enumValue(v)
		case c.mysqlTyp == gm.MYSQL_TYPE_SET:
			return c.setValue(v)
		case c.typ == change.TypeDecimal:
			return strconv.FormatUint(uint64(v), 10), nil
		}
		return v, nil
	case int:
		return int64(v), nil
	case uint8:
		return int64(v), nil
	case uint16:
		return int64(v), nil
	case uint32:
		return int64(v), nil
	case uint64:
		if c.typ == change.TypeInt {
			return int64(v), nil
		}
		return strconv.FormatUint(v, 10), nil
	case float32:
		f, _ := strconv.ParseFloat(strconv.FormatFloat(float64(v), 'g', -1, 32), 64)
		return f, nil
	case float64:
		return v, nil
	// go-mysql's strings and byte slices alias its packet buffer: copy them.
	case string:
		if c.typ == change.TypeBytes {
			b := []byte(v)
			if len(b) < c.padTo {
				b = append(b, make([]byte, c.padTo-len(b))...)
			}
			return b, nil
		}
		return strings.Clone(v), nil
	case []byte:
		if c.typ == change.TypeBytes {
			return bytes.Clone(v), nil
		}
		if c.typ == change.TypeJSON && len(v) == 0 {
			return "null", nil
		}
		return string(v), nil
	case *replication.JsonDiff:
		return nil, fmt.Errorf("column %s: a partial JSON update (binlog_row_value_options=PARTIAL_JSON) carries no full value: set binlog_row_value_options='' on the source", c.name)
	}
	return nil, fmt.Errorf("column %s: unsupported binlog value of Go type %T", c.name, v)
}

func (c *column) enumValue(i int64) (any, error) {
	if i == 0 {
		return "", nil // MySQL's error value for an invalid ENUM
	}
	if i < 1 || int(i) > len(c.enum) {
		return nil, fmt.Errorf("column %s: ENUM index %d outside its %d values (set binlog_row_metadata=FULL so the values come with the row)", c.name, i, len(c.enum))
	}
	return c.enum[i-1], nil
}

func (c *column) setValue(bits int64) (any, error) {
	var parts []string
	for i := 0; i < 64 && bits != 0; i++ {
		if bits&1 != 0 {
			if i >= len(c.set) {
				return nil, fmt.Errorf("column %s: SET bit %d outside its %d members (set binlog_row_metadata=FULL so the members come with the row)", c.name, i, len(c.set))
			}
			parts = append(parts, c.set[i])
		}
		bits = int64(uint64(bits) >> 1)
	}
	return strings.Join(parts, ","), nil
}

// row converts one binlog row image.
func (t *table) row(vals []any) (change.Row, error) {
	if len(vals) != len(t.cols) {
		return nil, fmt.Errorf("table %s: row has %d values for %d columns", t.name, len(vals), len(t.cols))
	}
	r := make(change.Row, len(vals))
	for i := range t.cols {
		v, err := t.cols[i].value(vals[i])
		if err != nil {
			return nil, fmt.Errorf("table %s: %w", t.name, err)
		}
		r[t.cols[i].name] = v
	}
	return r, nil
}
