package mysql_test

import (
	"database/sql"
	"errors"
	"testing"

	"github.com/tandemcdc/tandem/sink/sinktest"
)

func TestDeadLetters_ListOldestFirstAndDeleteByName(t *testing.T) {
	t.Parallel()
	sinktest.DeadLettersListOldestFirstAndDeleteByName(t, newTarget(t, "").sink)
}

func TestDeadLetters_ReplayWritesWithoutACheckpoint(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, shopDDL)
	sinktest.ApplyWithoutCheckpointWritesRows(t, tg.sink, func() string {
		var name string
		err := tg.db.QueryRowContext(t.Context(), `SELECT name FROM items WHERE id = 1`).Scan(&name)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			t.Fatal(err)
		}
		return name
	})
}
