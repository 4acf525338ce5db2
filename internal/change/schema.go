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

// TextChunk is a chunk of a table read verbatim (a snapshot reader's
// TextChunk) in COPY's text format: a line per row, its values
// tab-separated, \N for NULL, backslash escapes.
type TextChunk struct {
	Cols []string // the source columns of each line, in order
	Data []byte
	Rows int
	Last []string // the text of the last row's key values
	// Decode decodes the rows as Chunk would have (their Cols only), for
	// a chunk that cannot be written verbatim.
	Decode func() ([]Row, error)
}
