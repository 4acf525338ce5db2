package bench

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tandemcdc/tandem/internal/testenv"
)

// scaleOutPartitions is the partition count of the scale-out runs' topic:
// two for each of three apply processes.
const scaleOutPartitions = 6

// BenchmarkApplyScaleOut measures end-to-end changes/s (source commit to
// row in the target) with one `tandem capture` and one, two and three
// `tandem apply` processes (the tandem binary, as children) over a Kafka
// broker that this process serves on loopback (kfake: an external broker
// for the children), next to the single-process figure (`tandem run`, its
// embedded broker) and a COPY of the same rows into the target's server.
// The workload is bulkInserts(4) of 200,000 rows, as in
// BenchmarkThroughput. Each run logs where the machine's CPU went: the
// tandem processes, PostgreSQL, this process (the broker), other
// processes (other engineers' tests on a shared machine), idle.
func BenchmarkApplyScaleOut(b *testing.B) {
	bin := buildTandem(b)
	for _, applies := range []int{0, 1, 2, 3} {
		name := fmt.Sprintf("apply_%d_processes", applies)
		if applies == 0 {
			name = "run_1_process"
		}
		b.Run(name, func(b *testing.B) {
			var last scaleOutRun
			for b.Loop() {
				last = measureScaleOut(b, bin, applies)
			}
			last.report(b)
		})
	}
}

// buildTandem builds cmd/tandem into a temporary folder.
func buildTandem(b testing.TB) string {
	b.Helper()
	root, err := testenv.ModuleRoot()
	if err != nil {
		b.Fatal(err)
	}
	bin := filepath.Join(b.TempDir(), "tandem")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/tandem")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build tandem: %v\n%s", err, out)
	}
	return bin
}

// scaleOutConfig is pipelineConfig over the brokers (none: embedded).
func scaleOutConfig(e *env, brokers []string) string {
	cfg := pipelineConfig(e.srcDSN, e.tgtDSN, e.slot)
	if len(brokers) == 0 {
		return cfg
	}
	return strings.Replace(cfg, "target:\n", fmt.Sprintf("kafka:\n  brokers: [%s]\n  partitions: %d\ntarget:\n",
		strings.Join(brokers, ", "), scaleOutPartitions), 1)
}

// child is a tandem process of a scale-out run.
type child struct {
	name   string
	cmd    *exec.Cmd
	out    *testenv.SyncBuffer
	exited chan struct{}
	err    error
}

var httpAddr = regexp.MustCompile(`msg="http listening" addr=(\S+)`)

// ready reports whether the child's /readyz answers 200; an exited child
// is an error.
func (c *child) ready() (bool, error) {
	select {
	case <-c.exited:
		return false, fmt.Errorf("tandem %s exited: %v\n%s", c.name, c.err, c.out.String())
	default:
	}
	m := httpAddr.FindStringSubmatch(c.out.String())
	if m == nil {
		return false, nil
	}
	resp, err := http.Get("http://" + m[1] + "/readyz")
	if err != nil {
		return false, nil
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK, nil
}

// cpu is the CPU time the child has used so far (utime + stime).
func (c *child) cpu() time.Duration {
	f, err := procStat(c.cmd.Process.Pid)
	if err != nil {
		return 0
	}
	var d time.Duration
	for _, v := range f[11:13] {
		n, _ := strconv.ParseInt(v, 10, 64)
		d += time.Duration(n) * time.Second / clockTicks
	}
	return d
}

// scaleOutRun is what one scale-out run measured.
type scaleOutRun struct {
	applies   int     // apply processes; 0: one tandem run
	e2e, copy float64 // changes/s in the target; COPY rows/s
	tandemCPU time.Duration
	cpu       cpuUse
}

func (r scaleOutRun) report(b *testing.B) {
	b.ReportMetric(r.e2e, "e2e_changes/s")
	b.ReportMetric(r.copy, "copy_rows/s")
	b.ReportMetric(r.e2e/r.copy, "e2e/copy")
	if r.cpu.ok && r.cpu.wall > 0 {
		b.ReportMetric(float64(r.cpu.capacity-r.cpu.idle)/float64(r.cpu.capacity), "busy/cores")
	}
}

// measureScaleOut runs one scale-out measurement on fresh databases and a
// fresh broker: applies apply processes and a capture (0: one tandem run).
func measureScaleOut(b *testing.B, bin string, applies int) scaleOutRun {
	ctx, cancel := context.WithTimeout(context.Background(), 2*deliverWithin)
	defer cancel()
	e := newEnv(b)
	var brokers []string
	var admin *kadm.Client
	if applies > 0 {
		cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
		if err != nil {
			b.Fatal(err)
		}
		defer cluster.Close()
		brokers = cluster.ListenAddrs()
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
		if err != nil {
			b.Fatal(err)
		}
		defer cl.Close()
		admin = kadm.NewClient(cl)
	}
	cfgPath := filepath.Join(b.TempDir(), "tandem.yaml")
	if err := os.WriteFile(cfgPath, []byte(scaleOutConfig(e, brokers)), 0o600); err != nil {
		b.Fatal(err)
	}
	var children []*child
	start := func(verb string) {
		c := &child{name: fmt.Sprintf("%s#%d", verb, len(children)), out: &testenv.SyncBuffer{}, exited: make(chan struct{})}
		c.cmd = exec.Command(bin, verb, "-c", cfgPath)
		c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
		if err := c.cmd.Start(); err != nil {
			b.Fatal(err)
		}
		go func() { c.err = c.cmd.Wait(); close(c.exited) }()
		children = append(children, c)
	}
	defer func() {
		for _, c := range children {
			_ = c.cmd.Process.Signal(syscall.SIGTERM)
		}
		for _, c := range children {
			select {
			case <-c.exited:
			case <-time.After(30 * time.Second):
				_ = c.cmd.Process.Kill()
				<-c.exited
			}
		}
	}()
	if applies == 0 {
		start("run")
	} else {
		start("capture")
		for range applies {
			start("apply")
		}
	}
	if _, err := poll(time.Minute, func() (bool, error) {
		for _, c := range children {
			if ok, err := c.ready(); !ok || err != nil {
				return false, err
			}
		}
		return admin == nil || shared(ctx, admin, applies), nil
	}); err != nil {
		b.Fatalf("tandem not ready: %v", err)
	}

	tandemCPU := func() (d time.Duration) {
		for _, c := range children {
			d += c.cpu()
		}
		return d
	}
	cpu0, tcpu0 := sampleCPU(e.postmasters...), tandemCPU()
	first, err := bulkInserts(4).run(ctx, e.src)
	if err != nil {
		b.Fatal(err)
	}
	var inTarget int64
	done, err := poll(deliverWithin, func() (bool, error) {
		for _, c := range children {
			select {
			case <-c.exited:
				return false, fmt.Errorf("tandem %s exited: %v\n%s", c.name, c.err, c.out.String())
			default:
			}
		}
		err := e.tgt.QueryRow(ctx, `SELECT count(*) FROM public.items`).Scan(&inTarget)
		return inTarget == changes, err
	})
	if err != nil {
		b.Fatalf("%d changes not delivered: %v (target rows %d)", changes, err, inTarget)
	}
	r := scaleOutRun{applies: applies, e2e: changes / done.Sub(first).Seconds(),
		cpu: cpu0.until(sampleCPU(e.postmasters...)), tandemCPU: tandemCPU() - tcpu0}
	for _, c := range children {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		<-c.exited
	}
	if err := dropSlot(ctx, e.src, e.slot); err != nil {
		b.Fatal(err)
	}
	r.copy = changes / e.copyRows(ctx, b).Seconds()
	logSummary(b, r.summary())
	return r
}

// shared reports whether the mapping's consumer group is stable with n
// members, each holding partitions.
func shared(ctx context.Context, admin *kadm.Client, n int) bool {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	described, err := admin.DescribeGroups(ctx, "tandem.bench.items")
	if err != nil {
		return false
	}
	d := described["tandem.bench.items"]
	if d.Err != nil || d.State != "Stable" || len(d.Members) != n {
		return false
	}
	for _, m := range d.Members {
		a, ok := m.Assigned.AsConsumer()
		if !ok || len(a.Topics) == 0 || len(a.Topics[0].Partitions) == 0 {
			return false
		}
	}
	return true
}

func (r scaleOutRun) summary() string {
	what := "tandem run (one process, embedded broker)"
	if r.applies > 0 {
		what = fmt.Sprintf("tandem capture + %d tandem apply over an external broker (%d partitions)", r.applies, scaleOutPartitions)
	}
	u := r.cpu
	s := func(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + " s" }
	cpu := "CPU: not measured (/proc unreadable)"
	if u.ok {
		cpu = fmt.Sprintf("CPU over %s wall (%s on all cores): tandem processes %s, postgres %s, this process (the broker) %s, other processes %s, idle %s",
			s(u.wall), s(u.capacity), s(r.tandemCPU), s(u.postgres), s(u.self), s(max(0, u.other-r.tandemCPU)), s(u.idle))
	}
	return fmt.Sprintf("%s: %s changes in 4 transactions\n  end-to-end %9s changes/s   (COPY %s rows/s: %.2fx)\n  %s",
		what, thousands(changes), thousands(r.e2e), thousands(r.copy), r.e2e/r.copy, cpu)
}
