package harness_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/ttcpay/payflow/internal/harness"
)

func TestRedisStopRestart(t *testing.T) {
	r := harness.StartRedis(t)
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: r.Addr(), MaxRetries: -1})
	defer c.Close()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	r.Stop()
	if err := c.Get(ctx, "k").Err(); err == nil {
		t.Fatal("stopped redis answered")
	}
	r.Restart()
	// The restarted server is empty (persistence off) and reachable again.
	var err error
	for range 50 {
		if err = c.Get(ctx, "k").Err(); err == redis.Nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("after restart: %v", err)
}

func TestNATSJetStream(t *testing.T) {
	n := harness.StartNATS(t)
	nc, err := nats.Connect(n.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "t.1", []byte("x")); err != nil {
		t.Fatal(err)
	}
}

func TestClusterNodeRestart(t *testing.T) {
	c := harness.StartCluster(t, 3)
	nc, err := nats.Connect(c.URLs(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "R3", Subjects: []string{"r3.>"}, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	// Each message has a Nats-Msg-Id, so that a publish retried after a lost
	// ack is not stored twice.
	phase := 0
	publish := func(n int) {
		phase++
		for i := range n {
			var err error
			for range 100 {
				pctx, cancel := context.WithTimeout(ctx, time.Second)
				_, err = js.Publish(pctx, "r3.x", []byte{byte(i)}, jetstream.WithMsgID(fmt.Sprintf("%d-%d", phase, i)))
				cancel()
				if err == nil {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if err != nil {
				t.Fatalf("publish: %v", err)
			}
		}
	}
	start := time.Now()
	publish(10)
	t.Logf("phase 1 %v", time.Since(start))
	c.Stop(1)
	t.Logf("stopped %v", time.Since(start))
	publish(10) // two of three nodes keep the quorum
	t.Logf("phase 2 %v", time.Since(start))
	c.Restart(1)
	t.Logf("restarted %v", time.Since(start))
	publish(10)
	t.Logf("phase 3 %v", time.Since(start))
	s, err := js.Stream(ctx, "R3")
	if err != nil {
		t.Fatal(err)
	}
	if info, err := s.Info(ctx); err != nil || info.State.Msgs != 30 {
		t.Fatalf("stream state %v %v", info, err)
	}
}
