package app

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"
)

func TestDrainContext_OutlivesTheStopByTheGracePeriodOnly(t *testing.T) {
	stop, cancelStop := context.WithCancel(t.Context())
	drain, cancel := drainContext(stop, 200*time.Millisecond, slog.New(slog.DiscardHandler))
	defer cancel()
	cancelStop()
	stopped := time.Now()
	if drain.Err() != nil {
		t.Fatal("the drain ended with the stop, want it to last the grace period")
	}
	select {
	case <-drain.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the drain did not end within 10s of the stop")
	}
	if waited := time.Since(stopped); waited < 200*time.Millisecond {
		t.Errorf("the drain ended %v after the stop, want at least the grace period (200ms)", waited)
	}
	if cause := context.Cause(drain); !errors.Is(cause, errShutdownTimeout) {
		t.Errorf("cause = %v, want errShutdownTimeout", cause)
	}
}
