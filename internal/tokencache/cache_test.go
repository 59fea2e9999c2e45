package tokencache_test

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ttcpay/payflow/internal/cybs"
	"github.com/ttcpay/payflow/internal/harness"
	"github.com/ttcpay/payflow/internal/sandbox"
	"github.com/ttcpay/payflow/internal/tokencache"
	"github.com/ttcpay/payflow/internal/ttc"
)

type bundle struct {
	sb    *sandbox.Server
	redis *harness.Redis
	key   []byte
}

func setup(t *testing.T, lifetime time.Duration) *bundle {
	t.Helper()
	return setupWith(t, lifetime, nil)
}

// setupWith is setup with the sandbox's configuration adjusted by edit.
func setupWith(t *testing.T, lifetime time.Duration, edit func(*sandbox.Config)) *bundle {
	t.Helper()
	cfg := sandbox.Config{
		TokenLifetime: lifetime,
		Integrators: map[string]sandbox.Integrator{
			"costco": {APIKey: "key-costco"},
			"acme":   {APIKey: "key-acme"},
		},
		// Token requests take a while, as real ones do, so that any overlap shows.
		Faults: sandbox.Faults{Latency: map[string]sandbox.Latency{"token": {Fixed: sandbox.Duration(20 * time.Millisecond)}}},
	}
	if edit != nil {
		edit(&cfg)
	}
	sb, err := sandbox.Listen(cfg, "127.0.0.1:0", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sb.Close() })
	return &bundle{sb: sb, redis: harness.StartRedis(t), key: newKey()}
}

// stressScale is PAYFLOW_STRESS_SCALE, a number in (0, 1]: mutation runs
// (scripts/mutation.sh, docs/mutation.md) set it below 1 to shorten the
// stress tests, which gremlins reruns once per mutant. A shortened test
// runs fewer token lifetimes and its bounds follow from the number it
// runs, so a broken lock still fails it. Unset (the test command) or 1: the
// full length.
func stressScale(t *testing.T) float64 {
	t.Helper()
	s := os.Getenv("PAYFLOW_STRESS_SCALE")
	if s == "" {
		return 1
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || !(f > 0 && f <= 1) {
		t.Fatalf("PAYFLOW_STRESS_SCALE=%q: want a number in (0, 1]", s)
	}
	return f
}

// scaled is n scaled by PAYFLOW_STRESS_SCALE, and at least least.
func scaled(t *testing.T, n, least int) int {
	t.Helper()
	return max(least, int(math.Round(float64(n)*stressScale(t))))
}

// scaledDuration is d scaled by PAYFLOW_STRESS_SCALE, and at least least.
func scaledDuration(t *testing.T, d, least time.Duration) time.Duration {
	t.Helper()
	return max(least, time.Duration(float64(d)*stressScale(t)))
}

// maxRefreshes bounds the token requests of one merchant over a run of
// the given number of lifetimes: with refresh ahead at fraction a of the
// lifetime, a token is replaced after at least (1-a)·L (the jitter only
// delays it), so they hold at most floor(lifetimes/(1-a)) + 1 requests.
func maxRefreshes(lifetimes float64, a float64) int {
	return int(math.Floor(lifetimes/(1-a))) + 1
}

func newKey() []byte {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return key
}

func (b *bundle) ttc(t *testing.T) *ttc.Client {
	return b.ttcWith(t, 5*time.Second, nil, nil)
}

// ttcWith is a TTC client with the given timeout and API keys (nil: the
// sandbox's own) that counts its requests in sent, if not nil.
func (b *bundle) ttcWith(t *testing.T, timeout time.Duration, keys map[string]string, sent *atomic.Int64) *ttc.Client {
	t.Helper()
	if keys == nil {
		keys = map[string]string{"costco": "key-costco", "acme": "key-acme"}
	}
	var hc *http.Client
	if sent != nil {
		hc = &http.Client{Transport: countingTransport{http.DefaultTransport, sent}}
	}
	c, err := ttc.New(ttc.Config{BaseURL: b.sb.TTCURL, APIKeys: keys, Timeout: timeout, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// countingTransport counts the requests that reach the wire, for the answers
// the sandbox does not record (a 403 is refused before its ledger).
type countingTransport struct {
	http.RoundTripper
	n *atomic.Int64
}

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.RoundTripper.RoundTrip(r)
}

// podConfig describes one pod; zero fields mean the defaults of pod.
type podConfig struct {
	opts       tokencache.Options
	ttcTimeout time.Duration     // default 5 s
	apiKeys    map[string]string // default: the sandbox's keys
	keys       [][]byte          // cache keys; default b.key
	sent       *atomic.Int64     // counts TTC requests, if set
}

// pod is one "pod": its own Redis client, TTC client and cache.
func (b *bundle) pod(t *testing.T, o tokencache.Options) (*tokencache.Cache, *redis.Client) {
	t.Helper()
	return b.podWith(t, podConfig{opts: o})
}

func (b *bundle) podWith(t *testing.T, pc podConfig) (*tokencache.Cache, *redis.Client) {
	t.Helper()
	// Redis timeouts as the worker sets them (2 s): a shorter one turns
	// ordinary scheduling delays on a loaded machine into errors.
	rdb := redis.NewClient(&redis.Options{Addr: b.redis.Addr(), MaxRetries: -1, DialTimeout: 200 * time.Millisecond,
		ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second, PoolSize: 64})
	t.Cleanup(func() { _ = rdb.Close() })
	keys := pc.keys
	if keys == nil {
		keys = [][]byte{b.key}
	}
	st, err := tokencache.NewRedisStore(rdb, keys...)
	if err != nil {
		t.Fatal(err)
	}
	o := pc.opts
	if o.Poll == 0 {
		o.Poll = 10 * time.Millisecond
	}
	if o.Recheck == 0 {
		o.Recheck = 50 * time.Millisecond
	}
	if o.LockTTL == 0 {
		o.LockTTL = 5 * time.Second
	}
	return tokencache.New(b.ttcWith(t, cmp.Or(pc.ttcTimeout, 5*time.Second), pc.apiKeys, pc.sent), st, o), rdb
}

// tokenRequests counts the sandbox's token requests for an integrator and
// the merchants that match, and how many of them overlapped another.
func (b *bundle) tokenRequests(integrator string, match func(merchant string) bool) (n, overlapping int) {
	for _, r := range b.sb.Ledger().TokenRequests {
		if r.Integrator == integrator && match(r.MerchantID) {
			n++
			if r.Overlapped {
				overlapping++
			}
		}
	}
	return n, overlapping
}

type stressResult struct {
	calls, errs, expired, late, unknown int64
	requests, overlapping               int
	sample                              atomic.Value // an error
}

// stress runs pods × goroutines asking for credentials for the given number
// of token lifetimes, each pausing 1 ms between calls where a payment would
// call CyberSource (hundreds of ms in production), so that 128 callers still
// meet at every refresh point but do not starve the refresher of CPU; during
// runs meanwhile.
func stress(t *testing.T, b *bundle, lifetime time.Duration, lifetimes, pods, goroutines int, o tokencache.Options, during func()) stressResult {
	caches := make([]*tokencache.Cache, pods)
	for i := range caches {
		caches[i], _ = b.pod(t, o)
	}
	var res stressResult
	// The cache's contract: a token handed out has more than the margin left
	// at the moment Get hands it out. That moment lies between the call and
	// the caller's next clock reading; the caller may wait for a CPU in
	// between (2 shared cores, 128 busy goroutines, -race), so the test
	// judges from the call's start, which no scheduling delay can move:
	// a token with no more than the margin left then had less when Get
	// decided, whatever the scheduler did.
	margin := min(tokencache.ExpiryMarginDefault, lifetime/20)
	deadline := time.Now().Add(time.Duration(lifetimes) * lifetime)
	var wg sync.WaitGroup
	for _, c := range caches {
		for range goroutines {
			wg.Go(func() {
				for time.Now().Before(deadline) {
					// A payment waits up to 15 s for credentials; 5 s still
					// catches a stall without failing on a busy machine.
					start := time.Now()
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					cr, err := c.Get(ctx, "costco", "m1")
					got := time.Now() // when the caller got it
					cancel()
					atomic.AddInt64(&res.calls, 1)
					time.Sleep(time.Millisecond) // the charge
					if err != nil {
						atomic.AddInt64(&res.errs, 1)
						res.sample.Store(err)
						continue
					}
					// Ground truth: the sandbox's own expiry of this token.
					exp, ok := b.sb.TokenExpiry(cr.AccessToken)
					switch {
					case !ok:
						atomic.AddInt64(&res.unknown, 1)
					case !start.Add(margin).Before(exp):
						atomic.AddInt64(&res.expired, 1)
					case !got.Before(exp):
						atomic.AddInt64(&res.late, 1) // expired while the caller waited for a CPU: logged
					}
				}
			})
		}
	}
	if during != nil {
		during()
	}
	wg.Wait()
	for _, r := range b.sb.Ledger().TokenRequests {
		if r.Integrator == "costco" && r.MerchantID == "m1" {
			res.requests++
			if r.Overlapped {
				res.overlapping++
			}
		}
	}
	return res
}

func TestStressOneRefreshPerLifetime(t *testing.T) {
	const lifetime = 2 * time.Second
	lifetimes := scaled(t, 5, 2)
	cases := []struct {
		name string
		o    tokencache.Options
		// maxRequests: see maxRefreshes (5 lifetimes: 6 and 7).
		maxRequests int
	}{
		{"RefreshAt10PercentLeft", tokencache.Options{RefreshAhead: 0.10}, maxRefreshes(float64(lifetimes), 0.10)},
		{"DefaultRefreshAt20PercentLeft", tokencache.Options{}, maxRefreshes(float64(lifetimes), tokencache.RefreshAheadDefault)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := setup(t, lifetime)
			r := stress(t, b, lifetime, lifetimes, 4, 32, tc.o, nil)
			t.Logf("%d Get calls by 4 pods x 32 goroutines over %d lifetimes of %v: %d token requests (bound %d), %d overlapping, %d errors, %d expired or within the margin, %d unknown (%d expired only after Get returned)",
				r.calls, lifetimes, lifetime, r.requests, tc.maxRequests, r.overlapping, r.errs, r.expired, r.unknown, r.late)
			if r.requests > tc.maxRequests || r.requests < lifetimes {
				t.Errorf("token requests %d, want %d..%d", r.requests, lifetimes, tc.maxRequests)
			}
			if r.overlapping != 0 {
				t.Errorf("%d overlapping token requests", r.overlapping)
			}
			if r.expired != 0 || r.unknown != 0 {
				t.Errorf("%d tokens handed out expired or within the margin, and %d unknown", r.expired, r.unknown)
			}
			if r.errs != 0 {
				t.Errorf("%d errors with Redis and TTC up, e.g. %v", r.errs, r.sample.Load())
			}
		})
	}
}

func TestStressRedisRestart(t *testing.T) {
	const lifetime = 2 * time.Second
	// Shortened (PAYFLOW_STRESS_SCALE), Redis goes down sooner and the run
	// ends sooner after its restart; it stays down as long.
	lifetimes := scaled(t, 5, 3)
	up := scaledDuration(t, 3*time.Second, time.Second)
	b := setup(t, lifetime)
	r := stress(t, b, lifetime, lifetimes, 4, 32, tokencache.Options{}, func() {
		time.Sleep(up)
		b.redis.Stop()
		time.Sleep(lifetime) // longer than the rest of the token's life
		b.redis.Restart()
	})
	t.Logf("Redis down %v of %v: %d calls, %d errors, %d expired, %d unknown, %d token requests, %d overlapping",
		lifetime, time.Duration(lifetimes)*lifetime, r.calls, r.errs, r.expired, r.unknown, r.requests, r.overlapping)
	if r.expired != 0 || r.unknown != 0 {
		t.Fatalf("%d expired and %d unknown tokens handed out", r.expired, r.unknown)
	}
	if r.errs == 0 {
		t.Error("no errors while Redis was down longer than the token lived: the test did not bite")
	}
	// Working again.
	c, _ := b.pod(t, tokencache.Options{})
	if _, err := c.Get(context.Background(), "costco", "m1"); err != nil {
		t.Fatalf("after restart: %v", err)
	}
}

func TestIsolation(t *testing.T) {
	b := setup(t, time.Minute)
	c, rdb := b.pod(t, tokencache.Options{})
	ctx := context.Background()
	seen := map[string]string{}
	for _, in := range []string{"costco", "acme"} {
		for _, m := range []string{"m1", "m2"} {
			cr, err := c.Get(ctx, in, m)
			if err != nil {
				t.Fatal(err)
			}
			leaf, _ := x509.ParseCertificate(cr.Certificate.Certificate[0])
			if leaf.Subject.CommonName != in+":"+m {
				t.Fatalf("%s/%s got the certificate of %s", in, m, leaf.Subject.CommonName)
			}
			if other, dup := seen[cr.AccessToken]; dup {
				t.Fatalf("%s/%s shares a token with %s", in, m, other)
			}
			seen[cr.AccessToken] = in + "/" + m
			if n, _ := rdb.Exists(ctx, tokencache.RedisKey(in, m)).Result(); n != 1 {
				t.Fatalf("no Redis entry for %s/%s", in, m)
			}
		}
	}
	if n := len(b.sb.Ledger().TokenRequests); n != 4 {
		t.Fatalf("%d token requests, want 4", n)
	}
	// A second pod gets all four from Redis, asking TTC nothing.
	c2, _ := b.pod(t, tokencache.Options{})
	for _, in := range []string{"costco", "acme"} {
		for _, m := range []string{"m1", "m2"} {
			cr, err := c2.Get(ctx, in, m)
			if err != nil || seen[cr.AccessToken] != in+"/"+m {
				t.Fatalf("second pod %s/%s: %v", in, m, err)
			}
		}
	}
	if n := len(b.sb.Ledger().TokenRequests); n != 4 {
		t.Fatalf("%d token requests after the second pod, want 4", n)
	}
}

func TestRedisHoldsNoSecrets(t *testing.T) {
	b := setup(t, time.Minute)
	c, rdb := b.pod(t, tokencache.Options{})
	ctx := context.Background()
	cr, err := c.Get(ctx, "costco", "m1")
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := rdb.Keys(ctx, "*").Result()
	if len(keys) == 0 {
		t.Fatal("nothing in Redis")
	}
	for _, k := range keys {
		var raw string
		switch typ, _ := rdb.Type(ctx, k).Result(); typ {
		case "hash":
			m, _ := rdb.HGetAll(ctx, k).Result()
			raw = fmt.Sprint(m)
		case "string":
			raw, _ = rdb.Get(ctx, k).Result()
		}
		if strings.Contains(raw, cr.AccessToken) || strings.Contains(raw, "PRIVATE KEY") || strings.Contains(raw, "CERTIFICATE") {
			t.Fatalf("Redis key %s holds a secret in plaintext", k)
		}
	}
	// Another key cannot open it: the blob is a miss, replaced by a refresh
	// (a new token, the next generation), never handed out.
	otherKey := newKey()
	st, _ := tokencache.NewRedisStore(rdb, otherKey)
	other := tokencache.New(b.ttc(t), st, tokencache.Options{})
	cr2, err := other.Get(ctx, "costco", "m1")
	if err != nil || cr2.AccessToken == cr.AccessToken || cr2.Generation != cr.Generation+1 || other.Stats().Undecryptable != 1 {
		t.Fatalf("read with the wrong key: gen %d→%d, same token %v, %v", cr.Generation, cr2.Generation, err == nil && cr2.AccessToken == cr.AccessToken, err)
	}
	// A tampered blob does not open with the key that sealed it.
	rk := tokencache.RedisKey("costco", "m1")
	blob, _ := rdb.HGet(ctx, rk, "blob").Result()
	bad := []byte(blob)
	bad[len(bad)-1] ^= 1
	rdb.HSet(ctx, rk, "blob", string(bad))
	c3, _ := b.podWith(t, podConfig{keys: [][]byte{otherKey}})
	cr3, err := c3.Get(ctx, "costco", "m1")
	if err != nil || cr3.AccessToken == cr2.AccessToken || cr3.Generation != cr2.Generation+1 {
		t.Fatalf("tampered blob: gen %d→%d, %v", cr2.Generation, cr3.Generation, err)
	}
}

func TestInvalidateAfter401(t *testing.T) {
	b := setup(t, time.Minute)
	c, _ := b.pod(t, tokencache.Options{})
	ctx := context.Background()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(b.sb.CACertPEM())
	cs, _ := cybs.New(cybs.Config{BaseURL: b.sb.CybsURL, RootCAs: pool})
	pay := func(cr *tokencache.Credentials, txn string) error {
		_, err := cs.Authorize(ctx, cybs.Credentials{Key: cr.Key(), Generation: cr.Generation, AccessToken: cr.AccessToken, Certificate: cr.Certificate},
			&cybs.PaymentRequest{
				ClientReferenceInformation: cybs.ClientReference{Code: txn, TransactionID: txn},
				PaymentInformation:         cybs.PaymentInformation{Card: &cybs.Card{Number: "4111111111111111", ExpirationMonth: "12", ExpirationYear: "2031"}},
				OrderInformation: cybs.OrderInformation{AmountDetails: cybs.AmountDetails{TotalAmount: "1.00", Currency: "USD"},
					BillTo: &cybs.BillTo{FirstName: "J", LastName: "D", Address1: "1", Locality: "x", AdministrativeArea: "CA", PostalCode: "1", Country: "US", Email: "a@b.c"}},
			})
		return err
	}
	cr1, err := c.Get(ctx, "costco", "m1")
	if err != nil {
		t.Fatal(err)
	}
	if err := pay(cr1, "t1"); err != nil {
		t.Fatal(err)
	}
	b.sb.RevokeTokens("costco", "m1")
	err = pay(cr1, "t2")
	if cybs.OutcomeOf(err) != cybs.OutcomeCredentialsRejected {
		t.Fatalf("revoked token: %v", err)
	}
	if err := c.Invalidate(ctx, cr1); err != nil {
		t.Fatal(err)
	}
	cr2, err := c.Get(ctx, "costco", "m1")
	if err != nil || cr2.Generation != cr1.Generation+1 || cr2.AccessToken == cr1.AccessToken {
		t.Fatalf("after invalidate: gen %d→%d err %v", cr1.Generation, cr2.Generation, err)
	}
	if err := pay(cr2, "t3"); err != nil {
		t.Fatalf("with the new token: %v", err)
	}
	// A late invalidation of the old token (another pod's 401) keeps the new one.
	c2, _ := b.pod(t, tokencache.Options{})
	if err := c2.Invalidate(ctx, cr1); err != nil {
		t.Fatal(err)
	}
	before := len(b.sb.Ledger().TokenRequests)
	cr3, err := c2.Get(ctx, "costco", "m1")
	if err != nil || cr3.AccessToken != cr2.AccessToken {
		t.Fatalf("stale invalidation replaced the token: %v", err)
	}
	if after := len(b.sb.Ledger().TokenRequests); after != before {
		t.Fatalf("stale invalidation caused %d token requests", after-before)
	}
	if s := c.Stats(); s.Invalidations != 1 || s.Refreshes != 2 {
		t.Fatalf("stats %+v", s)
	}
}

func TestWaiterBoundedByContext(t *testing.T) {
	b := setup(t, time.Minute)
	// TTC is slow: one pod refreshes, another waits for it.
	_ = b.sb.SetFaults(sandbox.Faults{Latency: map[string]sandbox.Latency{"token": {Fixed: sandbox.Duration(600 * time.Millisecond)}}})
	c1, _ := b.pod(t, tokencache.Options{})
	c2, _ := b.pod(t, tokencache.Options{})
	go func() { _, _ = c1.Get(context.Background(), "costco", "m1") }()
	time.Sleep(100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := c2.Get(ctx, "costco", "m1"); !errors.Is(err, tokencache.ErrNoCredentials) {
		t.Fatalf("waiter past its deadline: %v", err)
	}
	cr, err := c2.Get(context.Background(), "costco", "m1")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(b.sb.Ledger().TokenRequests); n != 1 || c2.Stats().LockWaits == 0 {
		t.Fatalf("%d token requests, lock waits %d", n, c2.Stats().LockWaits)
	}
	_ = cr
}

func TestTTCErrorsPropagate(t *testing.T) {
	b := setup(t, time.Minute)
	c, _ := b.pod(t, tokencache.Options{})
	_ = b.sb.SetFaults(sandbox.Faults{Errors: map[string]sandbox.ErrorFault{"token": {Rate: 1, Status: 500}}})
	_, err := c.Get(context.Background(), "costco", "m1")
	if ttc.KindOf(err) != ttc.KindTransient {
		t.Fatalf("500: %v", err)
	}
	_ = b.sb.SetFaults(sandbox.Faults{})
	if _, err := c.Get(context.Background(), "costco", "m1"); err != nil {
		t.Fatalf("after TTC recovered: %v", err)
	}
	if s := c.Stats(); s.RefreshFailures != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestMemoryStore(t *testing.T) {
	const lifetime = 2 * time.Second
	b := setup(t, lifetime)
	c := tokencache.New(b.ttc(t), tokencache.NewMemoryStore(), tokencache.Options{Recheck: 20 * time.Millisecond})
	ctx := context.Background()
	var wg sync.WaitGroup
	var expired atomic.Int64
	run := scaledDuration(t, 5*time.Second, lifetime)
	deadline := time.Now().Add(run)
	for range 16 {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				cr, err := c.Get(ctx, "costco", "m1")
				got := time.Now()
				if err != nil {
					t.Error(err)
					return
				}
				if exp, ok := b.sb.TokenExpiry(cr.AccessToken); !ok || !got.Before(exp) {
					expired.Add(1)
				}
			}
		})
	}
	wg.Wait()
	l := b.sb.Ledger()
	if len(l.TokenRequests) > maxRefreshes(run.Seconds()/lifetime.Seconds(), tokencache.RefreshAheadDefault) || l.OverlappingTokenRequests() != 0 || expired.Load() != 0 {
		t.Fatalf("%d requests, %d overlapping, %d expired", len(l.TokenRequests), l.OverlappingTokenRequests(), expired.Load())
	}
	cr, _ := c.Get(ctx, "costco", "m1")
	_ = c.Invalidate(ctx, cr)
	cr2, err := c.Get(ctx, "costco", "m1")
	if err != nil || cr2.Generation != cr.Generation+1 {
		t.Fatalf("memory invalidate: %v", err)
	}
}

func TestCredentialsStringRedacts(t *testing.T) {
	cr := &tokencache.Credentials{Integrator: "costco", MerchantID: "m", AccessToken: "secret-token", KeyPEM: []byte("-----BEGIN PRIVATE KEY-----")}
	for _, s := range []string{cr.String(), fmt.Sprintf("%v %+v %#v", cr, cr, cr)} {
		if strings.Contains(s, "secret-token") || strings.Contains(s, "PRIVATE") {
			t.Fatalf("leak: %s", s)
		}
	}
}

// BenchmarkGetHot measures the hot path: credentials served from the
// in-process layer while the token is fresh (no Redis round trip).
func BenchmarkGetHot(b *testing.B) {
	sb, err := sandbox.Listen(sandbox.Config{Integrators: map[string]sandbox.Integrator{"costco": {APIKey: "k"}}}, "127.0.0.1:0", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer sb.Close()
	tc, _ := ttc.New(ttc.Config{BaseURL: sb.TTCURL, APIKeys: map[string]string{"costco": "k"}})
	c := tokencache.New(tc, tokencache.NewMemoryStore(), tokencache.Options{})
	ctx := context.Background()
	if _, err := c.Get(ctx, "costco", "m1"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Get(ctx, "costco", "m1"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
