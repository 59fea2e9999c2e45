package idempotency_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ttcpay/payflow/internal/harness"
	"github.com/ttcpay/payflow/internal/idempotency"
)

func store(t *testing.T) (*idempotency.Store, *harness.Redis) {
	r := harness.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr(), MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	return idempotency.New(rdb, time.Hour), r
}

func TestStateMachine(t *testing.T) {
	s, _ := store(t)
	ctx := context.Background()
	a, b := idempotency.NewOwner(), idempotency.NewOwner()

	c, err := s.Claim(ctx, "i1", a, time.Minute)
	if err != nil || c.State != idempotency.Claimed || c.Attempt != 1 {
		t.Fatalf("first claim %+v %v", c, err)
	}
	if c, _ := s.Claim(ctx, "i1", b, time.Minute); c.State != idempotency.Busy || c.Wait <= 0 {
		t.Fatalf("second claim under a live lease: %+v", c)
	}
	// 401: nothing charged, next attempt.
	if n, err := s.Advance(ctx, "i1", a, 1, time.Minute); err != nil || n != 2 {
		t.Fatalf("advance %d %v", n, err)
	}
	if _, err := s.Advance(ctx, "i1", b, 2, time.Minute); !errors.Is(err, idempotency.ErrConflict) {
		t.Fatalf("advance by a non-owner: %v", err)
	}
	// Unknown outcome, then resolution after the delay.
	if err := s.MarkUnknown(ctx, "i1", a, 2); err != nil {
		t.Fatal(err)
	}
	c, _ = s.Claim(ctx, "i1", b, time.Minute)
	if c.State != idempotency.Unknown || c.Attempt != 2 {
		t.Fatalf("claim of unknown: %+v", c)
	}
	wait, ok, err := s.BeginResolve(ctx, "i1", b, 2, time.Minute, 300*time.Millisecond)
	if err != nil || ok || wait <= 0 || wait > 300*time.Millisecond {
		t.Fatalf("early resolve: %v %v %v", wait, ok, err)
	}
	time.Sleep(wait + 10*time.Millisecond)
	if _, ok, err := s.BeginResolve(ctx, "i1", b, 2, time.Minute, 300*time.Millisecond); !ok || err != nil {
		t.Fatalf("resolve: %v %v", ok, err)
	}
	if _, _, err := s.BeginResolve(ctx, "i1", a, 2, time.Minute, 0); !errors.Is(err, idempotency.ErrConflict) {
		t.Fatalf("second resolver: %v", err)
	}
	n, err := s.Advance(ctx, "i1", b, 2, time.Minute)
	if err != nil || n != 3 {
		t.Fatalf("after reversal: %d %v", n, err)
	}
	if err := s.Finish(ctx, "i1", a, 3, []byte(`{"x":1}`), nil); !errors.Is(err, idempotency.ErrConflict) {
		t.Fatalf("finish by the old owner: %v", err)
	}
	if err := s.Finish(ctx, "i1", b, 3, []byte(`{"x":1}`), nil); err != nil {
		t.Fatal(err)
	}
	c, _ = s.Claim(ctx, "i1", a, time.Minute)
	if c.State != idempotency.Done || string(c.Result) != `{"x":1}` {
		t.Fatalf("claim of done: %+v", c)
	}
	// Release: nothing sent; the next claim takes the next attempt.
	c, _ = s.Claim(ctx, "i2", a, time.Minute)
	if err := s.Release(ctx, "i2", a, c.Attempt); err != nil {
		t.Fatal(err)
	}
	if c, _ := s.Claim(ctx, "i2", b, time.Minute); c.State != idempotency.Claimed || c.Attempt != 2 {
		t.Fatalf("claim after release: %+v", c)
	}
}

func TestLostLeaseBecomesUnknown(t *testing.T) {
	s, _ := store(t)
	ctx := context.Background()
	a, b := idempotency.NewOwner(), idempotency.NewOwner()
	if c, _ := s.Claim(ctx, "i", a, 100*time.Millisecond); c.State != idempotency.Claimed {
		t.Fatal(c)
	}
	time.Sleep(150 * time.Millisecond)
	c, err := s.Claim(ctx, "i", b, time.Minute)
	if err != nil || c.State != idempotency.Unknown || c.Attempt != 1 || c.Since.After(c.Now) {
		t.Fatalf("after the owner vanished: %+v %v", c, err)
	}
	// The vanished owner comes back: every write is refused.
	if err := s.Finish(ctx, "i", a, 1, []byte("{}"), nil); !errors.Is(err, idempotency.ErrConflict) {
		t.Fatalf("late finish: %v", err)
	}
	if err := s.Extend(ctx, "i", a, 1, time.Minute); !errors.Is(err, idempotency.ErrConflict) {
		t.Fatalf("late extend: %v", err)
	}
}

func TestOneClaimUnderContention(t *testing.T) {
	s, _ := store(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	claimed := 0
	for range 64 {
		wg.Go(func() {
			c, err := s.Claim(ctx, "hot", idempotency.NewOwner(), time.Minute)
			if err != nil {
				t.Error(err)
			}
			if c.State == idempotency.Claimed {
				mu.Lock()
				claimed++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if claimed != 1 {
		t.Fatalf("%d claims won", claimed)
	}
}

func TestNoRedisNoClaim(t *testing.T) {
	s, r := store(t)
	r.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := s.Claim(ctx, "i", "o", time.Minute); err == nil {
		t.Fatal("claimed without Redis")
	}
}
