package idempotency_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ttcpay/payflow/internal/harness"
	"github.com/ttcpay/payflow/internal/idempotency"
)

// ledgerStore is what both stores offer for settlement.
type ledgerStore interface {
	Claim(ctx context.Context, intentID, fingerprint, owner string, lease time.Duration) (idempotency.Claim, error)
	Finish(ctx context.Context, a idempotency.Attempt, out idempotency.Outcome) error
	Reserve(ctx context.Context, paymentIntentID, merchant, kind string, a idempotency.Attempt, amount int64) (int64, string, error)
	Unreserve(ctx context.Context, paymentIntentID, kind string, a idempotency.Attempt) error
}

// openPayment records an authorized payment of merchant m.
func openPayment(t *testing.T, s ledgerStore, id, m string, authorized int64, sale bool) {
	t.Helper()
	ctx := context.Background()
	c, err := s.Claim(ctx, id, "", "payer", time.Minute)
	if err != nil || c.State != idempotency.Claimed {
		t.Fatalf("claim %s: %+v %v", id, c, err)
	}
	if err := s.Finish(ctx, c.Attempt, idempotency.Outcome{Result: []byte(`{}`), Payment: &idempotency.Payment{
		CyberSourceID: "cs-" + id, Currency: "USD", Authorized: authorized, Sale: sale, MerchantID: m}}); err != nil {
		t.Fatal(err)
	}
}

func TestLedgerBelongsToItsMerchant(t *testing.T) {
	s, _ := store(t)
	ctx := context.Background()
	openPayment(t, s, "pay-a", "m-a", 100_0000, true)
	op := idempotency.Attempt{IntentID: "refund-b", Owner: "o", N: 1}
	if _, _, err := s.Reserve(ctx, "pay-a", "m-b", "refund", op, 20_0000); !errors.Is(err, idempotency.ErrForeign) {
		t.Fatalf("another merchant's refund reserved: %v", err)
	}
	void := idempotency.Attempt{IntentID: "void-a", Owner: "o", N: 1}
	if n, _, err := s.Reserve(ctx, "pay-a", "m-a", "void", void, -1); err != nil || n != 100_0000 {
		t.Fatalf("the merchant's own void after the refused refund: %d %v", n, err)
	}
}

func TestUnreserveIsFencedOnTheHolder(t *testing.T) {
	s, _ := store(t)
	ctx := context.Background()
	openPayment(t, s, "pay", "m", 100_0000, false)
	first := idempotency.Attempt{IntentID: "cap", Owner: "pod-1", N: 1}
	if n, _, err := s.Reserve(ctx, "pay", "m", "capture", first, 30_0000); err != nil || n != 30_0000 {
		t.Fatal(n, err)
	}
	// Another pod took the operation over (attempt 2) and reserved again:
	// the same amount, now held by it.
	second := idempotency.Attempt{IntentID: "cap", Owner: "pod-2", N: 2}
	if n, _, err := s.Reserve(ctx, "pay", "m", "capture", second, 30_0000); err != nil || n != 30_0000 {
		t.Fatal(n, err)
	}
	if err := s.Unreserve(ctx, "pay", "capture", first); !errors.Is(err, idempotency.ErrConflict) {
		t.Fatalf("a stale attempt gave the reservation back: %v", err)
	}
	if n, _, err := s.Reserve(ctx, "pay", "m", "capture", idempotency.Attempt{IntentID: "cap2", Owner: "x", N: 1}, -1); err != nil || n != 70_0000 {
		t.Fatalf("left after the stale unreserve: %d %v", n, err)
	}
	if err := s.Unreserve(ctx, "pay", "capture", second); err != nil {
		t.Fatalf("the holder gives it back: %v", err)
	}
}

func TestChainsArePerMerchantAndMoveForward(t *testing.T) {
	s, _ := store(t)
	ctx := context.Background()
	t0 := time.Now()
	if err := s.AdvanceChain(ctx, "m-a", "N1", "A2", t0); err != nil {
		t.Fatal(err)
	}
	if err := s.AdvanceChain(ctx, "m-b", "N1", "B2", t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if last, _ := s.LastTransaction(ctx, "m-a", "N1"); last != "A2" {
		t.Fatalf("merchant A's series reads %q after merchant B named the same root", last)
	}
	// A late redelivery of an older transaction does not move it back.
	_ = s.AdvanceChain(ctx, "m-a", "N1", "A3", t0.Add(2*time.Second))
	_ = s.AdvanceChain(ctx, "m-a", "N1", "A2", t0)
	if last, _ := s.LastTransaction(ctx, "m-a", "N1"); last != "A3" {
		t.Fatalf("series moved back to %q", last)
	}
}

// TestLedgerConformsToLua: random sequences of reservations (kinds,
// amounts, merchants, holders) answer the same on both stores.
func TestLedgerConformsToLua(t *testing.T) {
	r := harness.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	kinds := []string{"capture", "reverse", "refund", "void"}
	steps := 0
	for seed := int64(1); seed <= 30; seed++ {
		rng := rand.New(rand.NewSource(seed))
		lua := idempotency.New(rdb, idempotency.Options{Retention: time.Hour})
		mem := idempotency.NewMemory(time.Now, time.Hour)
		pay := fmt.Sprintf("pay-%d", seed)
		sale := rng.Intn(2) == 0
		openPayment(t, lua, pay, "m", 100_0000, sale)
		openPayment(t, mem, pay, "m", 100_0000, sale)
		for i := 0; i < 40; i++ {
			kind := kinds[rng.Intn(len(kinds))]
			h := idempotency.Attempt{IntentID: fmt.Sprintf("op-%d", rng.Intn(6)), Owner: fmt.Sprintf("o%d", rng.Intn(2)), N: 1 + rng.Intn(2)}
			merchant := []string{"m", "m", "m", "other"}[rng.Intn(4)]
			amount := []int64{-1, 10_0000, 25_0000, 200_0000}[rng.Intn(4)]
			var a, b string
			if rng.Intn(3) == 0 {
				a = fmt.Sprint(lua.Unreserve(ctx, pay, kind, h))
				b = fmt.Sprint(mem.Unreserve(ctx, pay, kind, h))
			} else {
				n1, c1, e1 := lua.Reserve(ctx, pay, merchant, kind, h, amount)
				n2, c2, e2 := mem.Reserve(ctx, pay, merchant, kind, h, amount)
				a, b = fmt.Sprint(n1, c1, e1), fmt.Sprint(n2, c2, e2)
			}
			if a != b {
				t.Fatalf("seed %d step %d (%s %s %+v %s %d): lua %s, memory %s", seed, i, kind, pay, h, merchant, amount, a, b)
			}
			steps++
		}
	}
	t.Logf("%d ledger steps agree", steps)
}

// TestGuardWritesWaitForReplicas: with MinReplicas 1 a guard write
// succeeds once the replica has it, and fails with ErrNotReplicated when
// the replica does not acknowledge it in time (the step must not count).
func TestGuardWritesWaitForReplicas(t *testing.T) {
	sn := harness.StartSentinel(t, harness.SentinelOptions{})
	ctx := context.Background()
	primary, _, err := sn.Primary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: primary})
	t.Cleanup(func() { _ = rdb.Close() })
	var notReplicated []string
	s := idempotency.New(rdb, idempotency.Options{MinReplicas: 1, ReplicaTimeout: 300 * time.Millisecond,
		OnNotReplicated: func(op string, acked int) { notReplicated = append(notReplicated, fmt.Sprintf("%s:%d", op, acked)) }})
	c, err := s.Claim(ctx, "w1", "fp", "o", time.Minute)
	if err != nil || c.State != idempotency.Claimed {
		t.Fatalf("claim with a healthy replica: %+v %v", c, err)
	}
	// Stop the replica: WAIT times out. (DEBUG SLEEP is disabled by
	// default in Redis 7.)
	var replica *harness.Redis
	for i := 0; i < 2; i++ {
		if n := sn.Node(i); n.Addr() != primary {
			replica = n
		}
	}
	replica.Stop()
	if err := s.MarkUnknown(ctx, c.Attempt); !errors.Is(err, idempotency.ErrNotReplicated) {
		t.Fatalf("mark unknown with a stalled replica: %v", err)
	}
	if _, err := s.Claim(ctx, "w2", "fp", "o", time.Minute); !errors.Is(err, idempotency.ErrNotReplicated) {
		t.Fatalf("claim with a stalled replica: %v", err)
	}
	if len(notReplicated) != 2 {
		t.Fatalf("not-replicated reports: %v", notReplicated)
	}
	// The claim that did not replicate was given back: once the replica is
	// back, the intent can be claimed again (attempt 2).
	if err := replica.Restart(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := s.Claim(ctx, "w2", "fp", "o2", time.Minute)
		if err == nil {
			if c.State != idempotency.Claimed || c.Attempt.N < 2 {
				t.Fatalf("claim after the replica is back: %+v", c)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no claim after the replica came back: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
