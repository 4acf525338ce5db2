package mysql_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	gmysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	gomysql "github.com/go-sql-driver/mysql"
	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/capture/mysql"
	"github.com/tandemcdc/tandem/internal/mysqlurl"
	"github.com/tandemcdc/tandem/internal/preflight"
	"github.com/tandemcdc/tandem/internal/testenv"
)

// chkOpen opens dsn, closed at the end of the test.
func chkOpen(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	cfg, err := mysqlurl.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	connector, err := gomysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(connector)
	t.Cleanup(func() { db.Close() })
	return db
}

// chkQuery returns the rows of q as text, every column.
func chkQuery(t *testing.T, db *sql.DB, q string) [][]string {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			row[i] = v.String
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// chkBinlog is one row of SHOW BINARY LOGS.
type chkBinlog struct {
	Name string
	Size int64
}

// chkBinaryLogs returns SHOW BINARY LOGS.
func chkBinaryLogs(t *testing.T, db *sql.DB) []chkBinlog {
	t.Helper()
	var logs []chkBinlog
	for _, r := range chkQuery(t, db, "SHOW BINARY LOGS") {
		size, err := strconv.ParseInt(r[1], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		logs = append(logs, chkBinlog{r[0], size})
	}
	return logs
}

// chkCurrentBinlog returns the server's current binlog position.
func chkCurrentBinlog(t *testing.T, dsn string) (string, uint64) {
	t.Helper()
	rows := chkQuery(t, chkOpen(t, dsn), "SHOW MASTER STATUS")
	if len(rows) != 1 {
		t.Fatalf("SHOW MASTER STATUS: %d rows", len(rows))
	}
	pos, err := strconv.ParseUint(rows[0][1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return rows[0][0], pos
}

// chkConnectReplica connects a binlog replica with server id id to m and
// waits until the server lists it. stop disconnects it and waits until the
// server no longer lists it.
func chkConnectReplica(t *testing.T, m *testenv.MariaDB, id uint32) (stop func()) {
	t.Helper()
	file, pos := chkCurrentBinlog(t, m.DSN(""))
	syncer := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID: id, Flavor: gmysql.MariaDBFlavor,
		Host: "127.0.0.1", Port: uint16(m.Port), User: m.User, Password: m.Password,
		Logger: slog.New(slog.DiscardHandler),
	})
	var once sync.Once
	closeSyncer := func() { once.Do(syncer.Close) }
	t.Cleanup(closeSyncer)
	if _, err := syncer.StartSync(gmysql.Position{Name: file, Pos: uint32(pos)}); err != nil {
		t.Fatalf("start a replica: %v", err)
	}
	db := chkOpen(t, m.DSN(""))
	listed := func() (bool, error) {
		for _, r := range chkQuery(t, db, "SHOW SLAVE HOSTS") {
			if r[0] == strconv.FormatUint(uint64(id), 10) {
				return true, nil
			}
		}
		return false, nil
	}
	testenv.WaitFor(t, fmt.Sprintf("SHOW SLAVE HOSTS to list replica %d", id), time.Minute, listed)
	return func() {
		t.Helper()
		closeSyncer()
		testenv.WaitFor(t, fmt.Sprintf("replica %d to leave SHOW SLAVE HOSTS", id), time.Minute, func() (bool, error) {
			ok, err := listed()
			return !ok, err
		})
	}
}

// chkPurgedServer starts a private server (binlogs expire after 2 days)
// with five binlogs of different sizes and purges the first two. It
// returns the server, a connection, and SHOW BINARY LOGS before and after
// the purge.
func chkPurgedServer(t *testing.T) (m *testenv.MariaDB, db *sql.DB, before, after []chkBinlog) {
	t.Helper()
	m = chkStartMariaDB(t, map[string]string{"binlog_expire_logs_seconds": "172800"})
	chkExec(t, m, "", "CREATE DATABASE shop")
	chkExec(t, m, "shop", "CREATE TABLE notes (id int PRIMARY KEY, body text)")
	for i := range 4 {
		chkExec(t, m, "shop", fmt.Sprintf("INSERT INTO notes VALUES (%d, REPEAT('x', %d)); FLUSH BINARY LOGS", i, 1000*(i+1)))
	}
	db = chkOpen(t, m.DSN("shop"))
	before = chkBinaryLogs(t, db)
	if len(before) < 5 {
		t.Fatalf("binlogs after 4 flushes: %v", before)
	}
	// MariaDB keeps a binlog that InnoDB has not checkpointed yet, silently.
	testenv.WaitFor(t, "PURGE BINARY LOGS to remove the first two binlogs", time.Minute, func() (bool, error) {
		chkExec(t, m, "", fmt.Sprintf("PURGE BINARY LOGS TO '%s'", before[2].Name))
		after = chkBinaryLogs(t, db)
		return after[0].Name == before[2].Name, nil
	})
	if diff := cmp.Diff(before[2:len(before)-1], after[:len(after)-1]); diff != "" {
		t.Fatalf("binlogs after the purge (-want +got):\n%s", diff)
	}
	return m, db, before, after
}

func TestBinlogRetention(t *testing.T) {
	t.Parallel() // a private server
	m, db, before, after := chkPurgedServer(t)
	const expire = 2 * 86400
	sizes := func(n int) int64 { // of the first n retained binlogs
		var s int64
		for _, l := range after[:n] {
			s += l.Size
		}
		return s
	}
	oldest := after[0].Name
	tests := []struct {
		file string
		pos  uint64
		want mysql.Retention
	}{
		{after[0].Name, 4, mysql.Retention{HeadroomBytes: 4, OldestFile: oldest, ExpireSeconds: expire}},
		{after[0].Name, 300, mysql.Retention{HeadroomBytes: 300, OldestFile: oldest, ExpireSeconds: expire}},
		{after[1].Name, 256, mysql.Retention{HeadroomBytes: sizes(1) + 256, OldestFile: oldest, ExpireSeconds: expire}},
		{after[2].Name, uint64(after[2].Size), mysql.Retention{HeadroomBytes: sizes(3), OldestFile: oldest, ExpireSeconds: expire}},
		{after[len(after)-1].Name, 4, mysql.Retention{HeadroomBytes: sizes(len(after)-1) + 4, OldestFile: oldest, ExpireSeconds: expire}},
		{before[0].Name, 4, mysql.Retention{Purged: true, OldestFile: oldest, ExpireSeconds: expire}},
		{before[1].Name, 1234, mysql.Retention{Purged: true, OldestFile: oldest, ExpireSeconds: expire}},
	}
	for _, tt := range tests {
		got, err := mysql.BinlogRetention(context.Background(), db, tt.file, tt.pos)
		if err != nil {
			t.Errorf("BinlogRetention(%s:%d): %v", tt.file, tt.pos, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("BinlogRetention(%s:%d) (-want +got):\n%s", tt.file, tt.pos, diff)
		}
	}

	// A binlog the server never had (a reset, another server).
	for _, file := range []string{"binlog.999999", "other-host-bin.000001"} {
		_, err := mysql.BinlogRetention(context.Background(), db, file, 4)
		want := &mysql.BinlogNotOnServerError{File: file, Oldest: oldest, Newest: after[len(after)-1].Name}
		var got *mysql.BinlogNotOnServerError
		if !errors.As(err, &got) {
			t.Errorf("BinlogRetention(%s:4): error %v, want %v", file, err, want)
			continue
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("BinlogRetention(%s:4) error (-want +got):\n%s", file, diff)
		}
	}

	// Expiry set in days (MariaDB keeps the two variables in step), or off.
	for _, tt := range []struct {
		set  string
		want int64
	}{
		{"SET GLOBAL expire_logs_days = 1.5", 129600},
		{"SET GLOBAL binlog_expire_logs_seconds = 0", 0},
		{"SET GLOBAL binlog_expire_logs_seconds = 3600", 3600},
	} {
		chkExec(t, m, "", tt.set)
		got, err := mysql.BinlogRetention(context.Background(), db, after[1].Name, 4)
		if err != nil {
			t.Fatal(err)
		}
		if got.ExpireSeconds != tt.want {
			t.Errorf("after %s: ExpireSeconds %d, want %d", tt.set, got.ExpireSeconds, tt.want)
		}
	}
}

func TestBinlogRetention_NeedsBinlogMonitor(t *testing.T) {
	m := testenv.SharedMariaDB(t)
	dsn := testenv.NewMariaDBDatabase(t)
	const user, password = "check_nomonitor", "nomonitor-pw-3317"
	chkCreateUser(t, m, user, password, "GRANT REPLICATION SLAVE ON *.* TO %s")
	file, pos := chkCurrentBinlog(t, dsn)
	_, err := mysql.BinlogRetention(context.Background(), chkOpen(t, chkWithUser(t, m.DSN(""), user, password)), file, pos)
	const want = "list binlogs: Error 1227 (42000): Access denied; you need (at least one of) the SUPER, BINLOG MONITOR privilege(s) for this operation"
	if err == nil || err.Error() != want {
		t.Errorf("BinlogRetention without BINLOG MONITOR: %v, want %s", err, want)
	}
}

func TestCheck_SavedPosition(t *testing.T) {
	t.Parallel() // a private server
	m, _, before, after := chkPurgedServer(t)
	cfg := mysql.CheckConfig{DSN: m.DSN("shop"), ServerID: chkServerID}
	at := func(file string, pos uint64) mysql.CheckConfig {
		c := cfg
		c.File, c.Pos = file, pos
		return c
	}
	oldest, newest := after[0].Name, after[len(after)-1].Name
	tests := []struct {
		name string
		cfg  mysql.CheckConfig
		want []preflight.Problem
	}{
		{"in a later binlog", at(after[1].Name, 4), nil},
		{"in the current binlog", at(newest, 4), nil},
		{"in the oldest binlog", at(oldest, 256), []preflight.Problem{{Severity: preflight.Warn, Object: "source",
			What: "the saved position " + oldest + ":256 is in the oldest binlog on the server, the next it purges (binlogs expire after 2 days): tandem must resume before then",
			Fix:  "start tandem so it reads past " + oldest + ", or keep binlogs longer: SET GLOBAL binlog_expire_logs_seconds = 604800; and the same under [mysqld] in my.cnf"}}},
		{"purged", at(before[1].Name, 1234), []preflight.Problem{{Severity: preflight.Fail, Object: "source",
			What: "the saved position " + before[1].Name + ":1234 was purged from the server: changes since then are lost to tandem",
			Fix:  "backfill again, and keep binlogs (binlog_expire_logs_seconds) longer than tandem may be stopped"}}},
		{"never on the server", at("binlog.999999", 4), []preflight.Problem{{Severity: preflight.Fail, Object: "source",
			What: "the saved position binlog.999999:4 is not on the server, whose binlogs run from " + oldest + " to " + newest +
				" (were they reset, or is this another server?): tandem cannot resume from it",
			Fix: "point source.dsn at the server the position comes from, or backfill again"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, chkRun(t, tt.cfg)); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}

	// Without expiry only a manual PURGE removes binlogs: no warning.
	chkExec(t, m, "", "SET GLOBAL binlog_expire_logs_seconds = 0")
	if diff := cmp.Diff([]preflight.Problem(nil), chkRun(t, at(oldest, 256))); diff != "" {
		t.Errorf("oldest binlog, no expiry (-want +got):\n%s", diff)
	}
}
