package backfill

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/tandemcdc/tandem/internal/change"
)

// This file is how one table is copied by several workers at once: its
// keys are cut into ranges (SplitReader.Split), each range is copied by
// keyset pagination from its start to its end, as a whole table is, and
// each range's last durable key is saved.
//
// A range holds the keys after its start (exclusive) up to its end
// (inclusive): range i of n runs from boundary i-1 to boundary i, the
// first from the table's start, the last to its end, so that rows
// inserted above the last key sampled are copied too. The package doc's
// argument is about one chunk at a time and holds for the chunks of any
// range: each is one consistent read, written under the table's copy
// lock, after the backfill was marked running.
//
// The ranges are fixed when the table's copy starts and saved with its
// progress (sink.BackfillProgress.After, as rangeProgress), so a resumed
// copy copies the same ranges, each after its own last durable key. A
// table copied as one range saves its last key as earlier versions did
// (encodeKey), and progress they saved resumes as one range.

// SplitReader is a Reader that can cut a table's keys into ranges and
// read the chunks of one range, for copying one table with several
// workers (Config.Parallel).
type SplitReader interface {
	Reader
	// Split returns up to n-1 keys, ascending, that cut t's rows into
	// ranges of about equal size and of at least minRows rows each, by a
	// sample of the table; none when it is too small to cut. Each key is
	// the text of a row's key values, as Chunk returns last.
	Split(ctx context.Context, t *change.Schema, n int, minRows int64) ([][]string, error)
	// RangeChunk reads what Chunk reads, of the rows whose key is at most
	// until only (nil: no bound).
	RangeChunk(ctx context.Context, t *change.Schema, after, until []string, limit int) (rows []change.Row, last []string, err error)
}

// SplitTextReader is a TextReader that can read a range's chunks
// verbatim: a table read verbatim is split only by one.
type SplitTextReader interface {
	SplitReader
	TextReader
	// RangeTextChunk reads what TextChunk reads, of the rows whose key is
	// at most until only (nil: no bound).
	RangeTextChunk(ctx context.Context, t *change.Schema, cols []string, after, until []string, limit int) (*change.TextChunk, error)
}

// keyRange is one range of a table's copy, as saved.
type keyRange struct {
	After []string `json:"after"` // the last durable key; at first the range's start (nil: the table's start)
	Until []string `json:"until"` // the range's last key (nil: the table's end)
	Rows  int64    `json:"rows"`  // rows of the range copied and durable
	Done  bool     `json:"done,omitempty"`
}

// rangeProgress is how the progress of a table copied in several ranges
// is saved, in sink.BackfillProgress.After.
type rangeProgress struct {
	Ranges []*keyRange `json:"ranges"`
}

// newRanges cuts the keys at bounds (ascending): the ranges from the start
// to bounds[0], ..., from the last of bounds to the end.
func newRanges(bounds [][]string) []*keyRange {
	out := make([]*keyRange, 0, len(bounds)+1)
	var from []string
	for _, b := range bounds {
		out = append(out, &keyRange{After: from, Until: b})
		from = b
	}
	return append(out, &keyRange{After: from})
}

// encodeRanges renders ranges as saved progress: one range as its last
// key alone (as versions that copied a table in one range saved it),
// several as a rangeProgress.
func encodeRanges(ranges []*keyRange) string {
	if len(ranges) == 1 && ranges[0].Until == nil {
		return encodeKey(ranges[0].After)
	}
	b, _ := json.Marshal(rangeProgress{Ranges: ranges})
	return string(b)
}

// decodeRanges reads saved progress: after as encodeRanges wrote it (or
// an earlier version: a last key, or "" before the first chunk), rows the
// table's rows saved. A last key alone is one range holding every row.
func decodeRanges(after string, rows int64) ([]*keyRange, error) {
	if !strings.HasPrefix(after, "{") {
		k, err := decodeKey(after)
		if err != nil {
			return nil, err
		}
		return []*keyRange{{After: k, Rows: rows}}, nil
	}
	var p rangeProgress
	if err := json.Unmarshal([]byte(after), &p); err != nil {
		return nil, fmt.Errorf("saved key ranges %.200q: %w", after, err)
	}
	if len(p.Ranges) == 0 {
		return nil, fmt.Errorf("saved key ranges %.200q: no range", after)
	}
	var sum int64
	for i, r := range p.Ranges {
		if r == nil || (r.Until == nil && i < len(p.Ranges)-1) || (r.After != nil && len(r.After) == 0) || (r.Until != nil && len(r.Until) == 0) {
			return nil, fmt.Errorf("saved key ranges %.200q: range %d is malformed", after, i+1)
		}
		sum += r.Rows
	}
	if sum != rows {
		return nil, fmt.Errorf("saved key ranges %.200q: their rows add up to %d, the table's progress says %d", after, sum, rows)
	}
	return p.Ranges, nil
}
