package idempotency_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ttcpay/payflow/internal/harness"
	"github.com/ttcpay/payflow/internal/idempotency"
)

// Tests for the survivors of gremlins' run on this package
// (docs/mutation.md, "internal/idempotency (gremlins)").

// TestReplicaTimeoutDefault: with MinReplicas set and no ReplicaTimeout,
// a guard write waits ReplicaTimeoutDefault for replicas and then fails
// with ErrNotReplicated; WAIT with a timeout of 0 would block until the
// client gave up, and the step would fail with a connection error instead.
func TestReplicaTimeoutDefault(t *testing.T) {
	r := harness.StartRedis(t) // no replica
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr(), MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	var reports int
	s := idempotency.New(rdb, idempotency.Options{MinReplicas: 1, OnNotReplicated: func(string, int) { reports++ }})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Claim(ctx, "i1", "fp", idempotency.NewOwner(), time.Minute); !errors.Is(err, idempotency.ErrNotReplicated) {
		t.Fatalf("claim without a replica: %v, want ErrNotReplicated", err)
	}
	if reports != 1 {
		t.Fatalf("%d not-replicated reports, want 1", reports)
	}
}

// paymentIndex is what TestFinishIndexesThePayment needs of a store.
type paymentIndex interface {
	Claim(ctx context.Context, intentID, fingerprint, owner string, lease time.Duration) (idempotency.Claim, error)
	Finish(ctx context.Context, a idempotency.Attempt, out idempotency.Outcome) error
	PaymentIntent(ctx context.Context, cybersourceID string) (string, error)
}

// TestFinishIndexesThePayment: Finish of an authorized payment writes the
// index from its CyberSource id to the intent (the commands queued ahead of
// the script in guard's pipeline), with or without replicas to wait for;
// operations on the payment find its ledger through it.
func TestFinishIndexesThePayment(t *testing.T) {
	redisStore, _ := store(t)
	for name, s := range map[string]paymentIndex{
		"Redis":  redisStore,
		"Memory": idempotency.NewMemory(time.Now, time.Hour),
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			const pid = "7000000000000000000042"
			if id, err := s.PaymentIntent(ctx, pid); err != nil || id != "" {
				t.Fatalf("index before Finish: %q %v", id, err)
			}
			c, err := s.Claim(ctx, "i1", "fp", idempotency.NewOwner(), time.Minute)
			if err != nil || c.State != idempotency.Claimed {
				t.Fatalf("claim: %+v %v", c, err)
			}
			out := idempotency.Outcome{Result: []byte(`{}`), Payment: &idempotency.Payment{CyberSourceID: pid, Currency: "USD", Authorized: 100_0000, MerchantID: "m1"}}
			if err := s.Finish(ctx, c.Attempt, out); err != nil {
				t.Fatal(err)
			}
			if id, err := s.PaymentIntent(ctx, pid); err != nil || id != "i1" {
				t.Fatalf("index after Finish: %q %v, want i1", id, err)
			}
		})
	}
}

// TestNotReplicatedStepsFail: a guard step whose write fewer replicas
// acknowledged than MinReplicas fails with ErrNotReplicated, although its
// script succeeded: a failover could lose the write, so the caller must
// not count the step.
func TestNotReplicatedStepsFail(t *testing.T) {
	r := harness.StartRedis(t) // no replica
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr(), MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	plain := idempotency.New(rdb, idempotency.Options{Retention: time.Hour})
	waiting := idempotency.New(rdb, idempotency.Options{Retention: time.Hour, MinReplicas: 1, ReplicaTimeout: 50 * time.Millisecond})
	ctx := context.Background()
	for name, step := range map[string]func(idempotency.Attempt) error{
		"Extend":      func(a idempotency.Attempt) error { return waiting.Extend(ctx, a, time.Minute) },
		"MarkUnknown": func(a idempotency.Attempt) error { return waiting.MarkUnknown(ctx, a) },
		"Finish": func(a idempotency.Attempt) error {
			return waiting.Finish(ctx, a, idempotency.Outcome{Result: []byte(`{}`)})
		},
		"Advance": func(a idempotency.Attempt) error {
			_, err := waiting.Advance(ctx, a, time.Minute, "fp")
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := plain.Claim(ctx, "i-"+name, "fp", idempotency.NewOwner(), time.Minute)
			if err != nil || c.State != idempotency.Claimed {
				t.Fatalf("claim: %+v %v", c, err)
			}
			if err := step(c.Attempt); !errors.Is(err, idempotency.ErrNotReplicated) {
				t.Fatalf("%s without a replica: %v, want ErrNotReplicated", name, err)
			}
		})
	}
	// The settlement ledger's guard steps.
	c, err := plain.Claim(ctx, "pay", "fp", idempotency.NewOwner(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := plain.Finish(ctx, c.Attempt, idempotency.Outcome{Result: []byte(`{}`), Payment: &idempotency.Payment{CyberSourceID: "7000000000000000000043", Currency: "USD", Authorized: 100_0000, MerchantID: "m1"}}); err != nil {
		t.Fatal(err)
	}
	op := idempotency.Attempt{IntentID: "capture-1", Owner: "o", N: 1}
	if _, _, err := waiting.Reserve(ctx, "pay", "m1", "capture", op, 10_0000); !errors.Is(err, idempotency.ErrNotReplicated) {
		t.Fatalf("Reserve without a replica: %v, want ErrNotReplicated", err)
	}
	if err := waiting.AdvanceChain(ctx, "m1", "root", "tx1", time.Now()); !errors.Is(err, idempotency.ErrNotReplicated) {
		t.Fatalf("AdvanceChain without a replica: %v, want ErrNotReplicated", err)
	}
}

// TestMemoryFailoverKeepsReplicatedWrites: the in-memory store's model of
// replication (used by internal/payment's simulation): a failover keeps
// what was replicated, by a guard's WAIT or by Replicate, and loses what
// was not.
func TestMemoryFailoverKeepsReplicatedWrites(t *testing.T) {
	ctx := context.Background()
	m := idempotency.NewMemory(time.Now, time.Hour)
	m.MinReplicas = 1
	if c, err := m.Claim(ctx, "waited", "fp", idempotency.NewOwner(), time.Minute); err != nil || c.State != idempotency.Claimed {
		t.Fatalf("claim: %+v %v", c, err)
	}
	m.MinReplicas = 0
	for _, id := range []string{"replicated", "lost"} {
		if c, err := m.Claim(ctx, id, "fp", idempotency.NewOwner(), time.Minute); err != nil || c.State != idempotency.Claimed {
			t.Fatalf("claim %s: %+v %v", id, c, err)
		}
	}
	m.Replicate(idempotency.Key("replicated"))
	if lost := m.Failover(); lost != 1 {
		t.Fatalf("failover lost %d keys, want 1", lost)
	}
	for id, kept := range map[string]bool{"waited": true, "replicated": true, "lost": false} {
		if got := m.Fields(idempotency.Key(id)) != nil; got != kept {
			t.Errorf("%s: kept %v after the failover, want %v", id, got, kept)
		}
	}
}

// TestMemoryClaimLease: the in-memory store's claim takes a lease that
// ends lease after the claim: another claim within it is busy for the
// rest of it, and one at its very end finds it lost (unknown), as the
// claim script's `l > now` does.
func TestMemoryClaimLease(t *testing.T) {
	ctx := context.Background()
	now := time.UnixMilli(1_700_000_000_000)
	m := memoryAt(&now)
	const lease = time.Minute
	if c, err := m.Claim(ctx, "i1", "fp", "a", lease); err != nil || c.State != idempotency.Claimed {
		t.Fatalf("claim: %+v %v", c, err)
	}
	now = now.Add(lease / 4)
	if c, err := m.Claim(ctx, "i1", "fp", "b", lease); err != nil || c.State != idempotency.Busy || c.Wait != lease-lease/4 {
		t.Fatalf("claim within the lease: %+v %v, want busy for %v", c, err, lease-lease/4)
	}
	now = now.Add(lease - lease/4)
	if c, err := m.Claim(ctx, "i1", "fp", "b", lease); err != nil || c.State != idempotency.Unknown {
		t.Fatalf("claim at the lease's end: %+v %v, want unknown", c, err)
	}
}

// TestMemoryReopenAndResolveTimes: the in-memory store's reopen takes a
// lease from now, and its resolution begins once the delay since the
// attempt turned unknown has passed, not before (the same as the scripts,
// with the store's clock in place of Redis's).
func TestMemoryReopenAndResolveTimes(t *testing.T) {
	ctx := context.Background()
	now := time.UnixMilli(1_700_000_000_000)
	m := memoryAt(&now)
	const lease, delay = time.Minute, 10 * time.Second

	c, err := m.Claim(ctx, "reopened", "fp", "a", lease)
	if err != nil || c.State != idempotency.Claimed {
		t.Fatalf("claim: %+v %v", c, err)
	}
	if err := m.Finish(ctx, c.Attempt, idempotency.Outcome{Result: []byte(`{}`), Letter: &idempotency.Letter{Class: "exhausted", Reason: "budget"}}); err != nil {
		t.Fatal(err)
	}
	if r, err := m.Reopen(ctx, c.Attempt, "fp", "exhausted", lease); err != nil || r.State != idempotency.Claimed {
		t.Fatalf("reopen: %+v %v", r, err)
	}
	if b, err := m.Claim(ctx, "reopened", "fp", "b", lease); err != nil || b.State != idempotency.Busy || b.Wait != lease {
		t.Fatalf("claim after the reopen: %+v %v, want busy for %v", b, err, lease)
	}

	c, err = m.Claim(ctx, "resolved", "fp", "a", lease)
	if err != nil || c.State != idempotency.Claimed {
		t.Fatalf("claim: %+v %v", c, err)
	}
	if err := m.MarkUnknown(ctx, c.Attempt); err != nil {
		t.Fatal(err)
	}
	now = now.Add(delay / 2)
	if wait, ok, err := m.BeginResolve(ctx, c.Attempt, lease, delay); err != nil || ok || wait != delay/2 {
		t.Fatalf("resolve halfway through the delay: wait %v, ok %v, %v; want to wait %v", wait, ok, err, delay/2)
	}
	now = now.Add(delay / 2)
	if wait, ok, err := m.BeginResolve(ctx, c.Attempt, lease, delay); err != nil || !ok || wait != 0 {
		t.Fatalf("resolve once the delay has passed: wait %v, ok %v, %v", wait, ok, err)
	}
	if b, err := m.Claim(ctx, "resolved", "fp", "b", lease); err != nil || b.State != idempotency.Busy || b.Wait != lease {
		t.Fatalf("claim while resolving: %+v %v, want busy for %v", b, err, lease)
	}
}

// TestMemoryAdvanceAndExtendLeases: the in-memory store's Advance and
// Extend give the caller a lease that ends lease from now.
func TestMemoryAdvanceAndExtendLeases(t *testing.T) {
	ctx := context.Background()
	now := time.UnixMilli(1_700_000_000_000)
	m := memoryAt(&now)
	const lease = time.Minute
	busyFor := func(what string, want time.Duration) {
		t.Helper()
		if b, err := m.Claim(ctx, "i1", "fp", "other", lease); err != nil || b.State != idempotency.Busy || b.Wait != want {
			t.Fatalf("claim after %s: %+v %v, want busy for %v", what, b, err, want)
		}
	}
	c, err := m.Claim(ctx, "i1", "fp", "a", lease)
	if err != nil || c.State != idempotency.Claimed {
		t.Fatalf("claim: %+v %v", c, err)
	}
	now = now.Add(lease / 2)
	if err := m.Extend(ctx, c.Attempt, lease); err != nil {
		t.Fatal(err)
	}
	busyFor("Extend", lease)
	now = now.Add(lease / 2)
	if _, err := m.Advance(ctx, c.Attempt, 2*lease, "fp"); err != nil {
		t.Fatal(err)
	}
	busyFor("Advance", 2*lease)
}

// TestMemoryNotReplicatedStepsFail: the in-memory store's model of WAIT
// fails a guard step with ErrNotReplicated when the replica does not
// acknowledge it, as the Redis store does (TestNotReplicatedStepsFail).
func TestMemoryNotReplicatedStepsFail(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		op   string
		step func(m *idempotency.Memory, a idempotency.Attempt) error
	}{
		{idempotency.OpAdvance, func(m *idempotency.Memory, a idempotency.Attempt) error {
			_, err := m.Advance(ctx, a, time.Minute, "fp")
			return err
		}},
		{idempotency.OpExtend, func(m *idempotency.Memory, a idempotency.Attempt) error { return m.Extend(ctx, a, time.Minute) }},
		{idempotency.OpMarkUnknown, func(m *idempotency.Memory, a idempotency.Attempt) error { return m.MarkUnknown(ctx, a) }},
		{idempotency.OpFinish, func(m *idempotency.Memory, a idempotency.Attempt) error {
			return m.Finish(ctx, a, idempotency.Outcome{Result: []byte(`{}`)})
		}},
		{idempotency.OpReopen, func(m *idempotency.Memory, a idempotency.Attempt) error {
			if err := m.Finish(ctx, a, idempotency.Outcome{Result: []byte(`{}`), Letter: &idempotency.Letter{Class: "exhausted"}}); err != nil {
				return err
			}
			_, err := m.Reopen(ctx, a, "fp", "exhausted", time.Minute)
			return err
		}},
	} {
		t.Run(tc.op, func(t *testing.T) {
			m := idempotency.NewMemory(time.Now, time.Hour)
			m.MinReplicas = 1
			m.ReplicaDown = func(op string) bool { return op == tc.op }
			c, err := m.Claim(ctx, "i1", "fp", idempotency.NewOwner(), time.Minute)
			if err != nil || c.State != idempotency.Claimed {
				t.Fatalf("claim: %+v %v", c, err)
			}
			if err := tc.step(m, c.Attempt); !errors.Is(err, idempotency.ErrNotReplicated) {
				t.Fatalf("%s with the replica down: %v, want ErrNotReplicated", tc.op, err)
			}
		})
	}
}

// callbackMarks is what TestCallbackMarks needs of a store.
type callbackMarks interface {
	Claim(ctx context.Context, intentID, fingerprint, owner string, lease time.Duration) (idempotency.Claim, error)
	MarkCallbackDelivered(ctx context.Context, intentID, transactionID string) error
	CallbackDelivered(ctx context.Context, intentID, transactionID string) (bool, error)
}

// TestCallbackMarks: a delivered callback is marked for its transaction
// only, in both stores (the in-memory one had no test of a mark that
// sticks).
func TestCallbackMarks(t *testing.T) {
	redisStore, _ := store(t)
	for name, s := range map[string]callbackMarks{
		"Redis":  redisStore,
		"Memory": idempotency.NewMemory(time.Now, time.Hour),
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			if c, err := s.Claim(ctx, "i1", "fp", idempotency.NewOwner(), time.Minute); err != nil || c.State != idempotency.Claimed {
				t.Fatalf("claim: %+v %v", c, err)
			}
			if err := s.MarkCallbackDelivered(ctx, "i1", "tx1"); err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				intent, tx string
				want       bool
			}{{"i1", "tx1", true}, {"i1", "tx2", false}, {"i2", "tx1", false}} {
				if got, err := s.CallbackDelivered(ctx, tc.intent, tc.tx); err != nil || got != tc.want {
					t.Fatalf("CallbackDelivered(%s, %s) = %v %v, want %v", tc.intent, tc.tx, got, err, tc.want)
				}
			}
		})
	}
}

// TestMemoryFailHook: the in-memory store's Fail hook (Redis unreachable,
// for the payment logic's tests) fails every operation with its error
// (History, which operators read, is not behind it).
func TestMemoryFailHook(t *testing.T) {
	ctx := context.Background()
	down := errors.New("redis: connection refused")
	m := idempotency.NewMemory(time.Now, time.Hour)
	c, err := m.Claim(ctx, "i1", "fp", "o", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	a := c.Attempt
	var asked []string
	m.Fail = func(op string) error { asked = append(asked, op); return down }
	for name, op := range map[string]func() error{
		"Claim":         func() error { _, err := m.Claim(ctx, "i2", "fp", "o", time.Minute); return err },
		"Reopen":        func() error { _, err := m.Reopen(ctx, a, "fp", "exhausted", time.Minute); return err },
		"BeginResolve":  func() error { _, _, err := m.BeginResolve(ctx, a, time.Minute, 0); return err },
		"Advance":       func() error { _, err := m.Advance(ctx, a, time.Minute, "fp"); return err },
		"Release":       func() error { return m.Release(ctx, a) },
		"MarkUnknown":   func() error { return m.MarkUnknown(ctx, a) },
		"Finish":        func() error { return m.Finish(ctx, a, idempotency.Outcome{Result: []byte(`{}`)}) },
		"ReversalDone":  func() error { return m.ReversalDone(ctx, "i1", "p1") },
		"Extend":        func() error { return m.Extend(ctx, a, time.Minute) },
		"State":         func() error { _, err := m.State(ctx, "i1"); return err },
		"Result":        func() error { _, err := m.Result(ctx, "i1"); return err },
		"MarkCallback":  func() error { return m.MarkCallbackDelivered(ctx, "i1", "tx") },
		"Callback":      func() error { _, err := m.CallbackDelivered(ctx, "i1", "tx"); return err },
		"PaymentIntent": func() error { _, err := m.PaymentIntent(ctx, "p1"); return err },
		"Reserve": func() error {
			_, _, err := m.Reserve(ctx, "i1", "m1", "capture", a, 1)
			return err
		},
		"Unreserve":       func() error { return m.Unreserve(ctx, "i1", "capture", a) },
		"LastTransaction": func() error { _, err := m.LastTransaction(ctx, "m1", "r"); return err },
		"AdvanceChain":    func() error { return m.AdvanceChain(ctx, "m1", "r", "tx", time.Now()) },
		"AppendHistory":   func() error { return m.AppendHistory(ctx, "i1", time.Hour, idempotency.Event{Kind: "claim"}) },
	} {
		if err := op(); !errors.Is(err, down) {
			t.Errorf("%s with Redis unreachable: %v, want its error", name, err)
		}
	}
	if len(asked) != 19 {
		t.Errorf("the hook was asked %d times, want once per operation (19)", len(asked))
	}
}

// TestMemoryHistoryKeepsTheLast: the in-memory store keeps the last
// HistoryMax events of an intent, as the Redis store's LTRIM does.
func TestMemoryHistoryKeepsTheLast(t *testing.T) {
	ctx := context.Background()
	m := idempotency.NewMemory(time.Now, time.Hour)
	events := make([]idempotency.Event, idempotency.HistoryMax+1)
	for i := range events {
		events[i] = idempotency.Event{Kind: "retry", Attempt: i}
	}
	if err := m.AppendHistory(ctx, "i1", time.Hour, events[:idempotency.HistoryMax]...); err != nil {
		t.Fatal(err)
	}
	if h, _ := m.History(ctx, "i1"); len(h) != idempotency.HistoryMax || h[0].Attempt != 0 {
		t.Fatalf("%d events kept of %d (first %+v)", len(h), idempotency.HistoryMax, h[0])
	}
	if err := m.AppendHistory(ctx, "i1", time.Hour, events[idempotency.HistoryMax]); err != nil {
		t.Fatal(err)
	}
	h, _ := m.History(ctx, "i1")
	if len(h) != idempotency.HistoryMax || h[0].Attempt != 1 || h[len(h)-1].Attempt != idempotency.HistoryMax {
		t.Fatalf("after one more: %d events, first attempt %d, last %d; want the last %d", len(h), h[0].Attempt, h[len(h)-1].Attempt, idempotency.HistoryMax)
	}
}

// TestReserveNothing: a reservation of 0 is refused (ErrNothingLeft) in
// both stores and takes nothing; only a negative amount means "all that is
// left".
func TestReserveNothing(t *testing.T) {
	redisStore, _ := store(t)
	type ledger interface {
		paymentIndex
		Reserve(ctx context.Context, paymentIntentID, merchant, kind string, a idempotency.Attempt, amount int64) (int64, string, error)
	}
	for name, s := range map[string]ledger{
		"Redis":  redisStore,
		"Memory": idempotency.NewMemory(time.Now, time.Hour),
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			c, err := s.Claim(ctx, "pay", "fp", idempotency.NewOwner(), time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			const authorized = 100_0000
			if err := s.Finish(ctx, c.Attempt, idempotency.Outcome{Result: []byte(`{}`), Payment: &idempotency.Payment{CyberSourceID: "7000000000000000000044", Currency: "USD", Authorized: authorized, MerchantID: "m1"}}); err != nil {
				t.Fatal(err)
			}
			zero := idempotency.Attempt{IntentID: "capture-0", Owner: "o", N: 1}
			if n, _, err := s.Reserve(ctx, "pay", "m1", "capture", zero, 0); !errors.Is(err, idempotency.ErrNothingLeft) || n != authorized {
				t.Fatalf("reserve 0: %d %v, want ErrNothingLeft with %d left", n, err, authorized)
			}
			all := idempotency.Attempt{IntentID: "capture-all", Owner: "o", N: 1}
			if n, _, err := s.Reserve(ctx, "pay", "m1", "capture", all, -1); err != nil || n != authorized {
				t.Fatalf("reserve all after a refused 0: %d %v, want %d", n, err, authorized)
			}
		})
	}
}

// TestChainOnlyMovesForward: a merchant's series of transactions keeps
// the latest one by time, in both stores: a late redelivery of an older
// transaction does not replace a newer one.
func TestChainOnlyMovesForward(t *testing.T) {
	redisStore, _ := store(t)
	type chain interface {
		AdvanceChain(ctx context.Context, merchant, root, transactionID string, at time.Time) error
		LastTransaction(ctx context.Context, merchant, root string) (string, error)
	}
	for name, s := range map[string]chain{
		"Redis":  redisStore,
		"Memory": idempotency.NewMemory(time.Now, time.Hour),
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			t0 := time.UnixMilli(1_700_000_000_000)
			for _, step := range []struct {
				tx   string
				at   time.Time
				last string
			}{
				{"tx1", t0, "tx1"},
				{"tx2", t0.Add(time.Minute), "tx2"},
				{"tx0", t0.Add(-time.Minute), "tx2"},
				// The same millisecond: the later call wins, as the script's >=.
				{"tx3", t0.Add(time.Minute), "tx3"},
			} {
				if err := s.AdvanceChain(ctx, "m1", "root", step.tx, step.at); err != nil {
					t.Fatal(err)
				}
				if last, err := s.LastTransaction(ctx, "m1", "root"); err != nil || last != step.last {
					t.Fatalf("after %s: last %q %v, want %q", step.tx, last, err, step.last)
				}
			}
		})
	}
}

// TestResultOfADoneIntent: Result gives the recorded result of a done
// intent, and nothing for one still charging or unknown, in both stores.
func TestResultOfADoneIntent(t *testing.T) {
	redisStore, _ := store(t)
	type results interface {
		paymentIndex
		Result(ctx context.Context, intentID string) ([]byte, error)
	}
	for name, s := range map[string]results{
		"Redis":  redisStore,
		"Memory": idempotency.NewMemory(time.Now, time.Hour),
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			c, err := s.Claim(ctx, "i1", "fp", idempotency.NewOwner(), time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if r, err := s.Result(ctx, "i1"); err != nil || r != nil {
				t.Fatalf("result while charging: %q %v", r, err)
			}
			want := []byte(`{"status":"AUTHORIZED"}`)
			if err := s.Finish(ctx, c.Attempt, idempotency.Outcome{Result: want}); err != nil {
				t.Fatal(err)
			}
			if r, err := s.Result(ctx, "i1"); err != nil || string(r) != string(want) {
				t.Fatalf("result when done: %q %v, want %q", r, err, want)
			}
			if r, err := s.Result(ctx, "unknown"); err != nil || r != nil {
				t.Fatalf("result of an unknown intent: %q %v", r, err)
			}
		})
	}
}

// memoryAt is an in-memory store on a clock the test moves through *now.
func memoryAt(now *time.Time) *idempotency.Memory {
	return idempotency.NewMemory(func() time.Time { return *now }, time.Hour)
}
