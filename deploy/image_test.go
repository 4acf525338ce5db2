//go:build imagecheck

// The image's tests need the image built (buildah, a cold static build):
// `make image-check` builds it and runs them with -tags imagecheck, so that
// `go test ./...` neither builds the image nor skips them.

package deploy

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tandemcdc/tandem/internal/fixture/shop"
	"github.com/tandemcdc/tandem/internal/testenv"
)

var imageName = flag.String("image", "", "test this image of buildah's vfs store (`make image-check` builds tandem and passes -image tandem)")

// buildah runs buildah on the vfs store `make image` builds into.
func buildah(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("buildah", append([]string{"--storage-driver", "vfs"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("buildah %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// imageContainer makes a working container of the image, removed when the
// test ends.
func imageContainer(t *testing.T) string {
	t.Helper()
	if *imageName == "" {
		t.Fatal("no -image: `make image-check` builds the image and runs these tests with -tags imagecheck -image tandem")
	}
	name := fmt.Sprintf("tandem-imagetest-%d-%s", os.Getpid(), strings.ToLower(regexp.MustCompile(`\W`).ReplaceAllString(t.Name(), "-")))
	ctr := buildah(t, "from", "--name", name, *imageName)
	t.Cleanup(func() {
		if out, err := exec.Command("buildah", "--storage-driver", "vfs", "rm", ctr).CombinedOutput(); err != nil {
			t.Errorf("buildah rm %s: %v\n%s", ctr, err, out)
		}
	})
	return ctr
}

// The image holds the static binary, CA certificates, time zone data and a
// passwd/group naming its non-root user, and nothing else; tandem is its
// entry point and it runs as that user.
func TestImage_HoldsOnlyTheStaticBinaryCertificatesAndZones(t *testing.T) {
	ctr := imageContainer(t)
	var inspect struct {
		OCIv1 struct {
			Config struct {
				User       string
				Entrypoint []string
			}
		}
	}
	if err := json.Unmarshal([]byte(buildah(t, "inspect", "--type", "container", ctr)), &inspect); err != nil {
		t.Fatal(err)
	}
	cfg := inspect.OCIv1.Config
	if uid := imageUser(t); cfg.User != "65532:65532" || uid != 65532 {
		t.Errorf("user %q (Dockerfile %d), want 65532:65532, the uid the manifests run as", cfg.User, uid)
	}
	if len(cfg.Entrypoint) != 1 || cfg.Entrypoint[0] != "/usr/local/bin/tandem" {
		t.Errorf("entry point %q, want [/usr/local/bin/tandem]", cfg.Entrypoint)
	}

	root := buildah(t, "mount", ctr)
	defer buildah(t, "umount", ctr)
	allowed := regexp.MustCompile(`^(/etc/(passwd|group)|/etc/ssl/certs/ca-certificates\.crt|/usr/share/zoneinfo/.+|/usr/local/bin/tandem)$`)
	zones := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := "/" + strings.TrimPrefix(strings.TrimPrefix(path, root), "/")
		if d.IsDir() {
			return nil
		}
		if !allowed.MatchString(rel) {
			t.Errorf("the image holds %s, which it should not", rel)
		}
		if strings.HasPrefix(rel, "/usr/share/zoneinfo/") && d.Type().IsRegular() {
			zones++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if zones < 300 {
		t.Errorf("%d zone files, want the whole tzdata", zones)
	}
	for _, zone := range []string{"Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC"} {
		data, err := os.ReadFile(filepath.Join(root, "usr/share/zoneinfo", zone))
		if err == nil {
			_, err = time.LoadLocationFromTZData(zone, data)
		}
		if err != nil {
			t.Errorf("zone %s: %v", zone, err)
		}
	}
	certs, err := os.ReadFile(filepath.Join(root, "etc/ssl/certs/ca-certificates.crt"))
	if err != nil || strings.Count(string(certs), "BEGIN CERTIFICATE") < 50 {
		t.Errorf("CA certificates: %d in the bundle (%v)", strings.Count(string(certs), "BEGIN CERTIFICATE"), err)
	}
	passwd, err := os.ReadFile(filepath.Join(root, "etc/passwd"))
	if err != nil || !strings.Contains(string(passwd), ":65532:65532:") {
		t.Errorf("/etc/passwd names no user 65532: %q (%v)", passwd, err)
	}
	bin, err := elf.Open(filepath.Join(root, "usr/local/bin/tandem"))
	if err != nil {
		t.Fatal(err)
	}
	defer bin.Close()
	for _, p := range bin.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("tandem is dynamically linked: the image has no loader or libc")
		}
	}
	if st, err := os.Stat(filepath.Join(root, "usr/local/bin/tandem")); err != nil || st.Mode().Perm()&0o022 != 0 {
		t.Errorf("tandem's mode %v (%v): its user must not be able to change it", st.Mode(), err)
	}
}

// The binary runs inside the image as its non-root user: `version` prints
// the version make stamped in, `check` passes against the test PostgreSQL
// servers, and a short `run` (embedded broker) converges the shop
// migration and stops cleanly on SIGTERM.
func TestImage_RunsVersionCheckAndAConvergingRun(t *testing.T) {
	ctr := imageContainer(t)
	run := func(args ...string) *exec.Cmd {
		return exec.Command("buildah", append([]string{"--storage-driver", "vfs", "run", "--isolation", "chroot", ctr, "--", "tandem"}, args...)...)
	}
	out, err := run("version").CombinedOutput()
	if err != nil {
		t.Fatalf("tandem version in the image: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`^tandem \S+ \(go1\.`).Match(out) || strings.HasPrefix(string(out), "tandem dev ") {
		t.Errorf("tandem version: %q, want the version make stamps with -ldflags", out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	m, err := shop.Open(ctx, testenv.NewDatabase(t), testenv.NewDatabase(t), true)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	cfgFile := filepath.Join(t.TempDir(), "tandem.yaml")
	if err := os.WriteFile(cfgFile, []byte(shop.Config(shop.ConfigOptions{SourceDSN: m.SrcDSN, TargetDSN: m.TgtDSN, Slot: "image_test"})), 0o644); err != nil {
		t.Fatal(err)
	}
	buildah(t, "copy", ctr, cfgFile, "/etc/tandem/tandem.yaml")

	if out, err := run("check", "-c", "/etc/tandem/tandem.yaml").CombinedOutput(); err != nil {
		t.Fatalf("tandem check in the image: %v\n%s", err, out)
	}

	// buildah run SIGKILLs its command when it gets SIGTERM itself, so the
	// SIGTERM goes to tandem, found among buildah's descendants, as the
	// kubelet's would go to the container's process.
	cmd := run("run", "-c", "/etc/tandem/tandem.yaml")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logs := &testenv.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			if pid, err := descendant(cmd.Process.Pid, "tandem"); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	}()
	testenv.WaitFor(t, "tandem in the image to stream", 60*time.Second, func() (bool, error) {
		select {
		case err := <-exited:
			stopped = true
			t.Fatalf("tandem run in the image exited: %v\n%s", err, logs.String())
		default:
		}
		return strings.Contains(logs.String(), "streaming from replication slot"), nil
	})
	w := &shop.Workload{Src: m.Src, Seed: 19}
	if err := w.Run(ctx, 300, 0); err != nil {
		t.Fatal(err)
	}
	got, err := m.WaitConverged(ctx, 90*time.Second)
	if err != nil {
		t.Fatalf("%v\n--- tandem in the image ---\n%s", err, logs.String())
	}
	if got.Count() < 50 {
		t.Errorf("only %d target rows: the run proved little", got.Count())
	}
	pid, err := descendant(cmd.Process.Pid, "tandem")
	if err != nil {
		t.Fatal(err)
	}
	if uid, err := processUID(pid); err != nil || uid != imageUser(t) {
		t.Errorf("tandem runs in the image as uid %d (%v), want the image's user %d", uid, err, imageUser(t))
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err = <-exited:
		stopped = true
	case <-time.After(45 * time.Second):
		t.Fatalf("tandem in the image did not stop within 45s of SIGTERM\n%s", logs.String())
	}
	if err != nil {
		t.Errorf("tandem run in the image after SIGTERM: %v (want exit 0)\n%s", err, logs.String())
	}
	if strings.Contains(logs.String(), testenv.Password) {
		t.Error("the DSN password appears in tandem's output")
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		t.Logf("converged %d target rows; peak RSS of buildah run and tandem in it: %d MiB", got.Count(), ru.Maxrss/1024)
	}
}

// descendant returns the pid of the process named comm among root's
// descendants, read from /proc.
func descendant(root int, comm string) (int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	parent, name := map[int]int{}, map[int]string{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		lp, rp := bytes.IndexByte(stat, '('), bytes.LastIndexByte(stat, ')')
		if lp < 0 || rp < lp {
			continue
		}
		fields := strings.Fields(string(stat[rp+1:]))
		if len(fields) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(fields[1])
		parent[pid], name[pid] = ppid, string(stat[lp+1:rp])
	}
	for pid, n := range name {
		if n != comm {
			continue
		}
		for p := parent[pid]; p > 1; p = parent[p] {
			if p == root {
				return pid, nil
			}
		}
	}
	return 0, fmt.Errorf("no process %q under pid %d", comm, root)
}

// processUID returns the real uid a process runs as.
func processUID(pid int) (int64, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(status)) {
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no Uid line", pid)
}
