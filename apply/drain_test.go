package apply

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/kafka"
	"github.com/tandemcdc/tandem/sink"
	"github.com/tandemcdc/tandem/transform"
)

// gatedSink is a target whose Apply waits, as a slow database would,
// until released or its ctx ends (the transaction then rolls back). Once
// released it still gives its ctx linger to end, as a commit takes a while,
// so a write cancelled soon after a stop is caught rolling back.
type gatedSink struct {
	fakeSink
	entered chan struct{} // receives once per Apply that started
	release chan struct{} // closed: Apply goes on
	linger  time.Duration
}

func (g *gatedSink) Apply(ctx context.Context, b sink.Batch, cp sink.Checkpoint) error {
	g.entered <- struct{}{}
	select {
	case <-g.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-time.After(g.linger):
		return g.fakeSink.Apply(ctx, b, cp)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// drainSetup starts an Applier over a topic holding n records, with a
// target that holds its first batch until released.
func drainSetup(t *testing.T, n int) (*Applier, *gatedSink) {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t", "t.dlq"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	for i := range n {
		// Tombstones: nothing to write, but their offsets are committed
		// with a batch like any change's.
		if err := cl.ProduceSync(t.Context(), &kgo.Record{Topic: "t", Key: []byte{byte(i)}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	g := &gatedSink{fakeSink: fakeSink{stored: map[topicPartition]int64{}}, entered: make(chan struct{}, 100), release: make(chan struct{}), linger: 300 * time.Millisecond}
	a := New(Config{
		Mapping: &transform.Mapping{Name: "m", From: change.Table{Schema: "s", Name: "items"}},
		Topic:   "t", Group: "g", Epoch: "e", Seeds: cluster.ListenAddrs(), Sink: g, DLQ: kafka.NewDLQ(cl, "t.dlq"),
		Metrics: NewMetrics(nil), Log: slog.New(slog.DiscardHandler),
	})
	return a, g
}

func TestRunUntil_AStopCommitsTheBatchInHandAndReturns(t *testing.T) {
	a, g := drainSetup(t, 5)
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- a.RunUntil(t.Context(), stop) }()
	select {
	case <-g.entered: // the batch is being written
	case <-time.After(10 * time.Second):
		t.Fatal("no batch written within 10s")
	}
	close(stop)
	close(g.release)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("RunUntil = %v, want nil after a stop", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RunUntil did not return within 10s of the stop")
	}
	if diff := cmp.Diff(map[topicPartition]int64{{"t", 0}: 5}, g.stored); diff != "" {
		t.Errorf("committed offsets (-want +got):\n%s", diff)
	}
}

func TestRunUntil_ADrainPastItsContextRollsBackAndSaysSo(t *testing.T) {
	a, g := drainSetup(t, 5)
	ctx, cancel := context.WithCancel(t.Context())
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- a.RunUntil(ctx, stop) }()
	<-g.entered
	close(stop)
	cancel() // the grace period is over before the target answers
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("RunUntil = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RunUntil did not return within 10s")
	}
	if len(g.stored) != 0 {
		t.Errorf("committed %v, want nothing", g.stored)
	}
}
