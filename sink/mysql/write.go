package mysql

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/mysqlurl"
	"github.com/tandemcdc/tandem/sink"
	"github.com/tandemcdc/tandem/sink/internal/sqlbatch"
)

// maxPlaceholders is the most parameters one prepared statement may have.
const maxPlaceholders = 65535

// maxStatementBytes bounds the argument bytes of one multi-row statement,
// well under the server's max_allowed_packet (16 MiB by default on
// MariaDB): a batch of wide rows becomes several statements. A single row
// larger than this still goes alone; the driver streams its long values.
const maxStatementBytes = 4 << 20

// statement is one SQL statement of a batch.
type statement struct {
	what, table string // for errors: "upsert into", "shop.items"
	sql         string
	args        []any
	// copies, if set, are rows copied by backfill, written by Sink.writeCopies
	// instead of sql: which to insert depends on the tombstones read in
	// the transaction.
	copies *copies
	// whileBackfill statements run only while a backfill is active, as
	// read in the transaction (Sink.backfillActive).
	whileBackfill bool
}

// statements groups compacted writes into multi-row statements per table,
// op and column set.
func (s *Sink) statements(ctx context.Context, writes []change.Write) ([]statement, error) {
	var out []statement
	for _, g := range sqlbatch.Groups(writes) {
		if len(g.Key) == 0 {
			return nil, classified(g.Table, fmt.Errorf("%s %s: the write names no key columns", g.Op, g.Table))
		}
		t, err := s.describe(ctx, g.Table)
		if err != nil {
			return nil, classified(g.Table, err)
		}
		for _, c := range g.Cols {
			if _, ok := t.column(c); !ok {
				return nil, classified(g.Table, fmt.Errorf("target table %s has no column %q: %w", g.Table, c, sink.ErrColumnNotFound))
			}
		}
		if g.Op != change.WriteDelete && !t.uniqueOn(g.Key) {
			return nil, classified(g.Table, fmt.Errorf("target table %s, key (%s): %w", g.Table, strings.Join(g.Key, ", "), ErrNoUniqueKey))
		}
		rows := make([][]any, len(g.Rows))
		sizes := make([]int, len(g.Rows))
		for j, r := range g.Rows {
			rows[j] = make([]any, len(g.Cols))
			for i, c := range g.Cols {
				typ, _ := t.column(c)
				v, err := argFor(typ, r[c])
				if err != nil {
					return nil, classified(g.Table, fmt.Errorf("target %s column %q: %w", g.Table, c, err))
				}
				rows[j][i] = v
				sizes[j] += argSize(v)
			}
		}
		var st []statement
		switch g.Op {
		case change.WriteDelete:
			st = deletes(t.ident, g.Table, g.Cols, rows, sizes)
			st = append(st, s.tombstones(g.Table, g.Key, g.Rows)...)
		case change.WriteCopy:
			st = copyChunks(t.ident, g.Table, g.Key, g.Cols, rows, sizes, g.Rows)
		case change.WriteUpsert, change.WriteInsertIfAbsent:
			st = inserts(t.ident, g.Table, g.Op, g.Key, g.Cols, rows, sizes)
		default:
			return nil, classified(g.Table, fmt.Errorf("target %s: unknown write op %v", g.Table, g.Op))
		}
		out = append(out, st...)
	}
	return out, nil
}

// maxDeleteRows bounds the keys of one DELETE: with tens of thousands of
// keys in its IN list the optimizer turns to a full table scan, which on a
// large table is slow and, under READ COMMITTED still, locks each row while
// it looks at it.
const maxDeleteRows = 1000

// chunks splits rows into runs that fit one statement: at most maxRows
// rows (0: no limit of its own), maxPlaceholders parameters and, unless a
// run is one row, maxStatementBytes.
func chunks(sizes []int, perRow, maxRows int) [][2]int {
	var out [][2]int
	if byParams := max(1, maxPlaceholders/max(1, perRow)); maxRows <= 0 || maxRows > byParams {
		maxRows = byParams
	}
	for lo := 0; lo < len(sizes); {
		hi, bytes := lo, 0
		for hi < len(sizes) && hi-lo < maxRows && (hi == lo || bytes+sizes[hi] <= maxStatementBytes) {
			bytes += sizes[hi]
			hi++
		}
		out = append(out, [2]int{lo, hi})
		lo = hi
	}
	return out
}

// inserts builds the multi-row INSERTs of an upsert or insert-if-absent.
//
// Not INSERT IGNORE for insert-if-absent: IGNORE also turns data errors
// (a value too long or out of range, NULL into NOT NULL, a failed foreign
// key) into warnings and stores a truncated or default value, or nothing,
// so data would be lost silently. ON DUPLICATE KEY UPDATE k = k skips only
// the duplicate key and leaves every other error an error.
func inserts(ident, name string, op change.WriteOp, key, cols []string, rows [][]any, sizes []int) []statement {
	quoted := quoteAll(cols)
	tuple := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + ")"
	var sets []string
	if op == change.WriteUpsert {
		for i, c := range cols {
			if !containsFold(key, c) {
				sets = append(sets, quoted[i]+" = VALUES("+quoted[i]+")")
			}
		}
	}
	if len(sets) == 0 {
		// A no-op on conflict: the existing row stays as it is.
		k := mysqlurl.QuoteIdent(key[0])
		sets = []string{k + " = " + k}
	}
	suffix := " ON DUPLICATE KEY UPDATE " + strings.Join(sets, ", ")
	var out []statement
	for _, c := range chunks(sizes, len(cols), 0) {
		var sb strings.Builder
		sb.WriteString("INSERT INTO " + ident + " (" + strings.Join(quoted, ", ") + ") VALUES ")
		args := make([]any, 0, (c[1]-c[0])*len(cols))
		for i, r := range rows[c[0]:c[1]] {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString(tuple)
			args = append(args, r...)
		}
		sb.WriteString(suffix)
		out = append(out, statement{what: op.String() + " into", table: name, sql: sb.String(), args: args})
	}
	return out
}

// deletes builds the DELETEs of rows by key: k IN (...) for one key
// column, (k1, k2) IN ((...), ...) for several; both are range scans of
// the key's index on MySQL 8 and MariaDB 10.11 (up to maxDeleteRows keys).
func deletes(ident, name string, key []string, rows [][]any, sizes []int) []statement {
	var lhs, tuple string
	if len(key) == 1 {
		lhs, tuple = mysqlurl.QuoteIdent(key[0]), "?"
	} else {
		lhs = "(" + strings.Join(quoteAll(key), ", ") + ")"
		tuple = "(" + strings.TrimSuffix(strings.Repeat("?, ", len(key)), ", ") + ")"
	}
	var out []statement
	for _, c := range chunks(sizes, len(key), maxDeleteRows) {
		var sb strings.Builder
		sb.WriteString("DELETE FROM " + ident + " WHERE " + lhs + " IN (")
		args := make([]any, 0, (c[1]-c[0])*len(key))
		for i, r := range rows[c[0]:c[1]] {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString(tuple)
			args = append(args, r...)
		}
		sb.WriteString(")")
		out = append(out, statement{what: "delete from", table: name, sql: sb.String(), args: args})
	}
	return out
}

// maxErrorBytes bounds a dead letter's stored error message.
const maxErrorBytes = 1 << 20

// deadLetters stores dead letters; a record stored before is kept as it was
// (ON DUPLICATE KEY UPDATE that changes nothing, not INSERT IGNORE: see
// inserts).
func (s *Sink) deadLetters(dls []sink.DeadLetter) []statement {
	const perRow = 8
	rows := make([][]any, len(dls))
	sizes := make([]int, len(dls))
	for i, d := range dls {
		// Text columns are utf8mb4: a message quoting a binary record
		// must not fail the batch in strict mode.
		msg := d.Error
		if len(msg) > maxErrorBytes {
			msg = msg[:maxErrorBytes]
		}
		rows[i] = []any{validText(d.Topic), d.Partition, d.Offset, validText(d.Mapping), validText(d.Reason),
			validText(msg), d.Key, d.Value}
		sizes[i] = len(msg) + len(d.Key) + len(d.Value) + 64
	}
	var out []statement
	for _, c := range chunks(sizes, perRow, 0) {
		var sb strings.Builder
		sb.WriteString("INSERT INTO " + s.deadLettersTable() + " (topic, `partition`, `offset`, mapping, reason, error, record_key, record) VALUES ")
		var args []any
		for i, r := range rows[c[0]:c[1]] {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString("(?, ?, ?, ?, ?, ?, ?, ?)")
			args = append(args, r...)
		}
		sb.WriteString(" ON DUPLICATE KEY UPDATE topic = topic")
		out = append(out, statement{what: "store dead letters in", table: s.deadLettersTable(), sql: sb.String(), args: args})
	}
	return out
}

// validText replaces invalid UTF-8 by U+FFFD.
func validText(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// errUnrepresentable is wrapped when a value has no MySQL form.
var errUnrepresentable = errors.New("value has no MySQL representation")

// timeLayout is how a time.Time is written: UTC, microseconds, the
// literal DATETIME, TIMESTAMP, DATE and TIME columns all accept.
const timeLayout = "2006-01-02 15:04:05.000000"

// arg converts a value a transformer produced to a driver argument: NULL
// for nil, numbers and bytes as themselves (uint64 unsigned, so BIGINT
// UNSIGNED keeps its top half), times as UTC text, maps and slices as JSON
// text. Decimals arrive as strings and stay exact.
func arg(v any) (any, error) {
	switch v := v.(type) {
	case nil, string, int64, uint64, bool:
		return v, nil
	case int:
		return int64(v), nil
	case int32:
		return int64(v), nil
	case int16:
		return int64(v), nil
	case int8:
		return int64(v), nil
	case uint:
		return uint64(v), nil
	case uint32:
		return int64(v), nil
	case uint16:
		return int64(v), nil
	case uint8:
		return int64(v), nil
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("float %v: %w (MySQL has no NaN or infinity)", v, errUnrepresentable)
		}
		return v, nil
	case float32:
		f := float64(v)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("float %v: %w (MySQL has no NaN or infinity)", v, errUnrepresentable)
		}
		// its shortest decimal form: 0.1, not 0.10000000149011612
		return strconv.FormatFloat(f, 'g', -1, 32), nil
	case []byte:
		if v == nil {
			return []byte{}, nil // the driver would send NULL
		}
		return v, nil
	case json.RawMessage:
		return string(v), nil
	case json.Number:
		return string(v), nil
	case time.Time:
		return v.UTC().Round(time.Microsecond).Format(timeLayout), nil
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("value of type %T: %w: %w", v, errUnrepresentable, err)
		}
		return string(b), nil
	}
}

// argFor is arg for a column of DATA_TYPE typ. A BIT column reads a string
// as its bytes, so a BIT value carried as decimal text (BIT(64), past
// int64) goes as the number it spells. A DATETIME or TIMESTAMP column
// given text with a UTC offset (PostgreSQL's timestamptz text,
// "2024-03-01 10:02:03.654321+09") gets that instant in UTC, the
// session's zone: MariaDB refuses offsets, and MySQL 8 takes only ±hh:mm.
//
// A FLOAT column given a double just past the largest float that rounds
// to it (PostgreSQL's real 3.4028235e+38, the shortest text of the largest
// float) gets the float it rounds to: the server would refuse it as out of
// range.
func argFor(typ string, v any) (any, error) {
	if f, ok := v.(float64); ok && typ == "float" && math.Abs(f) > math.MaxFloat32 {
		if r := float64(float32(f)); !math.IsInf(r, 0) {
			return r, nil
		}
	}
	s, ok := v.(string)
	if !ok {
		return arg(v)
	}
	switch typ {
	case "bit":
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("BIT value %q is not a whole number from 0 to 18446744073709551615: %w", s, errUnrepresentable)
		}
		return n, nil
	case "datetime", "timestamp":
		if t, ok := zonedTime(s); ok {
			return arg(t)
		}
	}
	return arg(v)
}

// zonedLayouts are the forms of a date and time with a UTC offset that
// zonedTime reads: PostgreSQL's ISO output (offsets of hours, minutes or
// seconds) and RFC 3339.
var zonedLayouts = []string{
	"2006-01-02 15:04:05.999999999Z07",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999Z07:00:00",
	time.RFC3339Nano,
}

// zonedTime parses text that names an instant with its UTC offset; ok is
// false for anything else (text without an offset is left to the server).
func zonedTime(s string) (t time.Time, ok bool) {
	// An offset follows the seconds: text without one (a DATETIME's, a
	// PostgreSQL timestamp's) is not parsed, which cost four failed
	// time.Parse calls per value.
	const seconds = len("2006-01-02 15:04:05")
	if len(s) <= seconds || !strings.ContainsAny(s[seconds:], "+-Z") {
		return time.Time{}, false
	}
	for _, layout := range zonedLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// argSize estimates the bytes an argument takes in a statement.
func argSize(v any) int {
	switch v := v.(type) {
	case string:
		return len(v) + 9
	case []byte:
		return len(v) + 9
	}
	return 9
}
