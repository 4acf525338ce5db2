package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tandemcdc/tandem/sink"
)

var _ sink.DeadLetterStore = (*Sink)(nil)

// DeadLetters implements sink.DeadLetterStore. Failures are *sink.Error.
func (s *Sink) DeadLetters(ctx context.Context, mapping string, limit int) ([]sink.StoredDeadLetter, error) {
	var most *int // NULL: no limit
	if limit > 0 {
		most = &limit
	}
	rows, err := s.pool.Query(ctx, `SELECT mapping, reason, error, topic, partition, "offset", record_key, record, created_at
FROM `+s.deadLettersTable()+` WHERE $1 = '' OR mapping = $1
ORDER BY created_at, topic, partition, "offset", mapping LIMIT $2`, mapping, most)
	if err != nil {
		return nil, classified(s.deadLettersTable(), fmt.Errorf("read dead letters: %w", err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (sink.StoredDeadLetter, error) {
		var d sink.StoredDeadLetter
		err := r.Scan(&d.Mapping, &d.Reason, &d.Error, &d.Topic, &d.Partition, &d.Offset, &d.Key, &d.Value, &d.Stored)
		return d, err
	})
	if err != nil {
		return nil, classified(s.deadLettersTable(), fmt.Errorf("read dead letters: %w", err))
	}
	return out, nil
}

// CountDeadLetters implements sink.DeadLetterStore.
func (s *Sink) CountDeadLetters(ctx context.Context, mapping string) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM `+s.deadLettersTable()+` WHERE $1 = '' OR mapping = $1`, mapping).Scan(&n); err != nil {
		return 0, classified(s.deadLettersTable(), fmt.Errorf("count dead letters: %w", err))
	}
	return n, nil
}

// DeleteDeadLetters implements sink.DeadLetterStore: one statement.
func (s *Sink) DeleteDeadLetters(ctx context.Context, ids []sink.DeadLetterID) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	mappings, topics := make([]string, len(ids)), make([]string, len(ids))
	parts, offsets := make([]int32, len(ids)), make([]int64, len(ids))
	for i, id := range ids {
		mappings[i], topics[i], parts[i], offsets[i] = id.Mapping, id.Topic, id.Partition, id.Offset
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM `+s.deadLettersTable()+` WHERE (mapping, topic, partition, "offset") IN
(SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::bigint[]))`, mappings, topics, parts, offsets)
	if err != nil {
		return 0, classified(s.deadLettersTable(), fmt.Errorf("delete dead letters: %w", err))
	}
	return int(tag.RowsAffected()), nil
}
