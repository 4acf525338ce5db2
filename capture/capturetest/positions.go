package capturetest

import (
	"context"
	"sync"
)

// MemPositions is an in-memory position store (capture/mysql's
// PositionStore) for tests and benchmarks of a capturer, where saving
// positions is not what is measured or tested: the sinks' stores have
// their own tests. The zero value is ready; safe for concurrent use.
type MemPositions struct {
	mu  sync.Mutex
	pos map[string]string
}

// LoadPosition returns the position last saved for key.
func (m *MemPositions) LoadPosition(_ context.Context, key string) (string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.pos[key]
	return p, ok, nil
}

// SavePosition replaces the position saved for key.
func (m *MemPositions) SavePosition(_ context.Context, key, pos string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pos == nil {
		m.pos = map[string]string{}
	}
	m.pos[key] = pos
	return nil
}

// Get returns the position saved for key, "" for none.
func (m *MemPositions) Get(key string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pos[key]
}
