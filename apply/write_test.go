package apply

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/kafka"
	"github.com/tandemcdc/tandem/sink"
	"github.com/tandemcdc/tandem/transform"
)

// fakeSink applies batches in memory as a target would: all or nothing,
// fenced by the stored offsets. A write of a row whose "v" is "bad" is
// rejected; until failures runs out, every Apply fails with failWith.
type fakeSink struct {
	mu       sync.Mutex
	rows     []change.Write // every write applied, in order
	dead     []sink.DeadLetter
	stored   map[topicPartition]int64
	calls    int
	failures int
	failWith error
	forgot   int
}

func (f *fakeSink) Apply(_ context.Context, b sink.Batch, cp sink.Checkpoint) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.failures > 0 {
		f.failures--
		return f.failWith
	}
	for _, o := range cp.Offsets {
		if f.stored[topicPartition{o.Topic, o.Partition}] > o.From {
			return sink.ErrFenced
		}
	}
	for _, w := range b.Writes {
		if w.Row["v"] == "bad" {
			return &sink.Error{Table: w.Table, Reason: sink.ReasonData, Row: true,
				Err: fmt.Errorf("upsert into %s: value too long for type character varying(3) (SQLSTATE 22001)", w.Table)}
		}
	}
	f.rows = append(f.rows, b.Writes...)
	f.dead = append(f.dead, b.DeadLetters...)
	for _, o := range cp.Offsets {
		f.stored[topicPartition{o.Topic, o.Partition}] = o.Next
	}
	return nil
}

func (f *fakeSink) Offsets(context.Context, string, string) ([]sink.Offset, error) { return nil, nil }
func (f *fakeSink) Close() error                                                   { return nil }
func (f *fakeSink) Forget()                                                        { f.mu.Lock(); f.forgot++; f.mu.Unlock() }

// newTestApplier returns an Applier of mapping "m" writing to f, with a
// dead-letter topic on an in-process broker.
func newTestApplier(t *testing.T, f *fakeSink) *Applier {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return New(Config{
		Mapping: &transform.Mapping{Name: "m", From: change.Table{Schema: "s", Name: "items"}},
		Group:   "g", Epoch: "e", Sink: f, DLQ: kafka.NewDLQ(cl, "t.dlq"),
		Metrics: NewMetrics(nil), Log: slog.New(slog.DiscardHandler),
	})
}

// itemUnits returns a batch of one upsert per value, alternating between
// two partitions, at offsets 100, 101, ... on each.
func itemUnits(values ...string) *prepared {
	p := &prepared{}
	next := map[int32]int64{0: 100, 1: 100}
	for i, v := range values {
		part := int32(i % 2)
		rec := &kgo.Record{Topic: "t", Partition: part, Offset: next[part], Key: fmt.Appendf(nil, `{"id":%d}`, i)}
		next[part]++
		p.units = append(p.units, unit{rec: rec, writes: []change.Write{{Table: "items", Op: change.WriteUpsert, Key: []string{"id"},
			Row: map[string]any{"id": int64(i), "v": v}}}})
	}
	return p
}

func TestWrite_RejectedChangesAreDeadLetteredAndTheRestApplyInOrder(t *testing.T) {
	f := &fakeSink{stored: map[topicPartition]int64{}}
	a := newTestApplier(t, f)
	values := []string{"a", "b", "c", "bad", "d", "e", "f", "bad", "g", "h", "i"}
	if err := a.write(t.Context(), itemUnits(values...)); err != nil {
		t.Fatal(err)
	}
	var want, got []int64
	for i, v := range values {
		if v != "bad" {
			want = append(want, int64(i))
		}
	}
	for _, w := range f.rows {
		got = append(got, w.Row["id"].(int64))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rows applied, in order (-want +got):\n%s", diff)
	}
	var deadKeys []string
	for _, d := range f.dead {
		deadKeys = append(deadKeys, string(d.Key))
		if d.Reason != sink.DeadLetterRejected || !strings.Contains(d.Error, "value too long") ||
			!strings.Contains(d.Error, string(d.Key)) || !strings.Contains(d.Error, `items key ["`) {
			t.Errorf("dead letter %+v: want reason rejected and an error with the database's message and the keys", d)
		}
	}
	if diff := cmp.Diff([]string{`{"id":3}`, `{"id":7}`}, deadKeys); diff != "" {
		t.Errorf("dead letters' keys (-want +got):\n%s", diff)
	}
	// 11 records: 6 on partition 0 (100..105), 5 on partition 1.
	if diff := cmp.Diff(map[topicPartition]int64{{"t", 0}: 106, {"t", 1}: 105}, f.stored); diff != "" {
		t.Errorf("stored offsets (-want +got):\n%s", diff)
	}
	if n := testutil.ToFloat64(a.metrics.DLQ.WithLabelValues("m", "rejected")); n != 2 {
		t.Errorf("tandem_dlq_events_total{reason=rejected} = %v, want 2", n)
	}
	if n := testutil.ToFloat64(a.metrics.Paused.WithLabelValues("m")); n != 0 {
		t.Errorf("a mapping rejecting rows is paused (%v)", n)
	}
	if f.calls > 2*len(values) {
		t.Errorf("%d Apply calls for %d records", f.calls, len(values))
	}
}

func TestWrite_AFaultOfTheTablePausesAndRetriesTheWholeBatch(t *testing.T) {
	missing := &sink.Error{Table: "items", Reason: sink.ReasonTableMissing, Err: sink.ErrTableNotFound}
	f := &fakeSink{stored: map[topicPartition]int64{}, failures: 2, failWith: missing}
	a := newTestApplier(t, f)
	if err := a.write(t.Context(), itemUnits("a", "b", "c")); err != nil {
		t.Fatal(err)
	}
	if f.calls != 3 || len(f.rows) != 3 || len(f.dead) != 0 || f.forgot != 2 {
		t.Errorf("%d calls, %d rows, %d dead letters, %d Forgets: want the whole batch retried after each failure, nothing dead-lettered",
			f.calls, len(f.rows), len(f.dead), f.forgot)
	}
	if n := testutil.ToFloat64(a.metrics.Errors.WithLabelValues("items", "table_missing")); n != 2 {
		t.Errorf("tandem_apply_errors_total{reason=table_missing} = %v, want 2", n)
	}
}

func TestWrite_AFencedBatchStopsWithErrFenced(t *testing.T) {
	f := &fakeSink{stored: map[topicPartition]int64{{"t", 1}: 101}}
	a := newTestApplier(t, f)
	err := a.write(t.Context(), itemUnits("a", "b", "bad", "c"))
	if !errors.Is(err, sink.ErrFenced) {
		t.Errorf("write = %v, want ErrFenced", err)
	}
}

func TestWrite_TombstonesAreConsumedWithNothingWritten(t *testing.T) {
	f := &fakeSink{stored: map[topicPartition]int64{}}
	a := newTestApplier(t, f)
	p, stop, err := a.prepare(t.Context(), []*kgo.Record{{Topic: "t", Partition: 0, Offset: 5, Key: []byte(`{"id":1}`)}})
	if err != nil || stop != nil {
		t.Fatalf("prepare: %v, %v", stop, err)
	}
	if err := a.write(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	if len(f.rows) != 0 || len(f.dead) != 0 || f.stored[topicPartition{"t", 0}] != 6 {
		t.Errorf("rows %v, dead letters %v, stored %v: want the tombstone's offset stored and nothing else", f.rows, f.dead, f.stored)
	}
}

// An attempt that times out and, unseen, commits fences the retry with its
// own offsets: the retry ends the pause as it hands the fence back, so the
// mapping does not stay paused (and /readyz failing) once it works again.
func TestRetry_AFenceAfterAFailedAttemptEndsThePause(t *testing.T) {
	a := newTestApplier(t, &fakeSink{})
	attempts := 0
	err := a.retry(t.Context(), "apply batch", func() error {
		attempts++
		if attempts == 1 {
			return context.DeadlineExceeded // the write timed out
		}
		return fmt.Errorf("write batch: %w", sink.ErrFenced)
	})
	if !errors.Is(err, sink.ErrFenced) || attempts != 2 {
		t.Fatalf("retry = %v after %d attempts, want the fence after 2", err, attempts)
	}
	if a.Paused() {
		t.Error("the mapping is still paused after the fenced retry")
	}
	if v := testutil.ToFloat64(a.metrics.Paused.WithLabelValues(a.name)); v != 0 {
		t.Errorf("tandem_mapping_paused = %v, want 0", v)
	}
}
