package backfill

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/kafka"
	"github.com/tandemcdc/tandem/sink"
)

// rejectingSink writes batches all or nothing, and rejects one holding a
// row whose "v" is "bad", as a target refusing a value too long.
type rejectingSink struct {
	rows []int64
	dead []sink.DeadLetter
}

func (r *rejectingSink) Apply(_ context.Context, b sink.Batch, _ sink.Checkpoint) error {
	for _, w := range b.Writes {
		if w.Row["v"] == "bad" {
			return &sink.Error{Table: w.Table, Reason: sink.ReasonData, Row: true, Err: fmt.Errorf("copy into %s: value too long (SQLSTATE 22001)", w.Table)}
		}
	}
	for _, w := range b.Writes {
		r.rows = append(r.rows, w.Row["id"].(int64))
	}
	r.dead = append(r.dead, b.DeadLetters...)
	return nil
}

func (r *rejectingSink) Offsets(context.Context, string, string) ([]sink.Offset, error) {
	return nil, nil
}
func (r *rejectingSink) Close() error { return nil }

func TestCopyWriter_ARowTheTargetRefusesIsDeadLetteredAndTheChunkWritten(t *testing.T) {
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
	dlq := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dlq"}, []string{"mapping", "reason"})
	tgt := &rejectingSink{}
	w := &copyWriter{sink: tgt, enc: &change.Encoder{Connector: "mysql", Name: "p"}, prefix: "p", dlq: kafka.NewDLQ(cl, "p.dlq"),
		metrics: WriteMetrics{Rows: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rows"}, []string{"table", "op"}),
			Errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "errors"}, []string{"table", "reason"}), DLQ: dlq},
		log: slog.New(slog.DiscardHandler)}
	table := change.Table{Schema: "s", Name: "items"}
	var units []copyUnit
	for i, v := range []string{"a", "b", "bad", "c", "d", "bad", "e"} {
		ev := &change.Event{Op: change.OpRead, Table: table, Key: []string{"id"}, Types: map[string]change.Type{"id": change.TypeInt, "v": change.TypeString},
			After: change.Row{"id": int64(i), "v": v}}
		units = append(units, copyUnit{mapping: "m", ev: ev, writes: []change.Write{{Table: "items", Op: change.WriteCopy, Key: []string{"id"}, Row: ev.After}}})
	}
	if err := w.apply(t.Context(), units); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int64{0, 1, 3, 4, 6}, tgt.rows); diff != "" {
		t.Errorf("rows written (-want +got):\n%s", diff)
	}
	if len(tgt.dead) != 2 {
		t.Fatalf("dead letters %+v, want 2", tgt.dead)
	}
	for i, d := range tgt.dead {
		if want := fmt.Sprintf(`["%d"]`, []int{2, 5}[i]); d.Reason != sink.DeadLetterRejected || !strings.Contains(d.Error, want) || !strings.Contains(d.Error, "value too long") {
			t.Errorf("dead letter %d = %+v: want reason rejected, the row's key %s and the database's error", i, d, want)
		}
	}
}
