package poll

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestUntil(t *testing.T) {
	ctx := context.Background()
	calls := 0
	if _, err := Until(ctx, time.Millisecond, time.Minute, func() (bool, error) { calls++; return calls == 3, nil }); err != nil || calls != 3 {
		t.Errorf("holds on the third call: err %v after %d calls", err, calls)
	}
	if _, err := Until(ctx, time.Millisecond, 20*time.Millisecond, func() (bool, error) { return false, nil }); !errors.Is(err, ErrTimeout) {
		t.Errorf("never holds: err %v, want ErrTimeout", err)
	}
	boom := errors.New("boom")
	if _, err := Until(ctx, time.Millisecond, time.Minute, func() (bool, error) { return false, boom }); !errors.Is(err, boom) {
		t.Errorf("cond fails: err %v, want its error", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Until(cctx, time.Hour, time.Hour, func() (bool, error) { return false, nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err %v", err)
	}
}

func TestBackoff_DoublesWithJitterUpToItsCeilingAndResets(t *testing.T) {
	b := NewBackoff()
	step := 250 * time.Millisecond
	for i := range 12 {
		got := b.NextBackOff()
		if lo, hi := step/2, step+step/2; got < lo || got > hi {
			t.Fatalf("wait %d = %v, want within ±50%% of %v", i, got, step)
		}
		step = min(2*step, 30*time.Second)
	}
	b.Reset()
	if got := b.NextBackOff(); got > 375*time.Millisecond {
		t.Errorf("after Reset the wait is %v, want the first step's (250ms ±50%%)", got)
	}
}
