package kafka

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestTrim_DropsTheEmbeddedBrokersRecordsBelowTheOffsets(t *testing.T) {
	e, err := StartEmbedded(2, "t")
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(e.Addrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner())}, e.ClientOpts()...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	for i := 0; i < 100; i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "t", Partition: 0, Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if err := Trim(ctx, cl, map[string]map[int32]int64{"t": {0: 60}}); err != nil {
		t.Fatal(err)
	}
	starts, err := kadm.NewClient(cl).ListStartOffsets(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := starts.Lookup("t", 0); o.Offset != 60 {
		t.Errorf("partition 0 starts at %d after trimming below 60", o.Offset)
	}
}
