package consume

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ttcpay/payflow/internal/harness"
)

// TestHandlerPanicIsRedelivered: a handler that panics does not take the
// worker down; its message is redelivered (NakWithDelay, 5 s) and handled
// again, and a handler that returns normally gets no nak. (Kills
// runner.go:69:24 CONDITIONALS_NEGATION: the panic is swallowed without a
// nak, so its message waits the whole AckWait, and every message handled
// without one is nak'ed.)
func TestHandlerPanicIsRedelivered(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js, cons := pullConsumer(t, ctx, "P", "p", time.Minute)
	var fine atomic.Int32
	second := make(chan uint64, 1)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- Run(runCtx, ctx, cons, 2, zerolog.Nop(), func(_ context.Context, msg jetstream.Msg) {
			md, err := msg.Metadata()
			if err != nil {
				t.Error(err)
				return
			}
			if msg.Subject() == "p.fine" {
				fine.Add(1)
				_ = msg.Ack()
				return
			}
			if md.NumDelivered == 1 {
				panic("a bug in the handler")
			}
			_ = msg.Ack()
			second <- md.NumDelivered
		})
	}()
	for _, subj := range []string{"p.fine", "p.panics"} {
		if _, err := js.Publish(ctx, subj, nil); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case nd := <-second:
		if nd != 2 {
			t.Fatalf("handled again at delivery %d, want 2", nd)
		}
	case <-ctx.Done():
		t.Fatal("the message whose handler panicked was not redelivered")
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The message handled without a panic was acked, not nak'ed: it is not
	// delivered again.
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if fine.Load() != 1 || info.NumAckPending != 0 || info.NumRedelivered != 0 {
		t.Fatalf("fine handled %d times, %d ack pending, %d redelivered; want 1, 0, 0", fine.Load(), info.NumAckPending, info.NumRedelivered)
	}
}

// pullConsumer starts a fresh JetStream with a stream name on subjects
// "<prefix>.>" and a durable explicit-ack pull consumer on it, with
// ackWait and no delivery limit.
func pullConsumer(t *testing.T, ctx context.Context, name, prefix string, ackWait time.Duration) (jetstream.JetStream, jetstream.Consumer) {
	t.Helper()
	n := harness.StartNATS(t)
	nc, err := nats.Connect(n.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{prefix + ".>"}}); err != nil {
		t.Fatal(err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, name, jetstream.ConsumerConfig{
		Durable: prefix, AckPolicy: jetstream.AckExplicitPolicy, AckWait: ackWait, MaxDeliver: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return js, cons
}
