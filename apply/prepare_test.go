package apply

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tandemcdc/tandem/internal/change"
)

// itemRecords encodes an insert of items row id for each of ids (0: a
// tombstone; -1: a value that does not decode), at offsets 0, 1, ...
func itemRecords(t *testing.T, ids ...int64) []*kgo.Record {
	t.Helper()
	enc := &change.Encoder{Version: "test", Connector: "postgresql", Name: "t", DB: "s"}
	var recs []*kgo.Record
	for i, id := range ids {
		rec := &kgo.Record{Topic: "t", Offset: int64(i)}
		switch id {
		case 0:
		case -1:
			rec.Value = []byte(`{"payload": 1}`)
		default:
			v, err := enc.Value(&change.Event{Op: change.OpCreate, Table: change.Table{Schema: "s", Name: "items"}, Key: []string{"id"},
				Types: map[string]change.Type{"id": change.TypeInt}, After: change.Row{"id": id}, Pos: change.TextPosition("0/1")})
			if err != nil {
				t.Fatal(err)
			}
			rec.Value = v
		}
		recs = append(recs, rec)
	}
	return recs
}

// upsertItem is a Transformer writing the items row of the change.
func upsertItem(_ context.Context, ev *change.Event) ([]change.Write, string, error) {
	return []change.Write{{Table: "items", Op: change.WriteUpsert, Key: []string{"id"}, Row: ev.After}}, "", nil
}

func TestPrepare_IsCalledOnceABatchWithItsChangesBeforeAnyIsTransformed(t *testing.T) {
	f := &fakeSink{stored: map[topicPartition]int64{}}
	a := newTestApplier(t, f)
	var calls [][]int64
	var transformed []int64
	a.prepareFn = func(_ context.Context, evs []*change.Event) error {
		if len(transformed) > 0 {
			t.Errorf("Prepare called after %d changes were transformed", len(transformed))
		}
		var ids []int64
		for _, ev := range evs {
			ids = append(ids, ev.After["id"].(int64))
		}
		calls = append(calls, ids)
		return nil
	}
	a.transformFn = func(ctx context.Context, ev *change.Event) ([]change.Write, string, error) {
		transformed = append(transformed, ev.After["id"].(int64))
		return upsertItem(ctx, ev)
	}
	p, stop, err := a.prepare(t.Context(), itemRecords(t, 1, 0, 2, -1, 3))
	if err != nil || stop != nil {
		t.Fatalf("prepare: %v, %v", stop, err)
	}
	// The tombstone and the record that does not decode are not changes.
	if diff := cmp.Diff([][]int64{{1, 2, 3}}, calls); diff != "" {
		t.Errorf("Prepare calls, with the changes' ids (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int64{1, 2, 3}, transformed); diff != "" {
		t.Errorf("changes transformed (-want +got):\n%s", diff)
	}
	if len(p.units) != 5 || p.units[1].writes != nil || p.units[3].dead == nil {
		t.Errorf("units %+v: want five, the tombstone with nothing to write, the undecodable record dead-lettered", p.units)
	}
}

func TestPrepare_AFailureIsRetriedAndDeadLettersNothing(t *testing.T) {
	f := &fakeSink{stored: map[topicPartition]int64{}}
	a := newTestApplier(t, f)
	failures := 2
	a.prepareFn = func(context.Context, []*change.Event) error {
		if failures > 0 {
			failures--
			return errors.New("connection refused")
		}
		return nil
	}
	a.transformFn = upsertItem
	p, stop, err := a.prepare(t.Context(), itemRecords(t, 1, 2))
	if err != nil || stop != nil {
		t.Fatalf("prepare: %v, %v", stop, err)
	}
	if failures != 0 {
		t.Errorf("Prepare not retried until it worked: %d failures left", failures)
	}
	for i, u := range p.units {
		if u.dead != nil || len(u.writes) != 1 {
			t.Errorf("unit %d: dead letter %v, %d writes: want its write, no dead letter", i, u.dead, len(u.writes))
		}
	}
	if n := testutil.ToFloat64(a.metrics.Paused.WithLabelValues("m")); n != 0 {
		t.Errorf("tandem_mapping_paused = %v once Prepare worked, want 0", n)
	}
}
