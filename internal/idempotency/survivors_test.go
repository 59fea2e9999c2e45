package idempotency_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ttcpay/payflow/internal/harness"
	"github.com/ttcpay/payflow/internal/idempotency"
)

// Tests for Lua mutants that survived the first run of the mutant table
// (lua_mutants_test.go, docs/mutation.md): what the conformance test does
// not see because it compares times only as set or unset.

// bothStores is what these tests need of each store, loaded with a record.
type bothStores interface {
	recordStore
	ReversalDone(ctx context.Context, intentID, paymentID string) error
	MarkCallbackDelivered(ctx context.Context, intentID, transactionID string) error
	CallbackDelivered(ctx context.Context, intentID, transactionID string) (bool, error)
	Reserve(ctx context.Context, paymentIntentID, merchant, kind string, a idempotency.Attempt, amount int64) (int64, string, error)
}

// eachStore runs f against the Lua store and the in-memory one, with load
// writing a record into the store under test.
func eachStore(t *testing.T, f func(t *testing.T, s bothStores, load func(id string, fields map[string]string), exists func(id string) bool)) {
	eachStoreTTL(t, func(t *testing.T, s bothStores, load func(string, map[string]string), exists func(string) bool, _ func(string) time.Duration) {
		f(t, s, load, exists)
	})
}

// eachStoreTTL is eachStore that also reads a record's TTL.
func eachStoreTTL(t *testing.T, f func(t *testing.T, s bothStores, load func(id string, fields map[string]string), exists func(id string) bool, ttl func(id string) time.Duration)) {
	r := harness.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	t.Run("lua", func(t *testing.T) {
		f(t, idempotency.New(rdb, idempotency.Options{Retention: time.Hour}),
			func(id string, fields map[string]string) {
				if err := rdb.HSet(context.Background(), idempotency.Key(id), fields).Err(); err != nil {
					t.Fatal(err)
				}
				rdb.PExpire(context.Background(), idempotency.Key(id), 10*time.Minute)
			},
			func(id string) bool { return rdb.Exists(context.Background(), idempotency.Key(id)).Val() == 1 },
			func(id string) time.Duration { return rdb.PTTL(context.Background(), idempotency.Key(id)).Val() })
	})
	t.Run("memory", func(t *testing.T) {
		m := idempotency.NewMemory(time.Now, time.Hour)
		f(t, m, func(id string, fields map[string]string) { m.LoadTTL(idempotency.Key(id), fields, 10*time.Minute) },
			func(id string) bool { return m.Fields(idempotency.Key(id)) != nil },
			func(id string) time.Duration { return m.TTL(idempotency.Key(id)) })
	})
}

// TestExpiredLeaseIsUnknownSinceItsEnd: a lease that ran out turns the
// record unknown as of the lease's end, not of the claim that noticed it:
// whatever the lost pod sent was sent before its lease ended, and the
// resolve delay counts from there (mutant claim/expired-unknown-since-now).
func TestExpiredLeaseIsUnknownSinceItsEnd(t *testing.T) {
	eachStore(t, func(t *testing.T, s bothStores, load func(string, map[string]string), _ func(string) bool) {
		end := time.Now().Add(-90 * time.Second).UnixMilli()
		load("i1", map[string]string{"s": "charging", "a": "1", "o": "gone", "l": strconv.FormatInt(end, 10)})
		c, err := s.Claim(context.Background(), "i1", "", "next", time.Minute)
		if err != nil || c.State != idempotency.Unknown {
			t.Fatalf("claim after the lease ran out: %+v %v", c, err)
		}
		if c.Since.UnixMilli() != end {
			t.Fatalf("unknown since %d, want the lease's end %d", c.Since.UnixMilli(), end)
		}
	})
}

// TestExtendRenewsTheLease: after Extend, the lease ends a whole lease from
// now: another pod's claim waits for it (mutant extend/lease-not-renewed).
func TestExtendRenewsTheLease(t *testing.T) {
	eachStore(t, func(t *testing.T, s bothStores, load func(string, map[string]string), _ func(string) bool) {
		ctx := context.Background()
		soon := time.Now().Add(2 * time.Second).UnixMilli()
		load("i1", map[string]string{"s": "charging", "a": "1", "o": "owner", "l": strconv.FormatInt(soon, 10)})
		if err := s.Extend(ctx, idempotency.Attempt{IntentID: "i1", Owner: "owner", N: 1}, time.Hour); err != nil {
			t.Fatal(err)
		}
		c, err := s.Claim(ctx, "i1", "", "other", time.Minute)
		if err != nil || c.State != idempotency.Busy {
			t.Fatalf("claim under the renewed lease: %+v %v", c, err)
		}
		// Generous: the lease was renewed by an hour, the old one had 2 s.
		if c.Wait < 30*time.Minute {
			t.Fatalf("the renewed lease ends in %v, want about the hour it was renewed for", c.Wait)
		}
	})
}

// TestReversalDoneClearsOnlyItsPayment: marking one payment reversed does
// not clear another payment's authorization still to reverse (mutant
// clearReversal/any-payment): that authorization would be held forever.
func TestReversalDoneClearsOnlyItsPayment(t *testing.T) {
	eachStore(t, func(t *testing.T, s bothStores, load func(string, map[string]string), _ func(string) bool) {
		ctx := context.Background()
		load("i1", map[string]string{"s": "done", "a": "1", "o": "owner", "r": `{"x":1}`, "rv": "p9|1.00|USD"})
		for _, id := range []string{"p8", "p"} {
			if err := s.ReversalDone(ctx, "i1", id); err != nil {
				t.Fatal(err)
			}
			if c, _ := s.Claim(ctx, "i1", "", "x", time.Minute); c.Reverse == nil {
				t.Fatalf("reversal of p9 cleared by ReversalDone(%s)", id)
			}
		}
		if err := s.ReversalDone(ctx, "i1", "p9"); err != nil {
			t.Fatal(err)
		}
		if c, _ := s.Claim(ctx, "i1", "", "x", time.Minute); c.Reverse != nil {
			t.Fatalf("reversal of p9 still to do after ReversalDone(p9): %+v", c.Reverse)
		}
	})
}

// TestMarkCallbackKeepsNoExpiredRecord: marking a callback delivered on a
// record that has expired does not bring it back as a key without a TTL
// (mutant markCallback/recreates-expired).
func TestMarkCallbackKeepsNoExpiredRecord(t *testing.T) {
	eachStore(t, func(t *testing.T, s bothStores, _ func(string, map[string]string), exists func(string) bool) {
		ctx := context.Background()
		if err := s.MarkCallbackDelivered(ctx, "gone", "7000"); err != nil {
			t.Fatal(err)
		}
		if exists("gone") {
			t.Fatal("marking a callback created the expired record")
		}
		if ok, err := s.CallbackDelivered(ctx, "gone", "7000"); ok || err != nil {
			t.Fatalf("callback delivered on a missing record: %v %v", ok, err)
		}
	})
}

// ledger is a done payment's record with its settlement ledger open:
// 100.00 authorized, nothing captured.
func ledger() map[string]string {
	return map[string]string{"s": "done", "a": "1", "o": "owner", "r": `{"x":1}`,
		"p_id": "p1", "p_cur": "USD", "p_auth": "1000000", "p_cap": "0", "p_m": "m1", "p_rev": "0", "p_ref": "0", "p_void": "0"}
}

// TestReserveBounds: a settlement operation reserves at most what is left,
// to the unit; a payment the service does not know is refused as such, not
// with a script error; a reservation renews the record's retention
// (mutants reserve/more-than-left, reserve/unknown-payment, reserve/no-ttl).
func TestReserveBounds(t *testing.T) {
	eachStoreTTL(t, func(t *testing.T, s bothStores, load func(string, map[string]string), _ func(string) bool, ttl func(string) time.Duration) {
		ctx := context.Background()
		load("pay", ledger())
		if _, _, err := s.Reserve(ctx, "pay", "m1", "capture", idempotency.Attempt{IntentID: "cap1", Owner: "o", N: 1}, 1000001); !errors.Is(err, idempotency.ErrNothingLeft) {
			t.Fatalf("capture of one unit more than authorized: %v, want ErrNothingLeft", err)
		}
		if n, cur, err := s.Reserve(ctx, "pay", "m1", "capture", idempotency.Attempt{IntentID: "cap2", Owner: "o", N: 1}, 1000000); err != nil || n != 1000000 || cur != "USD" {
			t.Fatalf("capture of all that is authorized: %d %s %v", n, cur, err)
		}
		if d := ttl("pay"); d < 30*time.Minute {
			t.Fatalf("record's TTL %v after a reservation, want the retention (an hour)", d)
		}
		if _, _, err := s.Reserve(ctx, "missing", "m1", "capture", idempotency.Attempt{IntentID: "cap3", Owner: "o", N: 1}, 100); !errors.Is(err, idempotency.ErrUnknownPayment) {
			t.Fatalf("capture of an unknown payment: %v, want ErrUnknownPayment", err)
		}
	})
}

// TestAdvanceChainRenewsItsTTL: a stored-credential series that is used
// lives on: each transaction renews its key to the retention (mutant
// advanceChain/no-ttl).
func TestAdvanceChainRenewsItsTTL(t *testing.T) {
	r := harness.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	s := idempotency.New(rdb, idempotency.Options{Retention: time.Hour})
	m := idempotency.NewMemory(time.Now, time.Hour)
	k := idempotency.ChainKey("m1", "root")
	rdb.HSet(ctx, k, "last", "t0", "at", "1")
	rdb.PExpire(ctx, k, 10*time.Minute)
	m.LoadTTL(k, map[string]string{"last": "t0", "at": "1"}, 10*time.Minute)
	for name, st := range map[string]interface {
		AdvanceChain(ctx context.Context, merchant, root, transactionID string, at time.Time) error
	}{"lua": s, "memory": m} {
		if err := st.AdvanceChain(ctx, "m1", "root", "t1", time.Now()); err != nil {
			t.Fatal(err)
		}
		ttl := rdb.PTTL(ctx, k).Val()
		if name == "memory" {
			ttl = m.TTL(k)
		}
		if ttl < 30*time.Minute {
			t.Fatalf("%s: the series' TTL is %v after a transaction, want the retention (an hour)", name, ttl)
		}
	}
}
