package postgres

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandemcdc/tandem/capture"
	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/pgdsn"
	"github.com/tandemcdc/tandem/internal/pgtext"
)

// TableReader reads tables in primary key order for backfill. Values come
// in PostgreSQL's text format with the replication connection's settings
// and are decoded by the stream's decoder, so a copied row equals the
// streamed row of the same content.
type TableReader struct {
	pool *pgxpool.Pool

	mu       sync.Mutex
	oids     map[change.Table]map[string]uint32 // column types, as Describe found them
	rowBytes map[change.Table]int               // COPY text bytes per row of the last verbatim chunk
}

// NewTableReader connects to the source.
func NewTableReader(ctx context.Context, dsn string) (*TableReader, error) {
	cfg, err := pgdsn.PoolConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse source dsn: %w", err)
	}
	for k, v := range map[string]string{"TimeZone": "UTC", "DateStyle": "ISO", "bytea_output": "hex",
		"extra_float_digits": "3", "client_encoding": "UTF8", "IntervalStyle": "postgres",
		"application_name": "tandem-backfill", "default_transaction_read_only": "on",
		"standard_conforming_strings": "on"} { // TextChunk's literals
		cfg.ConnConfig.RuntimeParams[k] = v
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to source: %w", err)
	}
	return &TableReader{pool: pool, oids: map[change.Table]map[string]uint32{}, rowBytes: map[change.Table]int{}}, nil
}

// Close closes the connections.
func (r *TableReader) Close() error {
	r.pool.Close()
	return nil
}

// Describe implements backfill.Reader.
func (r *TableReader) Describe(ctx context.Context, t change.Table) (*change.Schema, error) {
	ident := pgx.Identifier{t.Schema, t.Name}.Sanitize()
	rows, err := r.pool.Query(ctx, `SELECT attname, atttypid FROM pg_attribute
WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, ident)
	if err != nil {
		return nil, fmt.Errorf("describe %s: %w", t, err)
	}
	out := &change.Schema{Name: t, Types: map[string]change.Type{}}
	oids := map[string]uint32{}
	for rows.Next() {
		var name string
		var oid uint32
		if err := rows.Scan(&name, &oid); err != nil {
			rows.Close()
			return nil, fmt.Errorf("describe %s: %w", t, err)
		}
		out.Columns = append(out.Columns, name)
		out.Types[name] = logicalType(oid)
		oids[name] = oid
	}
	r.mu.Lock()
	r.oids[t] = oids
	r.mu.Unlock()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("describe %s: %w", t, err)
	}
	// The primary key in index order, which keyset pages follow.
	keys, err := r.pool.Query(ctx, `SELECT a.attname FROM pg_index i
CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = $1::regclass AND i.indisprimary ORDER BY k.n`, ident)
	if err != nil {
		return nil, fmt.Errorf("read the primary key of %s: %w", t, err)
	}
	if out.Key, err = pgx.CollectRows(keys, pgx.RowTo[string]); err != nil {
		return nil, fmt.Errorf("read the primary key of %s: %w", t, err)
	}
	if len(out.Columns) == 0 {
		return nil, fmt.Errorf("describe %s: no columns (does it exist?)", t)
	}
	return out, nil
}

// Chunk implements backfill.Reader: one statement, so one snapshot.
func (r *TableReader) Chunk(ctx context.Context, t *change.Schema, after []string, limit int) ([]change.Row, []string, error) {
	return r.RangeChunk(ctx, t, after, nil, limit)
}

// RangeChunk implements backfill.SplitReader: Chunk, of the keys up to
// until (nil: no bound).
func (r *TableReader) RangeChunk(ctx context.Context, t *change.Schema, after, until []string, limit int) ([]change.Row, []string, error) {
	cols := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		cols[i] = pgx.Identifier{c}.Sanitize()
	}
	keys := make([]string, len(t.Key))
	keyIdx := make([]int, len(t.Key))
	for i, k := range t.Key {
		keys[i] = pgx.Identifier{k}.Sanitize()
		for j, c := range t.Columns {
			if c == k {
				keyIdx[i] = j
			}
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "SELECT %s FROM %s", strings.Join(cols, ", "), pgx.Identifier{t.Name.Schema, t.Name.Name}.Sanitize())
	var params [][]byte
	sb.WriteString(capture.KeyBounds(keys, after, until, func(v string) string {
		params = append(params, []byte(v))
		return fmt.Sprintf("$%d", len(params))
	}))
	fmt.Fprintf(&sb, " ORDER BY %s LIMIT %d", strings.Join(keys, ", "), limit)
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer conn.Release()
	res := conn.Conn().PgConn().ExecParams(ctx, sb.String(), params, nil, nil, nil)
	oids := fieldOIDs(res.FieldDescriptions())
	var out []change.Row
	lastKey := make([][]byte, len(keyIdx)) // the last row's key text, in buffers reused from row to row
	for res.NextRow() {
		vals := res.Values()
		row, err := textRow(t, oids, vals)
		if err != nil {
			res.Close()
			return nil, nil, err
		}
		for i, j := range keyIdx {
			lastKey[i] = append(lastKey[i][:0], vals[j]...)
		}
		out = append(out, row)
	}
	if _, err := res.Close(); err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", t.Name, err)
	}
	var last []string
	if len(out) > 0 {
		last = make([]string, len(lastKey))
		for i, k := range lastKey {
			last[i] = string(k)
		}
	}
	return out, last, nil
}

// TextChunk implements backfill.TextReader: COPY (SELECT ...) TO STDOUT,
// one statement, so one snapshot. COPY takes no parameters: the last key
// is written as literals (standard_conforming_strings is on), each taking
// its column's type.
func (r *TableReader) TextChunk(ctx context.Context, t *change.Schema, cols []string, after []string, limit int) (*change.TextChunk, error) {
	return r.RangeTextChunk(ctx, t, cols, after, nil, limit)
}

// RangeTextChunk implements backfill.SplitTextReader: TextChunk, of the
// keys up to until (nil: no bound).
func (r *TableReader) RangeTextChunk(ctx context.Context, t *change.Schema, cols []string, after, until []string, limit int) (*change.TextChunk, error) {
	r.mu.Lock()
	oids, rowBytes := r.oids[t.Name], r.rowBytes[t.Name]
	r.mu.Unlock()
	if oids == nil {
		return nil, fmt.Errorf("read %s verbatim: the table was not described", t.Name)
	}
	quoted := make([]string, len(cols))
	colOIDs := make([]uint32, len(cols))
	for i, c := range cols {
		quoted[i] = pgx.Identifier{c}.Sanitize()
		colOIDs[i] = oids[c]
	}
	keys := make([]string, len(t.Key))
	keyAt := make([]int, len(t.Key)) // each key column's place in cols
	for i, k := range t.Key {
		keys[i] = pgx.Identifier{k}.Sanitize()
		if keyAt[i] = slices.Index(cols, k); keyAt[i] < 0 {
			return nil, fmt.Errorf("read %s verbatim: key column %q is not read", t.Name, k)
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "COPY (SELECT %s FROM %s", strings.Join(quoted, ", "), pgx.Identifier{t.Name.Schema, t.Name.Name}.Sanitize())
	sb.WriteString(capture.KeyBounds(keys, after, until, func(v string) string { return "'" + strings.ReplaceAll(v, "'", "''") + "'" }))
	fmt.Fprintf(&sb, " ORDER BY %s LIMIT %d) TO STDOUT", strings.Join(keys, ", "), limit)
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	var buf bytes.Buffer
	buf.Grow(limit * rowBytes * 9 / 8) // as big as the last chunk's rows, and then some: no copies while it grows
	tag, err := conn.Conn().PgConn().CopyTo(ctx, &buf, sb.String())
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", t.Name, err)
	}
	data := buf.Bytes()
	if n := tag.RowsAffected(); n > 0 {
		r.mu.Lock()
		r.rowBytes[t.Name] = len(data)/int(n) + 1
		r.mu.Unlock()
	}
	out := &change.TextChunk{Cols: cols, Data: data, Rows: int(tag.RowsAffected())}
	if len(data) > 0 {
		lastLine := data[:len(data)-1]
		lastLine = lastLine[bytes.LastIndexByte(lastLine, '\n')+1:]
		fields := pgtext.CopyFields(lastLine)
		if len(fields) != len(cols) {
			return nil, fmt.Errorf("read %s: a COPY line of %d values, want %d", t.Name, len(fields), len(cols))
		}
		out.Last = make([]string, len(keyAt))
		for i, j := range keyAt {
			out.Last[i] = string(fields[j])
		}
	}
	out.Decode = func() ([]change.Row, error) {
		rows := make([]change.Row, 0, out.Rows)
		for line := range bytes.Lines(data) {
			fields := pgtext.CopyFields(line[:len(line)-1])
			if len(fields) != len(cols) {
				return nil, fmt.Errorf("read %s: a COPY line of %d values, want %d", t.Name, len(fields), len(cols))
			}
			row := make(change.Row, len(cols))
			if err := pgtext.Row(row, cols, colOIDs, fields); err != nil {
				return nil, fmt.Errorf("%s %w", t.Name, err)
			}
			rows = append(rows, row)
		}
		return rows, nil
	}
	return out, nil
}

// splitSamplePages is how many pages of a table Split samples, at most.
const splitSamplePages = 200

// Split implements backfill.SplitReader: the keys of the rows of a sample
// of the table's pages (TABLESAMPLE SYSTEM: whole pages, picked at
// random, so no scan of the table), in key order, cut at every 1/n of
// the sample. Tables of up to splitSamplePages pages are read whole. The
// table's size is its size on disk now, not its statistics, which a table
// loaded since its last ANALYZE lacks.
func (r *TableReader) Split(ctx context.Context, t *change.Schema, n int, minRows int64) ([][]string, error) {
	ident := pgx.Identifier{t.Name.Schema, t.Name.Name}.Sanitize()
	var pages int64
	if err := r.pool.QueryRow(ctx, `SELECT pg_relation_size($1::regclass) / current_setting('block_size')::bigint`, ident).Scan(&pages); err != nil {
		return nil, fmt.Errorf("read the size of %s: %w", t.Name, err)
	}
	if pages == 0 || n < 2 {
		return nil, nil
	}
	percent := min(100, 100*float64(splitSamplePages)/float64(pages))
	keys := make([]string, len(t.Key))
	for i, k := range t.Key {
		keys[i] = pgx.Identifier{k}.Sanitize()
	}
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	q := fmt.Sprintf("SELECT %s FROM %s TABLESAMPLE SYSTEM (%g) ORDER BY %s", strings.Join(keys, ", "), ident, percent, strings.Join(keys, ", "))
	res := conn.Conn().PgConn().ExecParams(ctx, q, nil, nil, nil, nil)
	var sample [][]string
	for res.NextRow() {
		k := make([]string, len(t.Key))
		for i, v := range res.Values() {
			k[i] = string(v)
		}
		sample = append(sample, k)
	}
	if _, err := res.Close(); err != nil {
		return nil, fmt.Errorf("sample the keys of %s: %w", t.Name, err)
	}
	return cutSample(sample, float64(len(sample))*100/percent, n, minRows), nil
}

// cutSample cuts a sorted sample of a table's keys, standing for rows
// rows, into up to n ranges of at least minRows rows each, and returns
// the keys that end every range but the last.
func cutSample(sample [][]string, rows float64, n int, minRows int64) [][]string {
	n = min(n, int(rows/float64(max(minRows, 1))), len(sample))
	var out [][]string
	for i := 1; i < n; i++ {
		out = append(out, sample[len(sample)*i/n-1])
	}
	return out
}

// fieldOIDs returns the type OIDs of a result's fields.
func fieldOIDs(fields []pgconn.FieldDescription) []uint32 {
	oids := make([]uint32, len(fields))
	for i, f := range fields {
		oids[i] = f.DataTypeOID
	}
	return oids
}

// textRow decodes one result row in text format, of types oids, t's
// columns in table order, as the stream decodes values.
func textRow(t *change.Schema, oids []uint32, vals [][]byte) (change.Row, error) {
	row := make(change.Row, len(vals))
	if err := pgtext.Row(row, t.Columns, oids, vals); err != nil {
		return nil, fmt.Errorf("%s %w", t.Name, err)
	}
	return row, nil
}

// Estimate implements backfill.Reader from the planner's statistics.
func (r *TableReader) Estimate(ctx context.Context, t change.Table) (int64, error) {
	var n float64
	if err := r.pool.QueryRow(ctx, `SELECT reltuples FROM pg_class WHERE oid = $1::regclass`, pgx.Identifier{t.Schema, t.Name}.Sanitize()).Scan(&n); err != nil {
		return 0, fmt.Errorf("estimate rows of %s: %w", t, err)
	}
	return max(0, int64(n)), nil
}

// SlotExists reports whether the slot exists in the source: the stream's
// start position, which a backfill must not precede.
func (s *Source) SlotExists(ctx context.Context) (bool, error) {
	conn, err := pgdsn.Connect(ctx, s.cfg.DSN)
	if err != nil {
		return false, fmt.Errorf("connect to source: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	err = conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database())`, s.cfg.Slot).Scan(&exists)
	if err != nil {
		return false, fmt.Errorf("look up replication slot %s: %w", s.cfg.Slot, err)
	}
	return exists, nil
}

// Load implements backfill's source-load probe: the sessions running a
// statement now, tandem's own excluded.
func (r *TableReader) Load(ctx context.Context) (int, error) {
	var n int
	err := r.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
WHERE state = 'active' AND backend_type = 'client backend' AND pid <> pg_backend_pid() AND application_name NOT LIKE 'tandem%'`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("read source load (pg_stat_activity): %w", err)
	}
	return n, nil
}
