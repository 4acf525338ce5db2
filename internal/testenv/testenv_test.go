package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestMain(m *testing.M) { os.Exit(Run(m)) }

// queryString returns the first column of the first row of sql in dsn's database.
func queryString(t *testing.T, dsn, sql string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var s string
	if err := conn.QueryRow(ctx, sql).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

// dbName returns the database a DSN names.
func dbName(t *testing.T, dsn string) string {
	t.Helper()
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		t.Fatalf("parse DSN: %v", err)
	}
	return cfg.Database
}

func TestNewDatabase_GivesDistinctWorkingDatabases(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	p := Postgres(t)
	dsn1, dsn2 := NewDatabase(t), NewDatabase(t)
	db1, db2 := dbName(t, dsn1), dbName(t, dsn2)
	if db1 == db2 {
		t.Fatalf("NewDatabase returned the same database twice: %q", db1)
	}
	if err := p.Exec(ctx, db1, "CREATE TABLE only_here (id int PRIMARY KEY); INSERT INTO only_here VALUES (1), (2)"); err != nil {
		t.Fatal(err)
	}
	if got := queryString(t, dsn1, "SELECT count(*)::text FROM only_here"); got != "2" {
		t.Errorf("rows in %s = %s, want 2", db1, got)
	}
	if got := queryString(t, dsn2, "SELECT (to_regclass('only_here') IS NULL)::text"); got != "true" {
		t.Errorf("table created in %s is visible in %s", db1, db2)
	}
	if got := queryString(t, dsn2, "SELECT current_database()"); got != db2 {
		t.Errorf("current_database() = %q, want %q", got, db2)
	}
}

func TestPostgres_IsReusedWithinTheBinary(t *testing.T) {
	t.Parallel()
	if a, b := Postgres(t), Postgres(t); a != b {
		t.Fatalf("Postgres returned two servers: %v and %v", a, b)
	}
}

func TestPostgres_Settings(t *testing.T) {
	t.Parallel()
	dsn := NewDatabase(t)
	for setting, want := range map[string]string{
		"wal_level":               "logical",
		"synchronous_commit":      "on",
		"fsync":                   "off",
		"TimeZone":                "UTC",
		"max_replication_slots":   "64",
		"max_connections":         "200",
		"listen_addresses":        "127.0.0.1",
		"unix_socket_directories": Postgres(t).Dir,
	} {
		if got := queryString(t, dsn, "SHOW "+setting); got != want {
			t.Errorf("%s = %q, want %q", setting, got, want)
		}
	}
}

func TestPostgres_ReplicationConnection(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	p := Postgres(t)
	db := dbName(t, NewDatabase(t))
	conn, err := pgconn.Connect(ctx, p.ReplicationDSN(db))
	if err != nil {
		t.Fatalf("replication connection: %v", err)
	}
	defer conn.Close(context.Background())
	sys, err := pglogrepl.IdentifySystem(ctx, conn)
	if err != nil {
		t.Fatalf("IDENTIFY_SYSTEM: %v", err)
	}
	if sys.DBName != db || sys.Timeline < 1 || sys.XLogPos == 0 {
		t.Errorf("IDENTIFY_SYSTEM = %+v, want database %q, a timeline and a WAL position", sys, db)
	}
	slot, err := pglogrepl.CreateReplicationSlot(ctx, conn, "testenv_probe", "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Temporary: true})
	if err != nil {
		t.Fatalf("create a temporary pgoutput slot: %v", err)
	}
	if slot.OutputPlugin != "pgoutput" {
		t.Errorf("slot output plugin = %q, want pgoutput", slot.OutputPlugin)
	}
}

func TestRestart_KeepsData(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	begin := time.Now()
	p, err := StartPostgreSQL(ctx, PostgresOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	t.Logf("StartPostgreSQL took %v", time.Since(begin).Round(time.Millisecond))
	if err := p.Exec(ctx, "postgres", "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('before crash')"); err != nil {
		t.Fatal(err)
	}
	port := p.Port
	begin = time.Now()
	if err := p.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("Restart took %v", time.Since(begin).Round(time.Millisecond))
	if p.Port != port {
		t.Errorf("port changed across Restart: %d -> %d", port, p.Port)
	}
	if got := queryString(t, p.DSN("postgres"), "SELECT v FROM kept"); got != "before crash" {
		t.Errorf("after Restart, kept.v = %q, want %q", got, "before crash")
	}
}

func TestStartPostgreSQL_OwnDirAlongsideShared(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	shared := Postgres(t)
	// Not t.TempDir(): its 0700 parents are closed to the postgres user.
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("tandem-testenv-own-%d", os.Getpid()))
	begin := time.Now()
	p, err := StartPostgreSQL(ctx, PostgresOptions{Dir: dir, Settings: map[string]string{"work_mem": "8MB"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("StartPostgreSQL took %v", time.Since(begin).Round(time.Millisecond))
	if p.Dir != dir {
		t.Errorf("Dir = %q, want %q", p.Dir, dir)
	}
	if p.Port == shared.Port {
		t.Errorf("own server and shared server both on port %d", p.Port)
	}
	if got := queryString(t, p.DSN("postgres"), "SHOW work_mem"); got != "8MB" {
		t.Errorf("work_mem = %q, want the extra setting 8MB", got)
	}
	if _, err := p.CreateDatabase(ctx, "Mixed Case-name"); err != nil {
		t.Errorf("CreateDatabase with a name that needs quoting: %v", err)
	}
	if got := queryString(t, shared.DSN("postgres"), "SELECT 'shared ok'"); got != "shared ok" {
		t.Errorf("shared server: %q", got)
	}
	if s := fmt.Sprint(p); strings.Contains(s, p.Password) {
		t.Errorf("String() shows the password: %s", s)
	}
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Stop left %s behind (stat: %v)", dir, err)
	}
	if err := p.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if _, err := pgconn.Connect(ctx, p.DSN("postgres")); err == nil {
		t.Errorf("server still accepts connections after Stop")
	}
}

func TestStartPostgreSQL_RejectsBadOptions(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	full := t.TempDir()
	if err := os.WriteFile(filepath.Join(full, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, opts := range map[string]PostgresOptions{
		"non-empty Dir":      {Dir: full},
		"port in Settings":   {Settings: map[string]string{"port": "5432"}},
		"newline in setting": {Settings: map[string]string{"work_mem": "8MB\nfsync = on"}},
		"bad setting name":   {Settings: map[string]string{"work mem": "8MB"}},
	} {
		if p, err := StartPostgreSQL(ctx, opts); err == nil {
			p.Stop()
			t.Errorf("%s: StartPostgreSQL succeeded, want an error", name)
		}
	}
}

func TestStartPostgreSQL_MissingBinariesSaysHowToInstall(t *testing.T) {
	t.Setenv("TANDEM_PG_BIN", "/nonexistent/pg/bin")
	_, err := StartPostgreSQL(t.Context(), PostgresOptions{})
	if !errors.Is(err, ErrNoPostgreSQL) {
		t.Fatalf("err = %v, want ErrNoPostgreSQL", err)
	}
	for _, want := range []string{"/nonexistent/pg/bin", "scripts/deps.sh", "make deps"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// deadPid returns the pid of a process that has exited.
func deadPid(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func TestStartPostgreSQL_CleansServersOfDeadOwners(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	stale, err := StartPostgreSQL(ctx, PostgresOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer stale.Stop()
	// Pretend the server was left by a test binary that was killed.
	pid := deadPid(t)
	if err := os.WriteFile(filepath.Join(stale.Dir, ownerFile), fmt.Appendf(nil, "%d 12345\n", pid), 0o644); err != nil {
		t.Fatal(err)
	}
	postmaster, alive := postmasterAlive(stale.dataDir())
	if !alive {
		t.Fatal("stale server's postmaster not running before the cleanup")
	}

	p, err := StartPostgreSQL(ctx, PostgresOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	if _, err := os.Stat(stale.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale server folder %s still there (stat: %v)", stale.Dir, err)
	}
	if _, err := pgconn.Connect(ctx, stale.DSN("postgres")); err == nil {
		t.Errorf("stale server still accepts connections")
	}
	if _, ok := postmasterAliveByPid(postmaster); ok {
		t.Errorf("stale server's postmaster %d still runs", postmaster)
	}
	if err := stale.Stop(); err != nil {
		t.Errorf("Stop of a server already cleaned up: %v", err)
	}
	// The servers of live owners (the shared one, p) are left alone.
	if got := queryString(t, p.DSN("postgres"), "SELECT 'alive'"); got != "alive" {
		t.Errorf("new server: %q", got)
	}
}

// postmasterAliveByPid reports whether process pid still runs (and is not a zombie).
func postmasterAliveByPid(pid int) (int, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return pid, false
	}
	i := strings.LastIndexByte(string(b), ')')
	return pid, i < 0 || !strings.HasPrefix(string(b[i+1:]), " Z")
}

func TestOwnerAlive(t *testing.T) {
	t.Parallel()
	start, ok := processStart(os.Getpid())
	if !ok {
		t.Fatal("cannot read this process's start time")
	}
	for name, tc := range map[string]struct {
		owner string
		want  bool
	}{
		"this process":          {fmt.Sprintf("%d %d\n", os.Getpid(), start), true},
		"this pid, no start":    {fmt.Sprintf("%d\n", os.Getpid()), true},
		"reused pid":            {fmt.Sprintf("%d %d\n", os.Getpid(), start+1), false},
		"exited process":        {fmt.Sprintf("%d 1\n", deadPid(t)), false},
		"garbage":               {"not a pid\n", false},
		"no owner file written": {"", false},
	} {
		dir := t.TempDir()
		if tc.owner != "" {
			if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(tc.owner), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if _, got := ownerAlive(dir); got != tc.want {
			t.Errorf("%s: ownerAlive = %v, want %v", name, got, tc.want)
		}
	}
}

func TestDatabaseName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		test string
		n    int64
		want string
	}{
		{"TestApply/delete_first", 7, "testapply_delete_first_7"},
		{"TestX/#00", 1, "testx_00_1"},
		{"TestÜnïcode//--weird  name__", 2, "test_n_code_weird_name_2"},
		{"___", 3, "db_3"},
		{strings.Repeat("A", 100), 12345, strings.Repeat("a", 57) + "_12345"},
		{strings.Repeat("ab_", 30), 1, strings.TrimRight(strings.Repeat("ab_", 30)[:61], "_") + "_1"},
	} {
		got := databaseName(tc.test, tc.n)
		if got != tc.want {
			t.Errorf("databaseName(%q, %d) = %q, want %q", tc.test, tc.n, got, tc.want)
		}
		if len(got) > 63 {
			t.Errorf("databaseName(%q, %d) = %q is %d bytes, over 63", tc.test, tc.n, got, len(got))
		}
	}
}

func TestStartPostgreSQL_FailureQuotesTheLog(t *testing.T) {
	t.Parallel()
	_, err := StartPostgreSQL(t.Context(), PostgresOptions{Settings: map[string]string{"max_connections": "-5"}})
	if err == nil {
		t.Fatal("StartPostgreSQL with max_connections=-5 succeeded")
	}
	t.Logf("error: %v", err)
	for _, want := range []string{"postgres.log", "max_connections"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), Password) {
		t.Errorf("error shows the password:\n%v", err)
	}
}

// Not parallel: it replaces pickPort.
func TestStartPostgreSQL_RetriesWhenThePortIsTaken(t *testing.T) {
	ctx := t.Context()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	takenPort := taken.Addr().(*net.TCPAddr).Port
	calls := 0
	pickPort = func() (int, error) {
		calls++
		if calls == 1 {
			return takenPort, nil
		}
		return freePort()
	}
	defer func() { pickPort = freePort }()

	p, err := StartPostgreSQL(ctx, PostgresOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	if calls != 2 || p.Port == takenPort {
		t.Errorf("picked %d ports and got port %d (taken: %d), want a retry on a second port", calls, p.Port, takenPort)
	}

	// A port the caller chose is not changed behind its back.
	if p2, err := StartPostgreSQL(ctx, PostgresOptions{Port: takenPort}); err == nil {
		p2.Stop()
		t.Fatalf("StartPostgreSQL on a taken port %d succeeded", takenPort)
	} else if !strings.Contains(err.Error(), "could not bind") {
		t.Errorf("error does not quote the bind failure:\n%v", err)
	}
}
