package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/tandemcdc/tandem/internal/mysqlurl"
	"github.com/tandemcdc/tandem/internal/preflight"
)

// CheckConfig is what Check inspects.
type CheckConfig struct {
	DSN      string   // never printed
	ServerID uint32   // the replica server id tandem will use
	Tables   []string // "db.table" as configured
	File     string   // binlog file of the saved position; "" when none saved yet
	Pos      uint64   // offset in File
}

// MySQL error numbers Check tells apart.
const (
	erTableAccessDeny = 1142 // ER_TABLEACCESS_DENIED_ERROR
	erColAccessDeny   = 1143 // ER_COLUMNACCESS_DENIED_ERROR
)

// shortExpiry is the binlog expiry under which Check warns: a capture
// stopped over a weekend must still find its binlogs.
const shortExpiry = 86400

// Check inspects the source server without changing it: the connection,
// the binlog settings tandem needs (log_bin, ROW format, FULL row images
// and metadata), that no server or connected replica uses cfg.ServerID,
// the user's replication grants, GTIDs on MySQL, each table (exists, has a
// primary key, is transactional, may be read), and, when a position is
// saved, that the server still has it. Each Problem says how to fix it; no
// Problem shows the password.
func Check(ctx context.Context, cfg CheckConfig) []preflight.Problem {
	c := &sourceCheck{cfg: cfg}
	c.run(ctx)
	return c.ps
}

// sourceCheck is one run of Check.
type sourceCheck struct {
	cfg     CheckConfig
	db      *sql.DB
	passwd  string
	mariadb bool
	account string // 'user'@'host' of CURRENT_USER(), quoted for a GRANT
	ps      []preflight.Problem
}

func (c *sourceCheck) fail(obj, what, fix string) {
	c.ps = append(c.ps, preflight.Problem{Severity: preflight.Fail, Object: obj, What: c.scrub(what), Fix: fix})
}

func (c *sourceCheck) warn(obj, what, fix string) {
	c.ps = append(c.ps, preflight.Problem{Severity: preflight.Warn, Object: obj, What: c.scrub(what), Fix: fix})
}

// scrub removes the password from a message that quotes a server or
// driver error.
func (c *sourceCheck) scrub(msg string) string {
	if c.passwd == "" {
		return msg
	}
	return strings.ReplaceAll(msg, c.passwd, "********")
}

func (c *sourceCheck) run(ctx context.Context) {
	if c.cfg.ServerID == 0 {
		c.fail("source", "source.mysql.server_id is 0: a replica needs a non-zero server id",
			"set source.mysql.server_id to an id that neither the server nor any of its replicas uses")
	}
	dcfg, err := mysqlurl.Parse(c.cfg.DSN)
	if err != nil {
		c.fail("source", err.Error(), "write source.dsn as mysql://user:password@host:3306/db")
		return
	}
	c.passwd = dcfg.Passwd
	c.account = mysqlurl.QuoteString(dcfg.User) + "@'%'" // until CURRENT_USER() says
	connector, err := mysqlurl.Connector(dcfg)
	if err != nil {
		c.fail("source", fmt.Sprintf("invalid source.dsn: %v", err), "write source.dsn as mysql://user:password@host:3306/db")
		return
	}
	c.db = sql.OpenDB(connector)
	defer c.db.Close()
	c.db.SetMaxOpenConns(1)
	if err := c.db.PingContext(ctx); err != nil {
		c.fail("source", fmt.Sprintf("cannot connect: %v", err),
			"check source.dsn, that the server is up and that the user may log in from this host")
		c.ps[len(c.ps)-1].Unreachable = preflight.IsUnreachable(err)
		return
	}

	vars, err := showVariables(ctx, c.db, "version", "server_id", "log_bin", "binlog_format", "binlog_row_image",
		"binlog_row_metadata", "gtid_mode", "binlog_expire_logs_seconds", "expire_logs_days", "binlog_expire_logs_auto_purge")
	if err != nil {
		c.fail("source", err.Error(), "check that source.dsn names a MySQL 8 or MariaDB 10.11+ server")
		return
	}
	c.mariadb = strings.Contains(vars["version"], "MariaDB")
	logBin := strings.EqualFold(vars["log_bin"], "ON")
	c.binlogSettings(vars, logBin)
	c.serverIDs(ctx, vars["server_id"])
	if !c.mariadb {
		c.gtid(vars)
	}
	canMonitor := c.grants(ctx)
	for _, t := range c.cfg.Tables {
		c.table(ctx, t)
	}
	if c.cfg.File != "" && logBin && canMonitor {
		c.retention(ctx)
	}
	if e := binlogExpiry(vars); logBin && e > 0 && e < shortExpiry {
		c.warn("source", fmt.Sprintf("binlogs expire after %s: if tandem is stopped for longer (over a weekend), the server purges binlogs it has not read and it must backfill again",
			seconds(e)),
			"SET GLOBAL binlog_expire_logs_seconds = 604800; and binlog_expire_logs_seconds = 604800 under [mysqld] in my.cnf")
	}
}

// binlogSettings checks log_bin, binlog_format, binlog_row_image and
// binlog_row_metadata.
func (c *sourceCheck) binlogSettings(vars map[string]string, logBin bool) {
	if !logBin {
		c.fail("source", "binary logging is off (log_bin): there are no changes to capture",
			"log_bin = binlog under [mysqld] in my.cnf (and no skip-log-bin or disable_log_bin), then restart the server")
	}
	if f := vars["binlog_format"]; !strings.EqualFold(f, "ROW") {
		c.fail("source", fmt.Sprintf("binlog_format is %s, not ROW: changes logged as statements never reach tandem", f),
			"SET GLOBAL binlog_format = 'ROW'; (sessions opened before keep their format: reconnect the applications) and binlog_format = ROW under [mysqld] in my.cnf")
	}
	if img := vars["binlog_row_image"]; !strings.EqualFold(img, "FULL") {
		c.fail("source", fmt.Sprintf("binlog_row_image is %s, not FULL: before-images would lack columns, so updates and deletes could not be keyed and transformed", img),
			"SET GLOBAL binlog_row_image = 'FULL'; (sessions opened before keep theirs: reconnect the applications) and binlog_row_image = FULL under [mysqld] in my.cnf")
	}
	const namesFromSchema = "column names then come from information_schema, which is wrong for rows written before a DDL when resuming behind it"
	switch md, ok := vars["binlog_row_metadata"]; {
	case !ok:
		c.warn("source", "the server has no binlog_row_metadata (MySQL before 8.0.1, MariaDB before 10.5): "+namesFromSchema,
			"upgrade the server to MySQL 8 or MariaDB 10.11")
	case !strings.EqualFold(md, "FULL"):
		c.warn("source", fmt.Sprintf("binlog_row_metadata is %s, not FULL: %s", md, namesFromSchema),
			"SET GLOBAL binlog_row_metadata = 'FULL'; and binlog_row_metadata = FULL under [mysqld] in my.cnf")
	}
}

// serverIDs checks that neither the server nor a connected replica uses
// cfg.ServerID: the server disconnects one of two replicas sharing an id.
func (c *sourceCheck) serverIDs(ctx context.Context, own string) {
	const fix = "set source.mysql.server_id to an id that neither the server nor any of its replicas uses"
	id := c.cfg.ServerID
	if id == 0 {
		return // reported already
	}
	if own == strconv.FormatUint(uint64(id), 10) {
		c.fail("source", fmt.Sprintf("source.mysql.server_id %d is the server's own server_id: a replica needs an id of its own", id), fix)
		return
	}
	ids, ok := c.replicaIDs(ctx)
	if !ok {
		return // listing replicas needs REPLICATION MASTER ADMIN on MariaDB: not required of tandem
	}
	for _, r := range ids {
		if r == uint64(id) {
			var holder sql.NullInt64
			if err := c.db.QueryRowContext(ctx, `SELECT IS_USED_LOCK(?)`, leaseName(id)).Scan(&holder); err == nil && holder.Valid {
				// The replica holds the capture lease (lease.go): an active
				// tandem capture of this migration, which a second one
				// stands by for, never fighting it for the binlog.
				c.warn("source", fmt.Sprintf("another tandem capture streams with server_id %d (it holds the capture lease %s, connection %d): a second `tandem capture` waits as its standby; a second `tandem run` stops", id, leaseName(id), holder.Int64),
					"nothing, if this is the standby; otherwise stop the other tandem, or "+fix)
				return
			}
			c.fail("source", fmt.Sprintf("a replica with server_id %d is connected to the server (another tandem, or a real replica): the server disconnects one of two replicas that share an id", id), fix)
			return
		}
	}
}

// replicaIDs lists the server ids of the connected replicas, from SHOW
// REPLICAS (MySQL 8.0.22+) or SHOW SLAVE HOSTS; ok is false when neither
// may be run.
func (c *sourceCheck) replicaIDs(ctx context.Context) ([]uint64, bool) {
	stmts := []string{"SHOW REPLICAS", "SHOW SLAVE HOSTS"}
	if c.mariadb {
		stmts = stmts[1:]
	}
	for _, q := range stmts {
		ids, err := serverIDColumn(ctx, c.db, q)
		if err == nil {
			return ids, true
		}
	}
	return nil, false
}

// serverIDColumn runs q and returns its Server_id column.
func serverIDColumn(ctx context.Context, db *sql.DB, q string) ([]uint64, error) {
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	at := -1
	for i, name := range cols {
		if strings.EqualFold(name, "Server_id") {
			at = i
		}
	}
	if at < 0 {
		return nil, fmt.Errorf("%s has no Server_id column", q)
	}
	vals := make([]any, len(cols))
	for i := range vals {
		vals[i] = new(sql.RawBytes)
	}
	var ids []uint64
	for rows.Next() {
		if err := rows.Scan(vals...); err != nil {
			return nil, err
		}
		if id, err := strconv.ParseUint(string(*vals[at].(*sql.RawBytes)), 10, 32); err == nil {
			ids = append(ids, id)
		}
	}
	return ids, rows.Err()
}

// gtid warns when MySQL runs without GTIDs.
func (c *sourceCheck) gtid(vars map[string]string) {
	mode, ok := vars["gtid_mode"]
	if ok && strings.EqualFold(mode, "ON") {
		return
	}
	what := "the server has no gtid_mode"
	if ok {
		what = "gtid_mode is " + mode
	}
	c.warn("source", what+": positions are binlog file:offset, which do not survive a failover to another server",
		"gtid_mode = ON and enforce_gtid_consistency = ON under [mysqld] in my.cnf (online: SET GLOBAL enforce_gtid_consistency = ON; then SET GLOBAL gtid_mode to OFF_PERMISSIVE, ON_PERMISSIVE and ON in turn)")
}

// grants checks the replication privileges in the user's grants; it
// reports whether the user may list binlogs.
func (c *sourceCheck) grants(ctx context.Context) bool {
	var current string
	if err := c.db.QueryRowContext(ctx, "SELECT CURRENT_USER()").Scan(&current); err != nil {
		c.warn("source", fmt.Sprintf("cannot read the current user: %v", err), "check that source.dsn names a MySQL 8 or MariaDB 10.11+ server")
		return false
	}
	user, host := current, "%"
	if i := strings.LastIndexByte(current, '@'); i >= 0 {
		user, host = current[:i], current[i+1:]
	}
	c.account = mysqlurl.QuoteString(user) + "@" + mysqlurl.QuoteString(host)

	privs, err := globalPrivileges(ctx, c.db)
	if err != nil {
		c.warn("source", fmt.Sprintf("cannot read the grants of %s: %v", c.account, err),
			"check that SHOW GRANTS works for the source user")
		return false
	}
	all := privs["ALL PRIVILEGES"] || privs["ALL"]
	slave := all || privs["REPLICATION SLAVE"]
	monitor := all || privs["REPLICATION CLIENT"] || privs["BINLOG MONITOR"] || privs["SUPER"]
	monitorName := "REPLICATION CLIENT"
	if c.mariadb {
		monitorName = "BINLOG MONITOR" // MariaDB 10.5+'s name for REPLICATION CLIENT
	}
	var missing, why []string
	if !slave {
		missing = append(missing, "REPLICATION SLAVE")
		why = append(why, "REPLICATION SLAVE (to stream the binlog)")
	}
	if !monitor {
		missing = append(missing, monitorName)
		why = append(why, monitorName+" (to read binlog positions and retention)")
	}
	if len(missing) > 0 {
		c.fail("source", fmt.Sprintf("user %s lacks %s", c.account, strings.Join(why, " and ")),
			fmt.Sprintf("GRANT %s ON *.* TO %s;", strings.Join(missing, ", "), c.account))
	}
	return monitor
}

// globalPrivileges returns the privileges SHOW GRANTS lists ON *.*,
// uppercase ("REPLICATION SLAVE", "ALL PRIVILEGES"). SHOW GRANTS without
// FOR also lists the grants of the current role on MariaDB.
func globalPrivileges(ctx context.Context, db *sql.DB) (map[string]bool, error) {
	rows, err := db.QueryContext(ctx, "SHOW GRANTS")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	privs := map[string]bool{}
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return nil, err
		}
		list, on, ok := parseGrant(line)
		if !ok || on != "*.*" {
			continue
		}
		for _, p := range list {
			privs[p] = true
		}
	}
	return privs, rows.Err()
}

// parseGrant splits a SHOW GRANTS line "GRANT <privileges> ON <object> TO
// ..." into its privileges (uppercase; column privileges left out) and
// object;
// ok is false for other lines (role grants: "GRANT `r` TO ...").
func parseGrant(line string) (privs []string, on string, ok bool) {
	rest, found := strings.CutPrefix(line, "GRANT ")
	if !found {
		return nil, "", false
	}
	list, after, found := strings.Cut(rest, " ON ")
	if !found {
		return nil, "", false
	}
	on, _, _ = strings.Cut(after, " TO ")
	depth, start := 0, 0
	add := func(p string) {
		// SELECT (`a`, `b`) is a column privilege, never a global one.
		if p = strings.TrimSpace(p); p != "" && !strings.Contains(p, "(") {
			privs = append(privs, strings.ToUpper(p))
		}
	}
	for i, r := range list {
		switch r {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				add(list[start:i])
				start = i + 1
			}
		}
	}
	add(list[start:])
	return privs, strings.TrimSpace(on), true
}

// table checks one configured table.
func (c *sourceCheck) table(ctx context.Context, t string) {
	obj := "source table " + t
	schema, name, ok := strings.Cut(t, ".")
	if !ok || schema == "" || name == "" {
		c.fail(obj, "is not written as db.table", "write it as db.table in source.tables")
		return
	}
	ident := mysqlurl.QuoteIdent(schema) + "." + mysqlurl.QuoteIdent(name)
	grant := fmt.Sprintf("GRANT SELECT ON %s TO %s;", ident, c.account)

	var typ, engine, transactional string
	var hasKey bool
	err := c.db.QueryRowContext(ctx, `SELECT t.TABLE_TYPE, COALESCE(t.ENGINE, ''), COALESCE(e.TRANSACTIONS, ''),
	EXISTS (SELECT 1 FROM information_schema.STATISTICS k
		WHERE k.TABLE_SCHEMA = t.TABLE_SCHEMA AND k.TABLE_NAME = t.TABLE_NAME AND k.INDEX_NAME = 'PRIMARY')
	FROM information_schema.TABLES t LEFT JOIN information_schema.ENGINES e ON e.ENGINE = t.ENGINE
	WHERE t.TABLE_SCHEMA = ? AND t.TABLE_NAME = ?`, schema, name).Scan(&typ, &engine, &transactional, &hasKey)
	// STATISTICS, not TABLE_CONSTRAINTS: MariaDB hides a table's constraints
	// from a user who may only SELECT it, but not its indexes.
	if errors.Is(err, sql.ErrNoRows) {
		// information_schema hides tables the user has no privilege on.
		switch mysqlErrorNumber(c.readable(ctx, ident)) {
		case erTableAccessDeny:
			c.fail(obj, fmt.Sprintf("is not visible to %s: it does not exist, or the user may not SELECT it (backfill and reconcile read it)", c.account), grant)
		default:
			c.fail(obj, "does not exist", "create it, or correct source.tables in the config")
		}
		return
	}
	if err != nil {
		c.fail(obj, fmt.Sprintf("cannot inspect: %v", err), "check that the source user may read information_schema")
		return
	}
	if strings.EqualFold(typ, "VIEW") {
		c.fail(obj, "is a view: the binlog carries changes of base tables only", "list the view's base tables in source.tables instead")
		return
	}
	if !hasKey {
		c.fail(obj, "has no primary key, so its changes cannot be keyed", fmt.Sprintf("ALTER TABLE %s ADD PRIMARY KEY (...);", ident))
	}
	if !strings.EqualFold(transactional, "YES") {
		c.warn(obj, fmt.Sprintf("uses the %s engine, which is not transactional: a statement that fails halfway keeps the rows it changed, and a backfill cannot read a consistent snapshot of it", engine),
			fmt.Sprintf("ALTER TABLE %s ENGINE = InnoDB;", ident))
	}
	switch err := c.readable(ctx, ident); {
	case err == nil:
	case mysqlErrorNumber(err) == erTableAccessDeny || mysqlErrorNumber(err) == erColAccessDeny:
		// Column privileges that leave out some columns land here too.
		c.fail(obj, fmt.Sprintf("user %s may not SELECT it (backfill and reconcile read it)", c.account), grant)
	default:
		c.fail(obj, fmt.Sprintf("cannot be read: %v", err), grant)
	}
}

// readable tries to read the table ident (no rows).
func (c *sourceCheck) readable(ctx context.Context, ident string) error {
	rows, err := c.db.QueryContext(ctx, "SELECT * FROM "+ident+" LIMIT 0")
	if err != nil {
		return err
	}
	return rows.Close()
}

// retention checks that the server still has the saved position, and
// warns when it is next in line to be purged.
func (c *sourceCheck) retention(ctx context.Context) {
	at := fmt.Sprintf("%s:%d", c.cfg.File, c.cfg.Pos)
	r, err := BinlogRetention(ctx, c.db, c.cfg.File, c.cfg.Pos)
	var gone *BinlogNotOnServerError
	switch {
	case errors.As(err, &gone):
		c.fail("source", fmt.Sprintf("the saved position %s is not on the server, whose binlogs run from %s to %s (were they reset, or is this another server?): tandem cannot resume from it",
			at, gone.Oldest, gone.Newest),
			"point source.dsn at the server the position comes from, or backfill again")
	case err != nil:
		c.warn("source", fmt.Sprintf("cannot measure binlog retention: %v", err), "check that the source user may run SHOW BINARY LOGS")
	case r.Purged:
		c.fail("source", fmt.Sprintf("the saved position %s was purged from the server: changes since then are lost to tandem", at),
			"backfill again, and keep binlogs (binlog_expire_logs_seconds) longer than tandem may be stopped")
	case r.OldestFile == c.cfg.File && r.ExpireSeconds > 0:
		c.warn("source", fmt.Sprintf("the saved position %s is in the oldest binlog on the server, the next it purges (binlogs expire after %s): tandem must resume before then",
			at, seconds(r.ExpireSeconds)),
			"start tandem so it reads past "+c.cfg.File+", or keep binlogs longer: SET GLOBAL binlog_expire_logs_seconds = 604800; and the same under [mysqld] in my.cnf")
	}
}

// mysqlErrorNumber is the server error number of err, 0 when err is not a
// server error.
func mysqlErrorNumber(err error) uint16 {
	var me *gomysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

// seconds renders an expiry: "30 days", "1 day", "6 hours", "90 minutes".
func seconds(s int64) string {
	plural := func(n int64, unit string) string {
		if n == 1 {
			return "1 " + unit
		}
		return fmt.Sprintf("%d %ss", n, unit)
	}
	switch {
	case s%86400 == 0:
		return plural(s/86400, "day")
	case s%3600 == 0:
		return plural(s/3600, "hour")
	case s%60 == 0:
		return plural(s/60, "minute")
	}
	return plural(s, "second")
}
