package reconcile

import "context"

// RowReader reads target rows for the reconciler. Values are typed as
// transform.Lookuper types them: int64 for integer columns, float64 for floating
// point, bool, []byte for binary, the exact text form (string) for
// everything else, read in UTC and ISO formats; NULL as nil. It reads in
// short statements, never holding locks that block writers.
type RowReader interface {
	// ColumnTypes returns the SQL type of each column of table, lowercase,
	// as the database names it ("numeric(12,2)", "timestamp with time
	// zone", "jsonb"; MySQL: "decimal(12,2)", "datetime(6)", "json").
	ColumnTypes(ctx context.Context, table string) (map[string]string, error)
	// ReadKeys returns the rows of table whose key columns hold the values
	// of one of keys (each a map of key column to value), with the columns
	// cols (which include the key). Rows not found are simply absent; the
	// order is unspecified.
	ReadKeys(ctx context.Context, table string, key, cols []string, keys []map[string]any) ([]map[string]any, error)
	// ScanRows returns up to limit rows of table, with the columns cols
	// (which include the key), in key order, after the key after (nil:
	// from the first). A row whose key holds NULL is left out.
	ScanRows(ctx context.Context, table string, key, cols []string, after map[string]any, limit int) ([]map[string]any, error)
}
