package kafka

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestEmbedded_TakesOnlyTandemsOwnClients: a client with ClientOpts writes
// and reads the embedded broker's topics; one without them (another local
// process on the loopback port) can do neither.
func TestEmbedded_TakesOnlyTandemsOwnClients(t *testing.T) {
	e, err := StartEmbedded(1, "t")
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	produce := func(value string, opts ...kgo.Opt) error {
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(e.Addrs()...)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer cancel()
		return cl.ProduceSync(ctx, &kgo.Record{Topic: "t", Value: []byte(value)}).FirstErr()
	}
	if err := produce("forged"); err == nil {
		t.Error("a client without the broker's credentials wrote a record")
	}
	if err := produce("own", e.ClientOpts()...); err != nil {
		t.Fatalf("tandem's own client: %v", err)
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(e.Addrs()...), kgo.ConsumeTopics("t"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, e.ClientOpts()...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	var got []string
	for len(got) < 1 && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	if len(got) != 1 || got[0] != "own" {
		t.Errorf("records in the topic: %q, want only the one tandem's client wrote", got)
	}
}
