package sink

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
		if id := KeyText(key, k); !seen[id] {
			seen[id] = true
			out = append(out, k)
		}
	}
	return out
}
