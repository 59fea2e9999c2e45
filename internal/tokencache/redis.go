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
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisTTLDefault is how long an untouched merchant's entry stays in Redis.
const RedisTTLDefault = 7 * 24 * time.Hour

// RedisStore keeps one hash per integrator and merchant:
//
//	payflow:cred:{integrator/merchant}       gen = generation (plain), blob = AES-256-GCM(JSON)
//	payflow:cred:{integrator/merchant}:lock  the refresh lock (SET NX PX, compare-and-delete)
//
// The hash tag puts a value and its lock in one Redis Cluster slot. The blob
// is sealed with the Redis key and the generation as associated data, so it
// cannot be moved to another merchant or generation. Neither the access token
// nor the private key is ever stored in plaintext.
type RedisStore struct {
	rdb  redis.UniversalClient
	aead cipher.AEAD
	ttl  time.Duration
}

var _ store = (*RedisStore)(nil)

// NewRedisStore builds the store; key is the 32-byte AES-256 key.
func NewRedisStore(rdb redis.UniversalClient, key []byte) (*RedisStore, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("tokencache: encryption key is %d bytes, want 32 (AES-256)", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &RedisStore{rdb: rdb, aead: aead, ttl: RedisTTLDefault}, nil
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
	ns := s.aead.NonceSize()
	if len(blob) < ns {
		return nil, errors.New("stored credentials are too short")
	}
	plain, err := s.aead.Open(nil, []byte(blob[:ns]), []byte(blob[ns:]), aad(rk, gen))
	if err != nil {
		return nil, errors.New("stored credentials do not decrypt (wrong key or tampered)")
	}
	var v sealed
	if err := json.Unmarshal(plain, &v); err != nil {
		return nil, errors.New("stored credentials are not valid JSON")
	}
	pair, err := tls.X509KeyPair(v.Cert, v.Key)
	if err != nil {
		return nil, errors.New("stored certificate and key do not form a pair")
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

func (s *RedisStore) write(ctx context.Context, k entryKey, cr *Credentials, prevGen int64) (bool, error) {
	rk := RedisKey(k.integrator, k.merchant)
	plain, err := json.Marshal(sealed{
		Token: cr.AccessToken, ExpiresAt: cr.ExpiresAt.UnixNano(), RefreshAt: cr.RefreshAt.UnixNano(),
		Lifetime: int64(cr.Lifetime), Cert: cr.CertPEM, Key: cr.KeyPEM,
	})
	if err != nil {
		return false, err
	}
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return false, err
	}
	blob := s.aead.Seal(nonce, nonce, plain, aad(rk, cr.Generation))
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
