package mysql

import (
	"context"
	"fmt"
	"strings"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/mysqlurl"
	"github.com/tandemcdc/tandem/internal/pgtext"
)

// HashKinds implements reconcile.KindChunkHasher: the one summary MariaDB
// and MySQL compute as PostgreSQL does, pgtext.HashMD5.
func (r *TableReader) HashKinds() []pgtext.HashKind { return []pgtext.HashKind{pgtext.HashMD5} }

// HashChunkKind implements reconcile.KindChunkHasher: it summarises on the
// server the chunk Chunk(t, after, limit) would read, t having a
// one-column key, in kind (pgtext.HashMD5 only): the pgtext.RowsHash of
// the values of cols, in that order, and the chunk's last key as text
// (nil when it has no rows). One statement, so one snapshot
// (mysqlurl.MD5Summary), of the rows
//
//	SELECT k, <mysqlurl.MD5RowText of c1, c2> AS r FROM t WHERE k > ? ORDER BY k LIMIT n
//
// read in key order through the primary key, as Chunk reads them, but
// only a digest comes back. t must have been described.
func (r *TableReader) HashChunkKind(ctx context.Context, kind pgtext.HashKind, t *change.Schema, cols []string, after []string, limit int) (pgtext.RowsHash, []string, error) {
	var h pgtext.RowsHash
	if kind != pgtext.HashMD5 {
		return h, nil, fmt.Errorf("hash a chunk of %s: MariaDB and MySQL compute %s summaries, not %s", t.Name, pgtext.HashMD5, kind)
	}
	if len(t.Key) != 1 {
		return h, nil, fmt.Errorf("hash a chunk of %s: its key has %d columns, not one", t.Name, len(t.Key))
	}
	types, ok := r.sqlTypes[t.Name]
	if !ok {
		return h, nil, fmt.Errorf("hash a chunk of %s: read before Describe", t.Name)
	}
	exprs, sqlTypes := make([]string, len(cols)), make([]string, len(cols))
	for i, c := range cols {
		var ok bool
		if sqlTypes[i], ok = types[c]; !ok {
			return h, nil, fmt.Errorf("hash a chunk of %s: no column %q", t.Name, c)
		}
		exprs[i] = mysqlurl.QuoteIdent(c)
	}
	key := mysqlurl.QuoteIdent(t.Key[0])
	var sb strings.Builder
	fmt.Fprintf(&sb, "SELECT %s AS k, %s AS r FROM %s.%s", key, mysqlurl.MD5RowText(exprs, sqlTypes),
		mysqlurl.QuoteIdent(t.Name.Schema), mysqlurl.QuoteIdent(t.Name.Name))
	where, args := keyBounds([]string{key}, after, nil)
	sb.WriteString(where)
	fmt.Fprintf(&sb, " ORDER BY %s LIMIT %d", key, limit)
	h, last, err := mysqlurl.MD5Summary(ctx, r.db, sb.String(), args...)
	if err != nil {
		return h, nil, fmt.Errorf("hash a chunk of %s: %w", t.Name, err)
	}
	if !last.Valid {
		return h, nil, nil
	}
	return h, []string{last.String}, nil
}
