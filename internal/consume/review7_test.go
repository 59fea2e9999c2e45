package consume

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// TestBusyRunnerDoesNotDropAMessage: while every slot is busy, Run does not
// call Next, so the pull request's idle heartbeats pile up in the
// iterator's channel (capacity = concurrency). With a 2 s heartbeat, four
// of them fill a 4-slot channel before the pull expires, and a message the
// server then delivers to that pull is dropped client-side (slow consumer):
// it comes back only after AckWait, as a redelivery.
func TestBusyRunnerDoesNotDropAMessage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	js, cons := pullConsumer(t, ctx, "R7", "r7", 5*time.Second)
	for range 4 {
		if _, err := js.Publish(ctx, "r7.busy", nil); err != nil {
			t.Fatal(err)
		}
	}
	release := make(chan struct{})
	busy := make(chan struct{}, 4)
	last := make(chan uint64, 10)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- Run(runCtx, ctx, cons, 4, zerolog.Nop(), func(_ context.Context, msg jetstream.Msg) {
			_ = msg.Ack()
			if msg.Subject() == "r7.busy" {
				busy <- struct{}{}
				<-release
				return
			}
			md, err := msg.Metadata()
			if err != nil {
				t.Error(err)
				return
			}
			last <- md.NumDelivered
		})
	}()
	for range 4 {
		<-busy
	}
	// Every slot is busy; the runner's second pull is waiting on the server.
	time.Sleep(9 * time.Second)
	if _, err := js.Publish(ctx, "r7.last", nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	close(release)
	select {
	case nd := <-last:
		if nd != 1 {
			t.Errorf("the message was delivered %d times: the first delivery was lost in the pod's buffer", nd)
		}
	case <-ctx.Done():
		t.Fatal("the message was never handled")
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
