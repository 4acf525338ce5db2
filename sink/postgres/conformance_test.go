package postgres_test

import (
	"context"
	"net/url"
	"sync"
	"testing"

	"github.com/tandemcdc/tandem/sink/postgres"
	"github.com/tandemcdc/tandem/sink/sinktest"
)

// TestConformance runs the behaviour every sink shares against PostgreSQL.
func TestConformance(t *testing.T) {
	t.Parallel()
	sinktest.Run(t, harness{})
}

// harness makes the suite's targets: a fresh database each, with the
// sink's state in its default schema, tandem.
type harness struct{}

func (harness) NewTarget(t *testing.T, ddl string) sinktest.Target { return newTarget(t, ddl) }

func (tg *target) Sink() sinktest.Sink { return tg.sink }

func (tg *target) OpenSink(t *testing.T) sinktest.Sink {
	return tg.newSink(t, postgres.Config{DSN: tg.dsn})
}

func (tg *target) Tombstones(t *testing.T) []sinktest.Row { return tg.Rows(t, allTombstones) }

func (tg *target) Hold(t *testing.T, sql string) func() {
	tx := tg.hold(t, sql)
	return func() { tx.Rollback(context.Background()) }
}

func (tg *target) Secret() string {
	u, err := url.Parse(tg.dsn)
	if err != nil {
		return ""
	}
	pw, _ := u.User.Password()
	return pw
}

func (tg *target) StartSinks(t *testing.T, n int) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s, err := postgres.New(t.Context(), postgres.Config{DSN: tg.dsn, StateSchema: "tandem_fresh"})
			if errs[i] = err; err == nil {
				t.Cleanup(func() { s.Close() })
			}
		})
	}
	wg.Wait()
	return errs
}
