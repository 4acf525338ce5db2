package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/tandemcdc/tandem/internal/mysqlurl"
)

// SavedPosition reads the position saved for source in the target at dsn,
// for checks: unlike New it creates nothing, and a target without tandem's
// database or tables yet has no position (found false).
func SavedPosition(ctx context.Context, dsn, source string) (pos string, found bool, err error) {
	db, err := mysqlurl.Open(dsn)
	if err != nil {
		return "", false, fmt.Errorf("connect to target: %w", err)
	}
	defer db.Close()
	err = db.QueryRowContext(ctx, "SELECT position FROM `tandem`.`source_positions` WHERE source = ?", source).Scan(&pos)
	var me *gomysql.MySQLError
	switch {
	case errors.Is(err, sql.ErrNoRows), errors.As(err, &me) && (me.Number == 1146 || me.Number == 1049):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("read the saved position of %s: %w", source, err)
	}
	return pos, true, nil
}
