package app

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// errShutdownTimeout ends the drain of a stop that took longer than
// shutdown_timeout.
var errShutdownTimeout = errors.New("shutdown_timeout passed while draining")

// drainContext returns the context a role drains under once stop ends: it
// ends grace after stop does (with cause errShutdownTimeout, logged), or
// when cancel is called. Work that stop ends stops taking more; what it
// holds (a polled batch) is finished under the returned context, so a
// SIGTERM commits what was in hand rather than rolling it back.
func drainContext(stop context.Context, grace time.Duration, log *slog.Logger) (ctx context.Context, cancel context.CancelFunc) {
	ctx, cancelCause := context.WithCancelCause(context.WithoutCancel(stop))
	unhook := context.AfterFunc(stop, func() {
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-t.C:
			log.Warn("shutdown_timeout passed: giving up the batches still being written (they are rolled back and read again on restart)", "shutdown_timeout", grace)
			cancelCause(errShutdownTimeout)
		case <-ctx.Done():
		}
	})
	return ctx, func() {
		unhook()
		cancelCause(context.Canceled)
	}
}
