package harness_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
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
	// Restart returns once the cluster is ready: the restarted node is a
	// current peer again, so a new R3 stream can be placed at once (a
	// stream placed while the meta leader still counts a peer offline
	// fails with "no suitable peers for placement").
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "R3B", Subjects: []string{"r3b.>"}, Replicas: 3}); err != nil {
		t.Fatalf("R3 stream right after the restart: %v", err)
	}
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

// TestChartNATS: a server started from chart values requires TLS and the
// user's password (set, as the deployment sets it, as a quoted bcrypt hash
// in the variable the values name) and applies its permissions.
func TestChartNATS(t *testing.T) {
	values := []byte(`
config:
  nats:
    tls:
      enabled: true
      secretName: test-tls
  merge:
    accounts:
      A:
        jetstream: enabled
        users:
          - user: u
            password: << $TEST_NATS_PASSWORD >>
            permissions:
              publish:
                allow: ["ok.>"]
              subscribe:
                allow: ["_INBOX.>"]
`)
	conf, err := harness.ChartConfig(values, harness.TLSFiles{Cert: "c", Key: "k"})
	if err != nil || !strings.Contains(conf, `"password": $TEST_NATS_PASSWORD`) || !strings.Contains(conf, `"ok.>"`) {
		t.Fatalf("%v\n%s", err, conf)
	}
	c := harness.StartChartNATS(t, values)
	if nc, err := nats.Connect(c.URL(), nats.UserInfo("u", c.Passwords["u"])); err == nil {
		nc.Close()
		t.Fatal("connected without TLS")
	}
	if nc, err := nats.Connect(c.URL(), nats.RootCAs(c.TLS.CA), nats.UserInfo("u", "wrong")); err == nil {
		nc.Close()
		t.Fatal("connected with a wrong password")
	}
	denied := make(chan error, 1)
	nc, err := nats.Connect(c.URL(), nats.RootCAs(c.TLS.CA), nats.UserInfo("u", c.Passwords["u"]),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { denied <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.Publish("ok.1", nil)
	_ = nc.Publish("no", nil)
	_ = nc.Flush()
	select {
	case err := <-denied:
		if !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), `"no"`) {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("publishing outside the allow list was not refused")
	}
}
