package transform

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/sink"
)

// Lookuper reads one target row by column values, for mapping lookups
// (lookup("schema.table", {"legacy_id": row.customer_id}) finds the id the
// new system gave a row the old one knew by another).
type Lookuper interface {
	// Lookup returns the row of table whose columns equal where's values
	// (all of them), found=false when there is none. More than one
	// matching row is a *sink.Error naming the table and columns, with reason
	// not_unique, wrapping sink.ErrNotUnique (the lookup columns must be unique).
	//
	// Values come back as the capturers type them: int64 for integer
	// columns, float64 for floating point, bool, []byte for binary, and
	// the exact text form (string) for everything else (numeric, uuid,
	// timestamps, json...); NULL as nil.
	//
	// A nil value in where matches no row, as SQL's = does: the result is
	// found=false without a query. (IS NULL would not do: a unique index
	// admits any number of NULLs, and a source row without a reference
	// has no target row to find.) An empty where is an error. A table or
	// column the target lacks is a *sink.Error wrapping sink.ErrTableNotFound or
	// sink.ErrColumnNotFound.
	//
	// Lookup blocks on one query (a table's description is read once and
	// cached); callers cache rows. Safe for concurrent use.
	Lookup(ctx context.Context, table string, where map[string]any) (row map[string]any, found bool, err error)
}

// ErrLookupUnavailable is wrapped by an evaluation error when lookup()
// could not ask the target (connection lost, table missing, timeout): the
// change is fine, the target is not, so the caller retries instead of
// sending the change to the dead-letter topic.
var ErrLookupUnavailable = errors.New("the target could not answer a lookup")

// Lookup cache bounds: ids the new system assigned do not change, so found
// rows are kept a while; rows not found are never cached (they may appear).
const (
	lookupCacheRows = 100_000
	lookupCacheTTL  = 10 * time.Minute
	lookupTimeout   = 30 * time.Second
)

// lookups is one mapping's lookup() binding and its cache of found rows.
// The cache is a plain LRU whose entries carry their time: expirable.LRU
// starts a goroutine per cache that never ends, and mappings are compiled
// again and again (check, run, each reconcile connection).
type lookups struct {
	target Lookuper // nil: lookup() fails when evaluated
	cache  *lru.Cache[string, foundRow]
}

// foundRow is a cached lookup result and when it was read.
type foundRow struct {
	row map[string]any
	at  time.Time
}

func newLookups(target Lookuper) *lookups {
	cache, err := lru.New[string, foundRow](lookupCacheRows)
	if err != nil {
		panic(fmt.Sprintf("lookup cache: %v", err)) // only for a size <= 0
	}
	return &lookups{target: target, cache: cache}
}

// function declares lookup(table, where) -> map: the one target row of table
// whose columns equal where's values. No such row is an evaluation error
// (the change goes to the dead-letter topic, and `tandem dlq replay` re-syncs
// it once the row exists). Its implementation is bound per evaluation (op),
// so that the lookup's query runs under the caller's context.
func (l *lookups) function() cel.EnvOption {
	return cel.Function("lookup",
		cel.Overload("lookup_string_map", []*cel.Type{cel.StringType, cel.MapType(cel.StringType, cel.DynType)},
			cel.MapType(cel.StringType, cel.DynType), cel.LateFunctionBinding()))
}

// op is lookup()'s implementation for one evaluation under ctx.
func (l *lookups) op(ctx context.Context) cel.LateBoundFunction {
	return func(_ string, args ...ref.Val) ref.Val {
		if len(args) != 2 {
			return types.NewErr("lookup: want a table and the columns to match, got %d arguments", len(args))
		}
		table, where := args[0], args[1]
		t, ok := table.(types.String)
		if !ok {
			return types.NewErr("lookup: the table must be a string, is %s", table.Type())
		}
		w, err := where.ConvertToNative(reflect.TypeOf(map[string]any{}))
		if err != nil {
			return types.NewErr("lookup in %s: the columns to match: %v", t, err)
		}
		row, err := l.find(ctx, string(t), w.(map[string]any))
		if err != nil {
			return types.WrapErr(err)
		}
		return types.DefaultTypeAdapter.NativeToValue(row)
	}
}

// find returns the row from the cache or the target.
func (l *lookups) find(ctx context.Context, table string, where map[string]any) (map[string]any, error) {
	if l.target == nil {
		return nil, fmt.Errorf("lookup in %s: no target to look rows up in here", table)
	}
	key := lookupKey(table, where)
	if f, ok := l.cache.Get(key); ok && time.Since(f.at) < lookupCacheTTL {
		return f.row, nil
	}
	if len(where) == 0 {
		return nil, fmt.Errorf("lookup in %s: no columns to match", table)
	}
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	row, found, err := l.target.Lookup(ctx, table, where)
	var se *sink.Error
	switch {
	case errors.Is(err, sink.ErrNotUnique), errors.As(err, &se) && se.Reason == sink.ReasonData:
		// This row's values are wrong for the lookup (several matches, a
		// value its column cannot hold): a dead letter.
		return nil, err
	case err != nil:
		// The target cannot answer (connection, timeout, a table or column
		// missing until it is created): retry, the mapping paused.
		return nil, fmt.Errorf("%w: %w", ErrLookupUnavailable, err)
	case !found:
		return nil, fmt.Errorf("lookup in %s: no row where %s", table, describeWhere(where))
	}
	l.cache.Add(key, foundRow{row: row, at: time.Now()})
	return row, nil
}

// lookupKey is the cache key of a lookup: the table and the where values by
// change.KeyText, which gives equal values one text.
func lookupKey(table string, where map[string]any) string {
	cols := make([]string, 0, len(where))
	for c := range where {
		cols = append(cols, c)
	}
	slices.Sort(cols)
	return table + "\x00" + strings.Join(cols, "\x00") + "\x00" + change.KeyText(cols, where)
}

func describeWhere(where map[string]any) string {
	cols := make([]string, 0, len(where))
	for c := range where {
		cols = append(cols, c)
	}
	slices.Sort(cols)
	parts := make([]string, len(cols))
	for i, c := range cols {
		if s, ok := where[c].(string); ok {
			parts[i] = fmt.Sprintf("%s = %s", c, quoted(s)) // hidden characters show
		} else {
			parts[i] = fmt.Sprintf("%s = %v", c, where[c])
		}
	}
	return strings.Join(parts, " and ")
}
