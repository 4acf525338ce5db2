package app_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/fixture/shop"
	"github.com/tandemcdc/tandem/internal/kafka"
)

// TestRun_RecordsThatDoNotDecodeAreDeadLetteredAndTheStreamGoesOn writes
// forged and corrupt records onto a running pipeline's topic (over an
// external cluster: the embedded broker takes no other client): bytes that
// are no JSON, with NUL bytes and invalid UTF-8 in key and value, JSON of
// the wrong shape, an envelope with an unknown op or a value of the wrong
// kind, a truncated envelope. Each is dead-lettered (reason decode) with
// its key, the mapping never pauses, and the real changes written around
// them arrive.
func TestRun_RecordsThatDoNotDecodeAreDeadLetteredAndTheStreamGoesOn(t *testing.T) {
	ctx := context.Background()
	cluster := externalKafka(t)
	m := newMigration(t)
	cfg := parseConfig(t, shop.Config(shop.ConfigOptions{Slot: slotFor(t, m), SourceDSN: m.SrcDSN, TargetDSN: m.TgtDSN, Brokers: cluster.ListenAddrs()}))
	r := start(t, cfg)
	topic := kafka.Topic(cfg.Kafka.TopicPrefix, change.Table{Schema: "shop", Name: "orders"})

	if _, err := m.Src.Exec(ctx, `INSERT INTO shop.orders (id, customer_id, total, status, payment_method) VALUES (1, 1, 1.00, 'paid', 'card')`); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, m, 30*time.Second)

	forged := []*kgo.Record{
		{Key: []byte("\x00\xff\xfe not a key"), Value: []byte("\x00\x01\x02\xff\xfe binary junk")},
		{Key: []byte(`{"id":90}`), Value: []byte(`not json`)},
		{Key: []byte(`{"id":91}`), Value: []byte(`[1, 2, 3]`)},
		{Key: []byte(`{"id":92}`), Value: []byte(`{"before":null,"after":{"id":92},"source":{"schema":"shop","table":"orders"},"op":"x"}`)},
		{Key: []byte(`{"id":93}`), Value: []byte(`{"before":null,"after":{"id":"ninety-three"},"source":{"schema":"shop","table":"orders","types":{"id":"int64"}},"op":"c"}`)},
		{Key: []byte(`{"id":94}`), Value: []byte(`{"before":null,"after":{"id":94,"total":"1.00","sta`)},
		{Key: []byte(`{"id":95}`), Value: []byte("{\"before\":null,\"after\":{\"id\":95,\"status\":\"\xff\x00\"},\"op\":\"c\"")},
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, forged...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Src.Exec(ctx, `INSERT INTO shop.orders (id, customer_id, total, status, payment_method) VALUES (2, 1, 2.00, 'paid', 'card')`); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Src.Exec(ctx, `UPDATE shop.orders SET status = 'shipped' WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, m, 30*time.Second)

	var dls []string // each dead letter's reason and key
	for _, d := range deadLettersOf(t, cfg, "shop.orders") {
		dls = append(dls, d.Reason+" "+string(d.Key))
		if !strings.Contains(d.Error, "malformed") && !strings.Contains(d.Error, "unknown op") {
			t.Errorf("dead letter of %q: error %q does not say the record is malformed", d.Key, d.Error)
		}
	}
	var want []string
	for _, f := range forged {
		want = append(want, "decode "+string(f.Key))
	}
	slices.Sort(want)
	slices.Sort(dls)
	if diff := cmp.Diff(want, dls); diff != "" {
		t.Errorf("dead letters, reason and key (-want +got):\n%s", diff)
	}
	labels := map[string]string{"mapping": "shop.orders"}
	if v, _ := metricValue(t, r.Reg, "tandem_mapping_paused", labels); v != 0 {
		t.Errorf("tandem_mapping_paused = %v, want 0", v)
	}
	labels["reason"] = "decode"
	if v, _ := metricValue(t, r.Reg, "tandem_dlq_events_total", labels); v != float64(len(forged)) {
		t.Errorf("tandem_dlq_events_total{reason=decode} = %v, want %d", v, len(forged))
	}
	if err := r.Failed(); err != nil {
		t.Fatal(err)
	}
}
