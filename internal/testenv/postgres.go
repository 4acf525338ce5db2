package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tandemcdc/tandem/internal/poll"
)

const (
	// User is the superuser of every server testenv starts.
	User = "tandem"
	// Password is the fixed test password of User. It is a test secret only:
	// the servers listen on 127.0.0.1 and live as long as a test run.
	Password = "tandem-secret-pw"
)

// pickPort picks the port of a server started with Port 0 (a variable for
// tests).
var pickPort = freePort

// startAttempts bounds the retries of a start whose free port was taken
// between picking it and the server binding it.
const startAttempts = 5

// logTailLines is how much of postgres.log a start failure quotes.
const logTailLines = 30

// maxSocketPath is the longest Unix socket path Linux accepts (sun_path less
// its terminating NUL).
const maxSocketPath = 107

// PostgreSQL is a running throwaway PostgreSQL server on 127.0.0.1.
//
// Its methods are safe for concurrent use. The fields are set by
// StartPostgreSQL and never change.
type PostgreSQL struct {
	Dir      string // data + socket + log folder
	Port     int    // TCP port on 127.0.0.1
	User     string // superuser, "tandem"
	Password string // fixed non-empty test password; never logged

	r   runner
	bin string
	log *slog.Logger

	mu      sync.Mutex // serialises Restart and Stop
	stopped bool
}

// PostgresOptions configures StartPostgreSQL. The zero value starts a server
// in a new folder on a free port.
type PostgresOptions struct {
	// Dir is where to put the server: a folder that is missing or empty,
	// whose parents the postgres user can traverse when running as root
	// (so not t.TempDir()). Stop, or a failed start, removes it. "" means a
	// new folder under <module root>/.work/testenv/, or under
	// os.TempDir()/tandem-testenv/ when the postgres user cannot reach that.
	Dir string
	// Port is the TCP port to listen on; 0 picks a free one.
	Port int
	// Settings are extra postgresql.conf settings, applied after (and so
	// overriding) testenv's own. Set the port with Port, not here.
	Settings map[string]string
	// Logger receives the few notable events (a fallback folder, removed
	// stale servers, a port retry). nil means slog.Default().
	Logger *slog.Logger
}

// baseSettings are the postgresql.conf settings of every server, besides
// port, listen_addresses and unix_socket_directories. synchronous_commit stays
// on: logical decoding ships only flushed WAL, so with it off changes show up
// hundreds of milliseconds late. output_plugin_libraries is not set: minors
// before 15.19 refuse to start with it.
var baseSettings = map[string]string{
	"wal_level":             "logical",
	"max_replication_slots": "64",
	"max_wal_senders":       "64",
	"max_connections":       "200",
	"shared_buffers":        "128MB",
	"fsync":                 "off",
	"full_page_writes":      "off",
	"synchronous_commit":    "on",
	"TimeZone":              "UTC",
	"log_timezone":          "UTC",
	"lc_messages":           "C",
}

var settingName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]*$`)

// StartPostgreSQL creates and starts a new PostgreSQL server and waits until
// it accepts connections as User over TCP, about 1.3 s. Before that it stops
// and deletes the servers left under <module root>/.work/testenv/ (and
// os.TempDir()/tandem-testenv/) by processes that are gone.
//
// The server runs until Stop; the caller must call Stop (Run does so for
// servers started by a test binary). On failure nothing is left running and
// the error says why: ErrNoPostgreSQL (wrapped) when the binaries are
// missing, the tail of postgres.log when the server did not start.
func StartPostgreSQL(ctx context.Context, opts PostgresOptions) (*PostgreSQL, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	bin := BinDir()
	if err := checkBinaries(bin); err != nil {
		return nil, err
	}
	if opts.Port < 0 || opts.Port > 65535 {
		return nil, fmt.Errorf("start PostgreSQL: port %d out of range", opts.Port)
	}
	for k, v := range opts.Settings {
		if !settingName.MatchString(k) || strings.ContainsAny(v, "\n\r\x00") {
			return nil, fmt.Errorf("start PostgreSQL: invalid setting %q", k)
		}
		if strings.EqualFold(k, "port") {
			return nil, errors.New("start PostgreSQL: set the port with PostgresOptions.Port, not Settings")
		}
	}
	r, err := newRunner()
	if err != nil {
		return nil, fmt.Errorf("start PostgreSQL: %w", err)
	}

	begin := time.Now()
	dir, err := claimDir(ctx, r, bin, opts.Dir, log)
	if err != nil {
		return nil, fmt.Errorf("start PostgreSQL: %w", err)
	}
	p := &PostgreSQL{Dir: dir, User: User, Password: Password, r: r, bin: bin, log: log}
	if err := p.create(ctx, opts); err != nil {
		// Nothing is running unless a start got far enough; stop it, if any.
		_ = stopServer(context.WithoutCancel(ctx), r, bin, dir)
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("start PostgreSQL in %s: %w", dir, err)
	}
	register(p)
	log.Debug("testenv: PostgreSQL started", "dir", dir, "port", p.Port, "took", time.Since(begin).Round(time.Millisecond))
	return p, nil
}

// claimDir cleans stale servers and returns the new server's folder, empty
// but for the owner file, writable by the user that runs the binaries.
func claimDir(ctx context.Context, r runner, bin, want string, log *slog.Logger) (string, error) {
	var roots []string
	if mod, err := ModuleRoot(); err == nil {
		roots = append(roots, filepath.Join(mod, ".work", "testenv"))
	} else if want == "" {
		log.Warn("testenv: no module root, using the temporary folder", "err", err)
	}
	roots = append(roots, filepath.Join(os.TempDir(), "tandem-testenv"))

	for _, root := range roots {
		if err := cleanRoot(ctx, r, bin, root, log); err != nil {
			log.Warn("testenv: could not clean stale servers", "root", root, "err", err)
		}
	}

	if want != "" {
		return claimGivenDir(ctx, r, want)
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
		if !r.canReach(ctx, root) {
			warnOnce(log, "testenv: the postgres user cannot reach the server folder (a parent is not traversable), "+next, "root", root)
			continue
		}
		// root/pg-XXXXXXXXX/.s.PGSQL.NNNNN must fit in a socket address.
		if len(root)+len("/"+serverPrefix+"1234567890/.s.PGSQL.65535") > maxSocketPath {
			warnOnce(log, "testenv: server folder path too long for a Unix socket, "+next, "root", root)
			continue
		}
		dir, err := claimNewDir(r, root)
		if err != nil {
			warnOnce(log, "testenv: cannot create server folder, "+next, "root", root, "err", err)
			continue
		}
		return dir, nil
	}
	return "", fmt.Errorf("no usable folder for the server among %s", strings.Join(roots, ", "))
}

// warned holds the warnings already given, so a fallback that every start of
// a test binary takes is reported once.
var warned sync.Map

func warnOnce(log *slog.Logger, msg string, args ...any) {
	if _, seen := warned.LoadOrStore(fmt.Sprint(append([]any{msg}, args...)...), true); !seen {
		log.Warn(msg, args...)
	}
}

// cleanRoot stops and deletes the stale servers under root, if root exists.
func cleanRoot(ctx context.Context, r runner, bin, root string, log *slog.Logger) error {
	if _, err := os.Stat(root); err != nil {
		return nil
	}
	unlock, err := lockRoot(root)
	if err != nil {
		return err
	}
	defer unlock()
	removed, err := cleanStale(ctx, r, bin, root)
	for _, d := range removed {
		log.Info("testenv: stopped and removed a server left by a process that is gone", "dir", d)
	}
	return err
}

// claimNewDir creates a uniquely named server folder under root and records
// this process as its owner, under root's lock so no concurrent cleaner sees
// it without an owner.
func claimNewDir(r runner, root string) (string, error) {
	unlock, err := lockRoot(root)
	if err != nil {
		return "", err
	}
	defer unlock()
	dir, err := os.MkdirTemp(root, serverPrefix)
	if err != nil {
		return "", fmt.Errorf("create server folder: %w", err)
	}
	if err := writeOwner(dir); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("create server folder: %w", err)
	}
	if err := r.chown(dir); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("create server folder: %w", err)
	}
	return dir, nil
}

// claimGivenDir prepares a caller-chosen server folder, which must be missing
// or empty.
func claimGivenDir(ctx context.Context, r runner, want string) (string, error) {
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
	if len(dir)+len("/.s.PGSQL.65535") > maxSocketPath {
		return "", fmt.Errorf("server folder %s: path too long for the Unix socket inside it", dir)
	}
	if !r.canReach(ctx, filepath.Dir(dir)) {
		return "", fmt.Errorf("server folder %s: the postgres user cannot reach %s (a parent folder is not traversable)", dir, filepath.Dir(dir))
	}
	if err := writeOwner(dir); err != nil {
		return "", fmt.Errorf("server folder %s: %w", dir, err)
	}
	if err := r.chown(dir); err != nil {
		return "", fmt.Errorf("server folder %s: %w", dir, err)
	}
	return dir, nil
}

// create runs initdb, writes the configuration and starts the server,
// retrying on a port taken meanwhile.
func (p *PostgreSQL) create(ctx context.Context, opts PostgresOptions) error {
	pwfile := filepath.Join(p.Dir, "pwfile")
	if err := p.r.writeFile(pwfile, []byte(p.Password+"\n"), 0o600); err != nil {
		return err
	}
	err := p.r.run(ctx, p.Dir, filepath.Join(p.bin, "initdb"),
		"-D", p.dataDir(), "-U", p.User, "--pwfile="+pwfile,
		"--auth-host=scram-sha-256", "--auth-local=trust",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	os.Remove(pwfile)
	if err != nil {
		return err
	}
	if err := p.configure(); err != nil {
		return err
	}

	for attempt := 1; ; attempt++ {
		p.Port = opts.Port
		if p.Port == 0 {
			port, err := pickPort()
			if err != nil {
				return err
			}
			p.Port = port
		}
		if err := p.writeSettings(opts.Settings); err != nil {
			return err
		}
		err := p.start(ctx)
		if err == nil {
			break
		}
		var se *startError
		if opts.Port == 0 && attempt < startAttempts && errors.As(err, &se) && se.portInUse {
			p.log.Info("testenv: port taken before the server bound it, retrying with another", "port", p.Port)
			continue
		}
		return err
	}
	return p.waitReady(ctx)
}

// dataDir is the server's PGDATA.
func (p *PostgreSQL) dataDir() string { return filepath.Join(p.Dir, "data") }

// LogPath returns the path of the server's log, postgres.log in Dir.
func (p *PostgreSQL) LogPath() string { return filepath.Join(p.Dir, "postgres.log") }

// configure hooks tandem.conf into postgresql.conf and makes sure pg_hba.conf
// lets replication connections in over TCP with a password.
func (p *PostgreSQL) configure() error {
	err := appendFile(filepath.Join(p.dataDir(), "postgresql.conf"),
		"\n# testenv: the settings of this throwaway server\ninclude = 'tandem.conf'\n")
	if err != nil {
		return fmt.Errorf("configure: %w", err)
	}
	hba := filepath.Join(p.dataDir(), "pg_hba.conf")
	b, err := os.ReadFile(hba)
	if err != nil {
		return fmt.Errorf("configure: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if slices.Equal(strings.Fields(line), []string{"host", "replication", "all", "127.0.0.1/32", "scram-sha-256"}) {
			return nil // initdb's default with --auth-host=scram-sha-256
		}
	}
	if err := appendFile(hba, "\nhost replication all 127.0.0.1/32 scram-sha-256\n"); err != nil {
		return fmt.Errorf("configure: %w", err)
	}
	return nil
}

// appendFile appends text to an existing file, keeping its owner.
func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = io.WriteString(f, text)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeSettings writes data/tandem.conf: testenv's settings, the caller's,
// and the port.
func (p *PostgreSQL) writeSettings(extra map[string]string) error {
	all := maps.Clone(baseSettings)
	all["listen_addresses"] = "127.0.0.1"
	all["unix_socket_directories"] = p.Dir
	maps.Copy(all, extra)
	all["port"] = strconv.Itoa(p.Port)
	var b strings.Builder
	b.WriteString("# written by tandem internal/testenv\n")
	for _, k := range slices.Sorted(maps.Keys(all)) {
		fmt.Fprintf(&b, "%s = '%s'\n", k, strings.ReplaceAll(all[k], "'", "''"))
	}
	return p.r.writeFile(filepath.Join(p.dataDir(), "tandem.conf"), []byte(b.String()), 0o600)
}

// startError is a failed pg_ctl start, with the end of the server log.
type startError struct {
	err       error
	logTail   string
	portInUse bool
}

func (e *startError) Error() string {
	if e.logTail == "" {
		return e.err.Error()
	}
	return fmt.Sprintf("%v\nlast lines of postgres.log:\n%s", e.err, e.logTail)
}

func (e *startError) Unwrap() error { return e.err }

// pgctl runs pg_ctl on the server's data, waiting (-w) and quiet (-s).
func (p *PostgreSQL) pgctl(ctx context.Context, action string, args ...string) error {
	args = append([]string{action, "-D", p.dataDir(), "-w", "-s"}, args...)
	return p.r.run(ctx, p.Dir, filepath.Join(p.bin, "pg_ctl"), args...)
}

// start runs pg_ctl start and waits (-w) for the server to come up.
func (p *PostgreSQL) start(ctx context.Context) error {
	var offset int64
	if st, err := os.Stat(p.LogPath()); err == nil {
		offset = st.Size()
	}
	err := p.pgctl(ctx, "start", "-l", p.LogPath(), "-t", "60")
	if err == nil {
		return nil
	}
	// A server pg_ctl gave up waiting for may still be coming up.
	_ = stopServer(context.WithoutCancel(ctx), p.r, p.bin, p.Dir)
	fresh := readFrom(p.LogPath(), offset)
	return &startError{
		err:       err,
		logTail:   lastLines(fresh, logTailLines),
		portInUse: strings.Contains(fresh, "Address already in use") || strings.Contains(fresh, "could not bind"),
	}
}

// readFrom returns a file's content from offset on; "" when unreadable.
func readFrom(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitReady polls until a password login over TCP succeeds, for at most
// 30 s (or until ctx ends).
func (p *PostgreSQL) waitReady(ctx context.Context) error {
	var last error
	_, err := poll.Until(ctx, 20*time.Millisecond, 30*time.Second, func() (bool, error) {
		attempt, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		conn, err := pgconn.Connect(attempt, p.DSN("postgres"))
		if err != nil {
			last = err
			return false, nil
		}
		return true, conn.Close(ctx)
	})
	if err != nil {
		return &startError{
			err:     fmt.Errorf("server not accepting connections: %w (last: %w)", err, last),
			logTail: lastLines(readFrom(p.LogPath(), 0), logTailLines),
		}
	}
	return nil
}

// DSN returns the URL for connecting to database db as User over TCP:
// postgres://tandem:<password>@127.0.0.1:<port>/<db>?sslmode=disable.
func (p *PostgreSQL) DSN(db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(p.User, p.Password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(p.Port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// ReplicationDSN returns DSN(db) with replication=database, for a logical
// replication connection (pgconn.Connect, then pglogrepl).
func (p *PostgreSQL) ReplicationDSN(db string) string {
	return p.DSN(db) + "&replication=database"
}

// String describes the server without its password.
func (p *PostgreSQL) String() string {
	return fmt.Sprintf("PostgreSQL on 127.0.0.1:%d in %s", p.Port, p.Dir)
}

// CreateDatabase creates database name (quoted as an identifier, so any name
// PostgreSQL accepts works) and returns its DSN.
func (p *PostgreSQL) CreateDatabase(ctx context.Context, name string) (dsn string, err error) {
	if err := p.Exec(ctx, "postgres", "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %q: %w", name, err)
	}
	return p.DSN(name), nil
}

// Exec runs sql, which may hold several statements (simple query protocol,
// one implicit transaction unless it has its own BEGIN/COMMIT), in database
// db on a connection of its own.
func (p *PostgreSQL) Exec(ctx context.Context, db string, sql string) error {
	conn, err := pgconn.Connect(ctx, p.DSN(db))
	if err != nil {
		return fmt.Errorf("connect to database %q: %w", db, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, sql).ReadAll(); err != nil {
		return fmt.Errorf("exec in database %q: %w", db, err)
	}
	return nil
}

// Stop stops the server (pg_ctl stop -m fast, or -m immediate when that
// fails) and removes Dir. It is idempotent, and succeeds when the server is
// already gone.
func (p *PostgreSQL) Stop() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return nil
	}
	p.stopped = true
	unregister(p)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, alive := postmasterAlive(p.dataDir()); alive {
		if err := p.pgctl(ctx, "stop", "-m", "fast", "-t", "30"); err != nil {
			if err := stopServer(ctx, p.r, p.bin, p.Dir); err != nil {
				return fmt.Errorf("stop %s: %w", p, err)
			}
		}
	}
	if err := os.RemoveAll(p.Dir); err != nil {
		return fmt.Errorf("stop %s: %w", p, err)
	}
	return nil
}

// Restart crashes the server (pg_ctl stop -m immediate, as a power loss
// would) and starts it again on the same port and data, returning once it
// accepts connections after crash recovery. Connections to the server are
// broken; replication slots and committed data survive.
func (p *PostgreSQL) Restart(ctx context.Context) error { return p.restart(ctx, "immediate") }

// RestartFast shuts the server down cleanly (pg_ctl stop -m fast: sessions
// are ended, then a shutdown checkpoint, as an operator's restart does) and
// starts it again on the same port and data, returning once it accepts
// connections.
func (p *PostgreSQL) RestartFast(ctx context.Context) error { return p.restart(ctx, "fast") }

// restart stops the server with pg_ctl's shutdown mode and starts it again.
func (p *PostgreSQL) restart(ctx context.Context, mode string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return fmt.Errorf("restart %s: server was stopped", p)
	}
	if _, alive := postmasterAlive(p.dataDir()); alive {
		if err := p.pgctl(ctx, "stop", "-m", mode, "-t", "30"); err != nil {
			return fmt.Errorf("restart %s: stop: %w", p, err)
		}
	}
	if err := p.start(ctx); err != nil {
		return fmt.Errorf("restart %s: %w", p, err)
	}
	if err := p.waitReady(ctx); err != nil {
		return fmt.Errorf("restart %s: %w", p, err)
	}
	return nil
}

// server is a throwaway server of any kind.
type server interface{ Stop() error }

// live holds the servers (PostgreSQL and MariaDB) this process started and
// has not stopped, for Run.
var live = struct {
	sync.Mutex
	servers map[server]struct{}
}{servers: map[server]struct{}{}}

func register(s server) {
	live.Lock()
	defer live.Unlock()
	live.servers[s] = struct{}{}
}

func unregister(s server) {
	live.Lock()
	defer live.Unlock()
	delete(live.servers, s)
}

// stopAll stops every server this process started and has not stopped.
func stopAll() error {
	live.Lock()
	servers := slices.Collect(maps.Keys(live.servers))
	live.Unlock()
	var errs []error
	for _, s := range servers {
		errs = append(errs, s.Stop())
	}
	return errors.Join(errs...)
}
