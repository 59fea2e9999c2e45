package tokencache

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ttcpay/payflow/internal/ttc"
)

// RedisTTLDefault is how long an untouched merchant's entry stays in Redis.
const RedisTTLDefault = 7 * 24 * time.Hour

// RedisStore keeps one hash per integrator and merchant:
//
//	payflow:cred:{integrator/merchant}          gen = generation (plain), blob = AES-256-GCM(JSON)
//	payflow:cred:{integrator/merchant}:lock     the refresh lock (SET NX PX, renewed and released
//	                                            only by its token)
//	payflow:cred:{integrator/merchant}:refused  a remembered TTC refusal ("kind:status", PX)
//
// The hash tag puts a value, its lock and its refusal in one Redis Cluster
// slot. The blob is sealed with the Redis key and the generation as
// associated data, so it cannot be moved to another merchant or generation.
// Neither the access token nor the private key is ever stored in plaintext.
//
// Several keys make a rotation: the first seals, every one opens. A blob that
// no key opens is read as that generation without credentials: a miss that
// the cache refreshes under the lock, fenced on the generation.
type RedisStore struct {
	rdb   redis.UniversalClient
	aeads []cipher.AEAD // [0] seals
	ttl   time.Duration
}

var _ store = (*RedisStore)(nil)

// NewRedisStore builds the store over 32-byte AES-256 keys: the first
// encrypts, all of them decrypt.
func NewRedisStore(rdb redis.UniversalClient, keys ...[]byte) (*RedisStore, error) {
	if len(keys) == 0 {
		return nil, errors.New("tokencache: no encryption key")
	}
	s := &RedisStore{rdb: rdb, ttl: RedisTTLDefault}
	for i, key := range keys {
		if len(key) != 32 {
			return nil, fmt.Errorf("tokencache: encryption key %d is %d bytes, want 32 (AES-256)", i+1, len(key))
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		s.aeads = append(s.aeads, aead)
	}
	return s, nil
}

// RedisKey is the Redis key of an integrator and merchant (exported for
// tests and operators).
func RedisKey(integrator, merchantID string) string {
	return "payflow:cred:{" + integrator + "/" + merchantID + "}"
}

type sealed struct {
	Token     string `json:"t"`
	ExpiresAt int64  `json:"e"`
	RefreshAt int64  `json:"r"`
	Lifetime  int64  `json:"l"`
	Cert      []byte `json:"c"`
	Key       []byte `json:"k"`
}

func aad(rkey string, gen int64) []byte { return []byte(rkey + "#" + strconv.FormatInt(gen, 10)) }

func (s *RedisStore) read(ctx context.Context, k entryKey) (*Credentials, error) {
	rk := RedisKey(k.integrator, k.merchant)
	vals, err := s.rdb.HMGet(ctx, rk, "gen", "blob").Result()
	if err != nil {
		return nil, err
	}
	gs, _ := vals[0].(string)
	if gs == "" {
		return nil, nil
	}
	gen, err := strconv.ParseInt(gs, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("generation %q: %w", gs, err)
	}
	cr := &Credentials{Integrator: k.integrator, MerchantID: k.merchant, Generation: gen}
	blob, _ := vals[1].(string)
	if blob == "" {
		return cr, nil // invalidated: keep the generation for fencing
	}
	plain, ok := s.open(blob, aad(rk, gen))
	var v sealed
	if ok {
		ok = json.Unmarshal(plain, &v) == nil
	}
	var pair tls.Certificate
	if ok {
		pair, err = tls.X509KeyPair(v.Cert, v.Key)
		ok = err == nil
	}
	if !ok {
		// No key opens it (rotated, or tampered), or it does not parse: a
		// miss at this generation, so that a refresh replaces it.
		cr.undecryptable = true
		return cr, nil
	}
	cr.AccessToken = v.Token
	cr.ExpiresAt = time.Unix(0, v.ExpiresAt)
	cr.RefreshAt = time.Unix(0, v.RefreshAt)
	cr.Lifetime = time.Duration(v.Lifetime)
	cr.CertPEM, cr.KeyPEM, cr.Certificate = v.Cert, v.Key, &pair
	return cr, nil
}

var writeScript = redis.NewScript(`
local cur = tonumber(redis.call('HGET', KEYS[1], 'gen') or '0')
if cur ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'gen', ARGV[2], 'blob', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1`)

// open tries every key; the nonce prefixes the sealed value.
func (s *RedisStore) open(blob string, ad []byte) ([]byte, bool) {
	for _, a := range s.aeads {
		ns := a.NonceSize()
		if len(blob) < ns {
			return nil, false
		}
		if plain, err := a.Open(nil, []byte(blob[:ns]), []byte(blob[ns:]), ad); err == nil {
			return plain, true
		}
	}
	return nil, false
}

func (s *RedisStore) write(ctx context.Context, k entryKey, cr *Credentials, prevGen int64) (bool, error) {
	rk := RedisKey(k.integrator, k.merchant)
	plain, err := json.Marshal(sealed{
		Token: cr.AccessToken, ExpiresAt: cr.ExpiresAt.UnixNano(), RefreshAt: cr.RefreshAt.UnixNano(),
		Lifetime: int64(cr.Lifetime), Cert: cr.CertPEM, Key: cr.KeyPEM,
	})
	if err != nil {
		return false, err
	}
	aead := s.aeads[0]
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return false, err
	}
	blob := aead.Seal(nonce, nonce, plain, aad(rk, cr.Generation))
	n, err := writeScript.Run(ctx, s.rdb, []string{rk}, prevGen, cr.Generation, blob, s.ttl.Milliseconds()).Int()
	if err != nil {
		return false, err
	}
	return n == 1, nil
}

var invalidateScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'gen') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'blob', '')
  return 1
end
return 0`)

func (s *RedisStore) invalidate(ctx context.Context, k entryKey, gen int64) (bool, error) {
	n, err := invalidateScript.Run(ctx, s.rdb, []string{RedisKey(k.integrator, k.merchant)}, strconv.FormatInt(gen, 10)).Int()
	return n == 1, err
}

func (s *RedisStore) lock(ctx context.Context, k entryKey, ttl time.Duration) (string, bool, error) {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	tok := fmt.Sprintf("%x", b)
	ok, err := s.rdb.SetNX(ctx, RedisKey(k.integrator, k.merchant)+":lock", tok, ttl).Result()
	return tok, ok, err
}

var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

func (s *RedisStore) unlock(ctx context.Context, k entryKey, tok string) error {
	return unlockScript.Run(ctx, s.rdb, []string{RedisKey(k.integrator, k.merchant) + ":lock"}, tok).Err()
}

var extendScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`)

func (s *RedisStore) extend(ctx context.Context, k entryKey, tok string, ttl time.Duration) (bool, error) {
	n, err := extendScript.Run(ctx, s.rdb, []string{RedisKey(k.integrator, k.merchant) + ":lock"}, tok, ttl.Milliseconds()).Int()
	return n == 1, err
}

func (s *RedisStore) refuse(ctx context.Context, k entryKey, kind ttc.Kind, status int, ttl time.Duration) error {
	return s.rdb.Set(ctx, RedisKey(k.integrator, k.merchant)+":refused", fmt.Sprintf("%d:%d", kind, status), ttl).Err()
}

func (s *RedisStore) refused(ctx context.Context, k entryKey) (ttc.Kind, int, time.Duration, error) {
	rk := RedisKey(k.integrator, k.merchant) + ":refused"
	var get *redis.StringCmd
	var pttl *redis.DurationCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		get = p.Get(ctx, rk)
		pttl = p.PTTL(ctx, rk)
		return nil
	})
	if errors.Is(err, redis.Nil) {
		return 0, 0, 0, nil
	}
	if err != nil {
		return 0, 0, 0, err
	}
	ks, ss, _ := strings.Cut(get.Val(), ":")
	kind, err1 := strconv.Atoi(ks)
	status, err2 := strconv.Atoi(ss)
	left := pttl.Val()
	if err1 != nil || err2 != nil || left <= 0 || !remembered(&ttc.Error{Kind: ttc.Kind(kind)}) {
		return 0, 0, 0, nil // gone meanwhile, or not ours to trust
	}
	return ttc.Kind(kind), status, left, nil
}
