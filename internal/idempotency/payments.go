package idempotency

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// PaymentIndexKey maps a CyberSource payment id to the intent that made it
// (whose record holds the payment's settlement ledger).
func PaymentIndexKey(cybersourceID string) string { return "payflow:pid:{" + cybersourceID + "}" }

// Payment opens an authorized payment's settlement ledger: amounts in
// ten-thousandths of the currency unit. It is recorded by Finish, in the
// intent's own record (fields p_*), so that one atomic step records both.
type Payment struct {
	CyberSourceID string
	Currency      string
	Authorized    int64
	Sale          bool   // captured with the authorization
	MerchantID    string // the only merchant whose operations may act on it
}

// PaymentIntent returns the intent whose record holds a CyberSource
// payment's ledger ("" when unknown).
func (s *Store) PaymentIntent(ctx context.Context, cybersourceID string) (string, error) {
	v, err := s.rdb.Get(ctx, PaymentIndexKey(cybersourceID)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return v, err
}

// Errors of Reserve: the operation is refused before any call.
var (
	ErrUnknownPayment = errors.New("the payment is not known to this service (it was not authorized through it)")
	ErrNothingLeft    = errors.New("the amount exceeds what is left of the payment")
	ErrNotVoidable    = errors.New("only a captured, unrefunded, not yet voided payment can be voided")
	ErrForeign        = errors.New("the payment belongs to another merchant")
)

// holder names who holds a reservation: the operation's attempt.
func holder(a Attempt) string { return a.Owner + "/" + strconv.Itoa(a.N) }

const reserveLua = `
local k = KEYS[1]
local cur = redis.call('HGET', k, 'p_cur')
if not cur then return {-2, 0, ''} end
local m = redis.call('HGET', k, 'p_m')
if m and m ~= ARGV[4] then return {-4, 0, ''} end
local held = redis.call('HGET', k, 'op:' .. ARGV[1])
if held then
  local amt = string.match(held, '^([^|]*)')
  redis.call('HSET', k, 'op:' .. ARGV[1], amt .. '|' .. ARGV[5])
  redis.call('PEXPIRE', k, ARGV[6])
  return {1, tonumber(amt), cur}
end
local auth = tonumber(redis.call('HGET', k, 'p_auth'))
local cap = tonumber(redis.call('HGET', k, 'p_cap'))
local rev = tonumber(redis.call('HGET', k, 'p_rev'))
local ref = tonumber(redis.call('HGET', k, 'p_ref'))
local voided = redis.call('HGET', k, 'p_void') == '1'
local kind = ARGV[2]
local amt = tonumber(ARGV[3])
local left, field
if voided then return {-3, 0, cur} end
if kind == 'capture' or kind == 'reverse' then
  left = auth - cap - rev
  field = (kind == 'capture') and 'p_cap' or 'p_rev'
elseif kind == 'refund' then
  left = cap - ref
  field = 'p_ref'
else -- void: the whole capture
  if cap == 0 or ref > 0 then return {-3, 0, cur} end
  redis.call('HSET', k, 'p_void', '1', 'op:' .. ARGV[1], cap .. '|' .. ARGV[5])
  redis.call('PEXPIRE', k, ARGV[6])
  return {1, cap, cur}
end
if amt < 0 then amt = left end
if amt <= 0 or amt > left then return {-1, left, cur} end
redis.call('HINCRBY', k, field, amt)
redis.call('HSET', k, 'op:' .. ARGV[1], amt .. '|' .. ARGV[5])
redis.call('PEXPIRE', k, ARGV[6])
return {1, amt, cur}
`

var reserveScript = redis.NewScript(reserveLua)

// Reserve takes amount (ten-thousandths; negative: all that is left) of the
// payment made by paymentIntentID, for settlement operation a.IntentID of
// kind capture, reverse, refund or void, on behalf of merchant. Reserving
// again for the same operation returns the same amount and makes a the
// reservation's holder. It returns the amount and the payment's currency.
func (s *Store) Reserve(ctx context.Context, paymentIntentID, merchant, kind string, a Attempt, amount int64) (int64, string, error) {
	cmd, err := s.guard(ctx, "reserve", reserveScript, []string{Key(paymentIntentID)},
		[]any{a.IntentID, kind, amount, merchant, holder(a), s.opts.Retention.Milliseconds()}, nil)
	v, verr := cmd.Slice()
	if verr != nil {
		return 0, "", fmt.Errorf("reserve: %w", verr)
	}
	if err != nil {
		return 0, "", fmt.Errorf("reserve: %w", err)
	}
	return reserveAnswer(v[0].(int64), v[1].(int64), v[2])
}

func reserveAnswer(code, n int64, curV any) (int64, string, error) {
	cur, _ := curV.(string)
	switch code {
	case 1:
		return n, cur, nil
	case -2:
		return 0, "", ErrUnknownPayment
	case -3:
		return 0, cur, ErrNotVoidable
	case -4:
		return 0, "", ErrForeign
	}
	return n, cur, ErrNothingLeft
}

const unreserveLua = `
local k = KEYS[1]
local held = redis.call('HGET', k, 'op:' .. ARGV[1])
if not held then return 1 end
local amt, who = string.match(held, '^([^|]*)|(.*)$')
if who ~= ARGV[3] then return 0 end
if ARGV[2] == 'void' then
  redis.call('HSET', k, 'p_void', '0')
else
  local field = ({capture='p_cap', reverse='p_rev', refund='p_ref'})[ARGV[2]]
  redis.call('HINCRBY', k, field, -tonumber(amt))
end
redis.call('HDEL', k, 'op:' .. ARGV[1])
redis.call('PEXPIRE', k, ARGV[4])
return 1
`

var unreserveScript = redis.NewScript(unreserveLua)

// Unreserve gives a reservation back after the operation definitely did
// not apply. It is fenced on the holder: a caller whose attempt no longer
// holds the reservation gets ErrConflict and gives nothing back.
func (s *Store) Unreserve(ctx context.Context, paymentIntentID, kind string, a Attempt) error {
	n, err := unreserveScript.Run(ctx, s.rdb, []string{Key(paymentIntentID)}, a.IntentID, kind, holder(a), s.opts.Retention.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("unreserve: %w", err)
	}
	if n == 0 {
		return ErrConflict
	}
	return nil
}

// Result returns the recorded result of a terminal intent (nil when the
// intent is not terminal or unknown).
func (s *Store) Result(ctx context.Context, intentID string) ([]byte, error) {
	vals, err := s.rdb.HMGet(ctx, Key(intentID), "s", "r").Result()
	if err != nil {
		return nil, err
	}
	if st, _ := vals[0].(string); st != "done" {
		return nil, nil
	}
	r, _ := vals[1].(string)
	return []byte(r), nil
}

// State is the state of an intent's record ("" when it has none): a read,
// for deciding whether a delivery may be refused without looking further.
func (s *Store) State(ctx context.Context, intentID string) (string, error) {
	st, err := s.rdb.HGet(ctx, Key(intentID), "s").Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return st, err
}

// ChainKey is the Redis key of a merchant's stored-credential series, named
// by the network transaction id of the transaction that stored the card.
// Each merchant's series is its own: another merchant naming the same id
// never reads or moves it.
func ChainKey(merchant, rootTransactionID string) string {
	return "payflow:cof:{" + merchant + ":" + rootTransactionID + "}"
}

// LastTransaction is the last successful network transaction id of a
// merchant's series ("" when none since the root).
func (s *Store) LastTransaction(ctx context.Context, merchant, root string) (string, error) {
	v, err := s.rdb.HGet(ctx, ChainKey(merchant, root), "last").Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return v, err
}

const advanceChainLua = `
local at = tonumber(redis.call('HGET', KEYS[1], 'at') or '0')
if tonumber(ARGV[2]) >= at then
  redis.call('HSET', KEYS[1], 'last', ARGV[1], 'at', ARGV[2])
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`

var advanceChainScript = redis.NewScript(advanceChainLua)

// AdvanceChain records a successful transaction of a merchant's series,
// made at `at`: the series only moves forward, so a late redelivery of an
// older transaction never replaces a newer one.
func (s *Store) AdvanceChain(ctx context.Context, merchant, root, transactionID string, at time.Time) error {
	_, err := s.guard(ctx, "advanceChain", advanceChainScript, []string{ChainKey(merchant, root)},
		[]any{transactionID, at.UnixMilli(), s.opts.Retention.Milliseconds()}, nil)
	if err != nil {
		return fmt.Errorf("advance chain: %w", err)
	}
	return nil
}
