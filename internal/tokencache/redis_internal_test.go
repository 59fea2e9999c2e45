package tokencache

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ttcpay/payflow/internal/harness"
)

// TestRedisWriteIsFencedOnTheGeneration: the Redis store's write stores
// credentials only over the generation the writer read, and says which
// happened: true when stored, false (no error) when another writer got
// there first, which is what sends refreshLocked to adopt the newer
// generation. (Kills redis.go:168:9 CONDITIONALS_NEGATION, which reports a
// stored write as not stored, and 171:11 CONDITIONALS_NEGATION, which
// inverts the answer.)
func TestRedisWriteIsFencedOnTheGeneration(t *testing.T) {
	r := harness.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	s, err := NewRedisStore(rdb, bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	k := entryKey{"costco", "m1"}
	now := time.Unix(1_700_000_000, 0)
	creds := func(gen int64, tok string) *Credentials {
		return &Credentials{Integrator: k.integrator, MerchantID: k.merchant, Generation: gen, AccessToken: tok,
			ExpiresAt: now.Add(time.Hour), RefreshAt: now.Add(50 * time.Minute), Lifetime: time.Hour, CertPEM: []byte("cert"), KeyPEM: []byte("key")}
	}
	for _, step := range []struct {
		cr      *Credentials
		prevGen int64
		stored  bool
	}{
		{creds(1, "first"), 0, true},
		{creds(2, "pod-a"), 1, true},
		{creds(2, "pod-b"), 1, false}, // pod A wrote generation 2 first
		{creds(3, "late"), 1, false},
		{creds(3, "next"), 2, true},
	} {
		stored, err := s.write(ctx, k, step.cr, step.prevGen)
		if err != nil || stored != step.stored {
			t.Fatalf("write of %s over generation %d: stored %v, %v; want %v", step.cr.AccessToken, step.prevGen, stored, err, step.stored)
		}
	}
	// The stored generation (read does not open these credentials: their
	// certificate is no certificate).
	if gen, err := rdb.HGet(ctx, RedisKey(k.integrator, k.merchant), "gen").Int64(); err != nil || gen != 3 {
		t.Fatalf("stored generation %d, %v; want 3", gen, err)
	}
}
