package mysql

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/tandemcdc/tandem/internal/mysqlurl"
	"github.com/tandemcdc/tandem/internal/preflight"
	"github.com/tandemcdc/tandem/sink"
)

// Check inspects the target without changing it: each table exists with
// every written column; its key is exactly the columns of a primary key or
// unique index (ON DUPLICATE KEY UPDATE needs one), with a warning for any
// other unique index, on which a write may collide instead; the user may
// select, insert, update and delete its rows; and tandem's state database
// (cfg.StateSchema, default DefaultStateSchema) is there and writable, or
// may be created.
//
// Privileges are checked by EXPLAINing the statements the sink runs, which
// the server authorises like the statements themselves (roles, database,
// table and column grants included) without running them. Every problem
// names its fix; a missing privilege, the GRANT that adds it.
func Check(ctx context.Context, target Config, uses []sink.TableUse) []preflight.Problem {
	c := &checker{}
	cfg, err := driverConfig(target.DSN)
	if err != nil {
		c.fail("target", err.Error(), "correct target.dsn: mysql://user:password@host:3306/database")
		return c.ps
	}
	connector, err := mysqlurl.Connector(cfg)
	if err != nil {
		c.fail("target", fmt.Sprintf("cannot use target.dsn: %v", err), "correct target.dsn: mysql://user:password@host:3306/database")
		return c.ps
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		c.fail("target", fmt.Sprintf("cannot connect to %s: %v", describeDSN(target.DSN), err),
			"check target.dsn, that the server is up and that the user may connect from this host")
		c.ps[len(c.ps)-1].Unreachable = preflight.IsUnreachable(err)
		return c.ps
	}
	defer conn.Close()
	c.conn = conn
	c.account = "<target user>"
	var current string
	if err := conn.QueryRowContext(ctx, "SELECT CURRENT_USER()").Scan(&current); err == nil {
		c.account = account(current)
	}
	for _, u := range uses {
		c.table(ctx, u)
	}
	c.state(ctx, target.stateSchema())
	return c.ps
}

// checker collects the problems of one Check.
type checker struct {
	conn    *sql.Conn
	account string // 'user'@'host', for GRANT statements
	ps      []preflight.Problem
}

func (c *checker) fail(obj, what, fix string) {
	c.ps = append(c.ps, preflight.Problem{Severity: preflight.Fail, Object: obj, What: what, Fix: fix})
}

func (c *checker) warn(obj, what, fix string) {
	c.ps = append(c.ps, preflight.Problem{Severity: preflight.Warn, Object: obj, What: what, Fix: fix})
}

// account quotes CURRENT_USER()'s user@host as a GRANT names it.
func account(current string) string {
	i := strings.LastIndexByte(current, '@')
	if i < 0 {
		return mysqlurl.QuoteString(current)
	}
	return mysqlurl.QuoteString(current[:i]) + "@" + mysqlurl.QuoteString(current[i+1:])
}

func (c *checker) table(ctx context.Context, u sink.TableUse) {
	obj := "target table " + u.Table
	ident := tableIdent(u.Table)
	t, err := describeTable(ctx, c.conn, u.Table)
	if errors.Is(err, ErrTableNotFound) {
		if errors.Is(err, errNoDatabase) {
			c.fail(obj, "names no database, and target.dsn names none", "qualify the mapping's table as <database>.<table>, or add the database to target.dsn")
			return
		}
		c.fail(obj, "does not exist", "create it in the target, or correct the mapping's table (a table the target user has no privilege on is invisible to it)")
		return
	}
	if err != nil {
		c.fail(obj, fmt.Sprintf("cannot inspect: %v", err), "")
		return
	}
	var present []string
	for _, col := range u.Columns {
		if _, ok := t.column(col); ok {
			if !containsFold(present, col) {
				present = append(present, col)
			}
			continue
		}
		c.fail(fmt.Sprintf("target column %s.%s", u.Table, col), "does not exist",
			fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s <type>; or correct the mapping", ident, mysqlurl.QuoteIdent(col)))
	}
	if !t.uniqueOn(u.Key) {
		c.fail(obj, fmt.Sprintf("has no primary key or unique index on the mapping key (%s), which upserts need", strings.Join(u.Key, ", ")),
			fmt.Sprintf("ALTER TABLE %s ADD UNIQUE KEY (%s);", ident, strings.Join(quoteAll(u.Key), ", ")))
	}
	for _, ix := range t.uniques {
		if ix.sameColumns(u.Key) {
			continue
		}
		cols := make([]string, len(ix.cols))
		for i, col := range ix.cols {
			cols[i] = cmp.Or(col, "<expression>")
		}
		what := fmt.Sprintf("has unique index %s on (%s) besides the one on the mapping key (%s): ON DUPLICATE KEY UPDATE acts on whichever row a write collides with, "+
			"so a write whose (%[2]s) equals another row's updates that row (or, for create_if_absent, is skipped) instead of the row its key names",
			ix.name, strings.Join(cols, ", "), strings.Join(u.Key, ", "))
		fix := fmt.Sprintf("make sure the source enforces the same uniqueness, or drop the index: ALTER TABLE %s DROP INDEX %s;", ident, mysqlurl.QuoteIdent(ix.name))
		if ix.name == "PRIMARY" {
			fix = fmt.Sprintf("make sure the source enforces the same uniqueness, or make the mapping key the primary key: ALTER TABLE %s DROP PRIMARY KEY, ADD PRIMARY KEY (%s);",
				ident, strings.Join(quoteAll(u.Key), ", "))
		}
		c.warn(obj, what, fix)
	}
	if len(present) == 0 {
		present = slices.Sorted(maps.Keys(t.types))[:1]
	}
	_, tbl := splitTable(u.Table)
	missing, err := c.privileges(ctx, ident, present, []string{"SELECT", "INSERT", "UPDATE", "DELETE"})
	if err != nil {
		c.fail(obj, fmt.Sprintf("cannot inspect the target user's privileges: %v", err), "")
		return
	}
	if len(missing) > 0 {
		c.fail(obj, fmt.Sprintf("the target user %s lacks %s on it", c.account, strings.Join(missing, ", ")),
			fmt.Sprintf("GRANT %s ON %s.%s TO %s;", strings.Join(missing, ", "), mysqlurl.QuoteIdent(t.schema), mysqlurl.QuoteIdent(tbl), c.account))
	}
}

// privileges returns which of privs the user lacks on table ident's
// columns cols: the EXPLAIN of a statement needing each is refused.
func (c *checker) privileges(ctx context.Context, ident string, cols, privs []string) ([]string, error) {
	quoted := quoteAll(cols)
	nulls := strings.TrimSuffix(strings.Repeat("NULL, ", len(cols)), ", ")
	sets := make([]string, len(cols))
	for i, q := range quoted {
		sets[i] = q + " = NULL"
	}
	stmts := map[string]string{
		"SELECT": "EXPLAIN SELECT " + strings.Join(quoted, ", ") + " FROM " + ident + " WHERE FALSE",
		"INSERT": "EXPLAIN INSERT INTO " + ident + " (" + strings.Join(quoted, ", ") + ") VALUES (" + nulls + ")",
		"UPDATE": "EXPLAIN UPDATE " + ident + " SET " + strings.Join(sets, ", ") + " WHERE FALSE",
		"DELETE": "EXPLAIN DELETE FROM " + ident + " WHERE FALSE",
	}
	var missing []string
	for _, p := range privs {
		rows, err := c.conn.QueryContext(ctx, stmts[p])
		if err == nil {
			err = rows.Close()
		}
		switch n := errNumber(err); {
		case err == nil:
		case n == 1142 || n == 1143:
			missing = append(missing, p)
		default:
			return nil, err
		}
	}
	return missing, nil
}

// state checks tandem's state database: its tables exist and the user may
// read and write them, or the user may create what is missing.
func (c *checker) state(ctx context.Context, name string) {
	obj := "target state database " + name
	missing, err := missingStateTables(ctx, c.conn, name, stateTableNames)
	if err != nil {
		c.fail(obj, fmt.Sprintf("cannot inspect: %v", err), "")
		return
	}
	need := []string{"SELECT", "INSERT", "UPDATE"}
	var lacks []string
	for _, tbl := range stateTableNames {
		if slices.Contains(missing, tbl) {
			continue
		}
		need := need
		if slices.Contains(deletedTableNames, tbl) {
			need = append(need[:len(need):len(need)], "DELETE")
		}
		ident := mysqlurl.QuoteIdent(name) + "." + mysqlurl.QuoteIdent(tbl)
		t, err := describeTable(ctx, c.conn, name+"."+tbl)
		if err != nil {
			c.fail(obj, fmt.Sprintf("cannot inspect table %s: %v", ident, err), "")
			return
		}
		cols := slices.Sorted(maps.Keys(t.types))
		l, err := c.privileges(ctx, ident, cols, need)
		if err != nil {
			c.fail(obj, fmt.Sprintf("cannot inspect the target user's privileges on %s: %v", ident, err), "")
			return
		}
		lacks = union(lacks, l)
	}
	uncertain := false
	if len(missing) > 0 {
		g, err := c.grants(ctx, name)
		if err != nil {
			c.fail(obj, fmt.Sprintf("cannot read the target user's grants: %v", err), "")
			return
		}
		want := append([]string{"CREATE"}, need...)
		if slices.ContainsFunc(missing, func(tbl string) bool { return slices.Contains(deletedTableNames, tbl) }) {
			want = append(want, "DELETE")
		}
		for _, p := range want {
			if !g.has(p) {
				lacks = union(lacks, []string{p})
			}
		}
		uncertain = g.roles
	}
	if len(lacks) == 0 {
		return
	}
	lacks = slices.SortedFunc(slices.Values(lacks), func(a, b string) int {
		return slices.Index(privilegeOrder, a) - slices.Index(privilegeOrder, b)
	})
	what := fmt.Sprintf("the target user %s lacks %s on it, where tandem keeps its offsets, dead letters, source positions and backfill progress",
		c.account, strings.Join(lacks, ", "))
	if len(missing) > 0 {
		what += fmt.Sprintf(" (it sees no tables %s there, so tandem would create them)", strings.Join(missing, ", "))
	}
	fix := fmt.Sprintf("GRANT %s ON %s.* TO %s;", strings.Join(lacks, ", "), mysqlurl.QuoteIdent(name), c.account)
	if uncertain {
		// Privileges of roles not enabled by default are not in SHOW GRANTS.
		c.warn(obj, "maybe "+what+" (privileges of its roles were not inspected)", fix)
		return
	}
	c.fail(obj, what, fix)
}

// deletedTableNames are the state tables tandem deletes from (ResetBackfill
// empties the backfill's, each reconcile sweep replaces its drift counts):
// the user must also delete from them.
var deletedTableNames = []string{"backfills", "tombstones", "drift"}

var privilegeOrder = []string{"CREATE", "SELECT", "INSERT", "UPDATE", "DELETE"}

func union(a, b []string) []string {
	for _, x := range b {
		if !slices.Contains(a, x) {
			a = append(a, x)
		}
	}
	return a
}

// grantSet is what SHOW GRANTS says the user may do in one database.
type grantSet struct {
	privs map[string]bool
	roles bool // the user holds roles, whose grants SHOW GRANTS may not list
}

func (g grantSet) has(p string) bool {
	return g.privs[p] || g.privs["ALL PRIVILEGES"] || g.privs["ALL"]
}

// grantLine matches a global or database grant of SHOW GRANTS.
var grantLine = regexp.MustCompile("^GRANT (.+?) ON (\\*|`(?:[^`]|``)+`)\\.\\* TO ")

// roleLine matches a grant of a role.
var roleLine = regexp.MustCompile("^GRANT `[^`]+`(@`[^`]*`)?(, `[^`]+`(@`[^`]*`)?)* TO ")

// grants reads the privileges SHOW GRANTS gives the current user (and, on
// MariaDB, its current role and PUBLIC) on database db.
func (c *checker) grants(ctx context.Context, db string) (grantSet, error) {
	g := grantSet{privs: map[string]bool{}}
	rows, err := c.conn.QueryContext(ctx, "SHOW GRANTS")
	if err != nil {
		return g, err
	}
	defer rows.Close()
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return g, err
		}
		if roleLine.MatchString(line) {
			g.roles = true
			continue
		}
		m := grantLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if m[2] != "*" && !likeMatch(strings.ReplaceAll(m[2][1:len(m[2])-1], "``", "`"), db) {
			continue
		}
		for _, p := range strings.Split(m[1], ",") {
			g.privs[strings.ToUpper(strings.TrimSpace(p))] = true
		}
	}
	return g, rows.Err()
}

// likeMatch matches s against a grant's database pattern: % any run, _
// any one character, \ escapes the next.
func likeMatch(pattern, s string) bool {
	p, r := []rune(pattern), []rune(s)
	// match[i][j]: p[i:] matches r[j:]
	var match func(i, j int) bool
	memo := map[[2]int]bool{}
	match = func(i, j int) bool {
		k := [2]int{i, j}
		if v, ok := memo[k]; ok {
			return v
		}
		var ok bool
		switch {
		case i == len(p):
			ok = j == len(r)
		case p[i] == '%':
			ok = match(i+1, j) || (j < len(r) && match(i, j+1))
		case p[i] == '_':
			ok = j < len(r) && match(i+1, j+1)
		case p[i] == '\\' && i+1 < len(p):
			ok = j < len(r) && r[j] == p[i+1] && match(i+2, j+1)
		default:
			ok = j < len(r) && r[j] == p[i] && match(i+1, j+1)
		}
		memo[k] = ok
		return ok
	}
	return match(0, 0)
}
