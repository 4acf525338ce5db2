package reconcile

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/mysqlurl"
	"github.com/tandemcdc/tandem/internal/testenv"
	"github.com/tandemcdc/tandem/sink"
	"github.com/tandemcdc/tandem/sink/mysql"
	"github.com/tandemcdc/tandem/sink/postgres"
)

// storeTarget is a sink that writes and reads back, as apply and reconcile
// use it.
type storeTarget interface {
	Apply(ctx context.Context, b sink.Batch, cp sink.Checkpoint) error
	RowReader
	Close() error
}

// TestStoredCases_AreWhatTheServersStore is the proof of the conversions
// equal makes (TestEqual_ConvertsAsTheTargetStores): each case's want is
// written by the real sink into a column of its type on PostgreSQL 15 and
// MariaDB 10.11, read back by the sink's RowReader, and must be the
// case's stored value, under a type ColumnTypes names as the case says.
func TestStoredCases_AreWhatTheServersStore(t *testing.T) {
	t.Run("postgres", func(t *testing.T) {
		ctx := t.Context()
		dsn := testenv.NewDatabase(t)
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		for i, tc := range pgStoreCases {
			if _, err := conn.Exec(ctx, fmt.Sprintf(`CREATE TABLE c%d (id int PRIMARY KEY, v %s)`, i, tc.ddl)); err != nil {
				t.Fatal(err)
			}
		}
		s, err := postgres.New(ctx, postgres.Config{DSN: dsn})
		if err != nil {
			t.Fatal(err)
		}
		checkStored(t, s, pgStoreCases)
	})
	t.Run("mariadb", func(t *testing.T) {
		ctx := t.Context()
		dsn := testenv.NewMariaDBDatabase(t)
		db, err := mysqlurl.Open(dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		for i, tc := range mariaStoreCases {
			if _, err := db.ExecContext(ctx, fmt.Sprintf(`CREATE TABLE c%d (id INT PRIMARY KEY, v %s)`, i, tc.ddl)); err != nil {
				t.Fatal(err)
			}
		}
		cfg, err := mysqlurl.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		s, err := mysql.New(ctx, mysql.Config{DSN: dsn, StateSchema: cfg.DBName + "_tandem"})
		if err != nil {
			t.Fatal(err)
		}
		checkStored(t, s, mariaStoreCases)
	})
}

// checkStored writes each case's want into row 1 of table c<i> through s
// and compares what s reads back, and the type it names, with the case's.
func checkStored(t *testing.T, s storeTarget, cases []storeCase) {
	t.Helper()
	ctx := t.Context()
	defer s.Close()
	var writes []change.Write
	for i, tc := range cases {
		writes = append(writes, change.Write{Table: fmt.Sprintf("c%d", i), Op: change.WriteUpsert, Key: []string{"id"},
			Row: map[string]any{"id": int64(1), "v": tc.want}})
	}
	if err := s.Apply(ctx, sink.Batch{Writes: writes}, sink.Checkpoint{}); err != nil {
		t.Fatal(err)
	}
	type stored struct {
		Type  string
		Value any
	}
	want, got := map[string]stored{}, map[string]stored{}
	for i, tc := range cases {
		table := fmt.Sprintf("c%d", i)
		want[tc.name] = stored{tc.spelled, tc.stored}
		types, err := s.ColumnTypes(ctx, table)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := s.ReadKeys(ctx, table, []string{"id"}, []string{"id", "v"}, []map[string]any{{"id": int64(1)}})
		if err != nil || len(rows) != 1 {
			t.Fatalf("%s: read back %v: %v", tc.name, rows, err)
		}
		got[tc.name] = stored{types["v"], rows[0]["v"]}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stored values (-case +server):\n%s", diff)
	}
}
