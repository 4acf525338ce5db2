package kafka

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/tandemcdc/tandem/internal/change"
)

// Topic returns the topic of a source table: <prefix>.<schema>.<table>.
func Topic(prefix string, t change.Table) string {
	return prefix + "." + t.Schema + "." + t.Name
}

// DLQTopic returns the dead-letter topic: <prefix>.dlq.
func DLQTopic(prefix string) string { return prefix + ".dlq" }

// Embedded is an in-process Kafka broker (franz-go's kfake) speaking the real
// Kafka protocol on a loopback port. Its data lives in memory and is gone
// when the process ends, so a pipeline using it must treat a change as
// durable only once it is committed in the target.
//
// It takes only tandem's own clients: SASL SCRAM-SHA-256 as embeddedUser
// with a password made at each start and never shown, which ClientOpts
// gives. Another local process (a kcat on the loopback port) can neither
// write a forged change into a topic nor read one.
type Embedded struct {
	cluster *kfake.Cluster
	id      string
	secret  string
}

// embeddedUser is the embedded broker's one user.
const embeddedUser = "tandem"

// embeddedSegmentBytes is the size of the embedded broker's log segments.
// The broker keeps them in memory and frees a segment only once every
// record in it is trimmed (Trimmer): Kafka's 100 MiB default would keep
// up to that much of applied records per partition.
const embeddedSegmentBytes = 1 << 20

// StartEmbedded starts a one-broker cluster with the given topics created
// with the given number of partitions. Each start gets a fresh cluster ID.
func StartEmbedded(partitions int, topics ...string) (*Embedded, error) {
	id, err := randomID()
	if err != nil {
		return nil, err
	}
	secret := rand.Text() // 26 base32 characters: 130 bits
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", embeddedUser, secret),
		kfake.ClusterID("tandem-embedded-"+id),
		kfake.DefaultNumPartitions(partitions),
		kfake.BrokerConfigs(map[string]string{"log.segment.bytes": strconv.Itoa(embeddedSegmentBytes)}),
		kfake.AllowAutoTopicCreation(),
		kfake.SeedTopics(int32(partitions), topics...),
		// Records as large as any kafka.max_record_bytes: the producer
		// holds them to the configured limit (kfake's default is 1 MiB).
		kfake.BrokerConfigs(map[string]string{"message.max.bytes": strconv.Itoa(embeddedMaxMessageBytes)}),
	)
	if err != nil {
		return nil, fmt.Errorf("start embedded kafka broker: %w", err)
	}
	return &Embedded{cluster: c, id: "tandem-embedded-" + id, secret: secret}, nil
}

// ClientOpts are the options every client of the broker needs: its
// credentials.
func (e *Embedded) ClientOpts() []kgo.Opt {
	return []kgo.Opt{kgo.SASL(scram.Auth{User: embeddedUser, Pass: e.secret}.AsSha256Mechanism())}
}

// Addrs returns the broker's host:port addresses.
func (e *Embedded) Addrs() []string { return e.cluster.ListenAddrs() }

// ClusterID returns the cluster ID, different on every start.
func (e *Embedded) ClusterID() string { return e.id }

// Close stops the broker; its data is lost.
func (e *Embedded) Close() { e.cluster.Close() }

func randomID() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random cluster id: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// ClusterID asks the cluster for its ID. Offsets stored in the target are
// scoped by it: offsets from another cluster (or an earlier embedded broker)
// mean nothing here.
func ClusterID(ctx context.Context, cl *kgo.Client) (string, error) {
	md, err := kadm.NewClient(cl).BrokerMetadata(ctx)
	if err != nil {
		return "", fmt.Errorf("read kafka cluster metadata: %w", err)
	}
	if md.Cluster == "" {
		return "", errors.New("kafka cluster reports no cluster ID")
	}
	return md.Cluster, nil
}

// EnsureTopics creates the topics that do not exist yet, with
// max.message.bytes set to maxMessageBytes (0: the broker's default).
// Existing topics are left as they are, whatever their partition count and
// limit (LowRecordLimits finds a limit too low).
func EnsureTopics(ctx context.Context, cl *kgo.Client, partitions, maxMessageBytes int, topics ...string) error {
	var configs map[string]*string
	if maxMessageBytes > 0 {
		v := strconv.Itoa(maxMessageBytes)
		configs = map[string]*string{"max.message.bytes": &v}
	}
	resp, err := kadm.NewClient(cl).CreateTopics(ctx, int32(partitions), -1, configs, topics...)
	if err != nil {
		return fmt.Errorf("create topics %s: %w", strings.Join(topics, ", "), err)
	}
	for _, r := range resp.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", r.Topic, r.Err)
		}
	}
	return nil
}

// Trim deletes the records below each given offset (Kafka DeleteRecords).
// The embedded broker keeps every record in memory until then: the
// pipeline trims what every consumer group has applied.
func Trim(ctx context.Context, cl *kgo.Client, below map[string]map[int32]int64) error {
	offsets := kadm.Offsets{}
	for topic, parts := range below {
		for p, o := range parts {
			offsets.AddOffset(topic, p, o, -1)
		}
	}
	if len(offsets) == 0 {
		return nil
	}
	resp, err := kadm.NewClient(cl).DeleteRecords(ctx, offsets)
	if err != nil {
		return fmt.Errorf("trim applied records: %w", err)
	}
	return resp.Error()
}

// EndOffsets returns where each partition of topics ends now: the offset
// the next record produced to it will have.
func EndOffsets(ctx context.Context, cl *kgo.Client, topics ...string) (map[string]map[int32]int64, error) {
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("list the end offsets of %s: %w", strings.Join(topics, ", "), err)
	}
	out := map[string]map[int32]int64{}
	var errs []error
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			errs = append(errs, fmt.Errorf("end offset of %s[%d]: %w", o.Topic, o.Partition, o.Err))
			return
		}
		if out[o.Topic] == nil {
			out[o.Topic] = map[int32]int64{}
		}
		out[o.Topic][o.Partition] = o.Offset
	})
	return out, errors.Join(errs...)
}
