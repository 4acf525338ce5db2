package mysql

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/tandemcdc/tandem/sink"
)

var _ sink.DeadLetterStore = (*Sink)(nil)

// storedAtLayout is how the state tables' DATETIME(6) columns read back
// (text protocol, parseTime off); the sink's sessions are UTC.
const storedAtLayout = "2006-01-02 15:04:05.999999"

// DeadLetters implements sink.DeadLetterStore. Failures are *sink.Error.
func (s *Sink) DeadLetters(ctx context.Context, mapping string, limit int) ([]sink.StoredDeadLetter, error) {
	q := "SELECT mapping, reason, error, topic, `partition`, `offset`, record_key, record, created_at FROM " + s.deadLettersTable() +
		" WHERE ? = '' OR mapping = ? ORDER BY created_at, topic, `partition`, `offset`, mapping"
	args := []any{mapping, mapping}
	if limit > 0 {
		q += " LIMIT ?"
		args = append(args, limit)
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, classified(s.deadLettersTable(), fmt.Errorf("read dead letters: %w", err))
	}
	defer rows.Close()
	var out []sink.StoredDeadLetter
	for rows.Next() {
		var d sink.StoredDeadLetter
		var stored string
		if err := rows.Scan(&d.Mapping, &d.Reason, &d.Error, &d.Topic, &d.Partition, &d.Offset, &d.Key, &d.Value, &stored); err != nil {
			return nil, classified(s.deadLettersTable(), fmt.Errorf("read dead letters: %w", err))
		}
		if d.Stored, err = time.ParseInLocation(storedAtLayout, stored, time.UTC); err != nil {
			return nil, fmt.Errorf("read dead letters: created_at %q: %w", stored, err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, classified(s.deadLettersTable(), fmt.Errorf("read dead letters: %w", err))
	}
	return out, nil
}

// CountDeadLetters implements sink.DeadLetterStore.
func (s *Sink) CountDeadLetters(ctx context.Context, mapping string) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM "+s.deadLettersTable()+" WHERE ? = '' OR mapping = ?",
		mapping, mapping).Scan(&n); err != nil {
		return 0, classified(s.deadLettersTable(), fmt.Errorf("count dead letters: %w", err))
	}
	return n, nil
}

// DeleteDeadLetters implements sink.DeadLetterStore: one transaction, a
// statement per maxPlaceholders of names.
func (s *Sink) DeleteDeadLetters(ctx context.Context, ids []sink.DeadLetterID) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	tx, err := s.begin(ctx, nil)
	if err != nil {
		return 0, classified(s.deadLettersTable(), fmt.Errorf("delete dead letters: %w", err))
	}
	defer tx.Rollback()
	const perRow = 4
	deleted := 0
	for lo := 0; lo < len(ids); {
		hi := min(len(ids), lo+maxPlaceholders/perRow)
		tuples := make([]string, 0, hi-lo)
		args := make([]any, 0, (hi-lo)*perRow)
		for _, id := range ids[lo:hi] {
			tuples = append(tuples, "(?, ?, ?, ?)")
			args = append(args, id.Mapping, id.Topic, id.Partition, id.Offset)
		}
		res, err := tx.ExecContext(ctx, "DELETE FROM "+s.deadLettersTable()+" WHERE (mapping, topic, `partition`, `offset`) IN ("+
			strings.Join(tuples, ", ")+")", args...)
		if err != nil {
			return 0, classified(s.deadLettersTable(), fmt.Errorf("delete dead letters: %w", err))
		}
		n, err := res.RowsAffected()
		if err != nil {
			return 0, classified(s.deadLettersTable(), fmt.Errorf("delete dead letters: %w", err))
		}
		deleted += int(n)
		lo = hi
	}
	if err := tx.Commit(); err != nil {
		return 0, classified(s.deadLettersTable(), fmt.Errorf("delete dead letters: commit: %w", err))
	}
	return deleted, nil
}
