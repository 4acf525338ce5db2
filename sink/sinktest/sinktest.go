// Package sinktest holds the behaviour every sink must show: a conformance
// suite (Run) that each sink's tests run against a real database through a
// Harness, so that one copy of the expectations proves PostgreSQL and
// MySQL/MariaDB alike, and helpers for the sinks' own tests. Only _test.go
// files import it.
package sinktest

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/sink"
)

// deadLettersListOldestFirstAndDeleteByName stores dead letters through
// Apply (two batches, two mappings failing on one record) and checks
// DeadLetters, CountDeadLetters and DeleteDeadLetters against s, whose
// store must be empty.
func deadLettersListOldestFirstAndDeleteByName(t *testing.T, s Sink) {
	t.Helper()
	ctx := t.Context()
	dl := func(mapping, topic string, partition int32, offset int64, value string) sink.DeadLetter {
		return sink.DeadLetter{Mapping: mapping, Reason: "transform", Error: "mapping " + mapping + ": to[0].columns.x: division by zero",
			Topic: topic, Partition: partition, Offset: offset, Key: []byte(`{"id":1}`), Value: []byte(value)}
	}
	first := []sink.DeadLetter{
		dl("m1", "t1", 0, 9, `{"after":{"id":1}}`),
		dl("m2", "t1", 0, 9, `{"after":{"id":1}}`), // the same record, failed by another mapping
	}
	// Stored later, at a lower offset of the same partition: listed after.
	second := []sink.DeadLetter{
		dl("m1", "t1", 0, 3, `{"after":{"id":2}}`),
		{Mapping: "m1", Reason: "decode", Error: "malformed change record", Topic: "t2", Partition: 1, Offset: 5, Value: []byte{0, 0xff}},
	}
	for _, b := range [][]sink.DeadLetter{first, second} {
		if err := s.Apply(ctx, sink.Batch{DeadLetters: b}, sink.Checkpoint{}); err != nil {
			t.Fatalf("Apply of dead letters: %v", err)
		}
	}
	list := func(mapping string, limit int) []sink.DeadLetter {
		t.Helper()
		got, err := s.DeadLetters(ctx, mapping, limit)
		if err != nil {
			t.Fatalf("DeadLetters(%q, %d): %v", mapping, limit, err)
		}
		out := make([]sink.DeadLetter, len(got))
		for i, d := range got {
			if d.Stored.IsZero() || i > 0 && d.Stored.Before(got[i-1].Stored) {
				t.Errorf("DeadLetters(%q, %d)[%d] stored at %v, after %v: not oldest first", mapping, limit, i, d.Stored, got[max(0, i-1)].Stored)
			}
			out[i] = d.DeadLetter
		}
		return out
	}
	count := func(mapping string) int {
		t.Helper()
		n, err := s.CountDeadLetters(ctx, mapping)
		if err != nil {
			t.Fatalf("CountDeadLetters(%q): %v", mapping, err)
		}
		return n
	}
	check := func(what string, want, got []sink.DeadLetter) {
		t.Helper()
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s (-want +got):\n%s", what, diff)
		}
	}
	all := append(append([]sink.DeadLetter{}, first...), second...)
	check("every dead letter", all, list("", 0))
	check("m1's first two", []sink.DeadLetter{first[0], second[0]}, list("m1", 2))
	check("m2's", first[1:], list("m2", 10))
	check("an unknown mapping's", nil, list("nope", 0))
	if n, n1, n2 := count(""), count("m1"), count("m2"); n != 4 || n1 != 3 || n2 != 1 {
		t.Errorf("counts: all %d, m1 %d, m2 %d; want 4, 3, 1", n, n1, n2)
	}

	// Deleting by name removes exactly those; a name not stored is skipped.
	gone := []sink.DeadLetterID{first[0].ID(), second[1].ID(), {Mapping: "m1", Topic: "t1", Partition: 0, Offset: 4}}
	n, err := s.DeleteDeadLetters(ctx, gone)
	if err != nil {
		t.Fatalf("DeleteDeadLetters: %v", err)
	}
	if n != 2 {
		t.Errorf("DeleteDeadLetters removed %d, want 2", n)
	}
	check("after the delete", []sink.DeadLetter{first[1], second[0]}, list("", 0))
	if n, err := s.DeleteDeadLetters(ctx, gone); err != nil || n != 0 {
		t.Errorf("DeleteDeadLetters again = %d, %v; want 0, nil", n, err)
	}
	if n, err := s.DeleteDeadLetters(ctx, nil); err != nil || n != 0 {
		t.Errorf("DeleteDeadLetters(nil) = %d, %v; want 0, nil", n, err)
	}
}

// applyWithoutCheckpointWritesRows applies writes with an empty checkpoint,
// as a re-sync does: the rows are written and no offsets stored. items
// reads the target table items (id, name, qty, note), every value in the
// database's text form.
func applyWithoutCheckpointWritesRows(t *testing.T, s Sink, items func() []map[string]any) {
	t.Helper()
	ctx := t.Context()
	key := []string{"id"}
	for _, step := range []struct {
		w    change.Write
		want []map[string]any
	}{
		{change.Write{Table: "items", Op: change.WriteUpsert, Key: key, Row: map[string]any{"id": int64(1), "name": "resynced"}},
			[]map[string]any{{"id": "1", "name": "resynced", "qty": nil, "note": nil}}},
		{change.Write{Table: "items", Op: change.WriteDelete, Key: key, Row: map[string]any{"id": int64(1)}}, nil},
	} {
		if err := s.Apply(ctx, sink.Batch{Writes: []change.Write{step.w}}, sink.Checkpoint{}); err != nil {
			t.Fatalf("Apply of a %s without a checkpoint: %v", step.w.Op, err)
		}
		if diff := cmp.Diff(step.want, items(), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("items after a %s without a checkpoint (-want +got):\n%s", step.w.Op, diff)
		}
	}
	if offs, err := s.Offsets(ctx, "", ""); err != nil || len(offs) != 0 {
		t.Errorf("Offsets after Applies without a checkpoint = %v, %v; want none", offs, err)
	}
}

// ByKey sorts rows by the text of their key columns' values, so results
// whose order is unspecified compare with go-cmp.
func ByKey(key ...string) cmp.Option {
	return cmpopts.SortSlices(func(a, b map[string]any) bool {
		return change.KeyText(key, a) < change.KeyText(key, b)
	})
}

// ReadKeys calls r.ReadKeys and fails t on an error.
func ReadKeys(t *testing.T, r RowReader, table string, key, cols []string, keys ...map[string]any) []map[string]any {
	t.Helper()
	got, err := r.ReadKeys(t.Context(), table, key, cols, keys)
	if err != nil {
		t.Fatalf("ReadKeys(%s, %v): %v", table, keys, err)
	}
	return got
}

// ScanAll pages through every key of table with ScanRows, limit keys at a
// time, and fails t unless each page but the last is full.
func ScanAll(t *testing.T, r RowReader, table string, key []string, limit int) []map[string]any {
	t.Helper()
	var all []map[string]any
	var after map[string]any
	for range 5000 {
		page, err := r.ScanRows(t.Context(), table, key, key, after, limit)
		if err != nil {
			t.Fatalf("ScanKeys(%s, after %v): %v", table, after, err)
		}
		if len(page) > limit {
			t.Fatalf("ScanKeys(%s, limit %d) returned %d keys", table, limit, len(page))
		}
		all = append(all, page...)
		if len(page) < limit {
			return all
		}
		after = page[len(page)-1]
	}
	t.Fatalf("ScanKeys(%s) never ends", table)
	return nil
}
