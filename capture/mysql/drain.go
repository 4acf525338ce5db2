package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/tandemcdc/tandem/internal/mysqlurl"
)

// BinlogLog is a MySQL/MariaDB server's binary log as a cutover switch
// drains it: where the binlog ends now, and whether the capturer reading it
// has saved (acknowledged) a position at or past a given one.
type BinlogLog struct {
	db    *sql.DB
	store PositionStore
	key   string
}

// NewBinlogLog connects to the server of dsn, whose capturer saves its
// acknowledged position in store under key.
func NewBinlogLog(dsn string, store PositionStore, key string) (*BinlogLog, error) {
	db, err := mysqlurl.Open(dsn)
	if err != nil {
		return nil, fmt.Errorf("connect to read the binlog position: %w", err)
	}
	return &BinlogLog{db: db, store: store, key: key}, nil
}

// Head returns where the binary log ends now (SHOW MASTER STATUS), as
// Position.String writes it.
func (l *BinlogLog) Head(ctx context.Context) (string, error) {
	var file string
	var pos uint32
	rows, err := l.db.QueryContext(ctx, `SHOW MASTER STATUS`)
	if err != nil {
		return "", fmt.Errorf("read the binlog position (SHOW MASTER STATUS): %w", err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return "", fmt.Errorf("read SHOW MASTER STATUS: %w", err)
		}
		return "", errors.New("the server has no binary log (SHOW MASTER STATUS is empty)")
	}
	vals := make([]any, len(cols))
	for i := range vals {
		vals[i] = new(sql.RawBytes)
	}
	vals[0], vals[1] = &file, &pos
	if err := rows.Scan(vals...); err != nil {
		return "", fmt.Errorf("read SHOW MASTER STATUS: %w", err)
	}
	return Position{File: file, Offset: pos}.String(), nil
}

// Reached reports whether the saved position is at or past pos.
func (l *BinlogLog) Reached(ctx context.Context, pos string) (bool, error) {
	want, err := ParsePosition(pos)
	if err != nil {
		return false, err
	}
	saved, found, err := l.store.LoadPosition(ctx, l.key)
	if err != nil || !found {
		return false, err
	}
	at, err := ParsePosition(saved)
	if err != nil {
		return false, fmt.Errorf("saved position of %s: %w", l.key, err)
	}
	return at.File != "" && !at.before(want), nil
}

// Close releases the connection.
func (l *BinlogLog) Close() { l.db.Close() }
