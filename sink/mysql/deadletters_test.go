package mysql_test

import (
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
	sinktest.ApplyWithoutCheckpointWritesRows(t, tg.sink, func() []map[string]any { return tg.Rows(t, allItems) })
}
