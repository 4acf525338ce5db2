package mysql_test

import (
	"context"
	"sync"
	"testing"

	"github.com/tandemcdc/tandem/internal/mysqlurl"
	"github.com/tandemcdc/tandem/internal/testenv"
	"github.com/tandemcdc/tandem/sink/mysql"
	"github.com/tandemcdc/tandem/sink/sinktest"
)

// TestConformance runs the behaviour every sink shares against MariaDB.
func TestConformance(t *testing.T) {
	t.Parallel()
	sinktest.Run(t, harness{})
}

// harness makes the suite's targets: a fresh database each, and a state
// database of its own for its sink (the server is shared).
type harness struct{}

func (harness) NewTarget(t *testing.T, ddl string) sinktest.Target { return newTarget(t, ddl) }

func (tg *target) Sink() sinktest.Sink { return tg.sink }

func (tg *target) OpenSink(t *testing.T) sinktest.Sink {
	return tg.newSink(t, mysql.Config{DSN: tg.dsn, StateSchema: tg.state})
}

// Tombstones reads the tombstones, failing t unless each one's key_hash
// is the SHA-256 of its row_key.
func (tg *target) Tombstones(t *testing.T) []sinktest.Row {
	t.Helper()
	rows := tg.tombstones(t)
	for _, r := range rows {
		if r["hashed"] != "1" {
			t.Errorf("tombstone %v: key_hash is not the SHA-256 of row_key", r)
		}
		delete(r, "hashed")
	}
	return rows
}

func (tg *target) Hold(t *testing.T, sql string) func() {
	tx := tg.hold(t, sql)
	return func() { tx.Rollback() }
}

func (tg *target) Secret() string {
	cfg, err := mysqlurl.Parse(tg.dsn)
	if err != nil {
		return ""
	}
	return cfg.Passwd
}

func (tg *target) StartSinks(t *testing.T, n int) []error {
	state := tg.state + "_fresh"
	t.Cleanup(func() {
		if err := testenv.SharedMariaDB(t).Exec(context.Background(), tg.name, "DROP DATABASE IF EXISTS "+state); err != nil {
			t.Errorf("drop the state database %s: %v", state, err)
		}
	})
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s, err := mysql.New(t.Context(), mysql.Config{DSN: tg.dsn, StateSchema: state})
			if errs[i] = err; err == nil {
				t.Cleanup(func() { s.Close() })
			}
		})
	}
	wg.Wait()
	return errs
}
