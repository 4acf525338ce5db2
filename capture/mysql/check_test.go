package mysql_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/capture/mysql"
	"github.com/tandemcdc/tandem/internal/preflight"
	"github.com/tandemcdc/tandem/internal/testenv"
)

// chkServerID is the replica server id the tests configure, an id that
// neither the test servers (1) nor another test's replica uses.
const chkServerID = 4242

// chkTimeout bounds one Check and a private server's start.
const chkTimeout = 2 * time.Minute

// chkRun runs Check and fails the test when a problem shows a password of
// the DSN or of the test servers.
func chkRun(t *testing.T, cfg mysql.CheckConfig) []preflight.Problem {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), chkTimeout)
	defer cancel()
	ps := mysql.Check(ctx, cfg)
	secrets := []string{testenv.Password}
	if u, err := url.Parse(cfg.DSN); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			secrets = append(secrets, pw)
		}
	}
	for _, p := range ps {
		for _, s := range secrets {
			if strings.Contains(p.Object+p.What+p.Fix, s) {
				t.Errorf("problem %+v shows the password %q", p, s)
			}
		}
	}
	return ps
}

// chkDBName returns the database a testenv DSN names.
func chkDBName(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(u.Path, "/")
}

// chkWithUser returns dsn with another user and password.
func chkWithUser(t *testing.T, dsn, user, password string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(user, password)
	return u.String()
}

// chkExec runs sql as the servers' admin user, in database db ("" for none).
func chkExec(t *testing.T, m *testenv.MariaDB, db, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.Exec(ctx, db, sql); err != nil {
		t.Fatal(err)
	}
}

// chkStartMariaDB starts a private server with settings, stopped at the end
// of the test.
func chkStartMariaDB(t *testing.T, settings map[string]string) *testenv.MariaDB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), chkTimeout)
	defer cancel()
	m, err := testenv.StartMariaDB(ctx, testenv.MariaDBOptions{Settings: settings})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Stop(); err != nil {
			t.Errorf("stop MariaDB: %v", err)
		}
	})
	return m
}

// chkCreateUser creates user@'%' with password on m and grants, dropping it
// at the end of the test.
func chkCreateUser(t *testing.T, m *testenv.MariaDB, user, password string, grants ...string) {
	t.Helper()
	chkExec(t, m, "", fmt.Sprintf("DROP USER IF EXISTS '%s'@'%%'; CREATE USER '%s'@'%%' IDENTIFIED BY '%s'", user, user, password))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := m.Exec(ctx, "", fmt.Sprintf("DROP USER IF EXISTS '%s'@'%%'", user)); err != nil {
			t.Errorf("drop user %s: %v", user, err)
		}
	})
	for _, g := range grants {
		chkExec(t, m, "", fmt.Sprintf(g, fmt.Sprintf("'%s'@'%%'", user)))
	}
}

const chkTables = `CREATE TABLE orders (id bigint PRIMARY KEY, total decimal(12,2)) ENGINE = InnoDB;
CREATE TABLE order_lines (order_id bigint, line int, sku varchar(40), PRIMARY KEY (order_id, line)) ENGINE = InnoDB`

func TestCheck_WellConfiguredServerHasNoProblems(t *testing.T) {
	dsn := testenv.NewMariaDBDatabase(t)
	db := chkDBName(t, dsn)
	chkExec(t, testenv.SharedMariaDB(t), db, chkTables)
	cfg := mysql.CheckConfig{DSN: dsn, ServerID: chkServerID, Tables: []string{db + ".orders", db + ".order_lines"}}
	if diff := cmp.Diff([]preflight.Problem(nil), chkRun(t, cfg)); diff != "" {
		t.Errorf("no position saved (-want +got):\n%s", diff)
	}

	// A saved position in the current binlog: the shared server never
	// expires binlogs, so even the oldest one is safe.
	cfg.File, cfg.Pos = chkCurrentBinlog(t, dsn)
	if diff := cmp.Diff([]preflight.Problem(nil), chkRun(t, cfg)); diff != "" {
		t.Errorf("position %s:%d saved (-want +got):\n%s", cfg.File, cfg.Pos, diff)
	}

	// The driver's own DSN form works too.
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	cfg.DSN = fmt.Sprintf("%s:%s@tcp(%s)/%s", u.User.Username(), pw, u.Host, db)
	if diff := cmp.Diff([]preflight.Problem(nil), chkRun(t, cfg)); diff != "" {
		t.Errorf("driver DSN (-want +got):\n%s", diff)
	}
}

func TestCheck_TableProblems(t *testing.T) {
	dsn := testenv.NewMariaDBDatabase(t)
	db := chkDBName(t, dsn)
	chkExec(t, testenv.SharedMariaDB(t), db, chkTables+`;
CREATE TABLE nopk (id bigint, v text) ENGINE = InnoDB;
CREATE TABLE uniq_only (id bigint NOT NULL UNIQUE, v text) ENGINE = InnoDB;
CREATE TABLE legacy (id bigint PRIMARY KEY, v text) ENGINE = MyISAM;
CREATE TABLE legacy_nopk (v text) ENGINE = Aria;
CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 100`)
	cfg := mysql.CheckConfig{DSN: dsn, ServerID: chkServerID, Tables: []string{
		db + ".orders", db + ".nopk", db + ".uniq_only", db + ".legacy", db + ".legacy_nopk",
		db + ".missing", "no_such_db.orders", db + ".big_orders", "orders",
	}}
	q := func(table string) string { return fmt.Sprintf("`%s`.`%s`", db, table) }
	noKey := "has no primary key, so its changes cannot be keyed"
	notTx := func(engine string) string {
		return "uses the " + engine + " engine, which is not transactional: a statement that fails halfway keeps the rows it changed, and a backfill cannot read a consistent snapshot of it"
	}
	want := []preflight.Problem{
		{Severity: preflight.Fail, Object: "source table " + db + ".nopk", What: noKey, Fix: "ALTER TABLE " + q("nopk") + " ADD PRIMARY KEY (...);"},
		{Severity: preflight.Fail, Object: "source table " + db + ".uniq_only", What: noKey, Fix: "ALTER TABLE " + q("uniq_only") + " ADD PRIMARY KEY (...);"},
		{Severity: preflight.Warn, Object: "source table " + db + ".legacy", What: notTx("MyISAM"), Fix: "ALTER TABLE " + q("legacy") + " ENGINE = InnoDB;"},
		{Severity: preflight.Fail, Object: "source table " + db + ".legacy_nopk", What: noKey, Fix: "ALTER TABLE " + q("legacy_nopk") + " ADD PRIMARY KEY (...);"},
		{Severity: preflight.Warn, Object: "source table " + db + ".legacy_nopk", What: notTx("Aria"), Fix: "ALTER TABLE " + q("legacy_nopk") + " ENGINE = InnoDB;"},
		{Severity: preflight.Fail, Object: "source table " + db + ".missing", What: "does not exist", Fix: "create it, or correct source.tables in the config"},
		{Severity: preflight.Fail, Object: "source table no_such_db.orders", What: "does not exist", Fix: "create it, or correct source.tables in the config"},
		{Severity: preflight.Fail, Object: "source table " + db + ".big_orders", What: "is a view: the binlog carries changes of base tables only",
			Fix: "list the view's base tables in source.tables instead"},
		{Severity: preflight.Fail, Object: "source table orders", What: "is not written as db.table", Fix: "write it as db.table in source.tables"},
	}
	if diff := cmp.Diff(want, chkRun(t, cfg)); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}

	// Each fix fixes its table.
	keys := map[string]string{"nopk": "(id)", "uniq_only": "(id)", "legacy_nopk": "(v(20))"}
	for _, p := range want[:5] {
		_, table, _ := strings.Cut(p.Object, ".")
		chkExec(t, testenv.SharedMariaDB(t), db, strings.Replace(p.Fix, "(...)", keys[table], 1))
	}
	cfg.Tables = cfg.Tables[:5]
	if diff := cmp.Diff([]preflight.Problem(nil), chkRun(t, cfg)); diff != "" {
		t.Errorf("after the fixes (-want +got):\n%s", diff)
	}
}

func TestCheck_ServerIDInUse(t *testing.T) {
	dsn := testenv.NewMariaDBDatabase(t)
	fix := "set source.mysql.server_id to an id that neither the server nor any of its replicas uses"

	cfg := mysql.CheckConfig{DSN: dsn, ServerID: 1} // testenv's servers run with server_id 1
	want := []preflight.Problem{{Severity: preflight.Fail, Object: "source",
		What: "source.mysql.server_id 1 is the server's own server_id: a replica needs an id of its own", Fix: fix}}
	if diff := cmp.Diff(want, chkRun(t, cfg)); diff != "" {
		t.Errorf("the server's own id (-want +got):\n%s", diff)
	}

	cfg.ServerID = 0
	want = []preflight.Problem{{Severity: preflight.Fail, Object: "source",
		What: "source.mysql.server_id is 0: a replica needs a non-zero server id", Fix: fix}}
	if diff := cmp.Diff(want, chkRun(t, cfg)); diff != "" {
		t.Errorf("server id 0 (-want +got):\n%s", diff)
	}
}

func TestCheck_ReplicaWithTheSameServerID(t *testing.T) {
	t.Parallel()
	m := chkStartMariaDB(t, nil) // a private server: the replica must not disturb other tests
	const id = 777
	stop := chkConnectReplica(t, m, id)
	cfg := mysql.CheckConfig{DSN: m.DSN(""), ServerID: id}
	want := []preflight.Problem{{Severity: preflight.Fail, Object: "source",
		What: "a replica with server_id 777 is connected to the server (another tandem, or a real replica): the server disconnects one of two replicas that share an id",
		Fix:  "set source.mysql.server_id to an id that neither the server nor any of its replicas uses"}}
	if diff := cmp.Diff(want, chkRun(t, cfg)); diff != "" {
		t.Errorf("replica %d connected (-want +got):\n%s", id, diff)
	}
	cfg.ServerID = id + 1
	if diff := cmp.Diff([]preflight.Problem(nil), chkRun(t, cfg)); diff != "" {
		t.Errorf("another id (-want +got):\n%s", diff)
	}
	stop()
	cfg.ServerID = id
	if diff := cmp.Diff([]preflight.Problem(nil), chkRun(t, cfg)); diff != "" {
		t.Errorf("replica gone (-want +got):\n%s", diff)
	}
}

func TestCheck_WrongServerSettings(t *testing.T) {
	t.Parallel() // a private server
	m := chkStartMariaDB(t, map[string]string{
		"binlog_format":              "STATEMENT",
		"binlog_row_image":           "MINIMAL",
		"binlog_row_metadata":        "MINIMAL",
		"binlog_expire_logs_seconds": "3600",
	})
	chkExec(t, m, "", "CREATE DATABASE shop")
	chkExec(t, m, "shop", chkTables)
	cfg := mysql.CheckConfig{DSN: m.DSN("shop"), ServerID: chkServerID, Tables: []string{"shop.orders"}}
	want := []preflight.Problem{
		{Severity: preflight.Fail, Object: "source", What: "binlog_format is STATEMENT, not ROW: changes logged as statements never reach tandem",
			Fix: "SET GLOBAL binlog_format = 'ROW'; (sessions opened before keep their format: reconnect the applications) and binlog_format = ROW under [mysqld] in my.cnf"},
		{Severity: preflight.Fail, Object: "source", What: "binlog_row_image is MINIMAL, not FULL: before-images would lack columns, so updates and deletes could not be keyed and transformed",
			Fix: "SET GLOBAL binlog_row_image = 'FULL'; (sessions opened before keep theirs: reconnect the applications) and binlog_row_image = FULL under [mysqld] in my.cnf"},
		{Severity: preflight.Warn, Object: "source", What: "binlog_row_metadata is MINIMAL, not FULL: column names then come from information_schema, which is wrong for rows written before a DDL when resuming behind it",
			Fix: "SET GLOBAL binlog_row_metadata = 'FULL'; and binlog_row_metadata = FULL under [mysqld] in my.cnf"},
		{Severity: preflight.Warn, Object: "source", What: "binlogs expire after 1 hour: if tandem is stopped for longer (over a weekend), the server purges binlogs it has not read and it must backfill again",
			Fix: "SET GLOBAL binlog_expire_logs_seconds = 604800; and binlog_expire_logs_seconds = 604800 under [mysqld] in my.cnf"},
	}
	if diff := cmp.Diff(want, chkRun(t, cfg)); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}

	// The SQL fixes take effect for the sessions opened after them, such
	// as Check's own.
	for _, p := range want {
		stmt, _, _ := strings.Cut(p.Fix, ";")
		chkExec(t, m, "", stmt)
	}
	if diff := cmp.Diff([]preflight.Problem(nil), chkRun(t, cfg)); diff != "" {
		t.Errorf("after the fixes (-want +got):\n%s", diff)
	}
}

func TestCheck_BinaryLogOff(t *testing.T) {
	t.Parallel() // a private server
	m := chkStartMariaDB(t, map[string]string{"skip_log_bin": ""})
	cfg := mysql.CheckConfig{DSN: m.DSN(""), ServerID: chkServerID, File: "binlog.000001", Pos: 4}
	want := []preflight.Problem{{Severity: preflight.Fail, Object: "source", What: "binary logging is off (log_bin): there are no changes to capture",
		Fix: "log_bin = binlog under [mysqld] in my.cnf (and no skip-log-bin or disable_log_bin), then restart the server"}}
	if diff := cmp.Diff(want, chkRun(t, cfg)); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}

func TestCheck_UserWithoutReplicationGrants(t *testing.T) {
	m := testenv.SharedMariaDB(t)
	dsn := testenv.NewMariaDBDatabase(t)
	db := chkDBName(t, dsn)
	chkExec(t, m, db, chkTables+`;
CREATE TABLE customers (id bigint PRIMARY KEY, name text, email text)`)
	const user, password = "check_restricted", "restricted-pw-8812"
	chkCreateUser(t, m, user, password, "GRANT SELECT ON `"+db+"`.`orders` TO %s", "GRANT SELECT (id, name) ON `"+db+"`.`customers` TO %s")
	cfg := mysql.CheckConfig{DSN: chkWithUser(t, dsn, user, password), ServerID: chkServerID,
		Tables: []string{db + ".orders", db + ".order_lines", db + ".customers"}}
	account := "'" + user + "'@'%'"
	want := []preflight.Problem{
		{Severity: preflight.Fail, Object: "source",
			What: "user " + account + " lacks REPLICATION SLAVE (to stream the binlog) and BINLOG MONITOR (to read binlog positions and retention)",
			Fix:  "GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO " + account + ";"},
		{Severity: preflight.Fail, Object: "source table " + db + ".order_lines",
			What: "is not visible to " + account + ": it does not exist, or the user may not SELECT it (backfill and reconcile read it)",
			Fix:  "GRANT SELECT ON `" + db + "`.`order_lines` TO " + account + ";"},
		{Severity: preflight.Fail, Object: "source table " + db + ".customers",
			What: "user " + account + " may not SELECT it (backfill and reconcile read it)",
			Fix:  "GRANT SELECT ON `" + db + "`.`customers` TO " + account + ";"},
	}
	if diff := cmp.Diff(want, chkRun(t, cfg)); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}

	// A saved position cannot be checked without BINLOG MONITOR: the grant
	// problem says what to do, no retention problem is added.
	cfg.File, cfg.Pos = chkCurrentBinlog(t, dsn)
	if diff := cmp.Diff(want, chkRun(t, cfg)); diff != "" {
		t.Errorf("with a saved position (-want +got):\n%s", diff)
	}

	// The fixes are the exact statements to run.
	for _, p := range want {
		chkExec(t, m, "", p.Fix)
	}
	if diff := cmp.Diff([]preflight.Problem(nil), chkRun(t, cfg)); diff != "" {
		t.Errorf("after the fixes (-want +got):\n%s", diff)
	}
}

func TestCheck_ReplicationGrantSpellings(t *testing.T) {
	m := testenv.SharedMariaDB(t)
	dsn := testenv.NewMariaDBDatabase(t)
	db := chkDBName(t, dsn)
	chkExec(t, m, db, chkTables)
	const user, password = "check_grants", "grants-pw-5521"
	account := "'" + user + "'@'%'"
	lacks := func(what, fix string) []preflight.Problem {
		return []preflight.Problem{{Severity: preflight.Fail, Object: "source", What: "user " + account + " lacks " + what,
			Fix: "GRANT " + fix + " ON *.* TO " + account + ";"}}
	}
	tests := []struct {
		name   string
		grants []string
		want   []preflight.Problem
	}{
		{"replication slave only", []string{"GRANT REPLICATION SLAVE ON *.* TO %s"},
			lacks("BINLOG MONITOR (to read binlog positions and retention)", "BINLOG MONITOR")},
		{"replication client is binlog monitor", []string{"GRANT REPLICATION CLIENT ON *.* TO %s"},
			lacks("REPLICATION SLAVE (to stream the binlog)", "REPLICATION SLAVE")},
		{"replica alias and admin privileges", []string{"GRANT REPLICATION REPLICA, REPLICATION SLAVE ADMIN, REPLICA MONITOR, BINLOG MONITOR ON *.* TO %s"}, nil},
		{"super", []string{"GRANT SUPER, REPLICATION SLAVE ON *.* TO %s"}, nil},
		{"all privileges", []string{"GRANT ALL PRIVILEGES ON *.* TO %s"}, nil},
		{"all privileges on the database only", []string{"GRANT ALL PRIVILEGES ON `" + db + "`.* TO %s"},
			lacks("REPLICATION SLAVE (to stream the binlog) and BINLOG MONITOR (to read binlog positions and retention)", "REPLICATION SLAVE, BINLOG MONITOR")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chkCreateUser(t, m, user, password, append(tt.grants, "GRANT SELECT ON `"+db+"`.* TO %s")...)
			cfg := mysql.CheckConfig{DSN: chkWithUser(t, dsn, user, password), ServerID: chkServerID,
				Tables: []string{db + ".orders", db + ".order_lines"}}
			if diff := cmp.Diff(tt.want, chkRun(t, cfg)); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCheck_CannotConnect(t *testing.T) {
	m := testenv.SharedMariaDB(t)
	fix := "check source.dsn, that the server is up and that the user may log in from this host"

	// A wrong password: the server's message names the user, not the password.
	wrong := "wrong-" + testenv.Password
	cfg := mysql.CheckConfig{DSN: chkWithUser(t, m.DSN(""), m.User, wrong), ServerID: chkServerID}
	want := []preflight.Problem{{Severity: preflight.Fail, Object: "source",
		What: "cannot connect: connect to MySQL server 127.0.0.1:" + strconv.Itoa(m.Port) + ": Error 1045 (28000): Access denied for user 'tandem'@'127.0.0.1' (using password: YES)", Fix: fix}}
	if diff := cmp.Diff(want, chkRun(t, cfg)); diff != "" {
		t.Errorf("wrong password (-want +got):\n%s", diff)
	}

	// Nothing listening.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg.DSN = "mysql://tandem:" + testenv.Password + "@" + addr + "/shop"
	want = []preflight.Problem{{Severity: preflight.Fail, Object: "source",
		What: "cannot connect: connect to MySQL server " + addr + ": dial tcp " + addr + ": connect: connection refused", Fix: fix, Unreachable: true}}
	if diff := cmp.Diff(want, chkRun(t, cfg)); diff != "" {
		t.Errorf("closed port (-want +got):\n%s", diff)
	}

	// A DSN that does not parse.
	cfg.DSN = "mysql://tandem:" + testenv.Password + "@db:port/shop"
	want = []preflight.Problem{{Severity: preflight.Fail, Object: "source",
		What: "parse MySQL URL: malformed (expected mysql://user:pass@host:3306/db)", Fix: "write source.dsn as mysql://user:password@host:3306/db"}}
	if diff := cmp.Diff(want, chkRun(t, cfg)); diff != "" {
		t.Errorf("malformed DSN (-want +got):\n%s", diff)
	}
}
