package postgres_test

import (
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"

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
		err := tg.db.QueryRow(t.Context(), `SELECT name FROM items WHERE id = 1`).Scan(&name)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			t.Fatal(err)
		}
		return name
	})
}
