package idempotency_test

import (
	"context"
	"errors"
	"fmt"
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
	return idempotency.New(rdb, idempotency.Options{Retention: time.Hour}), r
}

func TestStateMachine(t *testing.T) {
	s, _ := store(t)
	ctx := context.Background()
	a, b := idempotency.NewOwner(), idempotency.NewOwner()

	c, err := s.Claim(ctx, "i1", "", a, time.Minute)
	if err != nil || c.State != idempotency.Claimed || c.Attempt.N != 1 {
		t.Fatalf("first claim %+v %v", c, err)
	}
	if c, _ := s.Claim(ctx, "i1", "", b, time.Minute); c.State != idempotency.Busy || c.Wait <= 0 {
		t.Fatalf("second claim under a live lease: %+v", c)
	}
	// 401: nothing charged, next attempt.
	if n, err := s.Advance(ctx, idempotency.Attempt{IntentID: "i1", Owner: a, N: 1}, time.Minute, ""); err != nil || n.N != 2 {
		t.Fatalf("advance %+v %v", n, err)
	}
	if _, err := s.Advance(ctx, idempotency.Attempt{IntentID: "i1", Owner: b, N: 2}, time.Minute, ""); !errors.Is(err, idempotency.ErrConflict) {
		t.Fatalf("advance by a non-owner: %v", err)
	}
	// Unknown outcome, then resolution after the delay.
	if err := s.MarkUnknown(ctx, idempotency.Attempt{IntentID: "i1", Owner: a, N: 2}); err != nil {
		t.Fatal(err)
	}
	c, _ = s.Claim(ctx, "i1", "", b, time.Minute)
	if c.State != idempotency.Unknown || c.Attempt.N != 2 {
		t.Fatalf("claim of unknown: %+v", c)
	}
	wait, ok, err := s.BeginResolve(ctx, idempotency.Attempt{IntentID: "i1", Owner: b, N: 2}, time.Minute, 300*time.Millisecond)
	if err != nil || ok || wait <= 0 || wait > 300*time.Millisecond {
		t.Fatalf("early resolve: %v %v %v", wait, ok, err)
	}
	time.Sleep(wait + 10*time.Millisecond)
	if _, ok, err := s.BeginResolve(ctx, idempotency.Attempt{IntentID: "i1", Owner: b, N: 2}, time.Minute, 300*time.Millisecond); !ok || err != nil {
		t.Fatalf("resolve: %v %v", ok, err)
	}
	if _, _, err := s.BeginResolve(ctx, idempotency.Attempt{IntentID: "i1", Owner: a, N: 2}, time.Minute, 0); !errors.Is(err, idempotency.ErrConflict) {
		t.Fatalf("second resolver: %v", err)
	}
	n, err := s.Advance(ctx, idempotency.Attempt{IntentID: "i1", Owner: b, N: 2}, time.Minute, "")
	if err != nil || n.N != 3 {
		t.Fatalf("after reversal: %+v %v", n, err)
	}
	if err := s.Finish(ctx, idempotency.Attempt{IntentID: "i1", Owner: a, N: 3}, idempotency.Outcome{Result: []byte(`{"x":1}`)}); !errors.Is(err, idempotency.ErrConflict) {
		t.Fatalf("finish by the old owner: %v", err)
	}
	if err := s.Finish(ctx, idempotency.Attempt{IntentID: "i1", Owner: b, N: 3}, idempotency.Outcome{Result: []byte(`{"x":1}`)}); err != nil {
		t.Fatal(err)
	}
	c, _ = s.Claim(ctx, "i1", "", a, time.Minute)
	if c.State != idempotency.Done || string(c.Result) != `{"x":1}` {
		t.Fatalf("claim of done: %+v", c)
	}
	// Release: nothing sent; the next claim takes the next attempt.
	c, _ = s.Claim(ctx, "i2", "", a, time.Minute)
	if err := s.Release(ctx, c.Attempt); err != nil {
		t.Fatal(err)
	}
	if c, _ := s.Claim(ctx, "i2", "", b, time.Minute); c.State != idempotency.Claimed || c.Attempt.N != 2 {
		t.Fatalf("claim after release: %+v", c)
	}
}

func TestLostLeaseBecomesUnknown(t *testing.T) {
	s, _ := store(t)
	ctx := context.Background()
	a, b := idempotency.NewOwner(), idempotency.NewOwner()
	if c, _ := s.Claim(ctx, "i", "", a, 100*time.Millisecond); c.State != idempotency.Claimed {
		t.Fatal(c)
	}
	time.Sleep(150 * time.Millisecond)
	c, err := s.Claim(ctx, "i", "", b, time.Minute)
	if err != nil || c.State != idempotency.Unknown || c.Attempt.N != 1 || c.Since.After(c.Now) {
		t.Fatalf("after the owner vanished: %+v %v", c, err)
	}
	// The vanished owner comes back: every write is refused.
	if err := s.Finish(ctx, idempotency.Attempt{IntentID: "i", Owner: a, N: 1}, idempotency.Outcome{Result: []byte("{}")}); !errors.Is(err, idempotency.ErrConflict) {
		t.Fatalf("late finish: %v", err)
	}
	if err := s.Extend(ctx, idempotency.Attempt{IntentID: "i", Owner: a, N: 1}, time.Minute); !errors.Is(err, idempotency.ErrConflict) {
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
			c, err := s.Claim(ctx, "hot", "", idempotency.NewOwner(), time.Minute)
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
	if _, err := s.Claim(ctx, "i", "", "o", time.Minute); err == nil {
		t.Fatal("claimed without Redis")
	}
}

// TestReopenAndMaybeApplied: a record that once had an unknown outcome says
// so to every later claim (a released attempt does not forget it), and a
// done record is reopened only for the dead letter it holds, by the attempt
// that finished it, and only once.
func TestReopenAndMaybeApplied(t *testing.T) {
	s, _ := store(t)
	ctx := context.Background()
	a, b := idempotency.NewOwner(), idempotency.NewOwner()

	c, _ := s.Claim(ctx, "v1", "fp", a, time.Minute)
	if c.MaybeApplied {
		t.Fatalf("a first claim says an earlier attempt may have applied: %+v", c)
	}
	if err := s.MarkUnknown(ctx, c.Attempt); err != nil {
		t.Fatal(err)
	}
	c, _ = s.Claim(ctx, "v1", "fp", b, time.Minute)
	if c.State != idempotency.Unknown || !c.MaybeApplied {
		t.Fatalf("claim of an unknown attempt: %+v", c)
	}
	if _, ok, err := s.BeginResolve(ctx, c.Attempt, time.Minute, 0); !ok || err != nil {
		t.Fatalf("resolve: %v %v", ok, err)
	}
	next, err := s.Advance(ctx, c.Attempt, time.Minute, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Release(ctx, next); err != nil { // a transient failure before the resend
		t.Fatal(err)
	}
	c, _ = s.Claim(ctx, "v1", "fp", a, time.Minute)
	if c.State != idempotency.Claimed || c.Attempt.N != 3 || !c.MaybeApplied {
		t.Fatalf("claim after a released resend: %+v; want attempt 3 that may find attempt 1 applied", c)
	}

	// Done with a "rejected" letter: reopened once, by its attempt.
	rejected := &idempotency.Letter{Class: "rejected", Reason: "refused"}
	if err := s.Finish(ctx, c.Attempt, idempotency.Outcome{Result: []byte(`{"status":"REJECTED"}`), Letter: rejected}); err != nil {
		t.Fatal(err)
	}
	done, _ := s.Claim(ctx, "v1", "fp", b, time.Minute)
	if done.State != idempotency.Done || done.Attempt.N != 3 || done.Letter == nil || done.Letter.Class != "rejected" {
		t.Fatalf("claim of the done record: %+v", done)
	}
	if _, err := s.Reopen(ctx, idempotency.Attempt{IntentID: "v1", Owner: b, N: 3}, "fp", "exhausted", time.Minute); !errors.Is(err, idempotency.ErrConflict) {
		t.Fatalf("reopen for another class: %v", err)
	}
	if _, err := s.Reopen(ctx, idempotency.Attempt{IntentID: "v1", Owner: b, N: 2}, "fp", "rejected", time.Minute); !errors.Is(err, idempotency.ErrConflict) {
		t.Fatalf("reopen by a stale attempt: %v", err)
	}
	if r, err := s.Reopen(ctx, idempotency.Attempt{IntentID: "v1", Owner: b, N: 3}, "other", "rejected", time.Minute); err != nil || r.State != idempotency.Conflict {
		t.Fatalf("reopen with another fingerprint: %+v %v", r, err)
	}
	r, err := s.Reopen(ctx, idempotency.Attempt{IntentID: "v1", Owner: b, N: 3}, "fp", "rejected", time.Minute)
	if err != nil || r.State != idempotency.Claimed || r.Attempt.N != 4 || r.Attempt.Owner != b || !r.MaybeApplied {
		t.Fatalf("reopen: %+v %v", r, err)
	}
	if _, err := s.Reopen(ctx, idempotency.Attempt{IntentID: "v1", Owner: a, N: 3}, "fp", "rejected", time.Minute); !errors.Is(err, idempotency.ErrConflict) {
		t.Fatalf("second reopen: %v", err)
	}
	if res, _ := s.Result(ctx, "v1"); res != nil {
		t.Fatalf("a reopened record still answers its old result %s", res)
	}

	// Never reopened: an authorization to reverse, a payment ledger (which
	// classes say "not charged" is the caller's to decide).
	for i, out := range []idempotency.Outcome{
		{Result: []byte(`{}`), Letter: rejected, Reverse: &idempotency.Reversal{PaymentID: "p1", Amount: "1.00", Currency: "USD"}},
		{Result: []byte(`{}`), Letter: rejected, Payment: &idempotency.Payment{CyberSourceID: "p2", Currency: "USD", Authorized: 100, MerchantID: "m1"}},
	} {
		id := "never-" + string(rune('a'+i))
		c, _ := s.Claim(ctx, id, "fp", a, time.Minute)
		if err := s.Finish(ctx, c.Attempt, out); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Reopen(ctx, idempotency.Attempt{IntentID: id, Owner: b, N: 1}, "fp", out.Letter.Class, time.Minute); !errors.Is(err, idempotency.ErrConflict) {
			t.Errorf("%s: reopened: %v", id, err)
		}
	}
}

// TestFingerprintParts: the conflict rule of "F|G" fingerprints, the same
// in Go and in the Lua (a claim on a record written with stored).
func TestFingerprintParts(t *testing.T) {
	s, r := store(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	for i, tc := range []struct {
		stored, given string
		conflict      bool
		left          string // the record's fingerprint after a claim
	}{
		{"u1:a|g1", "u1:a|g1", false, "u1:a|g1"},
		{"u1:a|g1", "u1:b|g1", true, ""},                   // same scheme, another card
		{"u1:a|g1", "u1:a|g2", true, ""},                   // another merchant or amount
		{"kA:a|g1", "kB:b|g1", false, "kA:a,kB:b|g1"},      // another key: F not compared, the new scheme kept
		{"kA:a|g1", "u1:b|g1", false, ""},                  // a pod without keys
		{"kA:a,u1:c|g1", "kB:b,u1:c|g1", false, ""},        // a rotation: the unkeyed part agrees
		{"kA:a,u1:c|g1", "kB:b,u1:d|g1", true, ""},         // ... or tells another card
		{"u1:c|g1", "kA:a,u1:d|g1", true, ""},              // keys added: compared on the unkeyed part
		{"kA:a,kB:b|g1", "kB:x|g1", true, ""},              // a scheme the record has, in any place
		{"kA:a|g1", "kB:b|g2", true, ""},                   // G still compared
		{"kA:a|g1", "|g1", false, ""},                      // a pod that cannot read the card
		{"kA:a|g1", "|g2", true, ""},                       // ... and another intent
		{"|g1", "kA:a|g1", false, "kA:a|g1"},               // the card's part is added
		{"0123abcd", "u1:a|g1", false, "0123abcd,u1:a|g1"}, // a fingerprint from before G
		{"", "u1:a|g1", false, "u1:a|g1"},
	} {
		if got := idempotency.FingerprintsConflict(tc.stored, tc.given); got != tc.conflict {
			t.Errorf("FingerprintsConflict(%q, %q) = %v", tc.stored, tc.given, got)
		}
		id := fmt.Sprintf("fp-%d", i)
		if tc.stored != "" {
			if err := rdb.HSet(ctx, idempotency.Key(id), "s", "idle", "a", "1", "f", tc.stored).Err(); err != nil {
				t.Fatal(err)
			}
		}
		c, err := s.Claim(ctx, id, tc.given, "o", time.Minute)
		if err != nil || (c.State == idempotency.Conflict) != tc.conflict {
			t.Errorf("%q then %q: claim %+v %v", tc.stored, tc.given, c, err)
		}
		if tc.left != "" {
			if f := rdb.HGet(ctx, idempotency.Key(id), "f").Val(); f != tc.left {
				t.Errorf("%q then %q: record keeps %q, want %q", tc.stored, tc.given, f, tc.left)
			}
		}
	}
}
