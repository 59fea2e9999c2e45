package idempotency_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ttcpay/payflow/internal/harness"
	"github.com/ttcpay/payflow/internal/idempotency"
)

// recordStore is what both stores offer to the conformance test.
type recordStore interface {
	Claim(ctx context.Context, intentID, fingerprint, owner string, lease time.Duration) (idempotency.Claim, error)
	Extend(ctx context.Context, a idempotency.Attempt, lease time.Duration) error
	Release(ctx context.Context, a idempotency.Attempt) error
	Advance(ctx context.Context, a idempotency.Attempt, lease time.Duration, fingerprint string) (idempotency.Attempt, error)
	MarkUnknown(ctx context.Context, a idempotency.Attempt) error
	BeginResolve(ctx context.Context, a idempotency.Attempt, lease, delay time.Duration) (time.Duration, bool, error)
	Finish(ctx context.Context, a idempotency.Attempt, out idempotency.Outcome) error
	Reopen(ctx context.Context, a idempotency.Attempt, fingerprint, class string, lease time.Duration) (idempotency.Claim, error)
}

// fixtures are the records of each state the table moves between. Times are
// relative to now (ms); "live" leases end a minute ahead, "expired" ones a
// minute ago.
func fixture(state string, now int64, expiredLease bool) map[string]string {
	lease := now + 60_000
	if expiredLease {
		lease = now - 60_000
	}
	switch state {
	case idempotency.StateIdle:
		return map[string]string{"s": "idle", "a": "1", "f": "fp"}
	case idempotency.StateCharging:
		return map[string]string{"s": "charging", "a": "1", "o": "owner", "l": strconv.FormatInt(lease, 10), "f": "fp"}
	case idempotency.StateUnknown:
		return map[string]string{"s": "unknown", "a": "1", "u": strconv.FormatInt(now-120_000, 10), "f": "fp"}
	case idempotency.StateResolving:
		return map[string]string{"s": "resolving", "a": "1", "o": "owner", "l": strconv.FormatInt(lease, 10), "u": strconv.FormatInt(now-120_000, 10), "f": "fp"}
	case idempotency.StateDone:
		return map[string]string{"s": "done", "a": "1", "o": "owner", "r": `{"x":1}`, "f": "fp", "dc": "unknown-outcome", "dr": "why", "rv": "p9|1.00|USD"}
	case fixtureRejected: // done, definitely not charged: an operator may replay it
		return map[string]string{"s": "done", "a": "1", "o": "owner", "r": `{"x":1}`, "f": "fp", "dc": "rejected", "dr": "why", "m": "1"}
	case fixtureIdleMaybe: // released after an attempt that had an unknown outcome
		return map[string]string{"s": "idle", "a": "2", "f": "fp", "m": "1"}
	}
	return nil
}

// Fixtures beyond the stored states.
const (
	fixtureRejected  = "done-rejected"
	fixtureIdleMaybe = "idle-maybe"
)

// apply runs one operation of the table and describes its answer without
// times (the two clocks differ by microseconds).
func apply(ctx context.Context, s recordStore, op string, h idempotency.Attempt, fingerprint string) string {
	class := func(err error) string {
		switch {
		case err == nil:
			return "ok"
		case errors.Is(err, idempotency.ErrConflict):
			return "conflict"
		}
		return "error"
	}
	switch op {
	case idempotency.OpClaim:
		c, err := s.Claim(ctx, h.IntentID, fingerprint, h.Owner, time.Minute)
		return fmt.Sprintf("%s state=%d attempt=%d waits=%v result=%s letter=%v reverse=%v maybe=%v", class(err), c.State, c.Attempt.N, c.Wait > 0, c.Result, c.Letter, c.Reverse, c.MaybeApplied)
	case idempotency.OpReopen:
		c, err := s.Reopen(ctx, h, fingerprint, "rejected", time.Minute)
		return fmt.Sprintf("%s state=%d attempt=%d maybe=%v", class(err), c.State, c.Attempt.N, c.MaybeApplied)
	case idempotency.OpExtend:
		return class(s.Extend(ctx, h, time.Minute))
	case idempotency.OpRelease:
		return class(s.Release(ctx, h))
	case idempotency.OpAdvance:
		a, err := s.Advance(ctx, h, time.Minute, fingerprint)
		return fmt.Sprintf("%s attempt=%d", class(err), a.N)
	case idempotency.OpMarkUnknown:
		return class(s.MarkUnknown(ctx, h))
	case idempotency.OpBeginResolve:
		w, ok, err := s.BeginResolve(ctx, h, time.Minute, 60*time.Second)
		return fmt.Sprintf("%s ok=%v waits=%v", class(err), ok, w > 0)
	case idempotency.OpFinish:
		return class(s.Finish(ctx, h, idempotency.Outcome{Result: []byte(`{"y":2}`),
			Payment: &idempotency.Payment{CyberSourceID: "p1", Currency: "USD", Authorized: 10000, MerchantID: "m1"},
			Letter:  &idempotency.Letter{Class: "unknown-outcome", Reason: "r"}}))
	}
	panic(op)
}

// shape describes stored fields without time values: which are set, and the
// values of those that are not times.
func shape(fields map[string]string) string {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		switch {
		case k == "l" || k == "u":
			b.WriteString(k + "=<t> ")
		default:
			b.WriteString(k + "=" + fields[k] + " ")
		}
	}
	return b.String()
}

// ttlClass names a key's TTL for comparison: renewed to the retention (an
// hour here), left as the fixture's 10 minutes, or none.
func ttlClass(d time.Duration) string {
	switch {
	case d > 30*time.Minute:
		return "renewed"
	case d > 0:
		return "kept"
	}
	return "none"
}

// TestMemoryConformsToLua drives both stores from the state table: every
// operation from every state (live and expired leases), with the caller's
// own handle and with a stale owner or attempt, must answer the same and
// leave the same record.
func TestMemoryConformsToLua(t *testing.T) {
	r := harness.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	redisStore := idempotency.New(rdb, idempotency.Options{Retention: time.Hour})
	handles := map[string]struct {
		h  idempotency.Attempt
		fp string
	}{
		"own":              {idempotency.Attempt{Owner: "owner", N: 1}, "fp"},
		"staleOwner":       {idempotency.Attempt{Owner: "other", N: 1}, "fp"},
		"staleAttempt":     {idempotency.Attempt{Owner: "owner", N: 2}, "fp"},
		"otherFingerprint": {idempotency.Attempt{Owner: "owner", N: 1}, "other"},
		"noFingerprint":    {idempotency.Attempt{Owner: "owner", N: 1}, ""},
		"cardlessPart":     {idempotency.Attempt{Owner: "owner", N: 1}, "|g"},
		"otherScheme":      {idempotency.Attempt{Owner: "owner", N: 1}, "k1:x|g"},
		// Against a record stored as "k1:x|g" (below): vouches (the same
		// keyed part, plus a new one), the unkeyed part only, another key.
		"vouches":  {idempotency.Attempt{Owner: "owner", N: 1}, "k1:x,k2:y|g"},
		"weakOnly": {idempotency.Attempt{Owner: "owner", N: 1}, "u1:y|g"},
		"newKey":   {idempotency.Attempt{Owner: "owner", N: 1}, "k2:y|g"},
	}
	cases := 0
	for _, row := range idempotency.Table {
		for _, state := range append(idempotency.States[:len(idempotency.States):len(idempotency.States)], fixtureRejected, fixtureIdleMaybe) {
			for _, expired := range []bool{false, true} {
				for hname, hc := range handles {
					for _, storedFP := range []string{"fp", "k1:x|g"} {
						id := fmt.Sprintf("%s-%s-%v-%s-%s", row.Op, state, expired, hname, storedFP)
						h := hc.h
						h.IntentID = id
						now := time.Now().UnixMilli()
						fx := fixture(state, now, expired)
						mem := idempotency.NewMemory(time.Now, time.Hour)
						if fx != nil {
							fx["f"] = storedFP
							// A short TTL: a transition must renew it to the
							// retention (a state that may hide a charge never
							// expires before it is resolved).
							if err := rdb.HSet(ctx, idempotency.Key(id), fx).Err(); err != nil {
								t.Fatal(err)
							}
							rdb.PExpire(ctx, idempotency.Key(id), 10*time.Minute)
							mem.LoadTTL(idempotency.Key(id), fx, 10*time.Minute)
						}
						gotRedis, gotMem := apply(ctx, redisStore, row.Op, h, hc.fp), apply(ctx, mem, row.Op, h, hc.fp)
						fieldsRedis, err := rdb.HGetAll(ctx, idempotency.Key(id)).Result()
						if err != nil {
							t.Fatal(err)
						}
						ttlRedis := ttlClass(rdb.PTTL(ctx, idempotency.Key(id)).Val())
						ttlMem := ttlClass(mem.TTL(idempotency.Key(id)))
						if gotRedis != gotMem || shape(fieldsRedis) != shape(mem.Fields(idempotency.Key(id))) || ttlRedis != ttlMem {
							t.Errorf("%s from %q (expired lease %v, %s):\n lua    %s | %s | ttl %s\n memory %s | %s | ttl %s",
								row.Op, state, expired, hname, gotRedis, shape(fieldsRedis), ttlRedis, gotMem, shape(mem.Fields(idempotency.Key(id))), ttlMem)
						}
						cases++
					}
				}
			}
		}
	}
	t.Logf("%d cases agree", cases)
}

// TestStaleHandlesAreRefused: every fenced operation refuses a caller whose
// owner or attempt is not the record's, and beginResolve and reopen refuse
// a stale attempt, and the record is left as it was (issue 19, gaps 1 and
// 2: a pod that lost its lease must not extend it, and a stale pod must
// not resolve another attempt). The conformance test compares the two
// stores with each other; this one holds both to the table, so a guard
// dropped from both at once is caught too.
func TestStaleHandlesAreRefused(t *testing.T) {
	r := harness.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	redisStore := idempotency.New(rdb, idempotency.Options{Retention: time.Hour})
	stale := map[string]idempotency.Attempt{
		"staleOwner":   {Owner: "other", N: 1},
		"staleAttempt": {Owner: "owner", N: 2},
	}
	for _, row := range idempotency.Table {
		if row.Op == idempotency.OpClaim {
			continue // not fenced: it takes the record or says what it holds
		}
		for _, from := range row.From {
			if from == idempotency.StateDone {
				from = fixtureRejected // the done record reopen accepts
			}
			for hname, h := range stale {
				if hname == "staleOwner" && !row.Fenced {
					continue // fenced on the attempt only
				}
				id := fmt.Sprintf("stale-%s-%s-%s", row.Op, from, hname)
				h.IntentID = id
				now := time.Now().UnixMilli()
				fx := fixture(from, now, false)
				mem := idempotency.NewMemory(time.Now, time.Hour)
				if err := rdb.HSet(ctx, idempotency.Key(id), fx).Err(); err != nil {
					t.Fatal(err)
				}
				rdb.PExpire(ctx, idempotency.Key(id), 10*time.Minute)
				mem.LoadTTL(idempotency.Key(id), fx, 10*time.Minute)
				before := shape(fx)
				for name, s := range map[string]recordStore{"lua": redisStore, "memory": mem} {
					got := apply(ctx, s, row.Op, h, "fp")
					var fields map[string]string
					if name == "lua" {
						fields = rdb.HGetAll(ctx, idempotency.Key(id)).Val()
					} else {
						fields = mem.Fields(idempotency.Key(id))
					}
					if !strings.HasPrefix(got, "conflict") || shape(fields) != before {
						t.Errorf("%s: %s from %q with a %s handle: %s, record %s; want conflict and the record unchanged (%s)",
							name, row.Op, from, hname, got, shape(fields), before)
					}
				}
			}
		}
	}
}

// TestTransitionsRenewTheRetention: every transition of the table, taken by
// the caller's own handle, renews the record's TTL to the retention, in both
// stores (issue 19 gap 3: a record that kept the shorter TTL of an earlier
// state could vanish before its retention, and with it the result a
// redelivery must find). The conformance test compares the stores' TTLs
// with each other; this one holds both to the retention.
func TestTransitionsRenewTheRetention(t *testing.T) {
	r := harness.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	redisStore := idempotency.New(rdb, idempotency.Options{Retention: time.Hour})
	for _, row := range idempotency.Table {
		for _, from := range row.From {
			if from == idempotency.StateDone {
				from = fixtureRejected // the done record reopen accepts
			}
			id := fmt.Sprintf("renew-%s-%s", row.Op, from)
			h := idempotency.Attempt{IntentID: id, Owner: "owner", N: 1}
			mem := idempotency.NewMemory(time.Now, time.Hour)
			if fx := fixture(from, time.Now().UnixMilli(), false); fx != nil {
				if err := rdb.HSet(ctx, idempotency.Key(id), fx).Err(); err != nil {
					t.Fatal(err)
				}
				rdb.PExpire(ctx, idempotency.Key(id), 10*time.Minute)
				mem.LoadTTL(idempotency.Key(id), fx, 10*time.Minute)
			}
			for name, s := range map[string]recordStore{"lua": redisStore, "memory": mem} {
				got := apply(ctx, s, row.Op, h, "fp")
				ttl := mem.TTL(idempotency.Key(id))
				if name == "lua" {
					ttl = rdb.PTTL(ctx, idempotency.Key(id)).Val()
				}
				if !strings.HasPrefix(got, "ok") || ttlClass(ttl) != "renewed" {
					t.Errorf("%s: %s from %q: %s, TTL %v; want ok and the retention (an hour)", name, row.Op, from, got, ttl)
				}
			}
		}
	}
}
