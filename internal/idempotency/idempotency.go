// Package idempotency is the per-intent record that makes charging exactly
// once possible under at-least-once delivery: one Redis hash per intentId,
// moved between states only by atomic Lua scripts that read the Redis
// server's clock (so pods' clocks do not matter). Table lists the
// transitions; Memory implements the same table in process.
//
//	idle ──claim──▶ charging(attempt n, lease, owner)
//	charging ──finish──▶ done(result)            definite answer (approved, declined)
//	charging ──release──▶ idle                   attempt n was definitely not charged
//	charging ──advance──▶ charging(n+1)          n definitely not charged, retry now (401)
//	charging ──markUnknown / lease lost──▶ unknown(n, since)
//	unknown ──beginResolve (since+delay passed)──▶ resolving(n, lease)
//	resolving ──advance──▶ charging(n+1)         attempt n reversed/voided or shown failed
//	resolving ──markUnknown / lease lost──▶ unknown(n)
//	resolving ──finish──▶ done(result, letter)   could not be cancelled: a person decides
//	done(letter: not charged) ──reopen──▶ charging(n+1)   an operator replayed its dead letter
//
// A record with a live lease is never charged by anyone else. No claim, no
// charge: when Redis is unreachable every operation fails and the caller
// backs off. The record keeps the fingerprint of what its intent asks for: a
// claim with another fingerprint is a conflict, never a replay of someone
// else's result. Every write renews the record's retention, so no state that
// may hide a charge expires before it is resolved.
//
// Guard writes (claim, reopen, extend, advance, markUnknown, finish,
// reserve, the chain advance) can wait for replica acknowledgements (WAIT): a write a failover
// could lose then counts as failed (ErrNotReplicated).
package idempotency

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// RetentionDefault keeps a record longer than any copy of its intent can
// live (the dead-letter stream keeps 30 days).
const RetentionDefault = 45 * 24 * time.Hour

// ReplicaTimeoutDefault bounds a guard write's wait for replicas.
const ReplicaTimeoutDefault = time.Second

// Key is the Redis key of an intent's record.
func Key(intentID string) string { return "payflow:intent:{" + intentID + "}" }

// Options configure a Store. Zero values mean the defaults.
type Options struct {
	// Retention of records. Defaults to RetentionDefault.
	Retention time.Duration
	// MinReplicas: each guard write waits until this many replicas
	// acknowledged it (WAIT); fewer within ReplicaTimeout fails the step
	// with ErrNotReplicated. 0 (the default) does not wait: a single-node
	// Redis has no replica.
	MinReplicas int
	// ReplicaTimeout bounds that wait. Defaults to ReplicaTimeoutDefault.
	ReplicaTimeout time.Duration
	// OnNotReplicated is told about each guard write that fewer replicas
	// acknowledged (metrics, logs); nil: nothing.
	OnNotReplicated func(op string, acked int)
}

// Store is the Redis-backed record store.
type Store struct {
	rdb  redis.UniversalClient
	opts Options
}

// New returns a store.
func New(rdb redis.UniversalClient, opts Options) *Store {
	if opts.Retention <= 0 {
		opts.Retention = RetentionDefault
	}
	if opts.ReplicaTimeout <= 0 {
		opts.ReplicaTimeout = ReplicaTimeoutDefault
	}
	return &Store{rdb: rdb, opts: opts}
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
	// Conflict: the record belongs to an intent with another fingerprint
	// (the same intentId asking for something else).
	Conflict
)

// Attempt is the handle of one claimed attempt: the intent, the owner
// token that holds its lease, and the attempt number. Every transition the
// holder makes is fenced on it.
type Attempt struct {
	IntentID string
	Owner    string
	N        int
}

// Letter is the dead letter a terminal outcome needs (a person must look):
// it is re-emitted with the result whenever the intent is delivered again.
type Letter struct {
	Class  string
	Reason string
}

// Reversal is an authorization a terminal outcome still has to reverse (one
// that came with a refusal): it stays on the record until done.
type Reversal struct {
	PaymentID string
	Amount    string
	Currency  string
}

func (r *Reversal) encode() string {
	if r == nil {
		return ""
	}
	return r.PaymentID + "|" + r.Amount + "|" + r.Currency
}

func decodeReversal(s string) *Reversal {
	p := strings.SplitN(s, "|", 3)
	if len(p) != 3 || p[0] == "" {
		return nil
	}
	return &Reversal{PaymentID: p[0], Amount: p[1], Currency: p[2]}
}

// Claim is the answer to Claim.
type Claim struct {
	State State
	// Attempt: Claimed: the caller's new attempt (with its owner);
	// Unknown: the attempt to resolve (Owner is the caller's, for
	// BeginResolve).
	Attempt Attempt
	// Done: the recorded result, the dead letter it needs (nil: none) and
	// the authorization still to reverse (nil: none); Attempt.N is the
	// attempt that finished it.
	Result  []byte
	Letter  *Letter
	Reverse *Reversal
	Wait    time.Duration
	Since   time.Time
	Now     time.Time
	// MaybeApplied (Claimed, Unknown): an earlier attempt of this intent
	// once had an unknown outcome (field "m", set whenever the record turns
	// unknown and never cleared), so a request sent again may find it
	// applied. A released or reopened attempt keeps the fact.
	MaybeApplied bool
}

// Outcome is what Finish records.
type Outcome struct {
	Result []byte
	// Payment, for an authorized payment, opens its settlement ledger.
	Payment *Payment
	// Letter: the outcome needs a person (unknown-outcome).
	Letter *Letter
	// Reverse: an authorization behind a refusal still to be reversed.
	Reverse *Reversal
}

// ErrConflict means the record moved on: the caller's lease was lost (it
// expired and another owner took over), or the attempt is not the current
// one. The caller must not act on its attempt any further.
var ErrConflict = errors.New("idempotency: record changed under the caller (lease lost)")

// ErrNotReplicated means a guard write reached fewer replicas than
// required: a failover could lose it, so the step counts as failed.
var ErrNotReplicated = errors.New("idempotency: write not acknowledged by enough replicas")

const luaPrelude = `
local k = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local s = redis.call('HGET', k, 's')
local a = tonumber(redis.call('HGET', k, 'a') or '0')
local o = redis.call('HGET', k, 'o')
`

// guard runs a script that guards money, then waits for replicas when
// configured (same connection, same round trip). before, if set, queues
// commands that go in the same pipeline ahead of the script.
func (s *Store) guard(ctx context.Context, op string, script *redis.Script, keys []string, args []any, before func(redis.Pipeliner)) (*redis.Cmd, error) {
	if s.opts.MinReplicas <= 0 && before == nil {
		cmd := script.Run(ctx, s.rdb, keys, args...)
		return cmd, cmd.Err()
	}
	for try := 0; ; try++ {
		pipe := s.rdb.Pipeline()
		if before != nil {
			before(pipe)
		}
		cmd := script.EvalSha(ctx, pipe, keys, args...)
		var wait *redis.Cmd
		if s.opts.MinReplicas > 0 {
			// WAIT is not in go-redis's Pipeliner interface; it must run on
			// the connection that wrote, so it goes in the same pipeline.
			wait = pipe.Do(ctx, "WAIT", s.opts.MinReplicas, s.opts.ReplicaTimeout.Milliseconds())
		}
		_, err := pipe.Exec(ctx)
		if err != nil && try == 0 && redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
			if err := script.Load(ctx, s.rdb).Err(); err != nil {
				return cmd, err
			}
			continue
		}
		if err != nil {
			return cmd, err
		}
		if wait == nil {
			return cmd, nil
		}
		if n, _ := wait.Int(); n < s.opts.MinReplicas {
			if s.opts.OnNotReplicated != nil {
				s.opts.OnNotReplicated(op, n)
			}
			return cmd, fmt.Errorf("%w: %d of %d within %s", ErrNotReplicated, n, s.opts.MinReplicas, s.opts.ReplicaTimeout)
		}
		return cmd, nil
	}
}

const claimLua = luaPrelude + luaFingerprint + `
local f = redis.call('HGET', k, 'f')
if fpConflict(f, ARGV[4]) then return {'conflict'} end
-- A claim that does not take the record (done, busy, unknown) adds the
-- parts it has only when it vouches for being the record's intent (a
-- keyed part equal to the record's: a key rotation); one that takes it
-- below adds them because its card is the one charged under it.
local merged = fpMerge(f, ARGV[4])
if s and s ~= 'idle' and merged ~= '' and merged ~= f and fpVouches(f, ARGV[4]) then redis.call('HSET', k, 'f', merged) end
if not s or s == 'idle' then
  a = a + 1
  redis.call('HSET', k, 's', 'charging', 'a', a, 'l', now + tonumber(ARGV[2]), 'o', ARGV[1])
  if merged ~= '' then redis.call('HSET', k, 'f', merged) end
  redis.call('PEXPIRE', k, ARGV[3])
  return {'claimed', a, redis.call('HGET', k, 'm') or ''}
end
if s == 'done' then
  local v = redis.call('HMGET', k, 'r', 'dc', 'dr', 'rv')
  return {'done', v[1] or '', v[2] or '', v[3] or '', v[4] or '', a}
end
local l = tonumber(redis.call('HGET', k, 'l') or '0')
if s == 'charging' or s == 'resolving' then
  if l > now then return {'busy', l - now} end
  -- The owner is gone. Whatever it sent was sent before its lease ended.
  if s == 'charging' then
    redis.call('HSET', k, 's', 'unknown', 'u', l, 'm', '1')
  else
    redis.call('HSET', k, 's', 'unknown', 'm', '1')
  end
  redis.call('HDEL', k, 'o')
  redis.call('PEXPIRE', k, ARGV[3])
end
return {'unknown', a, tonumber(redis.call('HGET', k, 'u') or '0'), now}
`

var claimScript = redis.NewScript(claimLua)

// Claim takes the record for a new attempt if it is idle. Otherwise it says
// what the record holds: Done (with the result), Busy (a live lease),
// Unknown (an attempt that must be resolved first) or Conflict (another
// intent's record: see FingerprintsConflict). An empty fingerprint is not
// checked; a claimed record keeps the parts of the fingerprint it lacked.
func (s *Store) Claim(ctx context.Context, intentID, fingerprint, owner string, lease time.Duration) (Claim, error) {
	cmd, err := s.guard(ctx, OpClaim, claimScript, []string{Key(intentID)}, []any{owner, lease.Milliseconds(), s.opts.Retention.Milliseconds(), fingerprint}, nil)
	v, verr := cmd.Slice()
	if verr != nil {
		return Claim{}, fmt.Errorf("idempotency claim: %w", verr)
	}
	c, perr := parseClaim(intentID, owner, v)
	if perr != nil {
		return Claim{}, perr
	}
	if err != nil {
		// Not replicated: undo a new claim (best effort); the caller must
		// not charge on it.
		if c.State == Claimed {
			_ = s.Release(context.WithoutCancel(ctx), c.Attempt)
		}
		return Claim{}, fmt.Errorf("idempotency claim: %w", err)
	}
	return c, nil
}

func parseClaim(intentID, owner string, v []any) (Claim, error) {
	str := func(i int) string { s, _ := v[i].(string); return s }
	switch v[0] {
	case "claimed":
		return Claim{State: Claimed, Attempt: Attempt{intentID, owner, int(v[1].(int64))}, MaybeApplied: str(2) == "1"}, nil
	case "done":
		c := Claim{State: Done, Attempt: Attempt{IntentID: intentID, N: int(v[5].(int64))}, Result: []byte(str(1)), Reverse: decodeReversal(str(4))}
		if str(2) != "" {
			c.Letter = &Letter{Class: str(2), Reason: str(3)}
		}
		return c, nil
	case "busy":
		return Claim{State: Busy, Wait: time.Duration(v[1].(int64)) * time.Millisecond}, nil
	case "unknown":
		return Claim{State: Unknown, Attempt: Attempt{intentID, owner, int(v[1].(int64))},
			Since: time.UnixMilli(v[2].(int64)), Now: time.UnixMilli(v[3].(int64)), MaybeApplied: true}, nil
	case "conflict":
		return Claim{State: Conflict}, nil
	}
	return Claim{}, fmt.Errorf("idempotency claim: unexpected answer %v", v)
}

const reopenLua = luaPrelude + luaFingerprint + `
local f = redis.call('HGET', k, 'f')
if fpConflict(f, ARGV[4]) then return {'conflict'} end
local v = redis.call('HMGET', k, 'dc', 'rv', 'p_id')
if s ~= 'done' or a ~= tonumber(ARGV[5]) or ARGV[6] == '' or v[1] ~= ARGV[6] or v[2] or v[3] then return {'moved'} end
a = a + 1
redis.call('HSET', k, 's', 'charging', 'a', a, 'l', now + tonumber(ARGV[2]), 'o', ARGV[1])
local merged = fpMerge(f, ARGV[4])
if merged ~= '' then redis.call('HSET', k, 'f', merged) end
redis.call('HDEL', k, 'r', 'dc', 'dr')
redis.call('PEXPIRE', k, ARGV[3])
return {'claimed', a, redis.call('HGET', k, 'm') or ''}
`

var reopenScript = redis.NewScript(reopenLua)

// Reopen takes a done record for a new attempt, for a dead letter an
// operator replayed: only when it is still done by attempt a.N with a
// dead letter of class (one whose intent was definitely not charged: the
// caller decides which classes), no authorization to reverse and no
// payment ledger. a.Owner is the new attempt's owner. A record that moved
// on answers ErrConflict; another fingerprint answers a Conflict claim.
func (s *Store) Reopen(ctx context.Context, a Attempt, fingerprint, class string, lease time.Duration) (Claim, error) {
	cmd, err := s.guard(ctx, OpReopen, reopenScript, []string{Key(a.IntentID)},
		[]any{a.Owner, lease.Milliseconds(), s.opts.Retention.Milliseconds(), fingerprint, a.N, class}, nil)
	v, verr := cmd.Slice()
	if verr != nil {
		return Claim{}, fmt.Errorf("idempotency reopen: %w", verr)
	}
	if v[0] == "moved" {
		return Claim{}, ErrConflict
	}
	c, perr := parseClaim(a.IntentID, a.Owner, v)
	if perr != nil {
		return Claim{}, perr
	}
	if err != nil {
		return Claim{}, fmt.Errorf("idempotency reopen: %w", err)
	}
	return c, nil
}

const beginResolveLua = luaPrelude + `
if s ~= 'unknown' or a ~= tonumber(ARGV[2]) then return {'conflict', 0} end
local u = tonumber(redis.call('HGET', k, 'u') or '0')
local ready = u + tonumber(ARGV[4])
if now < ready then return {'wait', ready - now} end
redis.call('HSET', k, 's', 'resolving', 'l', now + tonumber(ARGV[3]), 'o', ARGV[1])
redis.call('PEXPIRE', k, ARGV[5])
return {'ok', 0}
`

var beginResolveScript = redis.NewScript(beginResolveLua)

// BeginResolve takes an unknown attempt for resolution (a timeout reversal
// or void) once delay has passed since it became unknown. When it is too
// early it returns the time left and ok=false.
func (s *Store) BeginResolve(ctx context.Context, a Attempt, lease, delay time.Duration) (wait time.Duration, ok bool, err error) {
	v, err := beginResolveScript.Run(ctx, s.rdb, []string{Key(a.IntentID)}, a.Owner, a.N, lease.Milliseconds(), delay.Milliseconds(), s.opts.Retention.Milliseconds()).Slice()
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

const advanceLua = luaPrelude + luaFingerprint + `
if (s ~= 'charging' and s ~= 'resolving') or o ~= ARGV[1] or a ~= tonumber(ARGV[2]) then return -1 end
a = a + 1
redis.call('HSET', k, 's', 'charging', 'a', a, 'l', now + tonumber(ARGV[3]))
-- The next attempt charges the caller's intent: the record takes its parts.
local merged = fpMerge(redis.call('HGET', k, 'f'), ARGV[5] or '')
if merged ~= '' then redis.call('HSET', k, 'f', merged) end
redis.call('HDEL', k, 'u')
redis.call('PEXPIRE', k, ARGV[4])
return a
`

var advanceScript = redis.NewScript(advanceLua)

// Advance records that the caller's attempt was definitely not charged (or
// was reversed) and gives it the next attempt, with a fresh lease. The
// record takes the parts of fingerprint it lacked (the next attempt
// charges the caller's intent), as a claim that takes the record does.
func (s *Store) Advance(ctx context.Context, a Attempt, lease time.Duration, fingerprint string) (Attempt, error) {
	cmd, err := s.guard(ctx, OpAdvance, advanceScript, []string{Key(a.IntentID)}, []any{a.Owner, a.N, lease.Milliseconds(), s.opts.Retention.Milliseconds(), fingerprint}, nil)
	n, verr := cmd.Int()
	if verr == nil && n < 0 {
		return a, ErrConflict
	}
	if err == nil {
		err = verr
	}
	if err != nil {
		return a, fmt.Errorf("idempotency advance: %w", err)
	}
	a.N = n
	return a, nil
}

const releaseLua = luaPrelude + `
if s ~= 'charging' or o ~= ARGV[1] or a ~= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', k, 's', 'idle')
redis.call('HDEL', k, 'l', 'o')
redis.call('PEXPIRE', k, ARGV[3])
return 1
`

var releaseScript = redis.NewScript(releaseLua)

// Release gives the record back after an attempt that was definitely not
// charged (nothing was sent): the next claim takes the next attempt.
func (s *Store) Release(ctx context.Context, a Attempt) error {
	n, err := releaseScript.Run(ctx, s.rdb, []string{Key(a.IntentID)}, a.Owner, a.N, s.opts.Retention.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("idempotency release: %w", err)
	}
	if n == 0 {
		return ErrConflict
	}
	return nil
}

const markUnknownLua = luaPrelude + `
if (s ~= 'charging' and s ~= 'resolving') or o ~= ARGV[1] or a ~= tonumber(ARGV[2]) then return 0 end
if s == 'charging' then
  redis.call('HSET', k, 's', 'unknown', 'u', now, 'm', '1')
else
  redis.call('HSET', k, 's', 'unknown', 'm', '1')
end
redis.call('HDEL', k, 'l', 'o')
redis.call('PEXPIRE', k, ARGV[3])
return 1
`

var markUnknownScript = redis.NewScript(markUnknownLua)

// MarkUnknown records that the caller's attempt may have been charged (or
// that its resolution's outcome is itself unknown).
func (s *Store) MarkUnknown(ctx context.Context, a Attempt) error {
	cmd, err := s.guard(ctx, OpMarkUnknown, markUnknownScript, []string{Key(a.IntentID)}, []any{a.Owner, a.N, s.opts.Retention.Milliseconds()}, nil)
	if n, verr := cmd.Int(); verr == nil && n == 0 {
		return ErrConflict
	} else if err == nil {
		err = verr
	}
	if err != nil {
		return fmt.Errorf("idempotency mark unknown: %w", err)
	}
	return nil
}

const finishLua = luaPrelude + `
if s == 'done' and o == ARGV[1] and a == tonumber(ARGV[2]) then return 1 end
if (s ~= 'charging' and s ~= 'resolving') or o ~= ARGV[1] or a ~= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', k, 's', 'done', 'r', ARGV[3])
redis.call('HDEL', k, 'l', 'u')
if ARGV[10] ~= '' then redis.call('HSET', k, 'dc', ARGV[10], 'dr', ARGV[11]) else redis.call('HDEL', k, 'dc', 'dr') end
if ARGV[12] ~= '' then redis.call('HSET', k, 'rv', ARGV[12]) end
if ARGV[5] ~= '' then
  -- An authorized payment: open its settlement ledger in the same record.
  redis.call('HSETNX', k, 'p_id', ARGV[5])
  redis.call('HSETNX', k, 'p_cur', ARGV[6])
  redis.call('HSETNX', k, 'p_auth', ARGV[7])
  redis.call('HSETNX', k, 'p_cap', ARGV[8])
  redis.call('HSETNX', k, 'p_m', ARGV[9])
  redis.call('HSETNX', k, 'p_rev', 0)
  redis.call('HSETNX', k, 'p_ref', 0)
  redis.call('HSETNX', k, 'p_void', 0)
end
redis.call('PEXPIRE', k, ARGV[4])
return 1
`

var finishScript = redis.NewScript(finishLua)

// Finish records the terminal outcome of the caller's attempt. It is
// idempotent for the same attempt (a retried Finish after a lost answer
// succeeds). For an authorized payment its settlement ledger is opened in
// the same atomic step, and an index from its CyberSource id to the intent
// is written alongside (same round trip).
func (s *Store) Finish(ctx context.Context, a Attempt, out Outcome) error {
	args := []any{a.Owner, a.N, out.Result, s.opts.Retention.Milliseconds(), "", "", 0, 0, "", "", "", out.Reverse.encode()}
	if p := out.Payment; p != nil {
		captured := int64(0)
		if p.Sale {
			captured = p.Authorized
		}
		args[4], args[5], args[6], args[7], args[8] = p.CyberSourceID, p.Currency, p.Authorized, captured, p.MerchantID
	}
	if l := out.Letter; l != nil {
		args[9], args[10] = l.Class, l.Reason
	}
	var index func(redis.Pipeliner)
	if p := out.Payment; p != nil {
		// The payment's index goes first in the same round trip: a
		// redelivery that finds the record done can always find the
		// payment by its CyberSource id.
		index = func(pipe redis.Pipeliner) {
			pipe.Set(ctx, PaymentIndexKey(p.CyberSourceID), a.IntentID, s.opts.Retention)
		}
	}
	cmd, err := s.guard(ctx, OpFinish, finishScript, []string{Key(a.IntentID)}, args, index)
	if n, verr := cmd.Int(); verr == nil && n == 0 {
		return ErrConflict
	} else if err == nil {
		err = verr
	}
	if err != nil {
		return fmt.Errorf("idempotency finish: %w", err)
	}
	return nil
}

const extendLua = luaPrelude + `
if (s ~= 'charging' and s ~= 'resolving') or o ~= ARGV[1] or a ~= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', k, 'l', now + tonumber(ARGV[3]))
redis.call('PEXPIRE', k, ARGV[4])
return 1
`

var extendScript = redis.NewScript(extendLua)

// Extend renews the caller's lease.
//
// It is a guard write: the renewed lease is what a pod's send deadline is
// computed from, so a renewal a failover could lose counts as failed.
func (s *Store) Extend(ctx context.Context, a Attempt, lease time.Duration) error {
	cmd, err := s.guard(ctx, OpExtend, extendScript, []string{Key(a.IntentID)}, []any{a.Owner, a.N, lease.Milliseconds(), s.opts.Retention.Milliseconds()}, nil)
	if n, verr := cmd.Int(); verr == nil && n == 0 {
		return ErrConflict
	} else if err == nil {
		err = verr
	}
	if err != nil {
		return fmt.Errorf("idempotency extend: %w", err)
	}
	return nil
}

const clearReversalLua = `
local rv = redis.call('HGET', KEYS[1], 'rv')
if rv and string.sub(rv, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. '|' then redis.call('HDEL', KEYS[1], 'rv') end
return 1
`

var clearReversalScript = redis.NewScript(clearReversalLua)

// ReversalDone clears a done record's authorization to reverse once it is
// reversed (idempotent).
func (s *Store) ReversalDone(ctx context.Context, intentID, paymentID string) error {
	if err := clearReversalScript.Run(ctx, s.rdb, []string{Key(intentID)}, paymentID).Err(); err != nil {
		return fmt.Errorf("idempotency reversal done: %w", err)
	}
	return nil
}

// MarkCallbackDelivered notes on a done record that TTC has the callback
// of CyberSource transaction transactionID, so that a replay long after the
// duplicate window does not call TTC again. It names the transaction: if
// the intent was charged anew (its first charge cancelled after a lost
// record), the new charge's callback is still delivered.
func (s *Store) MarkCallbackDelivered(ctx context.Context, intentID, transactionID string) error {
	return markCallbackScript.Run(ctx, s.rdb, []string{Key(intentID)}, transactionID).Err()
}

// markCallbackScript marks an existing record only: a record that expired
// is not brought back as a key without a TTL.
const markCallbackLua = `
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'cb', ARGV[1]) end
return 1
`

var markCallbackScript = redis.NewScript(markCallbackLua)

// CallbackDelivered reports whether TTC already has the callback of the
// intent's CyberSource transaction transactionID.
func (s *Store) CallbackDelivered(ctx context.Context, intentID, transactionID string) (bool, error) {
	v, err := s.rdb.HGet(ctx, Key(intentID), "cb").Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	return v == transactionID, err
}

func atoi(s string) int64 { n, _ := strconv.ParseInt(s, 10, 64); return n }
