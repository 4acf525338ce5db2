package testenv

import (
	"bytes"
	"sync"
)

// SyncBuffer is an io.Writer safe for a process's output and a test's
// reads at the same time (exec.Cmd's Stdout and Stderr, a log handler).
// The zero value is ready.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
