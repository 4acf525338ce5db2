package sqlbatch

import (
	"strconv"
	"strings"

	"github.com/tandemcdc/tandem/internal/change"
)

// DistinctKeys returns the keys of a RowReader.ReadKeys worth asking for,
// in their order: without those holding NULL (or nothing) in a column of
// key, which match no row as SQL's = matches none, and without repeats, as
// KeyText tells them apart (int 42 and int64 42 are one key). Keys that
// differ only in spelling ("1.0" and "1" for a numeric column) stay two.
func DistinctKeys(key []string, keys []map[string]any) []map[string]any {
	out := make([]map[string]any, 0, len(keys))
	seen := make(map[string]bool, len(keys))
keys:
	for _, k := range keys {
		for _, c := range key {
			if k[c] == nil {
				continue keys
			}
		}
		if id := change.KeyText(key, k); !seen[id] {
			seen[id] = true
			out = append(out, k)
		}
	}
	return out
}

// ScanQuery is the statement of a RowReader.ScanRows by keyset pagination:
// the columns cols of the table ident (all quoted identifiers already),
// where the condition after holds ("" for none) and no key column (quoted)
// is NULL, in key order, at most limit rows.
func ScanQuery(ident string, quoted, cols []string, after string, limit int) string {
	var conds []string
	if after != "" {
		conds = append(conds, after)
	}
	for _, q := range quoted {
		conds = append(conds, q+" IS NOT NULL")
	}
	return "SELECT " + strings.Join(cols, ", ") + " FROM " + ident + " WHERE " + strings.Join(conds, " AND ") +
		" ORDER BY " + strings.Join(quoted, ", ") + " LIMIT " + strconv.Itoa(limit)
}
