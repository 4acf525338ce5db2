package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/pgtext"
)

// HashKinds implements reconcile.KindChunkHasher: pgtext.HashText, the
// faster, and pgtext.HashMD5, which MariaDB and MySQL compute too.
func (r *TableReader) HashKinds() []pgtext.HashKind {
	return []pgtext.HashKind{pgtext.HashText, pgtext.HashMD5}
}

// HashChunk is HashChunkKind in pgtext.HashText.
func (r *TableReader) HashChunk(ctx context.Context, t *change.Schema, cols []string, after []string, limit int) (pgtext.RowsHash, []string, error) {
	return r.HashChunkKind(ctx, pgtext.HashText, t, cols, after, limit)
}

// HashChunkKind implements reconcile.KindChunkHasher: it summarises on the
// server the chunk Chunk(t, after, limit) would read, t having a
// one-column key, in kind: the pgtext.RowsHash of the values of cols, in
// that order, and the chunk's last key as text (nil when it has no rows).
// One statement, so one snapshot, under pgtext.Settings:
//
//	SELECT count(*), coalesce(sum(r), 0)::text, max(k)::text
//	FROM (SELECT k, <pgtext.RowHash of c1, c2> AS r FROM t WHERE k > $1 ORDER BY k LIMIT n) s
//
// or, for pgtext.HashMD5, pgtext.MD5Select of the rows' pgtext.MD5RowText
// (of the values' pgtext.MD5Value, by the types Describe found). The rows are read in key
// order through the key's index, as Chunk reads them, but only three
// values come back.
func (r *TableReader) HashChunkKind(ctx context.Context, kind pgtext.HashKind, t *change.Schema, cols []string, after []string, limit int) (pgtext.RowsHash, []string, error) {
	var h pgtext.RowsHash
	if len(t.Key) != 1 {
		return h, nil, fmt.Errorf("hash a chunk of %s: its key has %d columns, not one", t.Name, len(t.Key))
	}
	key := pgx.Identifier{t.Key[0]}.Sanitize()
	exprs := make([]string, len(cols))
	for i, c := range cols {
		exprs[i] = pgx.Identifier{c}.Sanitize()
	}
	var rowHash, sel string
	switch kind {
	case pgtext.HashText:
		rowHash, sel = pgtext.RowHash(exprs), pgtext.HashSelect("r")
	case pgtext.HashMD5:
		r.mu.Lock()
		oids, ok := r.oids[t.Name]
		r.mu.Unlock()
		if !ok {
			return h, nil, fmt.Errorf("hash a chunk of %s: read before Describe", t.Name)
		}
		for i, c := range cols {
			exprs[i] = pgtext.MD5Value(exprs[i], oids[c])
		}
		rowHash, sel = pgtext.MD5RowText(exprs), pgtext.MD5Select("r")
	default:
		return h, nil, fmt.Errorf("hash a chunk of %s: no %s summaries on PostgreSQL", t.Name, kind)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "SELECT %s, max(k)::text FROM (SELECT %s AS k, %s AS r FROM %s",
		sel, key, rowHash, pgx.Identifier{t.Name.Schema, t.Name.Name}.Sanitize())
	var params [][]byte
	if after != nil {
		fmt.Fprintf(&sb, " WHERE %s > $1", key)
		params = [][]byte{[]byte(after[0])}
	}
	fmt.Fprintf(&sb, " ORDER BY %s LIMIT %d) s", key, limit)
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return h, nil, fmt.Errorf("hash a chunk of %s: %w", t.Name, err)
	}
	defer conn.Release()
	b := &pgconn.Batch{}
	b.ExecParams(pgtext.Settings, nil, nil, nil, nil)
	b.ExecParams(sb.String(), params, nil, nil, nil)
	results, err := conn.Conn().PgConn().ExecBatch(ctx, b).ReadAll()
	if err != nil {
		return h, nil, fmt.Errorf("hash a chunk of %s: %w", t.Name, err)
	}
	if len(results) != 2 || len(results[1].Rows) != 1 || len(results[1].Rows[0]) != 3 {
		return h, nil, fmt.Errorf("hash a chunk of %s: unexpected result shape", t.Name)
	}
	row := results[1].Rows[0]
	if h.Rows, err = strconv.ParseInt(string(row[0]), 10, 64); err != nil {
		return h, nil, fmt.Errorf("hash a chunk of %s: row count %q: %w", t.Name, row[0], err)
	}
	h.Sum = string(row[1])
	if row[2] == nil {
		return h, nil, nil
	}
	return h, []string{string(row[2])}, nil
}
