package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/internal/fixture/shop"
	"github.com/tandemcdc/tandem/internal/tandemtest"
	"github.com/tandemcdc/tandem/internal/testenv"
)

// tandemCmd runs the binary to its end and returns its output and exit code.
func tandemCmd(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, tandemtest.Binary(), args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("tandem %s: %v", strings.Join(args, " "), err)
	}
	if strings.Contains(out.String()+errOut.String(), testenv.Password) {
		t.Errorf("tandem %s: the DSN password appears in the output", strings.Join(args, " "))
	}
	return out.String(), errOut.String(), code
}

// volatile is what changes from run to run in `dlq list`: times, source
// positions, partitions and offsets.
var volatile = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? UTC`), "<time>"},
	{regexp.MustCompile(` at [0-9A-F]+/[0-9A-F]+,`), " at <lsn>,"},
	{regexp.MustCompile(`partition \d+ offset \d+`), "partition <p> offset <o>"},
}

func normalize(s string) string {
	for _, v := range volatile {
		s = v.re.ReplaceAllString(s, v.with)
	}
	return s
}

// TestDLQ_ListShowsTheDeadLettersAndReplayResyncsThemOnceFixed runs the
// binary: `tandem run` with a mapping that fails on some orders, then
// `dlq list` (full, limited, of another mapping), `dlq replay` while the
// mapping still fails (exit 1, nothing removed), and again once it is
// fixed (exit 0, the target equals the source).
func TestDLQ_ListShowsTheDeadLettersAndReplayResyncsThemOnceFixed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	m, slot := tandemtest.OpenShop(ctx, t)
	fixed := shop.Config(shop.ConfigOptions{Slot: slot})
	broken := strings.Replace(fixed, `status: 'row.status == "" ? "pending" : row.status'`,
		`status: 'row.status == "poison" ? string(int(row.status)) : (row.status == "" ? "pending" : row.status)'`, 1)
	if broken == fixed {
		t.Fatal("the shop mapping changed: cannot break its status column")
	}
	cfgPath := filepath.Join(t.TempDir(), "tandem.yaml")
	writeConfig := func(yaml string) {
		t.Helper()
		if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig(broken)
	env := []string{"TANDEM_SOURCE_DSN=" + m.SrcDSN, "TANDEM_TARGET_DSN=" + m.TgtDSN}

	// Before tandem ever ran: nothing to list, and listing creates nothing.
	if stdout, stderr, code := tandemCmd(t, env, "dlq", "list", "-c", cfgPath); code != 0 || stdout != "no dead letters\n" {
		t.Errorf("dlq list on a fresh target: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	var schemas int
	if err := m.Tgt.QueryRow(ctx, `SELECT count(*) FROM pg_namespace WHERE nspname = 'tandem'`).Scan(&schemas); err != nil || schemas != 0 {
		t.Errorf("dlq list created tandem's schema in the target (%d, %v)", schemas, err)
	}

	out := &testenv.SyncBuffer{}
	p := tandemtest.Start(t, cfgPath, env, out)
	defer func() {
		_ = p.Cmd.Process.Kill()
		_ = p.Cmd.Wait()
	}()
	testenv.WaitFor(t, "replication started", 30*time.Second, func() (bool, error) {
		return strings.Contains(out.String(), "streaming from replication slot"), nil
	})
	exec := func(sql string) {
		t.Helper()
		if _, err := m.Src.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	deadLetters := func(n int) {
		t.Helper()
		testenv.WaitFor(t, "dead letters in the target", 30*time.Second, func() (bool, error) {
			var got int
			err := m.Tgt.QueryRow(ctx, `SELECT count(*) FROM tandem.dead_letters`).Scan(&got)
			return err == nil && got == n, nil
		})
	}
	// One at a time, so that they are stored in this order.
	exec(`INSERT INTO shop.orders (id, customer_id, total, status, payment_method, created_at) VALUES
		(1, 1, 1.00, 'paid', 'card', '2024-01-01 00:00:00+00'), (2, 1, 2.00, 'poison', '', '2024-01-01 00:00:00+00')`)
	deadLetters(1)
	exec(`INSERT INTO shop.orders (id, customer_id, total, status, created_at) VALUES (3, 2, 3.00, 'poison', '2024-01-02 00:00:00+00')`)
	deadLetters(2)
	exec(`UPDATE shop.orders SET total = 3.50 WHERE id = 3`)
	deadLetters(3)
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.Cmd.Wait(); err != nil {
		t.Fatalf("tandem run after SIGTERM: %v\n%s", err, out.String())
	}

	errLine := `  error   mapping shop.orders: to[0].columns.status (row.status == "poison" ? string(int(row.status)) : (row.status == "" ? "pending" : row.status)): `
	var celErr string // CEL's words for int("poison"), as stored
	if err := m.Tgt.QueryRow(ctx, `SELECT error FROM tandem.dead_letters LIMIT 1`).Scan(&celErr); err != nil {
		t.Fatal(err)
	}
	celErr = strings.TrimPrefix(celErr, strings.TrimPrefix(errLine, "  error   "))
	block := func(id, op, images string) string {
		return "\n<time>  shop.orders  transform\n" +
			"  source  shop.orders id=" + id + " at <lsn>, committed <time>\n" +
			"  kafka   shop.shop.orders partition <p> offset <o>\n" +
			errLine + celErr + "\n" +
			"  change  " + op + "  " + images + "\n"
	}
	order := func(id, customer, total, created string) string {
		return `{"id":` + id + `,"customer_id":` + customer + `,"total":"` + total + `","status":"poison","payment_method":"","card_last4":null,"created_at":"` + created + `T00:00:00Z"}`
	}
	blocks := []string{
		block("2", "c", "after "+order("2", "1", "2.00", "2024-01-01")),
		block("3", "c", "after "+order("3", "2", "3.00", "2024-01-02")),
		block("3", "u", "after "+order("3", "2", "3.50", "2024-01-02")),
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"dlq", "list", "-c", cfgPath}, "3 dead letters, oldest first:\n" + strings.Join(blocks, "")},
		{[]string{"dlq", "list", "-c", cfgPath, "--limit", "1"}, "3 dead letters, oldest first:\n" + blocks[0] + "\n… and 2 more (--limit 0 shows all)\n"},
		{[]string{"dlq", "list", "-c", cfgPath, "--mapping", "shop.orders", "--limit", "0"}, "3 dead letters, oldest first:\n" + strings.Join(blocks, "")},
		{[]string{"dlq", "list", "-c", cfgPath, "--mapping", "shop.customers"}, "no dead letters of mapping shop.customers\n"},
	} {
		stdout, stderr, code := tandemCmd(t, env, tc.args...)
		if code != exitOK {
			t.Errorf("tandem %s: exit %d, want 0\n%s", strings.Join(tc.args, " "), code, stderr)
		}
		if diff := cmp.Diff(tc.want, normalize(stdout)); diff != "" {
			t.Errorf("tandem %s (-want +got):\n%s\nstdout:\n%s", strings.Join(tc.args, " "), diff, stdout)
		}
	}

	// Still broken: nothing is re-synced, every dead letter is kept, exit 1.
	stdout, stderr, code := tandemCmd(t, env, "dlq", "replay", "-c", cfgPath)
	want := "still failing: shop.orders id=2 (1 dead letter kept): mapping shop.orders: to[0].columns.status (row.status == \"poison\" ? string(int(row.status)) : (row.status == \"\" ? \"pending\" : row.status)): " + celErr + "\n" +
		"still failing: shop.orders id=3 (2 dead letters kept): mapping shop.orders: to[0].columns.status (row.status == \"poison\" ? string(int(row.status)) : (row.status == \"\" ? \"pending\" : row.status)): " + celErr + "\n" +
		"re-synced 0 rows, removed 0 dead letters, 2 still failing (3 dead letters kept)\n"
	if diff := cmp.Diff(want, stdout); code != exitFailed || diff != "" {
		t.Errorf("dlq replay with the broken mapping: exit %d (want 1), stdout (-want +got):\n%s\nstderr:\n%s", code, diff, stderr)
	}
	if _, stderr, code := tandemCmd(t, env, "dlq", "replay", "-c", cfgPath, "--mapping", "shop.refunds"); code != exitUsage || !strings.Contains(stderr, `mapping "shop.refunds"`) {
		t.Errorf("dlq replay --mapping shop.refunds: exit %d (want 2), stderr:\n%s", code, stderr)
	}

	// Drop the newest dead letter by its coordinates: listed no more, the
	// others kept; dropping it again finds nothing; a selection that is
	// neither one dead letter nor --all is a usage error.
	var topic string
	var partition int32
	var offset int64
	if err := m.Tgt.QueryRow(ctx, `SELECT topic, partition, "offset" FROM tandem.dead_letters ORDER BY created_at DESC, "offset" DESC LIMIT 1`).Scan(&topic, &partition, &offset); err != nil {
		t.Fatal(err)
	}
	coords := []string{"--topic", topic, "--partition", strconv.Itoa(int(partition)), "--offset", strconv.FormatInt(offset, 10)}
	stdout, stderr, code = tandemCmd(t, env, append([]string{"dlq", "drop", "-c", cfgPath}, coords...)...)
	if want := "dropped shop.orders  shop.shop.orders partition <p> offset <o>\ndropped 1 dead letter; their rows were not re-synced\n"; code != exitOK || normalize(stdout) != want {
		t.Errorf("dlq drop of one: exit %d, stdout %q, want %q\nstderr:\n%s", code, stdout, want, stderr)
	}
	if stdout, _, code := tandemCmd(t, env, "dlq", "list", "-c", cfgPath); code != exitOK || normalize(stdout) != "2 dead letters, oldest first:\n"+blocks[0]+blocks[1] {
		t.Errorf("dlq list after the drop: exit %d, stdout:\n%s", code, stdout)
	}
	if _, stderr, code := tandemCmd(t, env, append([]string{"dlq", "drop", "-c", cfgPath}, coords...)...); code != exitFailed || !strings.Contains(stderr, "no dead letter at shop.shop.orders") {
		t.Errorf("dlq drop of one dropped already: exit %d (want 1), stderr:\n%s", code, stderr)
	}
	for _, args := range [][]string{{}, {"--topic", topic}, append([]string{"--all"}, coords...)} {
		if _, stderr, code := tandemCmd(t, env, append([]string{"dlq", "drop", "-c", cfgPath}, args...)...); code != exitUsage || !strings.Contains(stderr, "name one dead letter") {
			t.Errorf("dlq drop %v: exit %d (want 2), stderr:\n%s", args, code, stderr)
		}
	}
	if stdout, _, code := tandemCmd(t, env, "dlq", "drop", "-c", cfgPath, "--all", "--mapping", "shop.customers"); code != exitOK || stdout != "no dead letters of mapping shop.customers to drop\n" {
		t.Errorf("dlq drop --all of a mapping without any: exit %d, stdout %q", code, stdout)
	}

	// Fixed: both orders are re-synced from their current rows.
	writeConfig(fixed)
	stdout, stderr, code = tandemCmd(t, env, "dlq", "replay", "-c", cfgPath)
	if want := "re-synced 2 rows, removed 2 dead letters, 0 still failing (0 dead letters kept)\n"; code != exitOK || stdout != want {
		t.Errorf("dlq replay with the fixed mapping: exit %d (want 0), stdout %q, want %q\nstderr:\n%s", code, stdout, want, stderr)
	}
	if diff, _, err := m.Diff(ctx); err != nil || diff != "" {
		t.Errorf("target after the replay (-want +got): %v\n%s", err, diff)
	}
	for _, args := range [][]string{{"dlq", "list", "-c", cfgPath}, {"dlq", "replay", "-c", cfgPath}} {
		want := map[string]string{"list": "no dead letters\n", "replay": "no dead letters to replay\n"}[args[1]]
		if stdout, stderr, code := tandemCmd(t, env, args...); code != exitOK || stdout != want {
			t.Errorf("tandem %s afterwards: exit %d, stdout %q; want 0, %q\nstderr:\n%s", strings.Join(args, " "), code, stdout, want, stderr)
		}
	}
}
