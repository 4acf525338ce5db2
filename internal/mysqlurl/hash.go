package mysqlurl

import (
	"fmt"
	"regexp"
	"strings"
)

// md5Text is the text of value expr, a column whose information_schema
// COLUMN_TYPE is columnType, that MD5RowHash hashes: what PostgreSQL's
// pgtext.MD5Text gives for an equal value (see pgtext.HashMD5). Strings
// are converted to utf8mb4 (PostgreSQL's UTF-8 bytes, and one collation
// for every column, which CONCAT requires); bytes are their md5; BIT its
// number; a DATETIME, TIMESTAMP or TIME with fractional digits loses
// their trailing zeros (PostgreSQL writes "05.1", MariaDB "05.100000");
// the rest (integers, decimals, dates) as they read.
func md5Text(expr, columnType string) string {
	t := strings.ToLower(columnType)
	base, _, _ := strings.Cut(t, "(")
	switch {
	case base == "bit":
		return "(" + expr + " + 0)"
	case strings.Contains(base, "binary") || strings.Contains(base, "blob"):
		return "MD5(" + expr + ")"
	case fractional.MatchString(t):
		return "TRIM(TRAILING '.' FROM TRIM(TRAILING '0' FROM " + expr + "))"
	case strings.Contains(base, "char") || strings.Contains(base, "text") || base == "enum" || base == "set" || base == "json":
		return "CONVERT(" + expr + " USING utf8mb4)"
	}
	return expr
}

// fractional matches the column types with fractional seconds.
var fractional = regexp.MustCompile(`^(datetime|timestamp|time)\([1-6]\)`)

// MD5RowHash is the SQL expression of a row's pgtext.HashMD5 hash, an
// unsigned 60-bit integer, over the columns exprs whose
// information_schema COLUMN_TYPEs are types, in column order: equal to
// PostgreSQL's pgtext.MD5RowHash of an equal row. A row whose text is
// longer than max_allowed_packet (CONCAT's limit, where it returns NULL)
// hashes instead the md5 of each of its values as the server holds them:
// not PostgreSQL's hash, so such a row's chunk is compared row by row
// against PostgreSQL, but the same on MariaDB and MySQL servers holding
// equal rows in the same character sets.
func MD5RowHash(exprs, types []string) string {
	parts := make([]string, len(exprs))
	raw := make([]string, len(exprs))
	for i, c := range exprs {
		x := md5Text(c, types[i])
		parts[i] = fmt.Sprintf("IF(%s IS NULL, 'N', CONCAT(CHAR_LENGTH(%s), ':', %s))", c, x, x)
		raw[i] = fmt.Sprintf("IF(%s IS NULL, 'N', MD5(%s))", c, c)
	}
	return "CAST(CONV(LEFT(COALESCE(MD5(CONCAT(" + strings.Join(parts, ", ") + ")), MD5(CONCAT_WS(',', " + strings.Join(raw, ", ") +
		"))), 15), 16, 10) AS UNSIGNED)"
}

// MD5HashSelect is the select list, over a row set, of its summary: the
// row count and the sum of rowHash (an MD5RowHash, or a column holding
// one) as a decimal. Scan its two columns into pgtext.RowsHash's Rows and
// Sum.
func MD5HashSelect(rowHash string) string {
	return "COUNT(*), CAST(COALESCE(SUM(" + rowHash + "), 0) AS CHAR)"
}
