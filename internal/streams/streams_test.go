package streams_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ttcpay/payflow/internal/harness"
	"github.com/ttcpay/payflow/internal/streams"
)

// TestEnsureConcurrentlyOnCluster: several pods creating the R3 streams at
// once on a three-node cluster all succeed, promptly.
func TestEnsureConcurrentlyOnCluster(t *testing.T) {
	c := harness.StartCluster(t, 3)
	nc, err := nats.Connect(c.URLs())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			nc, _ := nats.Connect(c.URLs())
			js, _ := jetstream.New(nc)
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			start := time.Now()
			if err := streams.Ensure(ctx, js, streams.Config{Replicas: 3}); err != nil {
				t.Errorf("pod %d: %v after %v", i, err, time.Since(start))
			}
			t.Logf("pod %d: streams ready in %v", i, time.Since(start))
		})
	}
	wg.Wait()
	js, _ := jetstream.New(nc)
	for _, name := range []string{streams.StreamIntents, streams.StreamResults, streams.StreamCallbacks, streams.StreamDLQ} {
		st, err := js.Stream(context.Background(), name)
		if err != nil || st.CachedInfo().Config.Replicas != 3 {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

// TestEnsureKeepsExistingSettings: a pod started with other limits (here
// MAX_QUEUED_INTENTS) does not rewrite the shared streams: the settings of
// the first stay, each difference is reported, and only Update (the
// operator's path) changes them.
func TestEnsureKeepsExistingSettings(t *testing.T) {
	n := harness.StartNATS(t)
	nc, err := nats.Connect(n.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	maxMsgs := func(name string) int64 {
		t.Helper()
		st, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return st.CachedInfo().Config.MaxMsgs
	}
	var first []streams.Mismatch
	if err := streams.Ensure(ctx, js, streams.Config{MaxIntents: 100, Mismatch: func(m streams.Mismatch) { first = append(first, m) }}); err != nil {
		t.Fatal(err)
	}
	if len(first) != 0 {
		t.Fatalf("creating the streams reported %v", first)
	}
	var got []streams.Mismatch
	if err := streams.Ensure(ctx, js, streams.Config{MaxIntents: 200, Mismatch: func(m streams.Mismatch) { got = append(got, m) }}); err != nil {
		t.Fatal(err)
	}
	if n := maxMsgs(streams.StreamIntents); n != 100 {
		t.Fatalf("%s MaxMsgs %d after a second pod's Ensure, want the first's 100", streams.StreamIntents, n)
	}
	want := []streams.Mismatch{
		{Stream: streams.StreamIntents, Setting: "max_msgs", Have: "100", Want: "200"},
		{Stream: streams.StreamCallbacks, Setting: "max_msgs", Have: "100", Want: "200"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("mismatches %v, want %v", got, want)
	}
	if err := streams.Update(ctx, js, streams.Config{MaxIntents: 200}); err != nil {
		t.Fatal(err)
	}
	if n := maxMsgs(streams.StreamIntents); n != 200 {
		t.Fatalf("%s MaxMsgs %d after Update, want 200", streams.StreamIntents, n)
	}
	got = nil
	if err := streams.Ensure(ctx, js, streams.Config{MaxIntents: 200, Mismatch: func(m streams.Mismatch) { got = append(got, m) }}); err != nil || len(got) != 0 {
		t.Fatalf("after Update: %v, mismatches %v", err, got)
	}
}
