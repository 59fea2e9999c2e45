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
// interval, until the returned stop is called. It holds a timer, not a
// goroutine: with a thousand payments in flight, a goroutine each would cost
// a stack each (measured by the bench's (e)).
func keepAlive(msg jetstream.Msg, every time.Duration) (stop func()) {
	var mu sync.Mutex
	stopped := false
	mu.Lock()
	defer mu.Unlock()
	var t *time.Timer
	t = time.AfterFunc(every, func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		_ = msg.InProgress()
		t.Reset(every)
	})
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		t.Stop()
	}
}

func msgMeta(msg jetstream.Msg) (delivered uint64, seq uint64, published time.Time) {
	md, err := msg.Metadata()
	if err != nil {
		return 1, 0, time.Now()
	}
	return md.NumDelivered, md.Sequence.Stream, md.Timestamp
}
