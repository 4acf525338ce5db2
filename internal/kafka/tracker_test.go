package kafka

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/internal/change"
)

type pos string

func (p pos) String() string { return string(p) }

// acks collects what the tracker acknowledges.
type acks struct{ got []string }

func (a *acks) ack(p change.Position) { a.got = append(a.got, p.String()) }

func TestTracker_ProduceAckedAcksInOrderOnly(t *testing.T) {
	a := &acks{}
	tr := NewTracker(true, nil, a.ack)
	b1 := tr.begin(pos("1"), 2)
	b2 := tr.begin(pos("2"), 1)
	tr.seal(b1)
	tr.seal(b2)
	tr.produced(b2, "t", 0, 0, 1) // the later batch is durable first: nothing may be acked
	if len(a.got) != 0 {
		t.Fatalf("acked %v before the first batch was durable", a.got)
	}
	tr.produced(b1, "t", 1, 0, 1)
	tr.produced(b1, "t", 1, 1, 1)
	if diff := cmp.Diff([]string{"2"}, a.got); diff != "" {
		t.Errorf("acks (-want +got):\n%s", diff)
	}
	if n := tr.inFlight(); n != 0 {
		t.Errorf("inFlight = %d, want 0", n)
	}
}

func TestTracker_UnsealedBatchHoldsBack(t *testing.T) {
	a := &acks{}
	tr := NewTracker(true, nil, a.ack)
	b := tr.begin(pos("1"), 1)
	tr.produced(b, "t", 0, 0, 1)
	if len(a.got) != 0 {
		t.Fatalf("acked %v before the batch was sealed", a.got)
	}
	tr.seal(b)
	if diff := cmp.Diff([]string{"1"}, a.got); diff != "" {
		t.Errorf("acks (-want +got):\n%s", diff)
	}
}

func TestTracker_InterimBatchesAckOnlyAtTransactionEnd(t *testing.T) {
	a := &acks{}
	tr := NewTracker(true, nil, a.ack)
	part := tr.begin(nil, 1)
	last := tr.begin(pos("9"), 1)
	tr.seal(part)
	tr.seal(last)
	tr.produced(part, "t", 0, 0, 1)
	if len(a.got) != 0 {
		t.Fatalf("acked %v in the middle of a transaction", a.got)
	}
	tr.produced(last, "t", 0, 1, 1)
	if diff := cmp.Diff([]string{"9"}, a.got); diff != "" {
		t.Errorf("acks (-want +got):\n%s", diff)
	}
}

func TestTracker_EmbeddedWaitsForEveryReadingGroup(t *testing.T) {
	a := &acks{}
	tr := NewTracker(false, map[string][]string{"orders": {"g1", "g2"}}, a.ack)
	b := tr.begin(pos("1"), 2)
	tr.produced(b, "orders", 0, 0, 1)
	tr.produced(b, "orders", 1, 0, 1)
	tr.seal(b)
	tr.Committed("g1", "orders", 0, 1)
	tr.Committed("g1", "orders", 1, 1)
	if len(a.got) != 0 {
		t.Fatalf("acked %v while group g2 had not committed", a.got)
	}
	tr.Committed("g2", "orders", 0, 1)
	if len(a.got) != 0 {
		t.Fatalf("acked %v while partition 1 was not committed by g2", a.got)
	}
	tr.Committed("g2", "orders", 1, 1)
	if diff := cmp.Diff([]string{"1"}, a.got); diff != "" {
		t.Errorf("acks (-want +got):\n%s", diff)
	}
}

func TestTracker_EmbeddedCommitSeenBeforeProduceCallback(t *testing.T) {
	a := &acks{}
	tr := NewTracker(false, map[string][]string{"orders": {"g"}}, a.ack)
	b := tr.begin(pos("1"), 1)
	tr.seal(b)
	tr.Committed("g", "orders", 0, 5) // the consumer was faster than the producer's callback
	tr.produced(b, "orders", 0, 4, 1)
	if diff := cmp.Diff([]string{"1"}, a.got); diff != "" {
		t.Errorf("acks (-want +got):\n%s", diff)
	}
}

func TestTracker_EmbeddedTopicWithoutReadersIsDurableOnProduce(t *testing.T) {
	a := &acks{}
	tr := NewTracker(false, map[string][]string{}, a.ack)
	b := tr.begin(pos("1"), 1)
	tr.seal(b)
	tr.produced(b, "unmapped", 0, 0, 1)
	if diff := cmp.Diff([]string{"1"}, a.got); diff != "" {
		t.Errorf("acks (-want +got):\n%s", diff)
	}
}

// roomNow reports whether room returns at once (nil) rather than waiting.
func roomNow(t *testing.T, tr *Tracker) bool {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // a room that must wait returns ctx's error instead
	err := tr.room(ctx)
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("room: %v", err)
	}
	return err == nil
}

func TestTracker_EmbeddedHoldsAtMostMaxHeldBytesUntilCommitted(t *testing.T) {
	a := &acks{}
	tr := NewTracker(false, map[string][]string{"orders": {"g"}}, a.ack, MaxHeld(100))
	b := tr.begin(pos("1"), 2)
	tr.produced(b, "orders", 0, 0, 60)
	if !roomNow(t, tr) {
		t.Fatal("the publisher waits with 60 bytes held of 100")
	}
	tr.produced(b, "orders", 1, 0, 40)
	tr.seal(b)
	if roomNow(t, tr) {
		t.Fatal("the publisher goes on with 100 bytes held of 100")
	}
	waited := make(chan error, 1)
	go func() { waited <- tr.room(context.Background()) }()
	tr.Committed("g", "orders", 0, 1) // frees 60 bytes
	select {
	case err := <-waited:
		if err != nil {
			t.Fatalf("room after a commit freed bytes: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the publisher still waits after a commit freed 60 of the 100 bytes held")
	}
	if !roomNow(t, tr) {
		t.Fatal("the publisher waits with 40 bytes held of 100")
	}
	tr.Committed("g", "orders", 1, 1)
	if diff := cmp.Diff([]string{"1"}, a.got); diff != "" {
		t.Errorf("acks (-want +got):\n%s", diff)
	}
}

func TestTracker_MaxHeldDoesNotBoundWhatAClusterAcknowledged(t *testing.T) {
	tr := NewTracker(true, map[string][]string{"orders": {"g"}}, (&acks{}).ack, MaxHeld(10))
	b := tr.begin(pos("1"), 1)
	tr.produced(b, "orders", 0, 0, 1000)
	tr.seal(b)
	if !roomNow(t, tr) {
		t.Fatal("the publisher waits for records an external cluster acknowledged")
	}
}
