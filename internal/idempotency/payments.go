package idempotency

import (
	"context"
	"errors"
	"fmt"

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
	Sale          bool // captured with the authorization
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
)

var reserveScript = redis.NewScript(`
local k = KEYS[1]
local cur = redis.call('HGET', k, 'p_cur')
if not cur then return {-2, 0, ''} end
local held = redis.call('HGET', k, 'op:' .. ARGV[1])
if held then return {1, tonumber(held), cur} end
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
  redis.call('HSET', k, 'p_void', '1', 'op:' .. ARGV[1], cap)
  return {1, cap, cur}
end
if amt < 0 then amt = left end
if amt <= 0 or amt > left then return {-1, left, cur} end
redis.call('HINCRBY', k, field, amt)
redis.call('HSET', k, 'op:' .. ARGV[1], amt)
return {1, amt, cur}
`)

// Reserve takes amount (ten-thousandths; negative: all that is left) of the
// payment made by paymentIntentID, for settlement operation opID of kind
// capture, reverse, refund or void. Reserving again for the same opID
// returns the same amount. It returns the amount and the payment's currency.
func (s *Store) Reserve(ctx context.Context, paymentIntentID, opID, kind string, amount int64) (int64, string, error) {
	v, err := reserveScript.Run(ctx, s.rdb, []string{Key(paymentIntentID)}, opID, kind, amount).Slice()
	if err != nil {
		return 0, "", fmt.Errorf("reserve: %w", err)
	}
	code, n := v[0].(int64), v[1].(int64)
	cur, _ := v[2].(string)
	switch code {
	case 1:
		return n, cur, nil
	case -2:
		return 0, "", ErrUnknownPayment
	case -3:
		return 0, cur, ErrNotVoidable
	}
	return n, cur, ErrNothingLeft
}

var unreserveScript = redis.NewScript(`
local k = KEYS[1]
local held = redis.call('HGET', k, 'op:' .. ARGV[1])
if not held then return 0 end
if ARGV[2] == 'void' then
  redis.call('HSET', k, 'p_void', '0')
else
  local field = ({capture='p_cap', reverse='p_rev', refund='p_ref'})[ARGV[2]]
  redis.call('HINCRBY', k, field, -tonumber(held))
end
redis.call('HDEL', k, 'op:' .. ARGV[1])
return 1
`)

// Unreserve gives a reservation back after the operation definitely failed.
func (s *Store) Unreserve(ctx context.Context, paymentIntentID, opID, kind string) error {
	return unreserveScript.Run(ctx, s.rdb, []string{Key(paymentIntentID)}, opID, kind).Err()
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

// ChainKey is the Redis key of a stored credential's series, named by the
// network transaction id of the transaction that stored it.
func ChainKey(rootTransactionID string) string { return "payflow:cof:{" + rootTransactionID + "}" }

// LastTransaction is the last successful network transaction id of a series
// ("" when none since the root).
func (s *Store) LastTransaction(ctx context.Context, root string) (string, error) {
	v, err := s.rdb.HGet(ctx, ChainKey(root), "last").Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return v, err
}

// AdvanceChain records a successful transaction of a series.
func (s *Store) AdvanceChain(ctx context.Context, root, transactionID string) error {
	k := ChainKey(root)
	_, err := s.rdb.TxPipelined(ctx, func(tx redis.Pipeliner) error {
		tx.HSet(ctx, k, "last", transactionID)
		tx.PExpire(ctx, k, s.retention)
		return nil
	})
	return err
}
