package harness_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ttcpay/payflow/internal/harness"
)

// TestSentinelFailover: a client that reaches Redis through
// password-protected sentinels keeps its writes across a SIGKILL of the
// primary; the old primary rejoins as a replica, and a second failover
// promotes it back.
func TestSentinelFailover(t *testing.T) {
	s := harness.StartSentinel(t, harness.SentinelOptions{Password: "data-secret", SentinelPassword: "sentinel-secret"})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName: s.MasterName(), SentinelAddrs: s.SentinelAddrs(),
		Password: "data-secret", SentinelPassword: "sentinel-secret",
		DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second,
	})
	defer c.Close()

	// write sets key; with replicas > 0 it waits until that many replicas
	// acknowledged it, so that a promoted replica has it.
	write := func(key string, replicas int) {
		t.Helper()
		var err error
		for range 200 { // through a failover the client sees errors for a while
			if err = c.Set(ctx, key, "v", 0).Err(); err == nil {
				if replicas == 0 {
					return
				}
				var n int64
				if n, err = c.Do(ctx, "WAIT", replicas, 5000).Int64(); err == nil && n >= int64(replicas) {
					return
				}
				err = fmt.Errorf("WAIT: %d replicas, %v", n, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("set %s: %v", key, err)
	}
	read := func(key string) {
		t.Helper()
		var err error
		for range 200 {
			if err = c.Get(ctx, key).Err(); err == nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("get %s: %v", key, err)
	}

	write("before", 1)
	for round := range 2 {
		old, oldNode, err := s.KillPrimary(ctx)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		primary, err := s.WaitForPromotion(ctx, old)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: killed %s, %s promoted after %v", round, old, primary, time.Since(start).Round(10*time.Millisecond))
		read("before")
		// No replica until the old primary rejoins: written on the new
		// primary alone.
		write(fmt.Sprintf("after%d", round), 0)
		if err := s.Rejoin(ctx, oldNode); err != nil {
			t.Fatal(err)
		}
		now, _, err := s.Primary(ctx)
		if err != nil || now != primary {
			t.Fatalf("after rejoin the primary is %s (%v), want %s", now, err, primary)
		}
		// The rejoined node has what was written while it was down.
		rc := redis.NewClient(&redis.Options{Addr: old, Password: "data-secret"})
		v, err := rc.Get(ctx, fmt.Sprintf("after%d", round)).Result()
		rc.Close()
		if err != nil || v != "v" {
			t.Fatalf("rejoined %s: %q %v", old, v, err)
		}
		write("before", 1)
	}
}

// TestSentinelRequiresPasswords: the sentinels refuse a client without
// their password, as the chart's auth.sentinel does.
func TestSentinelRequiresPasswords(t *testing.T) {
	s := harness.StartSentinel(t, harness.SentinelOptions{Password: "pw", SentinelPassword: "pw"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: s.MasterName(), SentinelAddrs: s.SentinelAddrs(),
		Password: "pw", MaxRetries: -1})
	defer c.Close()
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("a client without the sentinel password reached the primary")
	} else {
		t.Logf("without SentinelPassword: %v", err)
	}
}
