package kafka

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tandemcdc/tandem/internal/config"
)

// RecordOverhead bounds what Kafka's framing adds to a record's key, value
// and headers in a batch of its own (the batch header, the record's
// lengths and deltas, the produce request's topic and partition). The
// producer's batches and the topics' max.message.bytes are
// kafka.max_record_bytes plus this, so a record within the limit always
// fits.
const RecordOverhead = 1 << 10

// fetchAllowance is what a fetch response may hold beside one record
// batch as large as the limit: more than any FetchMaxBytes tandem's
// consumers ask for.
const fetchAllowance = 100 << 20

// embeddedMaxMessageBytes is the embedded broker's message.max.bytes: any
// record within the largest kafka.max_record_bytes accepted.
const embeddedMaxMessageBytes = 1 << 30

// RecordSize is the size kafka.max_record_bytes bounds: the record's key,
// value and headers, before compression.
func RecordSize(r *kgo.Record) int {
	n := len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// BatchMaxBytes is the largest record batch produced for k, before
// compression: kafka.max_record_bytes and the framing of one record.
func BatchMaxBytes(k config.Kafka) int { return k.MaxRecordBytes + RecordOverhead }

// RecordOpts are the options a producer takes for kafka.max_record_bytes
// and kafka.compression: it batches up to BatchMaxBytes and compresses
// with the configured codec, beside SizeOpts. Each call makes options of
// its own: kgo writes into the codec list of the option it is given, so
// clients created at once must not share one.
func RecordOpts(k config.Kafka) []kgo.Opt {
	return append(SizeOpts(k),
		kgo.ProducerBatchMaxBytes(int32(BatchMaxBytes(k))),
		kgo.ProducerBatchCompression(codec(k.Compression)))
}

// SizeOpts are the options every client of the brokers takes for
// kafka.max_record_bytes: it reads responses that hold a batch of
// BatchMaxBytes beside a full fetch, and writes requests that carry one.
// Safe to share between clients.
func SizeOpts(k config.Kafka) []kgo.Opt {
	batch := int32(BatchMaxBytes(k))
	return []kgo.Opt{
		kgo.BrokerMaxWriteBytes(max(100<<20, batch+RecordOverhead)),
		kgo.BrokerMaxReadBytes(min(1<<30, fetchAllowance+batch)),
	}
}

// codec is the kgo codec of a kafka.compression value (config checks it).
func codec(name string) kgo.CompressionCodec {
	switch name {
	case "gzip":
		return kgo.GzipCompression()
	case "snappy":
		return kgo.SnappyCompression()
	case "lz4":
		return kgo.Lz4Compression()
	case "zstd":
		return kgo.ZstdCompression()
	}
	return kgo.NoCompression()
}

// LowRecordLimits returns, for each of topics whose max.message.bytes is
// below BatchMaxBytes(k), that limit: a record between the two is refused
// by the broker, and so dead-lettered (see Publisher) instead of stored.
// A topic whose config cannot be read (no DescribeConfigs permission) is
// not reported; the error says why.
func LowRecordLimits(ctx context.Context, cl *kgo.Client, k config.Kafka, topics ...string) (map[string]int, error) {
	cfgs, err := kadm.NewClient(cl).DescribeTopicConfigs(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("describe the configs of %s: %w", strings.Join(topics, ", "), err)
	}
	low := map[string]int{}
	var errs []string
	for _, rc := range cfgs {
		if rc.Err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", rc.Name, rc.Err))
			continue
		}
		for _, c := range rc.Configs {
			if c.Key != "max.message.bytes" || c.Value == nil {
				continue
			}
			if n, err := strconv.Atoi(*c.Value); err == nil && n < BatchMaxBytes(k) {
				low[rc.Name] = n
			}
		}
	}
	if len(errs) > 0 {
		return low, fmt.Errorf("describe topic configs: %s", strings.Join(errs, "; "))
	}
	return low, nil
}
