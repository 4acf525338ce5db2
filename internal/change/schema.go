package change

import "time"

// Schema is a source table's shape as capturers and the backfill read it:
// its columns in table order, their logical types and its primary key.
type Schema struct {
	Name    Table
	Columns []string        // in table order
	Types   map[string]Type // as the stream's capturer types them
	Key     []string        // primary key columns, in key order
}

// Reads returns rows of the table as "r" changes, as a snapshot or
// backfill reads them.
func (s *Schema) Reads(rows []Row) []Event {
	events := make([]Event, len(rows))
	now := time.Now()
	for i, row := range rows {
		events[i] = Event{Op: OpRead, Table: s.Name, Key: s.Key, Types: s.Types, Columns: s.Columns, After: row, Commit: now}
	}
	return events
}
