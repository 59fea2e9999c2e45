package streams_test

import (
	"context"
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
