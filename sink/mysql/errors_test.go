package mysql_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/testenv"
	"github.com/tandemcdc/tandem/sink"
	"github.com/tandemcdc/tandem/sink/mysql"
)

func TestApply_MissingTableIsErrTableNotFoundUntilCreated(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, "")
	cp := sink.Checkpoint{Group: "g", Epoch: "e", Offsets: []sink.Offset{offset("t", 0, 1)}}
	for _, table := range []string{"later", "nope.later", tg.name + ".Later"} {
		err := tg.applyErr(t, cp, write(change.WriteUpsert, table, row{"id": int64(1), "v": "a"}, "id"))
		if !errors.Is(err, mysql.ErrTableNotFound) || !errors.Is(err, sink.ErrTableNotFound) {
			t.Errorf("Apply to %s: error = %v, want one wrapping ErrTableNotFound", table, err)
		}
		wantSinkError(t, err, "table_missing", table)
	}
	tg.wantOffsets(t, "g", "e", nil)

	tg.Exec(t, `CREATE TABLE later (id BIGINT PRIMARY KEY, v TEXT)`)
	// A missing table is not cached: once created, it is found.
	tg.apply(t, cp, write(change.WriteUpsert, "later", row{"id": int64(1), "v": "a"}, "id"))
	tg.wantRows(t, "SELECT * FROM later", []row{{"id": "1", "v": "a"}})
	tg.wantOffsets(t, "g", "e", cp.Offsets)

	// A column added after the table was described needs Forget too.
	added := write(change.WriteUpsert, "later", row{"id": int64(1), "w": "b"}, "id")
	tg.Exec(t, `ALTER TABLE later ADD COLUMN w TEXT`)
	err := tg.applyErr(t, sink.Checkpoint{}, added)
	if !errors.Is(err, sink.ErrColumnNotFound) {
		t.Errorf("Apply of a column added after the description: %v, want ErrColumnNotFound", err)
	}
	wantSinkError(t, err, "column_missing", "later")
	tg.sink.Forget()
	tg.apply(t, sink.Checkpoint{}, added)
	tg.wantRows(t, "SELECT * FROM later", []row{{"id": "1", "v": "a", "w": "b"}})
}

func TestApply_ErrorsAreClassified(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, shopDDL+`
CREATE TABLE nokey (id BIGINT, name TEXT);
CREATE TABLE widekey (id BIGINT, tenant INT, name TEXT, UNIQUE KEY (tenant, id));
CREATE TABLE prefixkey (code VARCHAR(100), name TEXT, UNIQUE KEY (code(10)));
CREATE TABLE parents (id BIGINT PRIMARY KEY);
CREATE TABLE children (id BIGINT PRIMARY KEY, parent BIGINT, FOREIGN KEY (parent) REFERENCES parents (id));
CREATE TABLE checked (id BIGINT PRIMARY KEY, qty INT CHECK (qty >= 0), email VARCHAR(50) UNIQUE);
INSERT INTO parents VALUES (1); INSERT INTO children VALUES (1, 1);
INSERT INTO checked VALUES (1, 1, 'a@example.com'), (2, 1, 'b@example.com');
`)
	tests := []struct {
		name   string
		w      change.Write
		reason sink.Reason
		target error  // wrapped, if not nil
		number uint16 // the server error wrapped, if not 0
	}{
		{"a missing table", write(change.WriteUpsert, "absent", row{"id": int64(1)}, "id"), "table_missing", sink.ErrTableNotFound, 0},
		{"a missing database", write(change.WriteDelete, "absentdb.items", row{"id": int64(1)}, "id"), "table_missing", sink.ErrTableNotFound, 0},
		{"a missing column", item(change.WriteUpsert, row{"id": int64(1), "price": int64(3)}), "column_missing", sink.ErrColumnNotFound, 0},
		{"a missing key column of a delete", write(change.WriteDelete, "items", row{"sku": "x"}, "sku"), "column_missing", sink.ErrColumnNotFound, 0},
		{"no unique index at all", write(change.WriteUpsert, "nokey", row{"id": int64(1), "name": "x"}, "id"), "no_unique_key", mysql.ErrNoUniqueKey, 0},
		{"a key narrower than the unique index", write(change.WriteInsertIfAbsent, "widekey", row{"id": int64(1), "name": "x"}, "id"), "no_unique_key", mysql.ErrNoUniqueKey, 0},
		{"a key wider than the primary key", write(change.WriteUpsert, "items", row{"id": int64(1), "name": "x"}, "id", "name"), "no_unique_key", mysql.ErrNoUniqueKey, 0},
		{"a unique index on a prefix", write(change.WriteUpsert, "prefixkey", row{"code": "x", "name": "x"}, "code"), "no_unique_key", mysql.ErrNoUniqueKey, 0},
		{"NULL into NOT NULL", item(change.WriteUpsert, row{"id": nil, "name": "x"}), "constraint", nil, 1048},
		{"a foreign key (child)", write(change.WriteUpsert, "children", row{"id": int64(2), "parent": int64(9)}, "id"), "constraint", nil, 1452},
		{"a foreign key (parent)", write(change.WriteDelete, "parents", row{"id": int64(1)}, "id"), "constraint", nil, 1451},
		{"a check constraint", write(change.WriteUpsert, "checked", row{"id": int64(2), "qty": int64(-1)}, "id"), "constraint", nil, 4025},
		{"an update to a value another row holds in a unique column", write(change.WriteUpsert, "checked", row{"id": int64(2), "email": "a@example.com"}, "id"), "constraint", nil, 1062},
		{"a string too long in strict mode", item(change.WriteUpsert, row{"id": int64(1), "name": strings.Repeat("x", 101)}), "data", nil, 1406},
		{"NaN", item(change.WriteUpsert, row{"id": int64(1), "qty": math.NaN()}), "data", nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tg.sink.Apply(t.Context(), sink.Batch{Writes: []change.Write{tc.w}}, sink.Checkpoint{})
			if err == nil {
				t.Fatal("Apply succeeded, want an error")
			}
			wantSinkError(t, err, tc.reason, tc.w.Table)
			if tc.target != nil && !errors.Is(err, tc.target) {
				t.Errorf("error = %v, want one wrapping %v", err, tc.target)
			}
			if tc.number != 0 {
				wantServerError(t, err, tc.number)
			}
		})
	}
}

// userCounter names the test users: users belong to the shared server.
var userCounter atomic.Int64

// newUser creates a user on the shared server whose grants are the
// statements grants (with %s for the user's account, and no other %
// directive), and returns the target's DSN for it.
func (tg *target) newUser(t *testing.T, grants ...string) (dsn, account string) {
	t.Helper()
	name := fmt.Sprintf("restricted_%d", userCounter.Add(1))
	const password = "restricted-pw"
	account = "'" + name + "'@'127.0.0.1'"
	ddl := "CREATE USER " + account + " IDENTIFIED BY '" + password + "';"
	for _, g := range grants {
		ddl += strings.ReplaceAll(g, "%s", account) + ";"
	}
	tg.Exec(t, ddl)
	u, err := url.Parse(tg.dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(name, password)
	return u.String(), account
}

func TestApply_AUserWithoutAPrivilegeGetsAPermissionError(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, shopDDL+`INSERT INTO items VALUES (1, 'a', 1, NULL)`)
	dsn, _ := tg.newUser(t,
		"GRANT ALL ON `"+tg.state+"`.* TO %s",
		"GRANT SELECT, INSERT, UPDATE, DELETE ON `"+tg.name+"`.items TO %s",
		"REVOKE DELETE ON `"+tg.name+"`.items FROM %s",
		"GRANT SELECT (order_id, line), INSERT, UPDATE (line) ON `"+tg.name+"`.`lines` TO %s")
	s := tg.newSink(t, mysql.Config{DSN: dsn, StateSchema: tg.state})
	cp := sink.Checkpoint{Group: "g", Epoch: "e", Offsets: []sink.Offset{offset("t", 0, 1)}}
	ok := item(change.WriteUpsert, row{"id": int64(2), "name": "b"})
	for _, tc := range []struct {
		name   string
		w      change.Write
		table  string
		number uint16
	}{
		{"a revoked DELETE", item(change.WriteDelete, row{"id": int64(1)}), "items", 1142},
		{"an upsert without UPDATE on a column", line(change.WriteUpsert, row{"order_id": int64(1), "line": int64(1), "sku": "x"}), "lines", 1143},
	} {
		err := s.Apply(t.Context(), sink.Batch{Writes: []change.Write{ok, tc.w}}, cp)
		if err == nil {
			t.Fatalf("%s: Apply succeeded", tc.name)
		}
		wantSinkError(t, err, "permission", tc.table)
		wantServerError(t, err, tc.number)
	}
	tg.wantRows(t, allItems, []row{{"id": "1", "name": "a", "qty": "1", "note": nil}})
	tg.wantOffsets(t, "g", "e", nil)
	// What it may do, it does.
	if err := s.Apply(t.Context(), sink.Batch{Writes: []change.Write{ok}}, cp); err != nil {
		t.Fatal(err)
	}
	tg.wantOffsets(t, "g", "e", cp.Offsets)
}

func TestErrors_NeverHoldThePassword(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, shopDDL)
	ctx := t.Context()
	u, err := url.Parse(tg.dsn)
	if err != nil {
		t.Fatal(err)
	}
	withPassword := func(pw string) string {
		v := *u
		v.User = url.UserPassword(v.User.Username(), pw)
		return v.String()
	}
	// A port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := *u
	closed.Host = l.Addr().String()
	l.Close()
	wrongPassword := withPassword(testenv.Password + "-wrong")
	var texts []string
	add := func(what string, v any) {
		switch v := v.(type) {
		case nil:
			t.Errorf("%s: no error", what)
		case error:
			texts = append(texts, fmt.Sprintf("%s: %v", what, v))
		default:
			texts = append(texts, fmt.Sprintf("%s: %v", what, v))
		}
	}
	for _, dsn := range []string{wrongPassword, closed.String(), tg.dsn + "?tls=nonsense", strings.Replace(tg.dsn, "/"+tg.name, "/no_such_db", 1)} {
		short, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := mysql.New(short, mysql.Config{DSN: dsn})
		cancel()
		add("New", err)
		for _, p := range mysql.Check(ctx, mysql.Config{DSN: dsn}, nil) {
			texts = append(texts, fmt.Sprintf("Check: %+v", p))
		}
	}
	add("Validate", mysql.Config{DSN: "mysql://u:" + testenv.Password + "@host:notaport/db"}.Validate())
	add("Validate", mysql.Config{DSN: "u:" + testenv.Password + "@tcp(host/db"}.Validate())
	cfg := mysql.Config{DSN: tg.dsn, StateSchema: tg.state}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		texts = append(texts, fmt.Sprintf(format, cfg), fmt.Sprintf(format, &cfg), fmt.Sprintf(format, tg.sink))
	}
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("starting", "target", cfg, "sink", tg.sink)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("starting", "target", cfg, "sink", tg.sink)
	texts = append(texts, logged.String())
	add("Apply", tg.sink.Apply(ctx, sink.Batch{Writes: []change.Write{write(change.WriteUpsert, "absent", row{"id": int64(1)}, "id")}}, sink.Checkpoint{}))
	add("Apply", tg.sink.Apply(ctx, sink.Batch{Writes: []change.Write{item(change.WriteUpsert, row{"id": int64(1), "name": strings.Repeat("x", 200)})}}, sink.Checkpoint{}))
	s := tg.newSink(t, cfg)
	s.Close()
	add("Apply after Close", s.Apply(ctx, sink.Batch{Writes: []change.Write{item(change.WriteUpsert, row{"id": int64(1)})}}, sink.Checkpoint{}))
	_, err = s.Offsets(ctx, "g", "e")
	add("Offsets after Close", err)
	for _, text := range texts {
		if strings.Contains(text, testenv.Password) {
			t.Errorf("holds the password: %s", text)
		}
	}
	if len(texts) < 10 {
		t.Errorf("only %d texts checked", len(texts))
	}
	// And they say something: the user and address, not "<nil>".
	if diff := cmp.Diff(fmt.Sprintf("mysql target tandem@%s/%s (state database %s)", u.Host, tg.name, tg.state), cfg.String()); diff != "" {
		t.Errorf("Config.String (-want +got):\n%s", diff)
	}
}
