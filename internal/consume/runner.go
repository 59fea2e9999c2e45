// Package consume holds the two JetStream consumers of the worker: payments
// (intents charged exactly once) and callbacks (TTC told, with backoff), and
// the pull loop they share.
package consume

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// Handler processes one message and must ack, nak or term it. ctx is the
// work context: it ends only at the hard stop after the drain grace period.
type Handler func(ctx context.Context, msg jetstream.Msg)

// Run pulls from cons in small batches (about concurrency messages, so that
// nothing waits in this pod's buffer long enough to time out and be handed
// to another pod) and runs at most concurrency handlers at once. When ctx
// ends it stops pulling, hands the messages already buffered to handlers,
// and returns once every handler has returned. Handlers get workCtx.
func Run(ctx, workCtx context.Context, cons jetstream.Consumer, concurrency int, log zerolog.Logger, h Handler) error {
	it, err := cons.Messages(jetstream.PullMaxMessages(concurrency))
	if err != nil {
		return fmt.Errorf("pull: %w", err)
	}
	stopped := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			it.Drain()
		case <-stopped:
		}
	}()
	defer close(stopped)

	sem := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	for {
		sem <- struct{}{}
		msg, err := it.Next()
		if err != nil {
			<-sem
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				break
			}
			log.Warn().Err(err).Msg("pull")
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			safe(workCtx, msg, log, h)
		}()
	}
	wg.Wait()
	return nil
}

// safe runs h, turning a panic into a delayed redelivery instead of a dead
// worker.
func safe(ctx context.Context, msg jetstream.Msg, log zerolog.Logger, h Handler) {
	defer func() {
		if r := recover(); r != nil {
			log.Error().Str("subject", msg.Subject()).Str("panic", fmt.Sprint(r)).Msg("handler panicked; message will be redelivered")
			_ = msg.NakWithDelay(5 * time.Second)
		}
	}()
	h(ctx, msg)
}

// keepAlive tells JetStream the message is still being worked on every
// interval, until the returned stop is called.
func keepAlive(msg jetstream.Msg, every time.Duration) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = msg.InProgress()
			}
		}
	}()
	return func() { close(done) }
}

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

func msgMeta(msg jetstream.Msg) (delivered uint64, seq uint64, published time.Time) {
	md, err := msg.Metadata()
	if err != nil {
		return 1, 0, time.Now()
	}
	return md.NumDelivered, md.Sequence.Stream, md.Timestamp
}
