package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/mysqlurl"
)

// AwaitCommitted waits until the transaction of ev, a change captured from
// this database's binlog, has committed in InnoDB: a binlog event is
// written (and may be read by a replica) a moment before the engine's
// commit makes it visible. A locking read of the changed row waits for
// the row locks the committing transaction holds, an inserted row's too.
func (s *Sink) AwaitCommitted(ctx context.Context, ev *change.Event) error {
	row := ev.After
	if row == nil {
		row = ev.Before
	}
	if len(ev.Key) == 0 || row == nil {
		return nil
	}
	where := make([]string, len(ev.Key))
	args := make([]any, len(ev.Key))
	for i, k := range ev.Key {
		where[i] = mysqlurl.QuoteIdent(k) + " = ?"
		args[i] = row[k]
	}
	q := "SELECT 1 FROM " + mysqlurl.QuoteIdent(ev.Table.Schema) + "." + mysqlurl.QuoteIdent(ev.Table.Name) +
		" WHERE " + strings.Join(where, " AND ") + " LOCK IN SHARE MODE"
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return fmt.Errorf("wait for the change of %s to commit: %w", ev.Table, err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("wait for the change of %s to commit: %w", ev.Table, err)
	}
	rows.Close()
	return tx.Commit()
}
