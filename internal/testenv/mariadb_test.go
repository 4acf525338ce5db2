package testenv

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/internal/mysqlurl"
)

// openMariaDB opens a DSN the way tandem does, through internal/mysqlurl.
func openMariaDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	cfg, err := mysqlurl.Parse(dsn)
	if err != nil {
		t.Fatalf("parse DSN: %v", err)
	}
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatalf("connector: %v", err)
	}
	db := sql.OpenDB(connector)
	t.Cleanup(func() { db.Close() })
	return db
}

// mariaString returns the first column of the first row of query in dsn's
// database.
func mariaString(t *testing.T, dsn, query string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var s string
	if err := openMariaDB(t, dsn).QueryRowContext(ctx, query).Scan(&s); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return s
}

// mariaDBName returns the database a DSN names.
func mariaDBName(t *testing.T, dsn string) string {
	t.Helper()
	cfg, err := mysqlurl.Parse(dsn)
	if err != nil {
		t.Fatalf("parse DSN: %v", err)
	}
	return cfg.DBName
}

type emojiRow struct {
	ID   int
	Name string
}

func readEmojiRows(t *testing.T, dsn string) []emojiRow {
	t.Helper()
	rows, err := openMariaDB(t, dsn).QueryContext(t.Context(), "SELECT id, name FROM things ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []emojiRow
	for rows.Next() {
		var r emojiRow
		if err := rows.Scan(&r.ID, &r.Name); err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestStartMariaDB_OwnServerStoresUTF8MB4AndSurvivesACrash(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("tandem-testenv-maria-own-%d", os.Getpid()))
	begin := time.Now()
	m, err := StartMariaDB(ctx, MariaDBOptions{Dir: dir, Settings: map[string]string{"max_allowed_packet": "32M"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("StartMariaDB took %v", time.Since(begin).Round(time.Millisecond))
	defer m.Stop()
	if m.Dir != dir || m.User != User || m.Password != Password || m.Port == 0 {
		t.Errorf("server in %s on port %d as %s (password right: %v), want Dir %s, User %s, the Password const and a port", m.Dir, m.Port, m.User, m.Password == Password, dir, User)
	}
	if got := mariaString(t, m.DSN(""), "SELECT @@max_allowed_packet"); got != strconv.Itoa(32<<20) {
		t.Errorf("max_allowed_packet = %s, want the extra setting 32M", got)
	}

	dsn, err := m.CreateDatabase(ctx, "Mixed Case-`name`")
	if err != nil {
		t.Fatal(err)
	}
	if got := mariaDBName(t, dsn); got != "Mixed Case-`name`" {
		t.Errorf("DSN names database %q", got)
	}
	if got := mariaString(t, dsn, "SELECT DATABASE()"); got != "Mixed Case-`name`" {
		t.Errorf("DATABASE() = %q", got)
	}
	want := []emojiRow{{1, "plain"}, {2, "snow ☃ and a dolphin 🐬"}, {3, "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 😀"}}
	if err := m.Exec(ctx, "Mixed Case-`name`", `
		CREATE TABLE things (id int PRIMARY KEY, name varchar(100) NOT NULL);
		INSERT INTO things VALUES (1, 'plain'), (2, 'snow ☃ and a dolphin 🐬');
		INSERT INTO things VALUES (3, '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 😀')`); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, readEmojiRows(t, dsn)); diff != "" {
		t.Errorf("rows read back (-want +got):\n%s", diff)
	}

	// A connection from before the crash, to see that it really happened.
	old, err := openMariaDB(t, dsn).Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	var oldID int64
	if err := old.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&oldID); err != nil {
		t.Fatal(err)
	}
	pidBefore, ok := mariadbdPid(m.Dir)
	if !ok {
		t.Fatal("no running mariadbd found through the pid file")
	}
	port := m.Port
	if err := m.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if m.Port != port {
		t.Errorf("port after Restart = %d, want %d", m.Port, port)
	}
	pidAfter, ok := mariadbdPid(m.Dir)
	if !ok || pidAfter == pidBefore || processRuns(pidBefore) {
		t.Errorf("mariadbd pid %d before Restart, %d (found: %v) after, old one runs: %v", pidBefore, pidAfter, ok, processRuns(pidBefore))
	}
	if err := old.PingContext(ctx); err == nil {
		t.Errorf("a connection from before Restart still works")
	}
	if diff := cmp.Diff(want, readEmojiRows(t, dsn)); diff != "" {
		t.Errorf("rows after Restart (-want +got):\n%s", diff)
	}
	if got := mariaString(t, dsn, "SELECT @@log_bin"); got != "1" {
		t.Errorf("log_bin after Restart = %s", got)
	}

	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Stop left %s behind (stat: %v)", dir, err)
	}
	if processRuns(pidAfter) {
		t.Errorf("mariadbd %d runs after Stop", pidAfter)
	}
	if err := m.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if err := m.Restart(ctx); err == nil {
		t.Errorf("Restart after Stop succeeded")
	}
	if err := m.Exec(ctx, "", "SELECT 1"); err == nil {
		t.Errorf("server still accepts connections after Stop")
	}
}

func TestSharedMariaDB_Settings(t *testing.T) {
	t.Parallel()
	m := SharedMariaDB(t)
	if again := SharedMariaDB(t); again != m {
		t.Fatalf("SharedMariaDB returned two servers: %v and %v", m, again)
	}
	dsn := NewMariaDBDatabase(t)
	var got [10]string
	err := openMariaDB(t, dsn).QueryRowContext(t.Context(), `SELECT @@log_bin, @@binlog_format, @@binlog_row_image,
		@@binlog_row_metadata, @@server_id, @@character_set_server, @@collation_server, @@GLOBAL.time_zone,
		@@bind_address, @@max_connections`).Scan(&got[0], &got[1], &got[2], &got[3], &got[4], &got[5], &got[6], &got[7], &got[8], &got[9])
	if err != nil {
		t.Fatal(err)
	}
	want := [10]string{"1", "ROW", "FULL", "FULL", "1", "utf8mb4", "utf8mb4_general_ci", "SYSTEM", "127.0.0.1", "500"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("log_bin, binlog_format, binlog_row_image, binlog_row_metadata, server_id, character_set_server, collation_server, time_zone, bind_address, max_connections (-want +got):\n%s", diff)
	}
	if got := mariaString(t, dsn, "SELECT @@socket"); got != filepath.Join(m.Dir, mariadbSocket) {
		t.Errorf("socket = %s, want it inside %s", got, m.Dir)
	}
	if got := mariaString(t, dsn, "SELECT @@tmpdir"); got != filepath.Join(m.Dir, mariadbTmpDir) {
		t.Errorf("tmpdir = %s, want the server's own (mariadbd empties its tmpdir of #sql* files when it starts)", got)
	}
	if got := mariaString(t, dsn, "SELECT @@log_bin_basename"); got != filepath.Join(m.Dir, "data", "binlog") {
		t.Errorf("log_bin_basename = %s", got)
	}
	// The grants are what tests expect to restrict from.
	if got := mariaString(t, dsn, "SHOW GRANTS"); !strings.HasPrefix(got, "GRANT ALL PRIVILEGES ON *.* TO `tandem`@`127.0.0.1`") || !strings.HasSuffix(got, "WITH GRANT OPTION") {
		t.Errorf("grants of tandem = %q", got)
	}
	// Root is left no login over TCP.
	if got := mariaString(t, dsn, "SELECT GROUP_CONCAT(CONCAT(user, '@', host) ORDER BY user, host) FROM mysql.user WHERE user IN ('root', 'tandem') AND host <> 'localhost'"); got != "tandem@127.0.0.1" {
		t.Errorf("TCP accounts of root and tandem = %s, want tandem@127.0.0.1 alone", got)
	}
	rootCfg := m.config("root", "", "")
	if err := execSQL(t.Context(), rootCfg, "SELECT 1"); err == nil {
		t.Errorf("root logs in over TCP without a password")
	}
	// User creation is not in the binlog: a capturer reading from the start
	// sees the tests' own changes only.
	rows, err := openMariaDB(t, dsn).QueryContext(t.Context(), "SHOW BINLOG EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	for rows.Next() {
		vals := make([]sql.RawBytes, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		if info := string(vals[len(vals)-1]); strings.Contains(info, "CREATE USER") || strings.Contains(info, Password) {
			t.Errorf("binlog holds the user setup: %s", info)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestNewMariaDBDatabase_GivesDistinctWorkingDatabases(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	m := SharedMariaDB(t)
	dsn1, dsn2 := NewMariaDBDatabase(t), NewMariaDBDatabase(t)
	db1, db2 := mariaDBName(t, dsn1), mariaDBName(t, dsn2)
	if db1 == db2 {
		t.Fatalf("NewMariaDBDatabase returned the same database twice: %q", db1)
	}
	if !strings.HasPrefix(db1, "testnewmariadbdatabase_givesdistinctworkingdatabases_") {
		t.Errorf("database name %q is not made from the test name", db1)
	}
	if err := m.Exec(ctx, db1, "CREATE TABLE only_here (id int PRIMARY KEY); INSERT INTO only_here VALUES (1), (2)"); err != nil {
		t.Fatal(err)
	}
	if got := mariaString(t, dsn1, "SELECT count(*) FROM only_here"); got != "2" {
		t.Errorf("rows in %s = %s, want 2", db1, got)
	}
	if got := mariaString(t, dsn2, "SELECT count(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = 'only_here'"); got != "0" {
		t.Errorf("table created in %s is visible in %s", db1, db2)
	}
	if got := mariaString(t, dsn2, "SELECT DATABASE()"); got != db2 {
		t.Errorf("DATABASE() = %q, want %q", got, db2)
	}
	if got := mariaString(t, dsn2, "SELECT @@character_set_database"); got != "utf8mb4" {
		t.Errorf("character set of %s = %s, want utf8mb4", db2, got)
	}
}

func TestNewMariaDBDatabase_LongTestNameFits(t *testing.T) {
	t.Parallel()
	t.Run(strings.Repeat("very_long_subtest_name_", 5), func(t *testing.T) {
		dsn := NewMariaDBDatabase(t)
		if name := mariaDBName(t, dsn); len(name) > 64 || mariaString(t, dsn, "SELECT DATABASE()") != name {
			t.Errorf("database %q (%d bytes) is not usable", name, len(name))
		}
	})
}

func TestMariaDB_ExecRunsEveryStatementAndStopsAtTheFirstError(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	m := SharedMariaDB(t)
	db := mariaDBName(t, NewMariaDBDatabase(t))
	err := m.Exec(ctx, db, "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1); INSERT INTO t VALUES (1); INSERT INTO t VALUES (3)")
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1062 {
		t.Fatalf("err = %v, want a duplicate key error (1062)", err)
	}
	if got := mariaString(t, m.DSN(db), "SELECT GROUP_CONCAT(id ORDER BY id) FROM t"); got != "1" {
		t.Errorf("ids = %s, want the statements before the error done and none after", got)
	}
	if err := m.Exec(ctx, "", "SELECT 1; CREATE DATABASE "+mysqlurl.QuoteIdent(db+"_x")+"; USE "+mysqlurl.QuoteIdent(db+"_x")+"; CREATE TABLE u (id int)"); err != nil {
		t.Fatalf("Exec without a database: %v", err)
	}
	if got := mariaString(t, m.DSN(db+"_x"), "SELECT count(*) FROM u"); got != "0" {
		t.Errorf("count = %s", got)
	}
}

func TestMariaDB_PasswordStaysOutOfStringsErrorsAndLogs(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	var logged bytes.Buffer
	var logMu sync.Mutex
	logger := slog.New(slog.NewTextHandler(&lockedWriter{w: &logged, mu: &logMu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m, err := StartMariaDB(ctx, MariaDBOptions{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()

	// The DSN carries it, by design, and parses back to it.
	cfg, err := mysqlurl.Parse(m.DSN("shop"))
	if err != nil {
		t.Fatal(err)
	}
	wantAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(m.Port))
	if cfg.User != User || cfg.Passwd != Password || cfg.Addr != wantAddr || cfg.DBName != "shop" {
		t.Errorf("DSN parses to user %q, addr %q, db %q (password right: %v)", cfg.User, cfg.Addr, cfg.DBName, cfg.Passwd == Password)
	}
	if want := "mysql://tandem:" + Password + "@" + wantAddr + "/shop"; m.DSN("shop") != want {
		t.Errorf("DSN = %q, want %q", m.DSN("shop"), want)
	}

	shown := map[string]string{
		"String": m.String(),
		"%v":     fmt.Sprintf("%v", m),
		"%+v":    fmt.Sprintf("%+v", m),
	}
	if err := m.Exec(ctx, "", "CREATE USER 'x'@'%' IDENTIFIED BY oops '"+Password+"'"); err == nil {
		t.Error("Exec of bad SQL holding the password succeeded")
	} else {
		shown["Exec error quoting the SQL"] = err.Error()
		if !strings.Contains(err.Error(), "<password>") {
			t.Errorf("the SQL error does not quote the SQL (so this test checks nothing): %v", err)
		}
	}
	if _, err := m.CreateDatabase(ctx, strings.Repeat("x", 65)); err == nil {
		t.Error("CreateDatabase of a 65-character name succeeded")
	} else {
		shown["CreateDatabase error"] = err.Error()
	}
	if err := m.Exec(ctx, "no_such_db", "SELECT 1"); err == nil {
		t.Error("Exec in a missing database succeeded")
	} else {
		shown["Exec error in a missing database"] = err.Error()
	}
	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := m.Exec(ctx, "", "SELECT 1"); err == nil {
		t.Error("Exec on a stopped server succeeded")
	} else {
		shown["Exec error on a stopped server"] = err.Error()
	}
	logMu.Lock()
	shown["log"] = logged.String()
	logMu.Unlock()
	for what, s := range shown {
		t.Logf("%s: %s", what, s)
		if strings.Contains(s, Password) {
			t.Errorf("%s shows the password: %s", what, s)
		}
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestStartMariaDB_CleansServersOfDeadOwners(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	keep := SharedMariaDB(t)
	stale, err := StartMariaDB(ctx, MariaDBOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer stale.Stop()
	if !strings.HasPrefix(filepath.Base(stale.Dir), mariadbPrefix) {
		t.Errorf("server folder %s lacks the %q prefix", stale.Dir, mariadbPrefix)
	}
	// Pretend the server was left by a test binary that was killed.
	if err := os.WriteFile(filepath.Join(stale.Dir, ownerFile), fmt.Appendf(nil, "%d 12345\n", deadPid(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	pid, ok := mariadbdPid(stale.Dir)
	if !ok {
		t.Fatal("stale server's mariadbd not running before the cleanup")
	}

	m, err := StartMariaDB(ctx, MariaDBOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	if _, err := os.Stat(stale.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale server folder %s still there (stat: %v)", stale.Dir, err)
	}
	if processRuns(pid) {
		t.Errorf("stale server's mariadbd %d still runs", pid)
	}
	if err := stale.Exec(ctx, "", "SELECT 1"); err == nil {
		t.Errorf("stale server still accepts connections")
	}
	if err := stale.Stop(); err != nil {
		t.Errorf("Stop of a server already cleaned up: %v", err)
	}
	// The servers of live owners are left alone.
	for _, live := range []*MariaDB{keep, m} {
		if got := mariaString(t, live.DSN(""), "SELECT 'alive'"); got != "alive" {
			t.Errorf("%v: %q", live, got)
		}
	}
}

func TestStartMariaDB_RejectsBadOptions(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	full := t.TempDir()
	if err := os.WriteFile(filepath.Join(full, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, opts := range map[string]MariaDBOptions{
		"non-empty Dir":       {Dir: full},
		"port in Settings":    {Settings: map[string]string{"port": "3306"}},
		"datadir in Settings": {Settings: map[string]string{"DataDir": "/tmp"}},
		"log-bin in Settings": {Settings: map[string]string{"log-bin": "x"}},
		"bad setting name":    {Settings: map[string]string{"max connections": "8"}},
		"too long Dir":        {Dir: filepath.Join(os.TempDir(), strings.Repeat("d", 100))},
	} {
		if m, err := StartMariaDB(ctx, opts); err == nil {
			m.Stop()
			t.Errorf("%s: StartMariaDB succeeded, want an error", name)
		} else if strings.Contains(err.Error(), Password) {
			t.Errorf("%s: error shows the password: %v", name, err)
		}
	}
}

func TestStartMariaDB_FailureQuotesTheLog(t *testing.T) {
	t.Parallel()
	_, err := StartMariaDB(t.Context(), MariaDBOptions{Settings: map[string]string{"no_such_setting": "1"}})
	if err == nil {
		t.Fatal("StartMariaDB with an unknown setting succeeded")
	}
	t.Logf("error: %v", err)
	for _, want := range []string{mariadbLogFile, "unknown variable 'no_such_setting=1'"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), Password) {
		t.Errorf("error shows the password:\n%v", err)
	}
}

// Not parallel: it replaces pickPort.
func TestStartMariaDB_RetriesWhenThePortIsTaken(t *testing.T) {
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

	m, err := StartMariaDB(ctx, MariaDBOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	if calls != 2 || m.Port == takenPort {
		t.Errorf("picked %d ports and got port %d (taken: %d), want a retry on a second port", calls, m.Port, takenPort)
	}
	if got := mariaString(t, m.DSN(""), "SELECT @@port"); got != strconv.Itoa(m.Port) {
		t.Errorf("@@port = %s, want %d", got, m.Port)
	}
}
