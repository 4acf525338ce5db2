package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/fixture/shop"
	"github.com/tandemcdc/tandem/internal/kafka"
	"github.com/tandemcdc/tandem/internal/tandemtest"
	"github.com/tandemcdc/tandem/internal/testenv"
)

// scaleOutPartitions is the partition count of the scale-out tests'
// topics: two for each of three apply processes.
const scaleOutPartitions = 6

// scaleOut is the shop migration run as separate processes, one `tandem
// capture` and any number of `tandem apply`, over a Kafka-protocol broker
// (kfake) that this test process serves on loopback: an external broker
// for the children, as a real cluster would be.
type scaleOut struct {
	m       *shop.Migration
	cluster *kfake.Cluster
	admin   *kadm.Client
	cfgPath string
	procs   []*scaleOutProc
}

// scaleOutProc is one child tandem process.
type scaleOutProc struct {
	name   string
	cmd    *exec.Cmd
	out    *testenv.SyncBuffer
	exited chan struct{} // closed once the process has exited
	err    error         // its exit, once exited is closed
	killed bool          // killed by the test: its exit is no failure
}

// newScaleOut creates the source and target databases, the broker and the
// config, and installs the applied-offsets log in the target (see
// installOffsetLog) while the target has no tandem schema yet.
func newScaleOut(t *testing.T) *scaleOut {
	t.Helper()
	ctx := context.Background()
	srcDSN, tgtDSN := testenv.NewDatabase(t), testenv.NewDatabase(t)
	m, err := shop.Open(ctx, srcDSN, tgtDSN, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	slot := tandemtest.SlotName(srcDSN)
	t.Cleanup(func() { tandemtest.DropInactiveSlot(srcDSN, slot) })
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	s := &scaleOut{m: m, cluster: cluster, admin: kadm.NewClient(cl), cfgPath: filepath.Join(t.TempDir(), "tandem.yaml")}
	cfg := shop.Config(shop.ConfigOptions{SourceDSN: srcDSN, TargetDSN: tgtDSN, Brokers: cluster.ListenAddrs(), Slot: slot, Partitions: scaleOutPartitions})
	if err := os.WriteFile(s.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	installOffsetLog(t, m)
	// Processes still running when the test ends are stopped as a
	// supervisor stops them: SIGTERM, and they must exit 0.
	t.Cleanup(func() {
		for _, p := range s.procs {
			if p.killed {
				continue
			}
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
		}
		for _, p := range s.procs {
			select {
			case <-p.exited:
			case <-time.After(30 * time.Second):
				_ = p.cmd.Process.Kill()
				<-p.exited
				t.Errorf("tandem %s did not exit within 30s of SIGTERM", p.name)
			}
			if p.err != nil && !p.killed {
				t.Errorf("tandem %s: %v (want exit 0 after SIGTERM)\n%s", p.name, p.err, p.out.String())
			}
			if strings.Contains(p.out.String(), testenv.Password) {
				t.Errorf("tandem %s: the DSN password appears in its output", p.name)
			}
		}
	})
	return s
}

// start starts `tandem <verb>` (capture or apply) as a child process.
func (s *scaleOut) start(t *testing.T, verb string) *scaleOutProc {
	t.Helper()
	n := 0
	for _, p := range s.procs {
		if strings.HasPrefix(p.name, verb) {
			n++
		}
	}
	p := &scaleOutProc{name: fmt.Sprintf("%s#%d", verb, n+1), out: &testenv.SyncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(tandemtest.Binary(), verb, "-c", s.cfgPath)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	s.procs = append(s.procs, p)
	return p
}

// kill9 kills p with SIGKILL: no drain, no leave from the group, a
// transaction in flight cut off.
func (s *scaleOut) kill9(t *testing.T, p *scaleOutProc) {
	t.Helper()
	p.killed = true
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.exited
}

// alive fails when a process the test did not kill has exited.
func (s *scaleOut) alive() error {
	for _, p := range s.procs {
		select {
		case <-p.exited:
			if !p.killed {
				return fmt.Errorf("tandem %s exited: %v\n%s", p.name, p.err, p.out.String())
			}
		default:
		}
	}
	return nil
}

// output is every process's output, for a failure's message.
func (s *scaleOut) output() string {
	var b strings.Builder
	for _, p := range s.procs {
		fmt.Fprintf(&b, "--- tandem %s ---\n%s", p.name, p.out.String())
	}
	return b.String()
}

// startCapture starts `tandem capture` and waits until it streams from its
// slot: changes committed from then on go through Kafka.
func (s *scaleOut) startCapture(t *testing.T) {
	t.Helper()
	p := s.start(t, "capture")
	testenv.WaitFor(t, "capture to stream", 30*time.Second, func() (bool, error) {
		return strings.Contains(p.out.String(), "streaming from replication slot"), s.alive()
	})
}

// groups are the consumer groups of the shop mappings (kafka.group
// "tandem" + "." + the mapping).
var scaleOutGroups = []string{"tandem.shop.customers", "tandem.shop.orders"}

// waitShared waits until each mapping's group is stable with members
// members, every one holding partitions (the processes share the work),
// of which exactly newcomers are not in known (members keep their ids
// across rebalances; newcomers < 0: any). It returns the members' ids.
func (s *scaleOut) waitShared(t *testing.T, what string, members int, known map[string]bool, newcomers int, within time.Duration) map[string]bool {
	t.Helper()
	ids := map[string]bool{}
	testenv.WaitFor(t, what, within, func() (bool, error) {
		if err := s.alive(); err != nil {
			return false, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		described, err := s.admin.DescribeGroups(ctx, scaleOutGroups...)
		if err != nil {
			return false, nil // the coordinator may be busy rebalancing
		}
		clear(ids)
		for _, g := range scaleOutGroups {
			d, ok := described[g]
			if !ok || d.Err != nil || d.State != "Stable" || len(d.Members) != members {
				return false, nil
			}
			fresh := 0
			for _, mem := range d.Members {
				a, ok := mem.Assigned.AsConsumer()
				if !ok || len(a.Topics) == 0 || len(a.Topics[0].Partitions) == 0 {
					return false, nil
				}
				if !known[mem.MemberID] {
					fresh++
				}
				ids[mem.MemberID] = true
			}
			if newcomers >= 0 && fresh != newcomers {
				return false, nil
			}
		}
		return true, nil
	})
	return ids
}

// installOffsetLog makes the target keep a log of every offset range an
// apply process commits: a row trigger on tandem.kafka_offsets, attached
// by an event trigger in the very transaction that creates that table, so
// no commit escapes it however early the first one comes. Rolled-back
// (fenced) batches leave no row. checkOffsetLog reads it.
func installOffsetLog(t *testing.T, m *shop.Migration) {
	t.Helper()
	_, err := m.Tgt.Exec(context.Background(), `
CREATE TABLE public.applied_offsets (
	id          bigserial PRIMARY KEY,
	group_id    text   NOT NULL,
	topic       text   NOT NULL,
	partition   int    NOT NULL,
	prev        bigint,          -- the stored offset before this commit; NULL for the first
	batch_from  bigint NOT NULL,
	next_offset bigint NOT NULL
);
CREATE FUNCTION public.log_applied_offsets() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.applied_offsets (group_id, topic, partition, prev, batch_from, next_offset)
	VALUES (NEW.group_id, NEW.topic, NEW.partition, CASE WHEN TG_OP = 'UPDATE' THEN OLD.next_offset END, NEW.batch_from, NEW.next_offset);
	RETURN NULL;
END $$;
CREATE FUNCTION public.watch_offsets_table() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
	IF EXISTS (SELECT FROM pg_event_trigger_ddl_commands() WHERE object_identity = 'tandem.kafka_offsets') THEN
		CREATE TRIGGER log_applied_offsets AFTER INSERT OR UPDATE ON tandem.kafka_offsets
			FOR EACH ROW EXECUTE FUNCTION public.log_applied_offsets();
	END IF;
END $$;
CREATE EVENT TRIGGER watch_offsets_table ON ddl_command_end WHEN TAG IN ('CREATE TABLE')
	EXECUTE FUNCTION public.watch_offsets_table();`)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = m.Tgt.Exec(context.Background(), `DROP EVENT TRIGGER IF EXISTS watch_offsets_table`)
	})
}

// appliedRecords is how many records the apply processes have committed,
// over every group and partition.
func (s *scaleOut) appliedRecords(ctx context.Context) (int64, error) {
	var n int64
	err := s.m.Tgt.QueryRow(ctx, `SELECT coalesce(sum(next_offset - batch_from), 0) FROM public.applied_offsets`).Scan(&n)
	return n, err
}

// waitApplied waits until more records than now are committed.
func (s *scaleOut) waitApplied(t *testing.T, more int64) {
	t.Helper()
	ctx := context.Background()
	base, err := s.appliedRecords(ctx)
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, fmt.Sprintf("%d more records applied", more), 30*time.Second, func() (bool, error) {
		if err := s.alive(); err != nil {
			return false, err
		}
		n, err := s.appliedRecords(ctx)
		return n >= base+more, err
	})
}

// checkOffsetLog proves that every record of every partition was applied
// exactly once by its mapping's group, whichever process applied it: the
// committed ranges of each partition, in commit order, start at 0, each
// starts where the one before ended (an overlap is an effect applied
// twice, a gap one lost), and the last ends at the partition's end offset.
// Upserts hide a doubled write in the rows themselves; the ranges do not.
func (s *scaleOut) checkOffsetLog(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := s.admin.ListEndOffsets(ctx, scaleOutTopics()...)
	if err != nil {
		t.Fatal(err)
	}
	rows, _ := s.m.Tgt.Query(ctx, `SELECT group_id, topic, partition, prev, batch_from, next_offset FROM public.applied_offsets ORDER BY id`)
	type entry struct {
		group, topic string
		partition    int32
		prev         *int64
		from, next   int64
	}
	log, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (entry, error) {
		var e entry
		err := r.Scan(&e.group, &e.topic, &e.partition, &e.prev, &e.from, &e.next)
		return e, err
	})
	if err != nil {
		t.Fatal(err)
	}
	type gtp struct {
		group, topic string
		partition    int32
	}
	at := map[gtp]int64{}
	commits := map[gtp]int{}
	for _, e := range log {
		k := gtp{e.group, e.topic, e.partition}
		stored, seen := at[k]
		switch {
		case !seen && e.prev != nil:
			t.Errorf("%v: the first commit updates a stored offset %d the log never saw", k, *e.prev)
		case seen && (e.prev == nil || *e.prev != stored):
			t.Errorf("%v: a commit replaced stored offset %v, want %d", k, e.prev, stored)
		case e.from < stored:
			t.Errorf("%v: offsets [%d, %d) applied twice: committed again after the group had applied up to %d", k, e.from, stored, stored)
		case e.from > stored:
			t.Errorf("%v: offsets [%d, %d) never applied: the next commit starts at %d", k, stored, e.from, e.from)
		case e.next <= e.from:
			t.Errorf("%v: an empty or backward range [%d, %d)", k, e.from, e.next)
		}
		at[k] = e.next
		commits[k]++
	}
	var keys []gtp
	for _, g := range scaleOutGroups {
		topic := scaleOutTopic(g)
		ends.Each(func(o kadm.ListedOffset) {
			if o.Topic == topic {
				keys = append(keys, gtp{g, topic, o.Partition})
				if o.Err != nil {
					t.Errorf("end offset of %s/%d: %v", topic, o.Partition, o.Err)
				}
				if got := at[gtp{g, topic, o.Partition}]; got != o.Offset {
					t.Errorf("group %s applied %s/%d up to %d, want its end %d", g, topic, o.Partition, got, o.Offset)
				}
			}
		})
	}
	sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
	var summary []string
	for _, k := range keys {
		summary = append(summary, fmt.Sprintf("%s/%d:%d in %d", strings.TrimPrefix(k.group, "tandem."), k.partition, at[k], commits[k]))
	}
	t.Logf("records applied per partition, in commits: %s", strings.Join(summary, ", "))
}

// scaleOutTopic is the topic the group of the mapping from shop.<table> reads.
func scaleOutTopic(group string) string {
	return kafka.Topic("shop", change.Table{Schema: "shop", Name: strings.TrimPrefix(group, "tandem.shop.")})
}

// scaleOutTopics are the topics the groups read.
func scaleOutTopics() []string {
	out := make([]string, len(scaleOutGroups))
	for i, g := range scaleOutGroups {
		out[i] = scaleOutTopic(g)
	}
	return out
}

// writers runs n shop workloads of perSecond operations each until stop is
// called, which returns their first error.
func (s *scaleOut) writers(n, perSecond int) (stop func() error, ops func() int64) {
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, n)
	ws := make([]*shop.Workload, n)
	for i := range ws {
		ws[i] = &shop.Workload{Src: s.m.Src, Seed: uint64(1900 + i)}
		go func() { errc <- ws[i].Run(ctx, 0, perSecond) }()
	}
	ops = func() int64 {
		var total int64
		for _, w := range ws {
			total += w.Ops.Load()
		}
		return total
	}
	stop = func() error {
		cancel()
		var first error
		for range n {
			if err := <-errc; err != nil && first == nil {
				first = err
			}
		}
		return first
	}
	return stop, ops
}

// converge stops the writers and checks the target equals the source,
// full rows, and that every record was applied exactly once.
func (s *scaleOut) converge(t *testing.T, stopWriters func() error, minRows int) {
	t.Helper()
	// The writers delete rows too: the rows to compare, not the operations
	// written, are what makes the comparison prove something.
	testenv.WaitFor(t, fmt.Sprintf("%d rows in the source to compare", minRows), 30*time.Second, func() (bool, error) {
		want, err := shop.Expected(context.Background(), s.m.Src)
		return err == nil && want.Count() >= minRows, err
	})
	if err := stopWriters(); err != nil {
		t.Fatal(err)
	}
	got, err := s.m.WaitConverged(context.Background(), 30*time.Second)
	if err != nil {
		t.Fatalf("%v\n%s", err, s.output())
	}
	if got.Count() < minRows {
		t.Errorf("only %d target rows: the test proved little", got.Count())
	}
	// Converged rows do not mean every offset is stored yet: the last
	// batch's commit holds both, but a fenced replay may still be under way.
	testenv.WaitFor(t, "every partition applied to its end", 30*time.Second, func() (bool, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var behind bool
		ends, err := s.admin.ListEndOffsets(ctx, scaleOutTopics()...)
		if err != nil {
			return false, err
		}
		var stored map[string]int64
		rows, _ := s.m.Tgt.Query(ctx, `SELECT group_id || '/' || topic || '/' || partition, next_offset FROM tandem.kafka_offsets`)
		stored = map[string]int64{}
		for rows.Next() {
			var k string
			var n int64
			if err := rows.Scan(&k, &n); err != nil {
				return false, err
			}
			stored[k] = n
		}
		if err := rows.Err(); err != nil {
			return false, err
		}
		for _, g := range scaleOutGroups {
			topic := scaleOutTopic(g)
			ends.Each(func(o kadm.ListedOffset) {
				if o.Topic == topic && o.Offset > 0 && stored[fmt.Sprintf("%s/%s/%d", g, topic, o.Partition)] != o.Offset {
					behind = true
				}
			})
		}
		return !behind, s.alive()
	})
	s.checkOffsetLog(t)
	fenced := 0
	for _, p := range s.procs {
		fenced += strings.Count(p.out.String(), "batch fenced off")
	}
	t.Logf("%d batches fenced off (applied by another process first) and dropped", fenced)
}

func TestApply_ThreeProcessesKillNineOneStartAnotherConvergeExactly(t *testing.T) {
	t.Parallel()
	s := newScaleOut(t)
	s.startCapture(t)
	for range 3 {
		s.start(t, "apply")
	}
	before := s.waitShared(t, "three apply processes sharing each mapping's partitions", 3, nil, 3, 30*time.Second)
	stopWriters, ops := s.writers(2, 100)
	s.waitApplied(t, 150)

	// Start another: partitions move from live processes to it. The
	// target's tables refuse writes meanwhile (reads go on), so each
	// process's batch is stuck in flight while its partitions move, and
	// the new process reads the offsets stored before those batches: two
	// processes hold the same records when the lock goes, and the
	// target's offset fence must let only one of them commit. Then kill
	// -9 one of the first three, its transactions in flight cut off: the
	// group evicts it once its session times out.
	ctx := context.Background()
	lock, err := s.m.Tgt.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback(ctx)
	if _, err := lock.Exec(ctx, `LOCK TABLE public.customers, public.orders, public.payments IN SHARE MODE`); err != nil {
		t.Fatal(err)
	}
	s.start(t, "apply")
	s.waitShared(t, "the new apply process sharing", 4, before, 1, 30*time.Second)
	testenv.WaitFor(t, "batches of the four apply processes waiting for the lock", 30*time.Second, func() (bool, error) {
		var ports int
		err := s.m.Tgt.QueryRow(ctx, `SELECT count(DISTINCT client_port) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&ports)
		return ports >= 6, err
	})
	s.kill9(t, s.procs[2])
	killed := time.Now()
	if err := lock.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	// Which member was the killed one the group does not say, and a
	// fenced process rejoins under a new id: three members, with the
	// partitions of the fourth, is the eviction.
	s.waitShared(t, "the killed apply process evicted", 3, nil, -1, 30*time.Second)
	t.Logf("groups whole again %s after the kill -9", time.Since(killed).Round(100*time.Millisecond))
	s.waitApplied(t, 150)
	t.Logf("%d operations written", ops())
	s.converge(t, stopWriters, 200)
}

func TestApply_ThreeProcessesStartedAtOnceOnAFreshTargetConvergeExactly(t *testing.T) {
	t.Parallel()
	s := newScaleOut(t)
	s.startCapture(t)
	// Changes wait in Kafka before any apply runs, so all three create
	// tandem's state tables and apply their first batches at once.
	stopWriters, ops := s.writers(2, 100)
	testenv.WaitFor(t, "changes waiting in Kafka", 30*time.Second, func() (bool, error) { return ops() >= 100, s.alive() })
	for range 3 {
		s.start(t, "apply")
	}
	s.waitShared(t, "three apply processes sharing each mapping's partitions", 3, nil, 3, 30*time.Second)
	s.waitApplied(t, 150)
	t.Logf("%d operations written", ops())
	s.converge(t, stopWriters, 200)
}
