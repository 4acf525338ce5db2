package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// defaultBinDir is where Debian's postgresql-15 package puts the server binaries.
const defaultBinDir = "/usr/lib/postgresql/15/bin"

// ErrNoPostgreSQL is returned (wrapped) by StartPostgreSQL when the PostgreSQL
// server binaries are not installed.
var ErrNoPostgreSQL = errors.New("PostgreSQL server binaries not found")

// BinDir returns the folder holding the PostgreSQL binaries (initdb, pg_ctl,
// postgres, pg_recvlogical, psql...): $TANDEM_PG_BIN when set, else
// /usr/lib/postgresql/15/bin.
func BinDir() string {
	if d := os.Getenv("TANDEM_PG_BIN"); d != "" {
		return d
	}
	return defaultBinDir
}

// checkBinaries reports ErrNoPostgreSQL, with what to do about it, when one of
// the binaries testenv runs is missing from bin.
func checkBinaries(bin string) error {
	for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
		if _, err := os.Stat(filepath.Join(bin, name)); err != nil {
			return fmt.Errorf("%w: no %s in %s; run `make deps` (scripts/deps.sh) to install postgresql-15, or set TANDEM_PG_BIN to the folder that holds initdb, pg_ctl and postgres",
				ErrNoPostgreSQL, name, bin)
		}
	}
	return nil
}

// ModuleRoot returns the folder holding go.mod, walking up from the working
// directory. Under `go test` the working directory is the package's folder,
// so this is the root of the tandem module.
func ModuleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find module root: %w", err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if st, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil && !st.IsDir() {
			return dir, nil
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("find module root: no go.mod in %s or any parent", wd)
		}
	}
}

// runner runs the PostgreSQL binaries: directly, or as the postgres user
// through runuser when this process is root (initdb, pg_ctl and postgres
// refuse to run as root).
type runner struct {
	asPostgres bool
	runuser    string // path of runuser, when asPostgres
	uid, gid   int    // of the postgres user, when asPostgres
}

func newRunner() (runner, error) {
	if os.Geteuid() != 0 {
		return runner{}, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return runner{}, fmt.Errorf("running as root needs the postgres user to run PostgreSQL (the postgresql-15 package creates it; run scripts/deps.sh): %w", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return runner{}, fmt.Errorf("postgres user has a non-numeric uid %q or gid %q", u.Uid, u.Gid)
	}
	ru, err := exec.LookPath("runuser")
	if err != nil {
		ru = "/usr/sbin/runuser"
		if _, serr := os.Stat(ru); serr != nil {
			return runner{}, fmt.Errorf("running as root needs runuser (util-linux) to run PostgreSQL as the postgres user: %w", err)
		}
	}
	return runner{asPostgres: true, runuser: ru, uid: uid, gid: gid}, nil
}

// command builds the command for a binary, run in dir with a clean
// environment: no PG* variables (PGPORT, PGDATA... would change what the tools
// do) and C messages (the logs are read for known failures).
func (r runner) command(ctx context.Context, dir, name string, args ...string) *exec.Cmd {
	var cmd *exec.Cmd
	if r.asPostgres {
		cmd = exec.CommandContext(ctx, r.runuser, append([]string{"-u", "postgres", "--", name}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, name, args...)
	}
	cmd.Dir = dir
	env := []string{"LC_ALL=C"}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG") {
			continue
		}
		env = append(env, kv)
	}
	cmd.Env = env
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// run runs a binary and returns an error holding its output when it fails.
func (r runner) run(ctx context.Context, dir, name string, args ...string) error {
	out, err := r.command(ctx, dir, name, args...).CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if msg == "" {
			return fmt.Errorf("%s: %w", filepath.Base(name), err)
		}
		return fmt.Errorf("%s: %w: %s", filepath.Base(name), err, msg)
	}
	return nil
}

// chown hands path to the postgres user when the binaries run as postgres.
func (r runner) chown(path string) error {
	if !r.asPostgres {
		return nil
	}
	return os.Lchown(path, r.uid, r.gid)
}

// writeFile writes a file the server will read.
func (r runner) writeFile(path string, data []byte, perm fs.FileMode) error {
	if err := os.WriteFile(path, data, perm); err != nil {
		return err
	}
	return r.chown(path)
}

// canReach reports whether the user running the binaries can reach dir: as
// root, whether every parent of dir is traversable by postgres.
func (r runner) canReach(ctx context.Context, dir string) bool {
	if !r.asPostgres {
		return true
	}
	return r.command(ctx, "/", "test", "-x", dir).Run() == nil
}

// ownerFile, in each server folder, names the process that owns the server:
// "<pid> <start time>", the start time in clock ticks after boot as
// /proc/<pid>/stat gives it (so a reused pid is not taken for the owner).
const ownerFile = "owner"

// writeOwner records this process as the owner of dir.
func writeOwner(dir string) error {
	pid := os.Getpid()
	start, _ := processStart(pid)
	return os.WriteFile(filepath.Join(dir, ownerFile), fmt.Appendf(nil, "%d %d\n", pid, start), 0o644)
}

// ownerAlive reports whether the process that owns dir still runs. A missing
// or unreadable owner file means no live owner.
func ownerAlive(dir string) (pid int, alive bool) {
	b, err := os.ReadFile(filepath.Join(dir, ownerFile))
	if err != nil {
		return 0, false
	}
	var start uint64
	if n, _ := fmt.Sscan(string(b), &pid, &start); n < 1 || pid <= 0 {
		return 0, false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return pid, false
	}
	if now, ok := processStart(pid); ok && start != 0 && now != start {
		return pid, false // the pid was reused by another process
	}
	return pid, true
}

// processStart returns a process's start time from /proc/<pid>/stat.
func processStart(pid int) (uint64, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// The command name (field 2) may hold spaces and parentheses: the fields
	// after it start past the last ')'. starttime is field 22.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	fields := strings.Fields(string(b[i+1:]))
	const startField = 22 - 3 // fields[0] is field 3
	if len(fields) <= startField {
		return 0, false
	}
	v, err := strconv.ParseUint(fields[startField], 10, 64)
	return v, err == nil
}

// lockRoot takes an exclusive lock on a folder of servers, held while stale
// servers are cleaned and while a new server folder is created and claimed,
// so concurrent test binaries never clean a folder another is setting up.
func lockRoot(root string) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(root, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", root, err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", root, err)
	}
	return func() { f.Close() }, nil // closing releases the lock
}

// serverPrefix starts the name of every PostgreSQL server folder in a root.
const serverPrefix = "pg-"

// cleanStale stops and deletes the servers under root whose owner process is
// gone. The caller holds root's lock.
func cleanStale(ctx context.Context, r runner, bin, root string) (removed []string, err error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("clean stale servers: %w", err)
	}
	var errs []error
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), serverPrefix) {
			continue
		}
		dir := filepath.Join(root, e.Name())
		if _, alive := ownerAlive(dir); alive {
			continue
		}
		if err := stopServer(ctx, r, bin, dir); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("remove stale server folder: %w", err))
			continue
		}
		removed = append(removed, dir)
	}
	return removed, errors.Join(errs...)
}

// stopServer stops, with pg_ctl stop -m immediate, whatever server may run
// in the server folder dir, and kills its postmaster if pg_ctl cannot.
// A folder without a running server is not an error.
func stopServer(ctx context.Context, r runner, bin, dir string) error {
	data := filepath.Join(dir, "data")
	if _, err := os.Stat(filepath.Join(data, "postmaster.pid")); errors.Is(err, fs.ErrNotExist) {
		return nil // never started, or shut down cleanly
	}
	err := r.run(ctx, dir, filepath.Join(bin, "pg_ctl"), "stop", "-D", data, "-m", "immediate", "-w", "-t", "30", "-s")
	if err == nil {
		return nil
	}
	pid, alive := postmasterAlive(data)
	if !alive {
		return nil
	}
	if kerr := syscall.Kill(pid, syscall.SIGKILL); kerr != nil && !errors.Is(kerr, syscall.ESRCH) {
		return fmt.Errorf("stop server in %s: %w; kill postmaster %d: %w", dir, err, pid, kerr)
	}
	return nil
}

// postmasterAlive reads the postmaster pid from data/postmaster.pid and
// reports whether that process runs.
func postmasterAlive(data string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(data, "postmaster.pid"))
	if err != nil {
		return 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		return 0, false
	}
	err = syscall.Kill(pid, 0)
	return pid, err == nil || errors.Is(err, syscall.EPERM)
}

// Ports are picked below Linux's default ephemeral range (32768-60999), so a
// client connection's local port never takes a server's port between a
// Restart's stop and start.
const (
	portLow  = 20000
	portHigh = 32000
)

// freePort returns a port on 127.0.0.1 that nothing listens on right now.
func freePort() (int, error) {
	for range 100 {
		port := portLow + rand.IntN(portHigh-portLow)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		l.Close()
		return port, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
