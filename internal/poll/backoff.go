package poll

import (
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Backoff is how tandem waits between attempts at something that failed
// and may work later (a lost connection, a target refusing a batch): from
// 250ms, doubling to 30s, each wait drawn at random within ±50% of its step
// so that processes restarted together do not retry in lockstep. Call
// NextBackOff for the next wait and Reset after a success.
type Backoff = backoff.ExponentialBackOff

// NewBackoff returns a Backoff at its first step.
func NewBackoff() *Backoff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 250 * time.Millisecond
	b.MaxInterval = 30 * time.Second
	b.Multiplier = 2
	b.RandomizationFactor = 0.5
	b.Reset()
	return b
}
