package sink

import (
	"context"
	"time"
)

// DeadLetterID names one stored dead letter: a record of a topic, as one
// mapping failed on it (two mappings reading one topic may both fail on a
// record, and each keeps its copy).
type DeadLetterID struct {
	Mapping   string
	Topic     string
	Partition int32
	Offset    int64
}

// ID returns the dead letter's identity in the store.
func (d DeadLetter) ID() DeadLetterID {
	return DeadLetterID{Mapping: d.Mapping, Topic: d.Topic, Partition: d.Partition, Offset: d.Offset}
}

// StoredDeadLetter is a dead letter as a sink keeps it, with when it was
// stored (the commit of its batch).
type StoredDeadLetter struct {
	DeadLetter
	Stored time.Time
}

// DeadLetterStore reads and removes the dead letters a sink stores with its
// batches (see DeadLetter). Its methods block and are safe for concurrent
// use, beside Apply.
type DeadLetterStore interface {
	// DeadLetters returns the stored dead letters of mapping ("": of every
	// mapping), oldest first: by when they were stored, then by topic,
	// partition and offset. limit > 0 returns at most that many.
	DeadLetters(ctx context.Context, mapping string, limit int) ([]StoredDeadLetter, error)
	// CountDeadLetters returns how many dead letters of mapping ("": of
	// every mapping) are stored.
	CountDeadLetters(ctx context.Context, mapping string) (int, error)
	// DeleteDeadLetters removes the named dead letters, in one transaction,
	// and returns how many it removed (a name stored no more is skipped).
	DeleteDeadLetters(ctx context.Context, ids []DeadLetterID) (int, error)
}
