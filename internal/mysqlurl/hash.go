package mysqlurl

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"strings"
	"sync/atomic"

	"github.com/tandemcdc/tandem/internal/pgtext"
)

// md5Value is the text of value expr, a column whose information_schema
// COLUMN_TYPE is columnType, in a row's text for pgtext.HashMD5: what
// PostgreSQL's pgtext.MD5Value gives for an equal value. Integers,
// decimals, dates, times, BIT (as its number) and bytes (as their md5)
// are their text and a comma, a DATETIME, TIMESTAMP or TIME with
// fractional digits without their trailing zeros (PostgreSQL writes
// "05.1", MariaDB "05.100000"); the rest (strings, converted to utf8mb4:
// PostgreSQL's UTF-8 bytes, and one collation for every column, which
// CONCAT requires) their length in characters, a colon and their text.
// NULL is N.
func md5Value(expr, columnType string) string {
	t := strings.ToLower(columnType)
	base, _, _ := strings.Cut(t, "(")
	base = strings.Fields(base + " ")[0]
	x := expr
	switch {
	case base == "bit":
		x = "(" + expr + " + 0)"
	case strings.Contains(base, "binary") || strings.Contains(base, "blob"):
		x = "MD5(" + expr + ")"
	case fractional.MatchString(t):
		x = "TRIM(TRAILING '.' FROM TRIM(TRAILING '0' FROM " + expr + "))"
	case !unprefixed[base]:
		return fmt.Sprintf("IF(%s IS NULL, 'N', CONCAT(CHAR_LENGTH(%s), ':', CONVERT(%s USING utf8mb4)))", expr, expr, expr)
	}
	return "IFNULL(CONCAT(" + x + ", ','), 'N')"
}

// unprefixed are the types whose text holds no comma and starts with no
// N, written without their length.
var unprefixed = map[string]bool{"tinyint": true, "smallint": true, "mediumint": true, "int": true, "bigint": true, "year": true,
	"decimal": true, "date": true, "datetime": true, "timestamp": true, "time": true}

// fractional matches the column types with fractional seconds.
var fractional = regexp.MustCompile(`^(datetime|timestamp|time)\([1-6]\)`)

// MD5RowText is the SQL expression of a row's text for pgtext.HashMD5
// over the columns exprs whose information_schema COLUMN_TYPEs are types,
// in column order (md5Value of each): equal to PostgreSQL's
// pgtext.MD5RowText of an equal row. A row whose text is longer than
// max_allowed_packet (CONCAT's limit, where it returns NULL) is instead
// "!" and the md5 of each of its values as the server holds them: not
// PostgreSQL's text, so such a row's chunk is compared row by row against
// PostgreSQL, but the same on MariaDB and MySQL servers holding equal
// rows in the same character sets.
func MD5RowText(exprs, types []string) string {
	parts := make([]string, len(exprs))
	raw := make([]string, len(exprs))
	for i, c := range exprs {
		parts[i] = md5Value(c, types[i])
		raw[i] = fmt.Sprintf("IF(%s IS NULL, 'N', MD5(%s))", c, c)
	}
	return "COALESCE(CONCAT(" + strings.Join(parts, ", ") + "), CONCAT('!', MD5(CONCAT_WS(',', " + strings.Join(raw, ", ") + "))))"
}

// md5SessionMax is the group_concat_max_len MD5Summary sets for its
// statement: the most text of one range's rows it summarises.
const md5SessionMax = 256 << 20

// MD5Summary summarises on db the rows of inner, a SELECT of two
// columns, k (an integer key) and r (an MD5RowText), with args, as
// pgtext.HashMD5 does: the row count and the md5 of the rows' texts in
// key order ("" for none), and the largest key as text (invalid for no
// rows). It runs, on one connection, a SET of the session's
// group_concat_max_len, then
//
//	SELECT n, MD5(g), LENGTH(g), last FROM (SELECT COUNT(*) AS n,
//	    GROUP_CONCAT(r SEPARATOR '') AS g, MAX(k) AS last FROM (inner) s) x
//
// one statement, so one snapshot. The rows are concatenated in the order
// they are read, which for a range of the primary key, or a derived table
// of one (ORDER BY k LIMIT n), is key order; an ORDER BY in GROUP_CONCAT
// would sort them again. Were they read in another order, the summaries
// would differ and the rows be compared: never an equal summary of
// different rows.
func MD5Summary(ctx context.Context, db *sql.DB, inner string, args ...any) (pgtext.RowsHash, sql.NullString, error) {
	var h pgtext.RowsHash
	var last sql.NullString
	conn, err := db.Conn(ctx)
	if err != nil {
		return h, last, err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("SET SESSION group_concat_max_len = %d", md5SessionMax)); err != nil {
		return h, last, err
	}
	var length int64
	err = conn.QueryRowContext(ctx, "SELECT n, COALESCE(MD5(g), ''), COALESCE(LENGTH(g), 0), last FROM (SELECT COUNT(*) AS n, "+
		"GROUP_CONCAT(r SEPARATOR '') AS g, CAST(MAX(k) AS CHAR) AS last FROM ("+inner+") s) x", args...).Scan(&h.Rows, &h.Sum, &length, &last)
	h.Sum = md5Sum(h.Sum, length)
	return h, last, err
}

// unsummarised numbers the summaries MD5Sum makes unique.
var unsummarised atomic.Int64

// md5Sum is the Sum of an MD5Summary whose digest and text's length are
// those given: the digest, unless the text reached md5SessionMax, where
// GROUP_CONCAT cuts it; then a text no other summary has, so that the
// range's rows are compared rather than taken as equal on the digest of
// their start.
func md5Sum(digest string, length int64) string {
	if length < md5SessionMax {
		return digest
	}
	return fmt.Sprintf("%s, the first %d bytes of the rows' text, #%d", digest, length, unsummarised.Add(1))
}
