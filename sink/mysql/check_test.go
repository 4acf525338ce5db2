package mysql_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/preflight"
	"github.com/tandemcdc/tandem/sink"
	"github.com/tandemcdc/tandem/sink/mysql"
)

// hostileDDL names a database, a table and columns as badly as MariaDB
// allows; %[1]s is the database.
const hostileDDL = "CREATE DATABASE `%[1]s`;\n" +
	"CREATE TABLE `%[1]s`.`order` (`select` BIGINT, `MixedCase` VARCHAR(20), `\"quoted\"` TEXT, `back``tick` TEXT, " +
	"`Mood` ENUM('sad', 'happy'), `a,b` TEXT, a TEXT, b TEXT, `日本` TEXT, PRIMARY KEY (`select`, `MixedCase`));\n" +
	"CREATE TABLE `%[1]s`.`tab``le` (`k``ey` INT PRIMARY KEY, `v` TEXT)"

func TestApply_HostileIdentifiers(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, "")
	db := "Shop `Old` " + tg.name[len(tg.name)-6:]
	tg.Exec(t, fmt.Sprintf(hostileDDL, strings.ReplaceAll(db, "`", "``")))
	table := db + ".order"
	key := []string{"select", "MixedCase"}
	order := func(op change.WriteOp, r row) change.Write { return write(op, table, r, key...) }
	// A state database as badly named.
	state := "Tandem `State` " + tg.state
	s := tg.newSink(t, mysql.Config{DSN: tg.dsn, StateSchema: state})
	cp := sink.Checkpoint{Group: "g`", Epoch: "e'", Offsets: []sink.Offset{offset("shop.order`", 0, 7)}}
	err := s.Apply(t.Context(), sink.Batch{Writes: []change.Write{
		order(change.WriteUpsert, row{"select": int64(1), "MixedCase": "A", `"quoted"`: `it's "q"`, "back`tick": "`", "Mood": "happy", "a,b": "comma", "日本": "語"}),
		// the same columns as above but for "a,b", and a and b instead
		order(change.WriteUpsert, row{"select": int64(2), "MixedCase": "b", `"quoted"`: "q2", "back`tick": "x", "Mood": "sad", "a": "x", "b": "y", "日本": "語"}),
		order(change.WriteInsertIfAbsent, row{"select": int64(3), "MixedCase": "C"}),
		order(change.WriteUpsert, row{"select": int64(4), "MixedCase": "d", "a": "gone"}),
		write(change.WriteUpsert, db+".tab`le", row{"k`ey": int64(1), "v": "v"}, "k`ey"),
	}}, cp)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if err := s.Apply(t.Context(), sink.Batch{Writes: []change.Write{
		order(change.WriteDelete, row{"select": int64(4), "MixedCase": "d"}),
		order(change.WriteUpsert, row{"select": int64(3), "MixedCase": "C", "Mood": "sad"}),
		write(change.WriteDelete, db+".tab`le", row{"k`ey": int64(1)}, "k`ey"),
	}}, sink.Checkpoint{}); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	quoted := "`" + strings.ReplaceAll(db, "`", "``") + "`"
	tg.wantRows(t, "SELECT * FROM "+quoted+".`order` ORDER BY 1, 2", []row{
		{"select": "1", "MixedCase": "A", `"quoted"`: `it's "q"`, "back`tick": "`", "Mood": "happy", "a,b": "comma", "a": nil, "b": nil, "日本": "語"},
		{"select": "2", "MixedCase": "b", `"quoted"`: "q2", "back`tick": "x", "Mood": "sad", "a,b": nil, "a": "x", "b": "y", "日本": "語"},
		{"select": "3", "MixedCase": "C", `"quoted"`: nil, "back`tick": nil, "Mood": "sad", "a,b": nil, "a": nil, "b": nil, "日本": nil},
	})
	tg.wantRows(t, "SELECT * FROM "+quoted+".`tab``le`", nil)
	got, err := s.Offsets(t.Context(), "g`", "e'")
	if err != nil {
		t.Fatalf("Offsets: %v", err)
	}
	if diff := cmp.Diff(cp.Offsets, got); diff != "" {
		t.Errorf("Offsets (-want +got):\n%s", diff)
	}
	uses := []sink.TableUse{{Table: table, Key: key, Columns: []string{"select", "MixedCase", `"quoted"`, "back`tick", "Mood", "a,b", "a", "b", "日本"}}}
	if diff := cmp.Diff([]preflight.Problem(nil), mysql.Check(t.Context(), mysql.Config{DSN: tg.dsn}, uses)); diff != "" {
		t.Errorf("Check (-want +got):\n%s", diff)
	}
}

func TestCheck_ReportsWhatTheTargetLacks(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, `
CREATE TABLE good (id BIGINT PRIMARY KEY, name TEXT);
CREATE TABLE nokey (id BIGINT, name TEXT, KEY (id));
CREATE TABLE prefix (id VARCHAR(100), name TEXT, UNIQUE KEY (id(10)));
CREATE TABLE wide (id BIGINT, tenant INT, name TEXT, UNIQUE KEY (tenant, id));
CREATE TABLE twokeys (id BIGINT PRIMARY KEY, email VARCHAR(50), name TEXT, UNIQUE KEY uq_email (email));
CREATE TABLE altkey (id BIGINT PRIMARY KEY, code VARCHAR(10) NOT NULL, name TEXT, UNIQUE KEY uq_code (code));
`)
	use := func(table string, key ...string) sink.TableUse {
		return sink.TableUse{Table: table, Key: key, Columns: append([]string{"name"}, key...)}
	}
	noKey := func(table, key, fix string) preflight.Problem {
		return preflight.Problem{Severity: preflight.Fail, Object: "target table " + table,
			What: "has no primary key or unique index on the mapping key (" + key + "), which upserts need", Fix: fix}
	}
	otherIndex := func(table, index, cols, key, fix string) preflight.Problem {
		return preflight.Problem{Severity: preflight.Warn, Object: "target table " + table,
			What: "has unique index " + index + " on (" + cols + ") besides the one on the mapping key (" + key + "): ON DUPLICATE KEY UPDATE acts on whichever row a write collides with, " +
				"so a write whose (" + cols + ") equals another row's updates that row (or, for create_if_absent, is skipped) instead of the row its key names",
			Fix: fix}
	}
	tests := []struct {
		name string
		uses []sink.TableUse
		want []preflight.Problem
	}{
		{"a good table", []sink.TableUse{use("good", "id"), use(tg.name+".good", "id")}, nil},
		{"a key in another order than the unique index's", []sink.TableUse{use("wide", "id", "tenant")}, nil},
		{"column names in another case: MySQL's are case-insensitive", []sink.TableUse{{Table: "good", Key: []string{"ID"}, Columns: []string{"ID", "Name"}}}, nil},
		{"a missing table", []sink.TableUse{use("missing", "id"), use("nope.good", "id"), use("Good", "id")}, []preflight.Problem{
			{Severity: preflight.Fail, Object: "target table missing", What: "does not exist", Fix: "create it in the target, or correct the mapping's table (a table the target user has no privilege on is invisible to it)"},
			{Severity: preflight.Fail, Object: "target table nope.good", What: "does not exist", Fix: "create it in the target, or correct the mapping's table (a table the target user has no privilege on is invisible to it)"},
			{Severity: preflight.Fail, Object: "target table Good", What: "does not exist", Fix: "create it in the target, or correct the mapping's table (a table the target user has no privilege on is invisible to it)"},
		}},
		{"a missing column", []sink.TableUse{{Table: "good", Key: []string{"id"}, Columns: []string{"id", "name", "price", "a`b"}}}, []preflight.Problem{
			{Severity: preflight.Fail, Object: "target column good.price", What: "does not exist", Fix: "ALTER TABLE `good` ADD COLUMN `price` <type>; or correct the mapping"},
			{Severity: preflight.Fail, Object: "target column good.a`b", What: "does not exist", Fix: "ALTER TABLE `good` ADD COLUMN `a``b` <type>; or correct the mapping"},
		}},
		{"no unique index on the key", []sink.TableUse{use("nokey", "id")}, []preflight.Problem{
			noKey("nokey", "id", "ALTER TABLE `nokey` ADD UNIQUE KEY (`id`);"),
		}},
		{"a unique index on a prefix of the key column", []sink.TableUse{use("prefix", "id")}, []preflight.Problem{
			noKey("prefix", "id", "ALTER TABLE `prefix` ADD UNIQUE KEY (`id`);"),
			otherIndex("prefix", "id", "id", "id", "make sure the source enforces the same uniqueness, or drop the index: ALTER TABLE `prefix` DROP INDEX `id`;"),
		}},
		{"a key of a column that is not unique alone", []sink.TableUse{use("wide", "id"), use(tg.name+".good", "id", "name")}, []preflight.Problem{
			noKey("wide", "id", "ALTER TABLE `wide` ADD UNIQUE KEY (`id`);"),
			otherIndex("wide", "tenant", "tenant, id", "id", "make sure the source enforces the same uniqueness, or drop the index: ALTER TABLE `wide` DROP INDEX `tenant`;"),
			noKey(tg.name+".good", "id, name", "ALTER TABLE `"+tg.name+"`.`good` ADD UNIQUE KEY (`id`, `name`);"),
			otherIndex(tg.name+".good", "PRIMARY", "id", "id, name", "make sure the source enforces the same uniqueness, or make the mapping key the primary key: ALTER TABLE `"+tg.name+"`.`good` DROP PRIMARY KEY, ADD PRIMARY KEY (`id`, `name`);"),
		}},
		{"another unique index besides the key's", []sink.TableUse{use("twokeys", "id"), use("altkey", "code")}, []preflight.Problem{
			otherIndex("twokeys", "uq_email", "email", "id", "make sure the source enforces the same uniqueness, or drop the index: ALTER TABLE `twokeys` DROP INDEX `uq_email`;"),
			otherIndex("altkey", "PRIMARY", "id", "code", "make sure the source enforces the same uniqueness, or make the mapping key the primary key: ALTER TABLE `altkey` DROP PRIMARY KEY, ADD PRIMARY KEY (`code`);"),
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tc.want, mysql.Check(t.Context(), mysql.Config{DSN: tg.dsn}, tc.uses)); diff != "" {
				t.Errorf("Check (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCheck_ATableWithoutADatabase(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, `CREATE TABLE good (id BIGINT PRIMARY KEY, name TEXT)`)
	noDB := strings.Replace(tg.dsn, "/"+tg.name, "/", 1)
	got := mysql.Check(t.Context(), mysql.Config{DSN: noDB}, []sink.TableUse{
		{Table: "good", Key: []string{"id"}, Columns: []string{"id"}},
		{Table: tg.name + ".good", Key: []string{"id"}, Columns: []string{"id"}},
	})
	want := []preflight.Problem{{Severity: preflight.Fail, Object: "target table good", What: "names no database, and target.dsn names none",
		Fix: "qualify the mapping's table as <database>.<table>, or add the database to target.dsn"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Check (-want +got):\n%s", diff)
	}
}

func TestCheck_ReportsAUserWhoMayNotWrite(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, `CREATE TABLE good (id BIGINT PRIMARY KEY, name TEXT, note TEXT); CREATE TABLE other (id BIGINT PRIMARY KEY)`)
	use := sink.TableUse{Table: "good", Key: []string{"id"}, Columns: []string{"id", "name"}}
	tests := []struct {
		name   string
		grants []string // %s: the user's account
		want   func(account string) []preflight.Problem
	}{
		{
			name:   "all it needs, through a role",
			grants: []string{"CREATE ROLE IF NOT EXISTS `writer_" + tg.name + "`", "GRANT SELECT, INSERT, UPDATE, DELETE ON `" + tg.name + "`.* TO `writer_" + tg.name + "`", "GRANT `writer_" + tg.name + "` TO %s", "SET DEFAULT ROLE `writer_" + tg.name + "` FOR %s", "GRANT ALL ON `tandem`.* TO %s"},
			want:   func(string) []preflight.Problem { return nil },
		},
		{
			name:   "no privilege on the table at all: it does not see it",
			grants: []string{"GRANT SELECT, INSERT, UPDATE, DELETE ON `" + tg.name + "`.other TO %s", "GRANT ALL ON `tandem`.* TO %s"},
			want: func(string) []preflight.Problem {
				return []preflight.Problem{{Severity: preflight.Fail, Object: "target table good", What: "does not exist",
					Fix: "create it in the target, or correct the mapping's table (a table the target user has no privilege on is invisible to it)"}}
			},
		},
		{
			name:   "a reader",
			grants: []string{"GRANT SELECT, INSERT ON `" + tg.name + "`.good TO %s", "GRANT ALL ON `tandem`.* TO %s"},
			want: func(account string) []preflight.Problem {
				return []preflight.Problem{{Severity: preflight.Fail, Object: "target table good", What: "the target user " + account + " lacks UPDATE, DELETE on it",
					Fix: "GRANT UPDATE, DELETE ON `" + tg.name + "`.`good` TO " + account + ";"}}
			},
		},
		{
			name:   "a revoked DELETE, and column grants that miss a written column",
			grants: []string{"GRANT SELECT, INSERT, DELETE ON `" + tg.name + "`.* TO %s", "GRANT UPDATE (note) ON `" + tg.name + "`.good TO %s", "REVOKE DELETE ON `" + tg.name + "`.* FROM %s", "GRANT ALL ON `tandem`.* TO %s"},
			want: func(account string) []preflight.Problem {
				return []preflight.Problem{{Severity: preflight.Fail, Object: "target table good", What: "the target user " + account + " lacks UPDATE, DELETE on it",
					Fix: "GRANT UPDATE, DELETE ON `" + tg.name + "`.`good` TO " + account + ";"}}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dsn, account := tg.newUser(t, tc.grants...)
			got := mysql.Check(t.Context(), mysql.Config{DSN: dsn}, []sink.TableUse{use})
			if diff := cmp.Diff(tc.want(account), got); diff != "" {
				t.Errorf("Check (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCheck_CannotConnect(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, "")
	got := mysql.Check(t.Context(), mysql.Config{DSN: strings.Replace(tg.dsn, "/"+tg.name, "/no_such_database", 1)}, nil)
	if len(got) != 1 || got[0].Severity != preflight.Fail || got[0].Object != "target" || !strings.Contains(got[0].What, "Unknown database") ||
		got[0].Fix == "" {
		t.Errorf("Check = %+v, want one failure about the unknown database, with a fix", got)
	}
	got = mysql.Check(t.Context(), mysql.Config{DSN: "mysql://u:p@[bad"}, nil)
	if len(got) != 1 || got[0].Object != "target" || got[0].Fix == "" {
		t.Errorf("Check of a malformed DSN = %+v, want one failure with a fix", got)
	}
}

// TestCheck_StateDatabase checks the privileges on tandem's own database,
// first missing and then created, and SavedPosition, on the default state
// database, which no other test uses (nor runs beside: not parallel).
func TestCheck_StateDatabase(t *testing.T) {
	tg := newTarget(t, `CREATE TABLE good (id BIGINT PRIMARY KEY, name TEXT)`)
	use := sink.TableUse{Table: "good", Key: []string{"id"}, Columns: []string{"id", "name"}}
	tableGrant := "GRANT SELECT, INSERT, UPDATE, DELETE ON `" + tg.name + "`.good TO %s"
	// lacks is the problem of a user lacking privs, while tandem's tables
	// are missing (toCreate) or not.
	lacks := func(privs string, toCreate bool) func(string) []preflight.Problem {
		return func(account string) []preflight.Problem {
			what := "the target user " + account + " lacks " + privs + " on it, where tandem keeps its offsets, dead letters, source positions and backfill progress"
			if toCreate {
				what += " (it sees no tables kafka_offsets, dead_letters, source_positions, backfills, tombstones, copy_locks, cohorts, misrouted, heartbeats, drift there, so tandem would create them)"
			}
			return []preflight.Problem{{Severity: preflight.Fail, Object: "target state database tandem",
				What: what, Fix: "GRANT " + privs + " ON `tandem`.* TO " + account + ";"}}
		}
	}
	none := func(string) []preflight.Problem { return nil }
	type step struct {
		name   string
		grants []string // %s: the user's account
		want   func(account string) []preflight.Problem
	}
	run := func(t *testing.T, steps []step) {
		for _, st := range steps {
			t.Run(st.name, func(t *testing.T) {
				dsn, account := tg.newUser(t, append([]string{tableGrant}, st.grants...)...)
				if diff := cmp.Diff(st.want(account), mysql.Check(t.Context(), mysql.Config{DSN: dsn}, []sink.TableUse{use})); diff != "" {
					t.Errorf("Check (-want +got):\n%s", diff)
				}
			})
		}
	}
	tg.Exec(t, "DROP DATABASE IF EXISTS tandem")
	if pos, found, err := mysql.SavedPosition(t.Context(), tg.dsn, tg.name); err != nil || found || pos != "" {
		t.Errorf("SavedPosition without a state database = %q, %v, %v; want \"\", false, nil", pos, found, err)
	}
	t.Run("missing", func(t *testing.T) {
		run(t, []step{
			{"no privileges on it", nil, lacks("CREATE, SELECT, INSERT, UPDATE, DELETE", true)},
			{"a grant on it", []string{"GRANT CREATE, SELECT, INSERT, UPDATE, DELETE ON `tandem`.* TO %s"}, none},
			{"a global grant", []string{"GRANT ALL ON *.* TO %s"}, none},
			{"a database pattern grant covering it", []string{"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE ON `tand_m%`.* TO %s"}, none},
			{"a database pattern grant that does not cover it", []string{"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE ON `tandem\\_%`.* TO %s"}, lacks("CREATE, SELECT, INSERT, UPDATE, DELETE", true)},
			{"some privileges", []string{"GRANT SELECT, CREATE ON `tandem`.* TO %s"}, lacks("INSERT, UPDATE, DELETE", true)},
			// ResetBackfill deletes the backfill progress and tombstones.
			{"no DELETE", []string{"GRANT CREATE, SELECT, INSERT, UPDATE ON `tandem`.* TO %s"}, lacks("DELETE", true)},
		})
	})
	// Created by a user who may, tandem's tables need no CREATE any more.
	s, err := mysql.New(t.Context(), mysql.Config{DSN: tg.dsn})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	t.Run("created", func(t *testing.T) {
		run(t, []step{
			// Tables the user may not use are tables it does not see.
			{"no privileges on it", nil, lacks("CREATE, SELECT, INSERT, UPDATE, DELETE", true)},
			{"a grant on it", []string{"GRANT SELECT, INSERT, UPDATE, DELETE ON `tandem`.* TO %s"}, none},
			{"a grant on each table", []string{
				"GRANT SELECT, INSERT, UPDATE ON `tandem`.kafka_offsets TO %s",
				"GRANT SELECT, INSERT, UPDATE ON `tandem`.dead_letters TO %s",
				"GRANT SELECT, INSERT, UPDATE ON `tandem`.source_positions TO %s",
				"GRANT SELECT, INSERT, UPDATE, DELETE ON `tandem`.backfills TO %s",
				"GRANT SELECT, INSERT, UPDATE, DELETE ON `tandem`.tombstones TO %s",
				"GRANT SELECT, INSERT, UPDATE ON `tandem`.copy_locks TO %s",
				"GRANT SELECT, INSERT, UPDATE ON `tandem`.cohorts TO %s",
				"GRANT SELECT, INSERT, UPDATE ON `tandem`.misrouted TO %s",
				"GRANT SELECT, INSERT, UPDATE ON `tandem`.heartbeats TO %s",
				"GRANT SELECT, INSERT, UPDATE, DELETE ON `tandem`.drift TO %s"}, none},
			{"a table short of UPDATE", []string{
				"GRANT SELECT, INSERT, UPDATE ON `tandem`.kafka_offsets TO %s",
				"GRANT SELECT, INSERT ON `tandem`.dead_letters TO %s",
				"GRANT SELECT, INSERT, UPDATE ON `tandem`.source_positions TO %s",
				"GRANT SELECT, INSERT, UPDATE, DELETE ON `tandem`.backfills TO %s",
				"GRANT SELECT, INSERT, UPDATE, DELETE ON `tandem`.tombstones TO %s",
				"GRANT SELECT, INSERT, UPDATE ON `tandem`.copy_locks TO %s",
				"GRANT SELECT, INSERT, UPDATE ON `tandem`.cohorts TO %s",
				"GRANT SELECT, INSERT, UPDATE ON `tandem`.misrouted TO %s",
				"GRANT SELECT, INSERT, UPDATE ON `tandem`.heartbeats TO %s",
				"GRANT SELECT, INSERT, UPDATE, DELETE ON `tandem`.drift TO %s"}, lacks("UPDATE", false)},
			{"a backfill table short of DELETE", []string{
				"GRANT SELECT, INSERT, UPDATE ON `tandem`.* TO %s",
				"GRANT DELETE ON `tandem`.backfills TO %s"}, lacks("DELETE", false)},
		})
	})
	// A user with just these grants runs the sink.
	dsn, _ := tg.newUser(t, tableGrant, "GRANT SELECT, INSERT, UPDATE, DELETE ON `tandem`.* TO %s")
	s, err = mysql.New(t.Context(), mysql.Config{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Apply(t.Context(), sink.Batch{
		Writes:      []change.Write{write(change.WriteUpsert, "good", row{"id": int64(1), "name": "x"}, "id")},
		DeadLetters: []sink.DeadLetter{{Mapping: "m", Topic: tg.name, Offset: 1}},
	}, sink.Checkpoint{Group: tg.name, Epoch: "e", Offsets: []sink.Offset{offset("t", 0, 1)}}); err != nil {
		t.Fatal(err)
	}
	if pos, found, err := mysql.SavedPosition(t.Context(), tg.dsn, tg.name); err != nil || found || pos != "" {
		t.Errorf("SavedPosition before SavePosition = %q, %v, %v; want \"\", false, nil", pos, found, err)
	}
	if err := s.SavePosition(t.Context(), tg.name, "mysql-bin.000001:4"); err != nil {
		t.Fatal(err)
	}
	if pos, found, err := mysql.SavedPosition(t.Context(), tg.dsn, tg.name); err != nil || !found || pos != "mysql-bin.000001:4" {
		t.Errorf("SavedPosition = %q, %v, %v; want \"mysql-bin.000001:4\", true, nil", pos, found, err)
	}
	if err := s.SaveBackfill(t.Context(), sink.BackfillProgress{Table: tg.name + ".good", State: sink.BackfillRunning}); err != nil {
		t.Fatal(err)
	}
	if err := s.ResetBackfill(t.Context()); err != nil {
		t.Fatal(err)
	}
}
