// Package redelivery computes how long a message waits before JetStream
// delivers it again: exponential backoff with jitter by delivery count
// (NakWithDelay), so that waiting never holds a message in a worker.
package redelivery

import (
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Backoff computes redelivery delays: exponential from Initial, capped at
// Max, with jitter, by delivery count.
type Backoff struct {
	Initial, Max time.Duration
	Multiplier   float64
	Jitter       float64
}

// Delay is the delay before delivery n+1 (n ≥ 1 deliveries so far).
func (b Backoff) Delay(n uint64) time.Duration {
	eb := backoff.NewExponentialBackOff()
	eb.InitialInterval = b.Initial
	eb.MaxInterval = b.Max
	eb.Multiplier = b.Multiplier
	eb.RandomizationFactor = b.Jitter
	eb.MaxElapsedTime = 0
	eb.Reset()
	d := eb.NextBackOff()
	for i := uint64(1); i < n && i < 64 && d < b.Max; i++ {
		d = eb.NextBackOff()
	}
	return d
}
