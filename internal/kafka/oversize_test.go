package kafka

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/internal/poll"
)

// batchSource is a capture.Source that emits its batches in order, each
// once the one before it is acknowledged, then waits: the source faked,
// the broker real.
type batchSource struct {
	batches []change.Batch
	mu      sync.Mutex
	acked   string
}

func (s *batchSource) Stream(ctx context.Context, emit func(context.Context, change.Batch) error) error {
	for _, b := range s.batches {
		if err := emit(ctx, b); err != nil {
			return err
		}
		if _, err := poll.Until(ctx, 5*time.Millisecond, 10*time.Second, func() (bool, error) { return s.ackedPos() == b.Pos.String(), nil }); err != nil {
			return err
		}
	}
	<-ctx.Done()
	return ctx.Err()
}

func (s *batchSource) Ack(p change.Position) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.acked = p.String()
	return nil
}

func (s *batchSource) ackedPos() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acked
}

func (s *batchSource) Close() error { return nil }

// docsTable is the table of the publisher tests.
var docsTable = change.Table{Schema: "public", Name: "docs"}

// doc is a change of docsTable: row id with body.
func doc(op change.Op, id int64, body string) change.Event {
	return change.Event{Op: op, Table: docsTable, Key: []string{"id"}, Columns: []string{"id", "body"},
		Types:  map[string]change.Type{"id": change.TypeInt, "body": change.TypeString},
		After:  change.Row{"id": id, "body": body},
		Commit: time.UnixMilli(1_700_000_000_000)}
}

// randomText is n letters that compress poorly (about 6 bits each).
func randomText(n int) string {
	r := rand.New(rand.NewPCG(1, uint64(n)))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + r.IntN(26) + r.IntN(2)*('A'-'a'))
	}
	return string(b)
}

// publish runs a Publisher of k's limits over src until src's last batch
// is acknowledged, and returns the topic's records.
func publish(t *testing.T, addrs []string, opts []kgo.Opt, k config.Kafka, src *batchSource) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addrs...)}, append(opts, RecordOpts(k)...)...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	tr := NewTracker(true, nil, func(p change.Position) { src.Ack(p) })
	pub := NewPublisher(PublisherConfig{Source: src, Encoder: &change.Encoder{Connector: "postgresql", Name: "tandem", DB: "db"},
		Prefix: "tandem", Client: cl, Tracker: tr, Log: slog.New(slog.NewTextHandler(testWriter{t}, nil)),
		Fail: func(err error) { t.Errorf("publisher failed: %v", err); cancel() }, MaxRecordBytes: k.MaxRecordBytes})
	done := make(chan error, 1)
	go func() { done <- pub.Run(ctx, func(bool) {}) }()
	last := src.batches[len(src.batches)-1].Pos.String()
	if _, err := poll.Until(ctx, 10*time.Millisecond, 20*time.Second, func() (bool, error) { return src.ackedPos() == last, nil }); err != nil {
		t.Fatalf("position %s not acknowledged (at %q): %v", last, src.ackedPos(), err)
	}
	cancel()
	<-done
	n := 0
	for _, b := range src.batches {
		n += len(b.Events)
	}
	return consume(t, addrs, opts, Topic("tandem", docsTable), n)
}

// consume reads the first n records of topic.
func consume(t *testing.T, addrs []string, opts []kgo.Opt, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var got []*kgo.Record
	for len(got) < n && ctx.Err() == nil {
		f := cl.PollFetches(ctx)
		f.EachError(func(_ string, _ int32, err error) {
			if ctx.Err() == nil {
				t.Errorf("fetch: %v", err)
			}
		})
		f.EachRecord(func(r *kgo.Record) { got = append(got, r) })
	}
	if len(got) != n {
		t.Fatalf("%d records in %s, want %d", len(got), topic, n)
	}
	return got
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// readRecords decodes records into what they say: for a change its row,
// for a marker its key and reason.
type readRecord struct {
	Op       string
	Key, Row change.Row
	Oversize string
	Header   string // the marker header's value
}

func readRecords(t *testing.T, recs []*kgo.Record) []readRecord {
	t.Helper()
	out := make([]readRecord, len(recs))
	for i, r := range recs {
		ev, err := change.Decode(r.Key, r.Value)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		out[i] = readRecord{Op: ev.Op.Name(), Key: ev.KeyRow(), Row: ev.After, Oversize: ev.Oversize}
		for _, h := range r.Headers {
			if h.Key == change.OversizeHeader {
				out[i].Header = string(h.Value)
			}
		}
	}
	return out
}

// TestPublisher_AChangeOverTheLimitIsAMarkerInItsPlaceAndTheStreamGoesOn: a
// transaction with rows before and after one whose record exceeds
// kafka.max_record_bytes is produced whole, the big row as a marker in its
// place carrying its key and why, and the position is acknowledged; a
// later transaction streams as usual.
func TestPublisher_AChangeOverTheLimitIsAMarkerInItsPlaceAndTheStreamGoesOn(t *testing.T) {
	e, err := StartEmbedded(1, Topic("tandem", docsTable))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	k := config.Default().Kafka
	k.MaxRecordBytes = 64 << 10
	big := strings.Repeat("x", 200<<10) // compresses to little: the limit is on the record, before compression
	src := &batchSource{batches: []change.Batch{
		{Pos: change.TextPosition("0/10"), Events: []change.Event{doc(change.OpCreate, 1, "a"), doc(change.OpCreate, 2, big), doc(change.OpCreate, 3, "c")}},
		{Pos: change.TextPosition("0/20"), Events: []change.Event{doc(change.OpUpdate, 2, "small now")}},
	}}
	got := readRecords(t, publish(t, e.Addrs(), e.ClientOpts(), k, src))
	bigSize := len(`{"id":2}`) + len(mustValue(t, doc(change.OpCreate, 2, big)))
	reason := "record of " + digits(bigSize) + " bytes exceeds kafka.max_record_bytes 65,536"
	want := []readRecord{
		{Op: "insert", Key: change.Row{"id": int64(1)}, Row: change.Row{"id": int64(1), "body": "a"}},
		{Op: "insert", Key: change.Row{"id": int64(2)}, Oversize: reason, Header: reason},
		{Op: "insert", Key: change.Row{"id": int64(3)}, Row: change.Row{"id": int64(3), "body": "c"}},
		{Op: "update", Key: change.Row{"id": int64(2)}, Row: change.Row{"id": int64(2), "body": "small now"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
}

// mustValue is the envelope of ev, as the publisher's encoder writes it
// (its length does not depend on the time of encoding).
func mustValue(t *testing.T, ev change.Event) []byte {
	t.Helper()
	v, err := (&change.Encoder{Connector: "postgresql", Name: "tandem", DB: "db"}).Value(&ev)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestPublisher_ARecordTheBrokerRefusesIsAMarkerNotAStop: a broker whose
// max.message.bytes is below kafka.max_record_bytes refuses a record
// (MESSAGE_TOO_LARGE); the change becomes a marker saying so, its
// position is acknowledged once the marker is stored, and the stream goes
// on.
func TestPublisher_ARecordTheBrokerRefusesIsAMarkerNotAStop(t *testing.T) {
	topic := Topic("tandem", docsTable)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic),
		kfake.BrokerConfigs(map[string]string{"message.max.bytes": "32768"}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	k := config.Default().Kafka // 16 MiB: above the broker's 32 KiB
	k.Compression = "none"
	big := randomText(100 << 10)
	src := &batchSource{batches: []change.Batch{
		{Pos: change.TextPosition("0/10"), Events: []change.Event{doc(change.OpCreate, 1, "a")}},
		{Pos: change.TextPosition("0/20"), Events: []change.Event{doc(change.OpCreate, 2, big)}},
		{Pos: change.TextPosition("0/30"), Events: []change.Event{doc(change.OpCreate, 3, "c"), doc(change.OpUpdate, 2, "b")}},
	}}
	got := readRecords(t, publish(t, c.ListenAddrs(), nil, k, src))
	if m := got[1]; !strings.HasPrefix(m.Oversize, "kafka refused the record of 102,") || !strings.Contains(m.Oversize, kerr.MessageTooLarge.Message) ||
		!strings.Contains(m.Oversize, "max.message.bytes must be kafka.max_record_bytes 16,777,216 plus 1024 at least") || m.Header != m.Oversize {
		t.Errorf("marker reason %q (header %q): want the broker's refusal and what to raise", m.Oversize, m.Header)
	}
	got[1].Oversize, got[1].Header = "", ""
	want := []readRecord{
		{Op: "insert", Key: change.Row{"id": int64(1)}, Row: change.Row{"id": int64(1), "body": "a"}},
		{Op: "insert", Key: change.Row{"id": int64(2)}},
		{Op: "insert", Key: change.Row{"id": int64(3)}, Row: change.Row{"id": int64(3), "body": "c"}},
		{Op: "update", Key: change.Row{"id": int64(2)}, Row: change.Row{"id": int64(2), "body": "b"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
}

// TestRecordOpts_CompressWithTheConfiguredCodecZstdByDefault reads the
// codec of the record batches produced under each kafka.compression.
func TestRecordOpts_CompressWithTheConfiguredCodecZstdByDefault(t *testing.T) {
	e, err := StartEmbedded(1, "t")
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	codes := map[string]uint8{"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
	value := []byte(strings.Repeat("compressible ", 1000))
	var want, got []uint8
	for _, name := range append([]string{""}, config.Compressions...) {
		k := config.Default().Kafka
		if name != "" {
			k.Compression = name
		}
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(e.Addrs()...)}, append(e.ClientOpts(), RecordOpts(k)...)...)...)
		if err != nil {
			t.Fatal(err)
		}
		err = cl.ProduceSync(t.Context(), &kgo.Record{Topic: "t", Value: value}).FirstErr()
		cl.Close()
		if err != nil {
			t.Fatalf("produce with %q: %v", name, err)
		}
		want = append(want, codes[k.Compression])
	}
	for _, r := range consume(t, e.Addrs(), e.ClientOpts(), "t", len(want)) {
		got = append(got, r.Attrs.CompressionType())
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("batch codecs, default first, then %v (-want +got):\n%s", config.Compressions, diff)
	}
	if want[0] != codes["zstd"] {
		t.Errorf("default codec %d, want zstd", want[0])
	}
}

// TestEmbedded_TakesRecordsUpToTheConfiguredLimit: the embedded broker
// stores a record of exactly kafka.max_record_bytes, far over Kafka's
// 1 MiB default, and a consumer reads it back; the producer refuses one
// byte more itself.
func TestEmbedded_TakesRecordsUpToTheConfiguredLimit(t *testing.T) {
	e, err := StartEmbedded(1, "t")
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	k := config.Default().Kafka
	k.MaxRecordBytes = 8 << 20
	opts := append(e.ClientOpts(), RecordOpts(k)...)
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(e.Addrs()...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	key := []byte(`{"id":1}`)
	value := []byte(randomText(k.MaxRecordBytes - len(key)))
	if err := cl.ProduceSync(t.Context(), &kgo.Record{Topic: "t", Key: key, Value: value}).FirstErr(); err != nil {
		t.Fatalf("produce a record of kafka.max_record_bytes: %v", err)
	}
	over := append(value, make([]byte, 2*RecordOverhead)...)
	if err := cl.ProduceSync(t.Context(), &kgo.Record{Topic: "t", Key: key, Value: over}).FirstErr(); !errors.Is(err, kerr.MessageTooLarge) {
		t.Errorf("produce a record over the limit and its framing: %v, want MESSAGE_TOO_LARGE", err)
	}
	got := consume(t, e.Addrs(), opts, "t", 1)[0]
	if string(got.Key) != string(key) || string(got.Value) != string(value) {
		t.Errorf("read back a record of %d bytes, want the %d written", RecordSize(got), k.MaxRecordBytes)
	}
}

func TestDigits_GroupsThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 65536: "65,536", 52428912: "52,428,912", -1234: "-1,234"} {
		if got := digits(n); got != want {
			t.Errorf("digits(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestEnsureTopics_CreatesTopicsThatTakeTheLimitAndLowLimitsAreFound: the
// topics tandem creates take records of kafka.max_record_bytes; one made
// elsewhere with Kafka's default limit is reported.
func TestEnsureTopics_CreatesTopicsThatTakeTheLimitAndLowLimitsAreFound(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "theirs"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	k := config.Default().Kafka
	if err := EnsureTopics(t.Context(), cl, 2, BatchMaxBytes(k), "ours", "theirs"); err != nil {
		t.Fatal(err)
	}
	low, err := LowRecordLimits(t.Context(), cl, k, "ours", "theirs")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]int{"theirs": 1048588}, low); diff != "" {
		t.Errorf("topics below the limit (-want +got):\n%s", diff)
	}
}
