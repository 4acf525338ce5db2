package apply

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/poll"
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

// TestLag_GrowsInRealTimeWhileABatchWaits: a batch polled 10 s after its
// change committed and not yet written (the target hangs, the mapping is
// paused) makes the lag grow every interval, not only when a write is
// attempted; once written, the lag is no longer set from it.
func TestLag_GrowsInRealTimeWhileABatchWaits(t *testing.T) {
	a := newTestApplier(t, &fakeSink{stored: map[topicPartition]int64{}})
	enc := &change.Encoder{Version: "test", Connector: "postgresql", Name: "t", DB: "s"}
	committed := time.Now().Add(-10 * time.Second)
	v, err := enc.Value(&change.Event{Op: change.OpCreate, Table: change.Table{Schema: "s", Name: "items"}, Key: []string{"id"},
		Types: map[string]change.Type{"id": change.TypeInt}, After: change.Row{"id": int64(1)}, Pos: change.TextPosition("0/1"), Commit: committed})
	if err != nil {
		t.Fatal(err)
	}
	a.transformFn = upsertItem
	if _, _, err := a.prepare(t.Context(), []*kgo.Record{{Topic: "t", Value: v}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { a.watchLag(ctx, 10*time.Millisecond); close(done) }()
	defer func() { cancel(); <-done }()
	var first time.Duration
	_, err = poll.Until(t.Context(), 5*time.Millisecond, 5*time.Second, func() (bool, error) {
		first = a.Lag()
		return first >= 10*time.Second, nil
	})
	if err != nil {
		t.Fatalf("lag %s while the batch waits, want at least the 10 s since its change committed: %v", first, err)
	}
	_, err = poll.Until(t.Context(), 5*time.Millisecond, 5*time.Second, func() (bool, error) { return a.Lag() >= first+50*time.Millisecond, nil })
	if err != nil {
		t.Fatalf("lag stayed at %s while the batch waited: %v", a.Lag(), err)
	}
	a.written()
	if o, ok := a.oldestPending(); ok {
		t.Errorf("after the batch is written the oldest pending change is %s, want none", o)
	}
}
