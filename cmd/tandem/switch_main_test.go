package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tandemcdc/tandem/internal/app"
	"github.com/tandemcdc/tandem/internal/fixture/canary"
	"github.com/tandemcdc/tandem/internal/poll"
	"github.com/tandemcdc/tandem/internal/tandemtest"
	"github.com/tandemcdc/tandem/internal/testenv"
)

// stateSchema is where tandem keeps its state in both databases (the
// default target.state_schema): <stateSchema>.cohorts holds the owners.
const stateSchema = "tandem"

// canaryCLI is the canary scenario (internal/fixture/canary) driven
// through the binary: a PostgreSQL old side and a PostgreSQL new side,
// with the tandem.yaml of the migration written to cfgPath.
type canaryCLI struct {
	cfgPath  string
	old, new *canary.DB
	out      *testenv.SyncBuffer // tandem run's output
}

// newCanaryCLI creates both databases with the canary tables and writes
// the migration's config (guard: reject, fence_timeout 5s).
func newCanaryCLI(t *testing.T) *canaryCLI {
	t.Helper()
	ctx := context.Background()
	oldDSN, newDSN := testenv.NewDatabase(t), testenv.NewDatabase(t)
	slot := tandemtest.SlotName(oldDSN)
	back := tandemtest.SlotName(newDSN) + "_back"
	t.Cleanup(func() { tandemtest.DropInactiveSlot(oldDSN, slot); tandemtest.DropInactiveSlot(newDSN, back) })
	c := &canaryCLI{cfgPath: filepath.Join(t.TempDir(), "tandem.yaml"), out: &testenv.SyncBuffer{}}
	yaml := canary.Config(canary.ConfigOptions{Source: canary.PostgresSource(oldDSN, slot), From: "public.orders",
		NewDSN: newDSN, Back: back, Guard: "reject"})
	if err := os.WriteFile(c.cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	var err error
	if c.old, err = canary.Open("postgres", oldDSN); err != nil {
		t.Fatal(err)
	}
	if c.new, err = canary.Open("postgres", newDSN); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.old.Close(); c.new.Close() })
	for _, s := range strings.Split(canary.OldDDL["postgres"], ";") {
		if _, err := c.old.ExecContext(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.new.ExecContext(ctx, canary.NewDDL); err != nil {
		t.Fatal(err)
	}
	return c
}

// run starts `tandem run` and returns once both streams have reported a
// heartbeat (their slots exist: the application's writes from then on are
// streamed). The process is stopped with SIGTERM, and must exit 0, when t
// ends.
func (c *canaryCLI) run(t *testing.T) {
	t.Helper()
	p := tandemtest.Start(t, c.cfgPath, nil, c.out)
	exited := make(chan error, 1)
	go func() { exited <- p.Cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.Cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("tandem run after SIGTERM: %v (want exit 0)\n%s", err, c.out.String())
			}
		case <-time.After(30 * time.Second):
			_ = p.Cmd.Process.Kill()
			t.Errorf("tandem run did not exit within 30s of SIGTERM\n%s", c.out.String())
		}
	})
	ctx := context.Background()
	testenv.WaitFor(t, "both streams' heartbeats", 60*time.Second, func() (bool, error) {
		select {
		case err := <-exited:
			return false, fmt.Errorf("tandem run exited: %v\n%s", err, c.out.String())
		default:
		}
		var fwd, rev bool
		q := `SELECT to_regclass('` + stateSchema + `.heartbeats') IS NOT NULL AND EXISTS (SELECT FROM ` + stateSchema + `.heartbeats WHERE stream LIKE $1)`
		// to_regclass keeps the query valid before tandem creates its tables.
		if err := c.new.QueryRowContext(ctx, `SELECT to_regclass('`+stateSchema+`.heartbeats') IS NOT NULL`).Scan(&fwd); err != nil || !fwd {
			return false, err
		}
		if err := c.old.QueryRowContext(ctx, `SELECT to_regclass('`+stateSchema+`.heartbeats') IS NOT NULL`).Scan(&rev); err != nil || !rev {
			return false, err
		}
		if err := c.new.QueryRowContext(ctx, q, "forward:%").Scan(&fwd); err != nil {
			return false, err
		}
		if err := c.old.QueryRowContext(ctx, q, "reverse:%").Scan(&rev); err != nil {
			return false, err
		}
		return fwd && rev, nil
	})
}

// result is how a tandem command ended.
type result struct {
	stdout, stderr string
	code           int            // -1 when killed by a signal
	signal         syscall.Signal // the signal that killed it, if any
}

// tandem runs the binary with args (and env added) to its end.
func (c *canaryCLI) tandem(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, tandemtest.Binary(), args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("tandem %s: %v", strings.Join(args, " "), err)
	}
	r := result{stdout: out.String(), stderr: errOut.String(), code: cmd.ProcessState.ExitCode()}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		r.signal = ws.Signal()
	}
	if strings.Contains(r.stdout+r.stderr, testenv.Password) {
		t.Errorf("tandem %s: the DSN password appears in the output", strings.Join(args, " "))
	}
	return r
}

// switchUntil runs `tandem switch` with args and env until it ends as done
// says, running it again while a gate refuses it (a reconcile that meets
// rows still in flight, a heartbeat not yet written), for at most a minute.
func (c *canaryCLI) switchUntil(t *testing.T, env []string, args []string, done func(result) bool) result {
	t.Helper()
	args = append([]string{"switch", "-c", c.cfgPath}, args...)
	var last result
	runs, refusals := 0, map[string]int{}
	_, err := poll.Until(context.Background(), 100*time.Millisecond, time.Minute, func() (bool, error) {
		runs++
		last = c.tandem(t, env, args...)
		if done(last) {
			return true, nil
		}
		if last.code == exitFailed && strings.Contains(last.stderr, "switch refused") {
			refusals[lastLine(last.stderr)]++
			return false, nil
		}
		return false, fmt.Errorf("exit %d, signal %v", last.code, last.signal)
	})
	if runs > 1 {
		t.Logf("tandem %s ran %d times; refused: %v", strings.Join(args[3:], " "), runs, refusals)
	}
	if err != nil {
		t.Fatalf("tandem %s: %v\nstdout:\n%s\nstderr:\n%s\n--- tandem run ---\n%s", strings.Join(args, " "), err, last.stdout, last.stderr, c.out.String())
	}
	return last
}

// lastLine is the last line of s that is not empty.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// ownerRow is a cohort's row in <state_schema>.cohorts of one database; a
// missing row reads as the old side's at version 0 (a fence creates it so).
type ownerRow struct {
	Owner   string
	To      string // switching_to
	Version int64
}

// owners reads cohort's row in both databases with SQL.
func (c *canaryCLI) owners(t *testing.T, cohort string) (old, new ownerRow) {
	t.Helper()
	read := func(db *canary.DB) ownerRow {
		r := ownerRow{Owner: "old"}
		err := db.QueryRowContext(context.Background(), `SELECT owner, coalesce(switching_to, ''), version FROM `+stateSchema+`.cohorts WHERE cohort = $1`,
			cohort).Scan(&r.Owner, &r.To, &r.Version)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			t.Fatal(err)
		}
		return r
	}
	return read(c.old), read(c.new)
}

// checkAllowed fails t unless the rows o (old database) and n (new) are a
// state the switch protocol can leave (see the cutover package doc and
// cutover.Recover): equal; one switching at a higher version than the
// other, which still names the side switched from (a switch killed before
// its fence committed: undone or redone); or one switching at the version
// at which the other already names its destination (killed between the
// commit and the flip: finished). Never two final owners that differ at
// the same version, both rows switching, or a switching row the other
// side has overtaken.
func checkAllowed(t *testing.T, when string, o, n ownerRow) {
	t.Helper()
	allowed := func(sw, other ownerRow) bool {
		if sw.Owner != "switching" || other.Owner == "switching" {
			return false
		}
		from := map[string]string{"old": "new", "new": "old"}[sw.To]
		return (sw.Version > other.Version && other.Owner == from) || (sw.Version == other.Version && other.Owner == sw.To)
	}
	if o == n && o.Owner != "switching" || allowed(o, n) || allowed(n, o) {
		return
	}
	t.Errorf("%s: the owners' rows are no state the protocol allows: old database %+v, new database %+v", when, o, n)
}

// TestSwitch_KilledAtEachPhaseIsFinishedOrUndoneByTheNextSwitch runs
// `tandem run` (the binary) with the canary application's two writers
// throughout, and for each phase of a switch, a forward switch of merchant
// 1 and then a back switch, each SIGKILLed as that phase begins
// (TANDEM_TEST_SWITCH_KILL_AT). After each kill the owners' rows must be
// what the protocol leaves at that phase; the same switch run again must
// finish (exit 0, both databases naming the destination at the version
// the protocol gives); both schemas must then hold exactly what the
// application wrote (nothing lost or doubled), and its writes must go on
// on the side that now owns the merchant.
func TestSwitch_KilledAtEachPhaseIsFinishedOrUndoneByTheNextSwitch(t *testing.T) {
	t.Parallel() // the package's longest test, on databases of its own: beside the other parallel ones
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	c := newCanaryCLI(t)
	c.run(t)
	a := canary.NewApp(c.old, c.new, stateSchema)
	a.Start(canary.Load{PerSecond: 45, Writers: 2}) // rows grow with the writes, and with them every reconcile gate and Converged: this keeps the test within ~2 minutes
	defer func() {
		if err := a.Stop(); err != nil {
			t.Error(err)
		}
	}()
	const cohort = "1"
	for _, phase := range []string{"gates", "switching", "fence", "drain", "commit", "flip"} {
		for _, to := range []string{"new", "old"} {
			from := map[string]string{"new": "old", "old": "new"}[to]
			args := []string{"--cohort", cohort}
			if to == "old" {
				args = append(args, "--back")
			}
			name := fmt.Sprintf("a switch to the %s side killed at %s", to, phase)
			bo, bn := c.owners(t, cohort)
			if bo != bn || bo.Owner != from {
				t.Fatalf("before %s: old database %+v, new database %+v: want both owned by %s", name, bo, bn, from)
			}
			v := bo.Version

			began := time.Now()
			c.switchUntil(t, []string{"TANDEM_TEST_SWITCH_KILL_AT=" + phase}, args, func(r result) bool { return r.signal == syscall.SIGKILL })
			o, n := c.owners(t, cohort)
			checkAllowed(t, "after "+name, o, n)
			// What the protocol leaves, as rows of the side switched from
			// (F) and the side switched to (T).
			gotF, gotT := o, n
			if to == "old" {
				gotF, gotT = n, o
			}
			switching := ownerRow{Owner: "switching", To: to, Version: v + 1}
			wantF, wantT := []ownerRow{bo}, []ownerRow{bo}
			wantVersion := v + 1 // after the switch run again
			switch phase {
			case "fence", "drain", "commit": // T marked switching; the fence, if taken, died with its connection
				wantT = []ownerRow{switching}
				wantVersion = v + 2
			case "flip": // F committed T as the owner; T switching, or finished by tandem run's Recover
				wantF = []ownerRow{{Owner: to, Version: v + 1}}
				wantT = []ownerRow{switching, {Owner: to, Version: v + 1}}
			}
			if !contains(wantF, gotF) || !contains(wantT, gotT) {
				t.Errorf("after %s: the %s database's row %+v (want one of %+v), the %s database's %+v (want one of %+v)",
					name, from, gotF, wantF, to, gotT, wantT)
			}

			done := c.switchUntil(t, nil, args, func(r result) bool { return r.code == 0 })
			wantOut := fmt.Sprintf("switched to the %s schema: %s (writes fenced", to, cohort)
			if phase == "flip" { // the next switch's Recover finished it
				wantOut = fmt.Sprintf("already owned by the %s schema: %s\n", to, cohort)
			}
			if !strings.HasPrefix(done.stdout, wantOut) {
				t.Errorf("the switch after %s printed %q, want it to begin %q", name, done.stdout, wantOut)
			}
			o, n = c.owners(t, cohort)
			want := ownerRow{Owner: to, Version: wantVersion}
			if diff := cmp.Diff([]ownerRow{want, want}, []ownerRow{o, n}); diff != "" {
				t.Errorf("after the switch that followed %s: the owners' rows [old, new] (-want +got):\n%s", name, diff)
			}

			resume := a.Pause()
			err := a.Converged(ctx, 60*time.Second)
			resume()
			if err != nil {
				t.Fatalf("after %s and the switch run again: %v\n--- tandem run ---\n%s", name, err, c.out.String())
			}
			// The application goes on writing, merchant 1 on the side that owns it now.
			ops := map[string]func() int64{"old": a.OldOps.Load, "new": a.NewOps.Load}[to]
			base, all := ops(), a.OldOps.Load()+a.NewOps.Load()
			testenv.WaitFor(t, "the application's writes on the "+to+" side after "+name, 30*time.Second, func() (bool, error) {
				return ops() >= base+3 && a.OldOps.Load()+a.NewOps.Load() >= all+20, a.Err()
			})
			t.Logf("after %s (%s): %d writes on the old side, %d on the new, %d refused and retried", name,
				time.Since(began).Round(time.Millisecond), a.OldOps.Load(), a.NewOps.Load(), a.Refused.Load())
		}
	}
}

// contains reports whether rows holds r.
func contains(rows []ownerRow, r ownerRow) bool {
	for _, x := range rows {
		if x == r {
			return true
		}
	}
	return false
}

// TestSwitch_CommandLine checks what `tandem switch` and `tandem status`
// say to their user: exit 2 for --cohort with --all or neither; exit 1 and
// the gate's reason when a gate refuses (no tandem run yet); after
// switches, the cohorts and their owners in `status --format json`, and
// the streams in the text.
func TestSwitch_CommandLine(t *testing.T) {
	c := newCanaryCLI(t)
	for _, args := range [][]string{{"--cohort", "1", "--all"}, {}, {"--back"}} {
		r := c.tandem(t, nil, append([]string{"switch", "-c", c.cfgPath}, args...)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, "want --cohort A[,B...] or --all") {
			t.Errorf("tandem switch %s: exit %d, stderr %q: want exit %d naming --cohort and --all", strings.Join(args, " "), r.code, r.stderr, exitUsage)
		}
	}

	// No tandem run yet: the stream gates refuse, naming the streams.
	r := c.tandem(t, nil, "switch", "-c", c.cfgPath, "--cohort", "1")
	for _, want := range []string{"switch refused", "forward lag: the forward stream of mapping public.orders has never run",
		"reverse stream ready: the reverse stream of mapping public.orders has never run"} {
		if r.code != exitFailed || !strings.Contains(r.stderr, want) {
			t.Errorf("tandem switch before tandem run: exit %d, stderr %q: want exit %d and %q", r.code, r.stderr, exitFailed, want)
		}
	}

	if o, n := c.owners(t, "1"); o != (ownerRow{Owner: "old"}) || n != o {
		t.Errorf("a refused switch changed the owners: old database %+v, new database %+v", o, n)
	}

	c.run(t)
	if _, err := c.old.ExecContext(context.Background(), `INSERT INTO orders VALUES (1, 1, 100, 'new', 'card'), (2, 2, 200, 'paid', ''), (3, 3, 300, 'new', 'cash')`); err != nil {
		t.Fatal(err)
	}
	c.switchUntil(t, nil, []string{"--cohort", "1,2"}, func(r result) bool { return r.code == 0 })
	c.switchUntil(t, nil, []string{"--cohort", "2", "--back"}, func(r result) bool { return r.code == 0 })

	r = c.tandem(t, nil, "status", "-c", c.cfgPath, "--format", "json")
	if r.code != 0 {
		t.Fatalf("tandem status --format json: exit %d\n%s", r.code, r.stderr)
	}
	var st app.Status
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("tandem status --format json: %v\n%s", err, r.stdout)
	}
	want := []app.CohortStatus{
		{Cohort: "1", Owner: "new", Old: "new", New: "new", Version: 1},
		{Cohort: "2", Owner: "old", Old: "old", New: "old", Version: 2},
	}
	if diff := cmp.Diff(want, st.Cohorts, cmpopts.IgnoreFields(app.CohortStatus{}, "Changed")); diff != "" {
		t.Errorf("tandem status --format json: cohorts (-want +got):\n%s", diff)
	}
	for _, co := range st.Cohorts {
		if time.Since(co.Changed) > time.Minute || co.Changed.After(time.Now()) {
			t.Errorf("cohort %s changed at %s: want within the last minute", co.Cohort, co.Changed)
		}
	}
	var streams []string
	for _, s := range st.Streams {
		streams = append(streams, s.Stream)
	}
	if diff := cmp.Diff([]string{"fence:back", "fence:forward", "forward:public.orders", "reverse:public.orders"}, streams); diff != "" {
		t.Errorf("tandem status --format json: streams (-want +got):\n%s", diff)
	}

	r = c.tandem(t, nil, "status", "-c", c.cfgPath)
	if r.code != 0 {
		t.Fatalf("tandem status: exit %d\n%s", r.code, r.stderr)
	}
	for _, want := range []string{"STREAM", "forward:public.orders", "reverse:public.orders", "COHORT"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("tandem status does not show %q:\n%s", want, r.stdout)
		}
	}
}
