// Package idempotency is the per-intent record that makes charging exactly
// once possible under at-least-once delivery: one Redis hash per intentId,
// moved between states only by atomic Lua scripts that read the Redis
// server's clock (so pods' clocks do not matter).
//
//	idle ──claim──▶ charging(attempt n, lease, owner)
//	charging ──finish──▶ done(result)            definite answer (approved, declined)
//	charging ──release──▶ idle                   attempt n was definitely not charged
//	charging ──advance──▶ charging(n+1)          n definitely not charged, retry now (401)
//	charging ──markUnknown / lease lost──▶ unknown(n, since)
//	unknown ──beginResolve (since+delay passed)──▶ resolving(n, lease)
//	resolving ──advance──▶ charging(n+1)         attempt n reversed/voided or shown failed
//	resolving ──markUnknown / lease lost──▶ unknown(n)
//
// A record with a live lease is never charged by anyone else. No claim, no
// charge: when Redis is unreachable every operation fails and the caller
// backs off.
package idempotency

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// RetentionDefault keeps a record longer than any copy of its intent can
// live (the dead-letter stream keeps 30 days).
const RetentionDefault = 45 * 24 * time.Hour

// Key is the Redis key of an intent's record.
func Key(intentID string) string { return "payflow:intent:{" + intentID + "}" }

// Store is the Redis-backed record store.
type Store struct {
	rdb       redis.UniversalClient
	retention time.Duration
}

// New returns a store; retention 0 means RetentionDefault.
func New(rdb redis.UniversalClient, retention time.Duration) *Store {
	if retention <= 0 {
		retention = RetentionDefault
	}
	return &Store{rdb: rdb, retention: retention}
}

// NewOwner returns a random owner token for one claim.
func NewOwner() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// State of a claim attempt as seen by the caller.
type State int

const (
	// Claimed: the caller owns attempt Attempt until the lease ends.
	Claimed State = iota + 1
	// Done: terminal; Result holds the recorded outcome.
	Done
	// Busy: another owner holds a live lease; come back after Wait.
	Busy
	// Unknown: attempt Attempt may have been charged; resolve it no sooner
	// than Since plus the configured delay (Now is the Redis clock).
	Unknown
)

// Claim is the answer to Claim.
type Claim struct {
	State   State
	Attempt int
	Result  []byte
	Wait    time.Duration
	Since   time.Time
	Now     time.Time
}

// ErrConflict means the record moved on: the caller's lease was lost (it
// expired and another owner took over), or the attempt is not the current
// one. The caller must not act on its attempt any further.
var ErrConflict = errors.New("idempotency: record changed under the caller (lease lost)")

var luaPrelude = `
local k = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local s = redis.call('HGET', k, 's')
local a = tonumber(redis.call('HGET', k, 'a') or '0')
local o = redis.call('HGET', k, 'o')
`

var claimScript = redis.NewScript(luaPrelude + `
if not s or s == 'idle' then
  a = a + 1
  redis.call('HSET', k, 's', 'charging', 'a', a, 'l', now + tonumber(ARGV[2]), 'o', ARGV[1])
  redis.call('PEXPIRE', k, ARGV[3])
  return {'claimed', a}
end
if s == 'done' then return {'done', redis.call('HGET', k, 'r')} end
local l = tonumber(redis.call('HGET', k, 'l') or '0')
if s == 'charging' or s == 'resolving' then
  if l > now then return {'busy', l - now} end
  -- The owner is gone. Whatever it sent was sent before its lease ended.
  if s == 'charging' then
    redis.call('HSET', k, 's', 'unknown', 'u', l)
  else
    redis.call('HSET', k, 's', 'unknown')
  end
end
return {'unknown', a, tonumber(redis.call('HGET', k, 'u') or '0'), now}
`)

// Claim takes the record for a new attempt if it is idle. Otherwise it says
// what the record holds: Done (with the result), Busy (a live lease) or
// Unknown (an attempt that must be resolved first).
func (s *Store) Claim(ctx context.Context, intentID, owner string, lease time.Duration) (Claim, error) {
	v, err := claimScript.Run(ctx, s.rdb, []string{Key(intentID)}, owner, lease.Milliseconds(), s.retention.Milliseconds()).Slice()
	if err != nil {
		return Claim{}, fmt.Errorf("idempotency claim: %w", err)
	}
	switch v[0] {
	case "claimed":
		return Claim{State: Claimed, Attempt: int(v[1].(int64))}, nil
	case "done":
		r, _ := v[1].(string)
		return Claim{State: Done, Result: []byte(r)}, nil
	case "busy":
		return Claim{State: Busy, Wait: time.Duration(v[1].(int64)) * time.Millisecond}, nil
	case "unknown":
		return Claim{State: Unknown, Attempt: int(v[1].(int64)),
			Since: time.UnixMilli(v[2].(int64)), Now: time.UnixMilli(v[3].(int64))}, nil
	}
	return Claim{}, fmt.Errorf("idempotency claim: unexpected answer %v", v)
}

var beginResolveScript = redis.NewScript(luaPrelude + `
if s ~= 'unknown' or a ~= tonumber(ARGV[2]) then return {'conflict', 0} end
local u = tonumber(redis.call('HGET', k, 'u') or '0')
local ready = u + tonumber(ARGV[4])
if now < ready then return {'wait', ready - now} end
redis.call('HSET', k, 's', 'resolving', 'l', now + tonumber(ARGV[3]), 'o', ARGV[1])
return {'ok', 0}
`)

// BeginResolve takes an unknown attempt for resolution (a timeout reversal
// or void) once delay has passed since it became unknown. When it is too
// early it returns the time left and ok=false.
func (s *Store) BeginResolve(ctx context.Context, intentID, owner string, attempt int, lease, delay time.Duration) (wait time.Duration, ok bool, err error) {
	v, err := beginResolveScript.Run(ctx, s.rdb, []string{Key(intentID)}, owner, attempt, lease.Milliseconds(), delay.Milliseconds()).Slice()
	if err != nil {
		return 0, false, fmt.Errorf("idempotency resolve: %w", err)
	}
	switch v[0] {
	case "ok":
		return 0, true, nil
	case "wait":
		return time.Duration(v[1].(int64)) * time.Millisecond, false, nil
	}
	return 0, false, ErrConflict
}

var advanceScript = redis.NewScript(luaPrelude + `
if (s ~= 'charging' and s ~= 'resolving') or o ~= ARGV[1] or a ~= tonumber(ARGV[2]) then return -1 end
a = a + 1
redis.call('HSET', k, 's', 'charging', 'a', a, 'l', now + tonumber(ARGV[3]))
redis.call('HDEL', k, 'u')
redis.call('PEXPIRE', k, ARGV[4])
return a
`)

// Advance records that the caller's attempt was definitely not charged (or
// was reversed) and gives it the next attempt, with a fresh lease.
func (s *Store) Advance(ctx context.Context, intentID, owner string, attempt int, lease time.Duration) (int, error) {
	n, err := advanceScript.Run(ctx, s.rdb, []string{Key(intentID)}, owner, attempt, lease.Milliseconds(), s.retention.Milliseconds()).Int()
	if err != nil {
		return 0, fmt.Errorf("idempotency advance: %w", err)
	}
	if n < 0 {
		return 0, ErrConflict
	}
	return n, nil
}

var releaseScript = redis.NewScript(luaPrelude + `
if s ~= 'charging' or o ~= ARGV[1] or a ~= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', k, 's', 'idle')
redis.call('HDEL', k, 'l', 'o')
return 1
`)

// Release gives the record back after an attempt that was definitely not
// charged (nothing was sent): the next claim takes the next attempt.
func (s *Store) Release(ctx context.Context, intentID, owner string, attempt int) error {
	n, err := releaseScript.Run(ctx, s.rdb, []string{Key(intentID)}, owner, attempt).Int()
	if err != nil {
		return fmt.Errorf("idempotency release: %w", err)
	}
	if n == 0 {
		return ErrConflict
	}
	return nil
}

var markUnknownScript = redis.NewScript(luaPrelude + `
if (s ~= 'charging' and s ~= 'resolving') or o ~= ARGV[1] or a ~= tonumber(ARGV[2]) then return 0 end
if s == 'charging' then
  redis.call('HSET', k, 's', 'unknown', 'u', now)
else
  redis.call('HSET', k, 's', 'unknown')
end
redis.call('HDEL', k, 'l', 'o')
return 1
`)

// MarkUnknown records that the caller's attempt may have been charged (or
// that its resolution's outcome is itself unknown).
func (s *Store) MarkUnknown(ctx context.Context, intentID, owner string, attempt int) error {
	n, err := markUnknownScript.Run(ctx, s.rdb, []string{Key(intentID)}, owner, attempt).Int()
	if err != nil {
		return fmt.Errorf("idempotency mark unknown: %w", err)
	}
	if n == 0 {
		return ErrConflict
	}
	return nil
}

var finishScript = redis.NewScript(luaPrelude + `
if (s ~= 'charging' and s ~= 'resolving') or o ~= ARGV[1] or a ~= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', k, 's', 'done', 'r', ARGV[3])
redis.call('HDEL', k, 'l', 'o', 'u')
if ARGV[5] ~= '' then
  -- An authorized payment: open its settlement ledger in the same record.
  redis.call('HSETNX', k, 'p_id', ARGV[5])
  redis.call('HSETNX', k, 'p_cur', ARGV[6])
  redis.call('HSETNX', k, 'p_auth', ARGV[7])
  redis.call('HSETNX', k, 'p_cap', ARGV[8])
  redis.call('HSETNX', k, 'p_rev', 0)
  redis.call('HSETNX', k, 'p_ref', 0)
  redis.call('HSETNX', k, 'p_void', 0)
end
redis.call('PEXPIRE', k, ARGV[4])
return 1
`)

// Finish records the terminal result of the caller's attempt. When payment
// is not nil (an authorized payment), its settlement ledger is opened in the
// same atomic step, and an index from its CyberSource id to the intent is
// written alongside (same round trip).
func (s *Store) Finish(ctx context.Context, intentID, owner string, attempt int, result []byte, payment *Payment) error {
	args := []any{owner, attempt, result, s.retention.Milliseconds(), "", "", 0, 0}
	if payment != nil {
		captured := int64(0)
		if payment.Sale {
			captured = payment.Authorized
		}
		args = []any{owner, attempt, result, s.retention.Milliseconds(), payment.CyberSourceID, payment.Currency, payment.Authorized, captured}
	}
	pipe := s.rdb.Pipeline()
	run := finishScript.EvalSha(ctx, pipe, []string{Key(intentID)}, args...)
	if payment != nil {
		pipe.Set(ctx, PaymentIndexKey(payment.CyberSourceID), intentID, s.retention)
	}
	_, err := pipe.Exec(ctx)
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		// First use on this server: load the script, then once more.
		if err = finishScript.Load(ctx, s.rdb).Err(); err == nil {
			return s.Finish(ctx, intentID, owner, attempt, result, payment)
		}
	}
	if err != nil {
		return fmt.Errorf("idempotency finish: %w", err)
	}
	if n, _ := run.Int(); n == 0 {
		return ErrConflict
	}
	return nil
}

var extendScript = redis.NewScript(luaPrelude + `
if (s ~= 'charging' and s ~= 'resolving') or o ~= ARGV[1] or a ~= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', k, 'l', now + tonumber(ARGV[3]))
return 1
`)

// Extend renews the caller's lease.
func (s *Store) Extend(ctx context.Context, intentID, owner string, attempt int, lease time.Duration) error {
	n, err := extendScript.Run(ctx, s.rdb, []string{Key(intentID)}, owner, attempt, lease.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("idempotency extend: %w", err)
	}
	if n == 0 {
		return ErrConflict
	}
	return nil
}

// MarkCallbackDelivered notes on a done record that TTC has its callback,
// so that a replay long after the duplicate window does not call TTC again.
func (s *Store) MarkCallbackDelivered(ctx context.Context, intentID string) error {
	return s.rdb.HSet(ctx, Key(intentID), "cb", "1").Err()
}

// CallbackDelivered reports whether TTC already has the intent's callback.
func (s *Store) CallbackDelivered(ctx context.Context, intentID string) (bool, error) {
	v, err := s.rdb.HGet(ctx, Key(intentID), "cb").Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	return v == "1", err
}
