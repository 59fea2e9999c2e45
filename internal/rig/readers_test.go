package rig

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ttcpay/payflow/internal/harness"
)

func readerStream(t *testing.T, maxConsumers int) (jetstream.JetStream, jetstream.Stream) {
	t.Helper()
	nc, err := nats.Connect(harness.StartNATS(t).URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	s, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "R", Subjects: []string{"r.>"}, MaxConsumers: maxConsumers})
	if err != nil {
		t.Fatal(err)
	}
	return js, s
}

func readAll(t *testing.T, r *Reader, want int) {
	t.Helper()
	msgs, err := r.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != want {
		t.Fatalf("read %d messages, want %d", len(msgs), want)
	}
	for i, m := range msgs {
		if got := string(m.Data()); got != fmt.Sprint(i) {
			t.Fatalf("message %d is %q: out of order or read twice", i, got)
		}
	}
}

// TestReaderOneConsumer: many reads through one reader, with messages
// arriving between them, leave one consumer behind (issue 19: a consumer per read
// ended a long wait with "maximum consumers limit reached").
func TestReaderOneConsumer(t *testing.T) {
	ctx := context.Background()
	js, s := readerStream(t, 3)
	r := NewReader(js, "R")
	readAll(t, r, 0)
	n := 0
	for range 50 {
		if _, err := js.Publish(ctx, "r.x", []byte(fmt.Sprint(n))); err != nil {
			t.Fatal(err)
		}
		n++
		readAll(t, r, n)
	}
	// An ordered consumer makes a consumer per fetch and deletes the one it
	// replaced in the background: wait for those deletions to land.
	var consumers int
	for deadline := time.Now().Add(10 * time.Second); ; {
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if consumers = info.State.Consumers; consumers == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if consumers != 1 {
		t.Fatalf("%d consumers left after 51 reads, want 1", consumers)
	}
}

// TestReaderConsumerLost: a reader whose consumer is deleted (as when the
// cluster node holding it restarts) goes on after the last message it read,
// without gaps or repeats.
func TestReaderConsumerLost(t *testing.T) {
	ctx := context.Background()
	js, s := readerStream(t, -1)
	r := NewReader(js, "R")
	for i := range 5 {
		if _, err := js.Publish(ctx, "r.x", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	readAll(t, r, 5)
	names := s.ConsumerNames(ctx)
	for name := range names.Name() {
		// The ordered consumer deletes a consumer it replaced in the
		// background, so a listed name may be gone by now: gone is what
		// this test wants.
		if err := s.DeleteConsumer(ctx, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			t.Fatal(err)
		}
	}
	for i := 5; i < 10; i++ {
		if _, err := js.Publish(ctx, "r.x", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	// The first read after the loss may report it; the next one goes on.
	if _, err := r.Read(ctx); err != nil {
		t.Logf("read after the loss: %v", err)
	}
	readAll(t, r, 10)
}
