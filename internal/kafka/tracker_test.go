package kafka

import (
	"testing"

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
	tr.produced(b2, "t", 0, 0) // the later batch is durable first: nothing may be acked
	if len(a.got) != 0 {
		t.Fatalf("acked %v before the first batch was durable", a.got)
	}
	tr.produced(b1, "t", 1, 0)
	tr.produced(b1, "t", 1, 1)
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
	tr.produced(b, "t", 0, 0)
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
	tr.produced(part, "t", 0, 0)
	if len(a.got) != 0 {
		t.Fatalf("acked %v in the middle of a transaction", a.got)
	}
	tr.produced(last, "t", 0, 1)
	if diff := cmp.Diff([]string{"9"}, a.got); diff != "" {
		t.Errorf("acks (-want +got):\n%s", diff)
	}
}

func TestTracker_EmbeddedWaitsForEveryReadingGroup(t *testing.T) {
	a := &acks{}
	tr := NewTracker(false, map[string][]string{"orders": {"g1", "g2"}}, a.ack)
	b := tr.begin(pos("1"), 2)
	tr.produced(b, "orders", 0, 0)
	tr.produced(b, "orders", 1, 0)
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
	tr.produced(b, "orders", 0, 4)
	if diff := cmp.Diff([]string{"1"}, a.got); diff != "" {
		t.Errorf("acks (-want +got):\n%s", diff)
	}
}

func TestTracker_EmbeddedTopicWithoutReadersIsDurableOnProduce(t *testing.T) {
	a := &acks{}
	tr := NewTracker(false, map[string][]string{}, a.ack)
	b := tr.begin(pos("1"), 1)
	tr.seal(b)
	tr.produced(b, "unmapped", 0, 0)
	if diff := cmp.Diff([]string{"1"}, a.got); diff != "" {
		t.Errorf("acks (-want +got):\n%s", diff)
	}
}
