package testenv

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/tandemcdc/tandem/internal/mysqlurl"
	"github.com/tandemcdc/tandem/internal/poll"
)

// ErrNoMariaDB is returned (wrapped) by StartMariaDB when the MariaDB server
// binaries are not installed.
var ErrNoMariaDB = errors.New("MariaDB server binaries not found")

// The Debian mariadb-server package's binaries.
const (
	mariadbdPath  = "/usr/sbin/mariadbd"
	installDBPath = "/usr/bin/mariadb-install-db"
)

// Names inside a MariaDB server folder.
const (
	mariadbPrefix  = "mariadb-" // of the folder itself, in a root
	mariadbSocket  = "mariadbd.sock"
	mariadbPidFile = "mariadbd.pid"
	mariadbLogFile = "mariadb.log"
	mariadbTmpDir  = "tmp"
)

// mariadbStopWait bounds how long Stop waits for a clean shutdown before it
// kills the server, and how long a kill may take to show.
const mariadbStopWait = 60 * time.Second

// MariaDB is a running throwaway MariaDB server on 127.0.0.1, with the
// binary log on in ROW format with full row images and full metadata, as a
// binlog capturer needs.
//
// Its methods are safe for concurrent use. The fields are set by
// StartMariaDB and never change.
type MariaDB struct {
	Dir      string // data (Dir/data, binlog included) + socket + log folder
	Port     int    // TCP port on 127.0.0.1
	User     string // "tandem", with ALL PRIVILEGES ON *.* WITH GRANT OPTION, from 127.0.0.1 and localhost
	Password string // Password, the fixed test password; never logged

	bins     mariadbBins
	settings map[string]string // the caller's extra settings
	log      *slog.Logger

	mu      sync.Mutex // serialises Restart and Stop
	stopped bool
	proc    *mariadbProc // the mariadbd this process started last
}

// MariaDBOptions configures StartMariaDB. The zero value starts a server in
// a new folder on a free port.
type MariaDBOptions struct {
	// Dir is where to put the server: a folder that is missing or empty.
	// Stop, or a failed start, removes it. "" means a new folder under
	// <module root>/.work/testenv/, or os.TempDir()/tandem-testenv/ when that
	// cannot be used.
	Dir string
	// Settings are extra mariadbd settings, passed as --name=value after
	// (and so overriding) testenv's own; an empty value passes --name alone.
	// The port, socket, data folder and file locations are testenv's: setting
	// them here is an error.
	Settings map[string]string
	// Logger receives the few notable events (a fallback folder, removed
	// stale servers, a port retry). nil means slog.Default().
	Logger *slog.Logger
}

// mariadbBaseSettings are the mariadbd settings of every server, besides the
// port and the paths. The binlog is what tandem's MySQL capture reads:
// binlog_row_metadata=FULL gives it the column names. Durability is traded
// for speed (no fsync per commit), which survives a killed server but not a
// power loss. collation_server and time_zone keep the server defaults
// (utf8mb4_general_ci, SYSTEM).
var mariadbBaseSettings = map[string]string{
	"server_id":                      "1",
	"binlog_format":                  "ROW",
	"binlog_row_image":               "FULL",
	"binlog_row_metadata":            "FULL",
	"character_set_server":           "utf8mb4",
	"skip_name_resolve":              "",
	"innodb_flush_log_at_trx_commit": "2",
	"sync_binlog":                    "0",
	"innodb_buffer_pool_size":        "256M",
	"max_connections":                "500",
}

// mariadbReserved are the settings (normalised: lowercase, '_' for '-')
// that StartMariaDB sets itself from Dir and the port.
var mariadbReserved = []string{
	"port", "socket", "datadir", "bind_address", "pid_file", "log_error", "log_bin",
	"tmpdir", "user", "basedir", "no_defaults", "defaults_file", "defaults_extra_file",
}

var mariadbSettingName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)

// mariadbBins are the paths of the binaries StartMariaDB runs.
type mariadbBins struct {
	mariadbd, installDB string
}

// findMariaDB locates mariadbd and mariadb-install-db: Debian's paths, else
// on PATH.
func findMariaDB() (mariadbBins, error) {
	find := func(path string) (string, error) {
		if _, err := os.Stat(path); err == nil {
			return path, nil
		}
		if p, err := exec.LookPath(filepath.Base(path)); err == nil {
			return p, nil
		}
		return "", fmt.Errorf("%w: no %s (nor %s on PATH); run `make deps` (scripts/deps.sh) to install mariadb-server",
			ErrNoMariaDB, path, filepath.Base(path))
	}
	d, err := find(mariadbdPath)
	if err != nil {
		return mariadbBins{}, err
	}
	i, err := find(installDBPath)
	if err != nil {
		return mariadbBins{}, err
	}
	return mariadbBins{mariadbd: d, installDB: i}, nil
}

// StartMariaDB creates and starts a new MariaDB server and waits until it
// accepts connections as User over TCP, about 2 s (mariadb-install-db is
// most of it). Before that it stops and deletes the MariaDB servers left
// under <module root>/.work/testenv/ (and os.TempDir()/tandem-testenv/) by
// processes that are gone.
//
// The server runs until Stop; the caller must call Stop (Run does so for
// servers started by a test binary). It outlives ctx, which bounds the start
// only. On failure nothing is left running and the error says why:
// ErrNoMariaDB (wrapped) when the binaries are missing, the tail of
// mariadb.log when the server did not start. No error holds the password.
func StartMariaDB(ctx context.Context, opts MariaDBOptions) (*MariaDB, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	bins, err := findMariaDB()
	if err != nil {
		return nil, err
	}
	for k, v := range opts.Settings {
		if !mariadbSettingName.MatchString(k) || strings.ContainsRune(v, 0) {
			return nil, fmt.Errorf("start MariaDB: invalid setting %q", k)
		}
		norm := strings.ReplaceAll(strings.ToLower(k), "-", "_")
		if slices.Contains(mariadbReserved, norm) {
			return nil, fmt.Errorf("start MariaDB: setting %q is testenv's own (it follows Dir and the port)", k)
		}
	}

	begin := time.Now()
	dir, err := claimMariaDBDir(ctx, opts.Dir, log)
	if err != nil {
		return nil, fmt.Errorf("start MariaDB: %w", err)
	}
	m := &MariaDB{
		Dir: dir, User: User, Password: Password,
		bins: bins, settings: maps.Clone(opts.Settings), log: log,
	}
	if err := m.create(ctx); err != nil {
		m.kill()
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("start MariaDB in %s: %w", dir, redact(err))
	}
	register(m)
	log.Debug("testenv: MariaDB started", "dir", dir, "port", m.Port, "took", time.Since(begin).Round(time.Millisecond))
	return m, nil
}

// mariadbRoots are the folders new servers go in, in order of preference.
func mariadbRoots(log *slog.Logger, quiet bool) []string {
	var roots []string
	if mod, err := ModuleRoot(); err == nil {
		roots = append(roots, filepath.Join(mod, ".work", "testenv"))
	} else if !quiet {
		warnOnce(log, "testenv: no module root, using the temporary folder", "err", err)
	}
	return append(roots, filepath.Join(os.TempDir(), "tandem-testenv"))
}

// claimMariaDBDir cleans stale MariaDB servers and returns the new server's
// folder, empty but for the owner file.
func claimMariaDBDir(ctx context.Context, want string, log *slog.Logger) (string, error) {
	roots := mariadbRoots(log, want != "")
	for _, root := range roots {
		if err := cleanMariaDBRoot(ctx, root, log); err != nil {
			log.Warn("testenv: could not clean stale MariaDB servers", "root", root, "err", err)
		}
	}
	if want != "" {
		return claimGivenMariaDBDir(want)
	}
	for i, root := range roots {
		next := "no other folder left"
		if i+1 < len(roots) {
			next = "using " + roots[i+1]
		}
		if err := os.MkdirAll(root, 0o755); err != nil {
			warnOnce(log, "testenv: cannot create server folder, "+next, "root", root, "err", err)
			continue
		}
		// root/mariadb-XXXXXXXXXX/mariadbd.sock must fit in a socket address.
		if len(root)+len("/"+mariadbPrefix+"1234567890/"+mariadbSocket) > maxSocketPath {
			warnOnce(log, "testenv: server folder path too long for a Unix socket, "+next, "root", root)
			continue
		}
		dir, err := claimNewMariaDBDir(root)
		if err != nil {
			warnOnce(log, "testenv: cannot create server folder, "+next, "root", root, "err", err)
			continue
		}
		return dir, nil
	}
	return "", fmt.Errorf("no usable folder for the server among %s", strings.Join(roots, ", "))
}

// claimNewMariaDBDir creates a uniquely named server folder under root and
// records this process as its owner, under root's lock so no concurrent
// cleaner sees it without an owner.
func claimNewMariaDBDir(root string) (string, error) {
	unlock, err := lockRoot(root)
	if err != nil {
		return "", err
	}
	defer unlock()
	dir, err := os.MkdirTemp(root, mariadbPrefix)
	if err != nil {
		return "", fmt.Errorf("create server folder: %w", err)
	}
	if err := writeOwner(dir); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("create server folder: %w", err)
	}
	return dir, nil
}

// claimGivenMariaDBDir prepares a caller-chosen server folder, which must be
// missing or empty.
func claimGivenMariaDBDir(want string) (string, error) {
	dir, err := filepath.Abs(want)
	if err != nil {
		return "", fmt.Errorf("server folder %s: %w", want, err)
	}
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", fmt.Errorf("create server folder: %w", err)
		}
	case err != nil:
		return "", fmt.Errorf("server folder %s: %w", dir, err)
	case len(entries) > 0:
		return "", fmt.Errorf("server folder %s is not empty", dir)
	}
	if len(dir)+len("/"+mariadbSocket) > maxSocketPath {
		return "", fmt.Errorf("server folder %s: path too long for the Unix socket inside it", dir)
	}
	if err := writeOwner(dir); err != nil {
		return "", fmt.Errorf("server folder %s: %w", dir, err)
	}
	return dir, nil
}

// cleanMariaDBRoot stops and deletes the MariaDB servers under root whose
// owner process is gone, if root exists.
func cleanMariaDBRoot(ctx context.Context, root string, log *slog.Logger) error {
	if _, err := os.Stat(root); err != nil {
		return nil
	}
	unlock, err := lockRoot(root)
	if err != nil {
		return err
	}
	defer unlock()
	entries, err := os.ReadDir(root)
	if err != nil {
		return fmt.Errorf("clean stale servers: %w", err)
	}
	var errs []error
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), mariadbPrefix) {
			continue
		}
		dir := filepath.Join(root, e.Name())
		if _, alive := ownerAlive(dir); alive {
			continue
		}
		if err := killStaleMariaDB(ctx, dir); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("remove stale server folder: %w", err))
			continue
		}
		log.Info("testenv: stopped and removed a MariaDB server left by a process that is gone", "dir", dir)
	}
	return errors.Join(errs...)
}

// killStaleMariaDB kills the mariadbd, if any, that runs on the server
// folder dir, and waits until it is gone. Its data is thrown away, so there
// is no point in a clean shutdown.
func killStaleMariaDB(ctx context.Context, dir string) error {
	pid, ok := mariadbdPid(dir)
	if !ok {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill stale mariadbd %d in %s: %w", pid, dir, err)
	}
	if _, err := poll.Until(ctx, 10*time.Millisecond, mariadbStopWait, func() (bool, error) {
		return !processRuns(pid), nil
	}); err != nil {
		return fmt.Errorf("kill stale mariadbd %d in %s: %w", pid, dir, err)
	}
	return nil
}

// mariadbdPid reads the pid file of the server folder dir and reports the
// pid when that process runs and is the mariadbd of dir (a pid reused by
// another process is not).
func mariadbdPid(dir string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(dir, mariadbPidFile))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 || !processRuns(pid) {
		return 0, false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return 0, false
	}
	wantArg := "--datadir=" + filepath.Join(dir, "data")
	return pid, slices.Contains(strings.Split(string(cmdline), "\x00"), wantArg)
}

// processRuns reports whether process pid exists and is not a zombie.
func processRuns(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || !strings.HasPrefix(string(b[i+1:]), " Z")
}

// dataDir is the server's datadir, which also holds the binlog.
func (m *MariaDB) dataDir() string { return filepath.Join(m.Dir, "data") }

// tmpDir is the server's tmpdir. Each server needs its own: mariadbd deletes
// every #sql* file in its tmpdir when it starts, which in a shared /tmp
// breaks the temporary tables of the other servers (seen: concurrent
// mariadb-install-db runs failing with "Unknown table 'mysql.tmp_user_sys'").
func (m *MariaDB) tmpDir() string { return filepath.Join(m.Dir, mariadbTmpDir) }

// LogPath returns the path of the server's log, mariadb.log in Dir: the
// error log, plus whatever mariadbd writes to stdout and stderr.
func (m *MariaDB) LogPath() string { return filepath.Join(m.Dir, mariadbLogFile) }

// create runs mariadb-install-db, starts the server (retrying on a port
// taken meanwhile) and creates User.
func (m *MariaDB) create(ctx context.Context) error {
	if err := m.installDB(ctx); err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		port, err := pickPort()
		if err != nil {
			return err
		}
		m.Port = port
		err = m.start(ctx, "root", "")
		if err == nil {
			break
		}
		var se *mariadbStartError
		if attempt < startAttempts && errors.As(err, &se) && se.portInUse {
			m.log.Info("testenv: port taken before MariaDB bound it, retrying with another", "port", m.Port)
			continue
		}
		return err
	}
	// Outside the binlog: a capturer reading it from the start sees the
	// tests' changes only. Root keeps its passwordless login over the
	// socket in Dir only.
	setup := "SET sql_log_bin = 0;\n"
	for _, host := range []string{"127.0.0.1", "localhost"} {
		account := mysqlurl.QuoteString(m.User) + "@" + mysqlurl.QuoteString(host)
		setup += "CREATE USER " + account + " IDENTIFIED BY " + mysqlurl.QuoteString(m.Password) + ";\n" +
			"GRANT ALL PRIVILEGES ON *.* TO " + account + " WITH GRANT OPTION;\n"
	}
	// mariadb-install-db made root@<hostname> too (`hostname`, as here).
	rootHosts := []string{"127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil && h != "localhost" {
		rootHosts = append(rootHosts, h)
	}
	for _, h := range rootHosts {
		setup += "DROP USER IF EXISTS 'root'@" + mysqlurl.QuoteString(h) + ";\n"
	}
	if err := execSQL(ctx, m.config("root", "", ""), setup); err != nil {
		return fmt.Errorf("create user %s: %w", m.User, err)
	}
	return m.waitReady(ctx, m.User, m.Password)
}

// installDB creates the data folder with mariadb-install-db. Root gets no
// password; create lets it log in over TCP only until User is made.
func (m *MariaDB) installDB(ctx context.Context) error {
	if err := os.Mkdir(m.tmpDir(), 0o700); err != nil {
		return err
	}
	args := []string{"--no-defaults"} // first, or /etc/mysql is read
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	args = append(args,
		"--datadir="+m.dataDir(),
		"--tmpdir="+m.tmpDir(), // passed on to mariadbd --bootstrap
		"--auth-root-authentication-method=normal",
		"--skip-test-db",
		"--skip-name-resolve",
	)
	cmd := exec.CommandContext(ctx, m.bins.installDB, args...)
	cmd.Dir = m.Dir
	cmd.Env = mariadbEnv()
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("mariadb-install-db: %w; last lines of its output:\n%s", err, lastLines(string(out), logTailLines))
	}
	return nil
}

// mariadbEnv is the environment of the binaries: this process's, less what
// would change what they do (MYSQL_*, locale), with C messages (the log is
// read for known failures).
func mariadbEnv() []string {
	env := []string{"LC_ALL=C"}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "MYSQL") || strings.HasPrefix(kv, "MARIADB") ||
			strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// args returns mariadbd's command line.
func (m *MariaDB) args() []string {
	args := []string{"--no-defaults"} // first, or /etc/mysql is read
	if os.Geteuid() == 0 {
		args = append(args, "--user=root") // mariadbd refuses root otherwise
	}
	args = append(args,
		"--datadir="+m.dataDir(),
		"--tmpdir="+m.tmpDir(),
		"--bind-address=127.0.0.1",
		"--port="+strconv.Itoa(m.Port),
		"--socket="+filepath.Join(m.Dir, mariadbSocket),
		"--pid-file="+filepath.Join(m.Dir, mariadbPidFile),
		"--log-error="+m.LogPath(),
		"--log-bin="+filepath.Join(m.dataDir(), "binlog"),
	)
	for _, k := range slices.Sorted(maps.Keys(mariadbBaseSettings)) {
		args = append(args, setting(k, mariadbBaseSettings[k]))
	}
	for _, k := range slices.Sorted(maps.Keys(m.settings)) {
		args = append(args, setting(k, m.settings[k]))
	}
	return args
}

func setting(name, value string) string {
	if value == "" {
		return "--" + name
	}
	return "--" + name + "=" + value
}

// mariadbProc is a mariadbd started by this process.
type mariadbProc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once it has exited and been reaped
	err  error         // how it exited, once done is closed
}

func (p *mariadbProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// mariadbStartError is a failed start, with the end of the server log.
type mariadbStartError struct {
	err       error
	logTail   string
	portInUse bool
}

func (e *mariadbStartError) Error() string {
	if e.logTail == "" {
		return e.err.Error()
	}
	return fmt.Sprintf("%v\nlast lines of %s:\n%s", e.err, mariadbLogFile, e.logTail)
}

func (e *mariadbStartError) Unwrap() error { return e.err }

// start starts mariadbd and waits until user can log in over TCP. On failure
// no mariadbd is left running.
func (m *MariaDB) start(ctx context.Context, user, password string) error {
	var offset int64
	if st, err := os.Stat(m.LogPath()); err == nil {
		offset = st.Size()
	}
	logf, err := os.OpenFile(m.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	// Not CommandContext: the server outlives ctx. Its own process group, so
	// a terminal's Ctrl-C goes to the test binary only (like a daemon).
	cmd := exec.Command(m.bins.mariadbd, m.args()...)
	cmd.Dir = m.Dir
	cmd.Env = mariadbEnv()
	cmd.Stdout, cmd.Stderr = logf, logf // early errors go to stderr only
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	logf.Close()
	if err != nil {
		return fmt.Errorf("start mariadbd: %w", err)
	}
	p := &mariadbProc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	m.proc = p
	// The server writes it too, but only once InnoDB is up: a stale-server
	// cleaner must find the pid from the start.
	if err := os.WriteFile(filepath.Join(m.Dir, mariadbPidFile), fmt.Appendf(nil, "%d\n", cmd.Process.Pid), 0o644); err != nil {
		m.kill()
		return err
	}

	err = m.waitReady(ctx, user, password)
	if err == nil {
		return nil
	}
	m.kill()
	fresh := readFrom(m.LogPath(), offset)
	return &mariadbStartError{
		err:       err,
		logTail:   lastLines(fresh, logTailLines),
		portInUse: strings.Contains(fresh, "Address already in use") || strings.Contains(fresh, "Bind on TCP/IP port"),
	}
}

// errExited is returned (wrapped) by waitReady when mariadbd exits.
var errExited = errors.New("mariadbd exited")

// waitReady polls until user can log in over TCP, for at most a minute (or
// until ctx ends, or mariadbd exits).
func (m *MariaDB) waitReady(ctx context.Context, user, password string) error {
	p := m.proc
	connector, err := mysql.NewConnector(m.config(user, password, ""))
	if err != nil {
		return err
	}
	var last error
	_, err = poll.Until(ctx, 20*time.Millisecond, time.Minute, func() (bool, error) {
		if p.exited() {
			return false, fmt.Errorf("%w: %v", errExited, p.err)
		}
		// Whatever answers on the port, give up on it once mariadbd exits.
		attempt, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		go func() {
			select {
			case <-p.done:
				cancel()
			case <-attempt.Done():
			}
		}()
		conn, err := connector.Connect(attempt)
		if err != nil {
			last = err
			return false, nil
		}
		if err := conn.Close(); err != nil {
			return false, err
		}
		if p.exited() { // another server on the port answered
			return false, fmt.Errorf("%w: %v", errExited, p.err)
		}
		return true, nil
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errExited) || last == nil:
		return err
	default:
		return fmt.Errorf("server not accepting connections: %w (last: %w)", err, last)
	}
}

// kill kills the mariadbd this process started last, if it runs, and waits
// until it is gone (at most a minute).
func (m *MariaDB) kill() { m.signal(syscall.SIGKILL) }

// signal sends sig to the mariadbd this process started last, if it runs,
// and waits until it is gone (at most a minute).
func (m *MariaDB) signal(sig syscall.Signal) {
	p := m.proc
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(mariadbStopWait):
	}
}

// config is the driver configuration for user over TCP, with
// multiStatements.
func (m *MariaDB) config(user, password, db string) *mysql.Config {
	cfg := mysql.NewConfig()
	cfg.User = user
	cfg.Passwd = password
	cfg.Net = "tcp"
	cfg.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(m.Port))
	cfg.DBName = db
	cfg.MultiStatements = true
	cfg.Timeout = 10 * time.Second
	return cfg
}

// DSN returns the URL for connecting to database db as User over TCP:
// mysql://tandem:<password>@127.0.0.1:<port>/<db>, the form
// internal/mysqlurl parses. db may be "".
func (m *MariaDB) DSN(db string) string {
	u := url.URL{
		Scheme: "mysql",
		User:   url.UserPassword(m.User, m.Password),
		Host:   net.JoinHostPort("127.0.0.1", strconv.Itoa(m.Port)),
		Path:   "/" + db,
	}
	return u.String()
}

// String describes the server without its password.
func (m *MariaDB) String() string {
	return fmt.Sprintf("MariaDB on 127.0.0.1:%d in %s", m.Port, m.Dir)
}

// CreateDatabase creates database name (backtick-quoted, so any name MariaDB
// accepts works) with the utf8mb4 character set and the server's default
// collation for it, and returns its DSN.
func (m *MariaDB) CreateDatabase(ctx context.Context, name string) (dsn string, err error) {
	if err := m.Exec(ctx, "", "CREATE DATABASE "+mysqlurl.QuoteIdent(name)+" CHARACTER SET utf8mb4"); err != nil {
		return "", fmt.Errorf("create database %q: %w", name, err)
	}
	return m.DSN(name), nil
}

// Exec runs sql, which may hold several statements separated by ';', in
// database db ("" for none) as User, on a TCP connection of its own. It
// stops at the first failing statement; statements before it stay done
// (autocommit) unless sql runs its own transaction. Errors never hold the
// password, even when sql does.
func (m *MariaDB) Exec(ctx context.Context, db, sql string) error {
	if err := execSQL(ctx, m.config(m.User, m.Password, db), sql); err != nil {
		if db == "" {
			return fmt.Errorf("exec on %s: %w", m, err)
		}
		return fmt.Errorf("exec in database %q on %s: %w", db, m, err)
	}
	return nil
}

// execSQL runs query on a connection of its own made from cfg.
func execSQL(ctx context.Context, cfg *mysql.Config, query string) error {
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return redact(err)
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	if _, err := db.ExecContext(ctx, query); err != nil {
		return redact(err)
	}
	return nil
}

// redactedError hides Password in an error's text; errors.As and errors.Is
// still see the error it wraps.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redact returns err with Password replaced by "<password>" in its text.
func redact(err error) error {
	if err == nil || !strings.Contains(err.Error(), Password) {
		return err
	}
	return &redactedError{msg: strings.ReplaceAll(err.Error(), Password, "<password>"), err: err}
}

// Stop shuts the server down cleanly (SIGTERM; SIGKILL if it has not exited
// within a minute) and removes Dir. It is idempotent, and succeeds when the
// server is already gone.
func (m *MariaDB) Stop() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return nil
	}
	m.stopped = true
	unregister(m)

	if p := m.proc; p != nil && !p.exited() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(mariadbStopWait):
			m.log.Warn("testenv: MariaDB did not shut down in time, killing it", "server", m.String())
			m.kill()
			if !p.exited() {
				return fmt.Errorf("stop %s: mariadbd %d does not exit", m, p.cmd.Process.Pid)
			}
		}
	}
	if err := os.RemoveAll(m.Dir); err != nil {
		return fmt.Errorf("stop %s: %w", m, err)
	}
	return nil
}

// Restart crashes the server (SIGKILL to mariadbd, as a power loss would to
// the process, though not to the page cache) and starts it again on the
// same Dir and Port, returning once User can log in after crash recovery.
// Connections to the server are broken; committed data and the binlog
// survive, and a new binlog file is started.
func (m *MariaDB) Restart(ctx context.Context) error { return m.restart(ctx, syscall.SIGKILL) }

// RestartFast shuts the server down cleanly (SIGTERM to mariadbd: sessions
// are ended and InnoDB flushed, as an operator's restart does) and starts
// it again on the same Dir and Port, returning once User can log in.
func (m *MariaDB) RestartFast(ctx context.Context) error { return m.restart(ctx, syscall.SIGTERM) }

// restart stops mariadbd with sig, waits until it is gone (at most a
// minute) and starts it again.
func (m *MariaDB) restart(ctx context.Context, sig syscall.Signal) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return fmt.Errorf("restart %s: server was stopped", m)
	}
	m.signal(sig)
	if p := m.proc; p != nil && !p.exited() {
		return fmt.Errorf("restart %s: mariadbd %d does not exit", m, p.cmd.Process.Pid)
	}
	if err := m.start(ctx, m.User, m.Password); err != nil {
		return fmt.Errorf("restart %s: %w", m, redact(err))
	}
	return nil
}
