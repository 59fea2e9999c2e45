// Package tokencache shares TTC-issued CyberSource credentials (access token,
// certificate, key) between every worker pod, so that TTC's token endpoint is
// called once per integrator and merchant per token lifetime, never twice at
// the same time for one merchant (TTC rotates the upstream refresh token, and
// racing requests can break it), and a caller never gets an expired token.
//
// Layers: an in-process copy (no I/O while the token is fresh) → a shared
// store (Redis, encrypted; or memory for a single process) → TTC, called by
// the one caller that holds the store's lock. Others wait for it, bounded by
// their context. One refresher renews ahead of expiry while the rest keep
// using the valid token. The lock only saves work: charges never depend on it.
package tokencache

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/singleflight"

	"github.com/ttcpay/payflow/internal/ttc"
)

// Defaults.
const (
	RefreshAheadDefault  = 0.20 // refresh when less than 20% of the lifetime is left
	RefreshJitterDefault = 0.05 // ...plus up to 5% of the lifetime later, at random
	ExpiryMarginDefault  = 30 * time.Second
	LockTTLDefault       = 30 * time.Second
	PollDefault          = 100 * time.Millisecond
	RecheckDefault       = time.Second
	WaitMaxDefault       = 30 * time.Second
)

// Fetcher obtains fresh credentials from TTC (*ttc.Client).
type Fetcher interface {
	Token(ctx context.Context, integrator, merchantID string) (*ttc.Token, error)
}

// Credentials for one integrator and merchant. Values are shared and must
// not be modified. String never shows a secret.
type Credentials struct {
	Integrator  string
	MerchantID  string
	AccessToken string
	ExpiresAt   time.Time
	// RefreshAt is when a refresh ahead of expiry should start; the refresher
	// picks it (with jitter) and every pod follows it.
	RefreshAt time.Time
	Lifetime  time.Duration
	// Generation increases with every refresh for this integrator and
	// merchant; writes are fenced by it and Invalidate compares it.
	Generation  int64
	CertPEM     []byte
	KeyPEM      []byte
	Certificate *tls.Certificate // parsed once per generation
}

// Key names the integrator and merchant ("costco/ttc_ttusas_m").
func (c *Credentials) Key() string { return c.Integrator + "/" + c.MerchantID }

func (c *Credentials) String() string {
	return fmt.Sprintf("credentials{%s gen:%d expires:%s token:redacted key:redacted}",
		c.Key(), c.Generation, c.ExpiresAt.UTC().Format(time.RFC3339))
}

// GoString redacts too.
func (c *Credentials) GoString() string { return c.String() }

// margin is how long before ExpiresAt a token stops being handed out.
func (c *Credentials) margin(max time.Duration) time.Duration {
	return min(max, c.Lifetime/20)
}

// usable: not invalidated, and far enough from expiry.
func (c *Credentials) usable(now time.Time, maxMargin time.Duration) bool {
	return c != nil && c.AccessToken != "" && now.Before(c.ExpiresAt.Add(-c.margin(maxMargin)))
}

// ErrNoCredentials is returned when the caller's context ends while it waits
// for another pod to refresh.
var ErrNoCredentials = errors.New("tokencache: no valid credentials yet")

// Options tune a Cache. Zero values mean the defaults.
type Options struct {
	// RefreshAhead is the fraction of the lifetime left at which a refresh
	// starts. Defaults to 0.20.
	RefreshAhead float64
	// RefreshJitter delays the refresh point by up to this fraction of the
	// lifetime, at random per generation. Defaults to 0.05; negative: none.
	RefreshJitter float64
	// ExpiryMargin: a token is never handed out with less than
	// min(ExpiryMargin, lifetime/20) left. Defaults to 30 s.
	ExpiryMargin time.Duration
	// LockTTL bounds how long a crashed refresher can hold the lock. It must
	// exceed the TTC call timeout. Defaults to 30 s.
	LockTTL time.Duration
	// Poll is how often a waiter re-reads the store. Defaults to 100 ms.
	Poll time.Duration
	// Recheck is how often, inside the refresh window, a pod looks for a
	// newer generation in the store. Defaults to 1 s.
	Recheck time.Duration
	// WaitMax bounds one shared load when the callers' contexts do not.
	WaitMax time.Duration
	Logger  zerolog.Logger
	Now     func() time.Time
}

// Stats are the cache's counters.
type Stats struct {
	HitsLocal, HitsStore, Refreshes, RefreshFailures, LockWaits, Invalidations int64
}

// Cache is the layered credential cache. Safe for concurrent use.
type Cache struct {
	fetch Fetcher
	store store
	opts  Options
	log   zerolog.Logger

	entries atomic.Pointer[map[entryKey]*entry] // copy-on-write; read without locks
	addMu   sync.Mutex
	sf      singleflight.Group

	hitsLocal, hitsStore, refreshes, refreshFailures, lockWaits, invalidations atomic.Int64
}

type entryKey struct{ integrator, merchant string }

type entry struct {
	cur        atomic.Pointer[Credentials]
	refreshing atomic.Bool
	nextCheck  atomic.Int64 // unix nanos
}

// New builds a cache over a store; see NewRedisStore and NewMemoryStore.
func New(f Fetcher, s store, o Options) *Cache {
	o.RefreshAhead = cmp.Or(o.RefreshAhead, RefreshAheadDefault)
	if o.RefreshJitter == 0 {
		o.RefreshJitter = RefreshJitterDefault
	} else if o.RefreshJitter < 0 {
		o.RefreshJitter = 0
	}
	o.ExpiryMargin = cmp.Or(o.ExpiryMargin, ExpiryMarginDefault)
	o.LockTTL = cmp.Or(o.LockTTL, LockTTLDefault)
	o.Poll = cmp.Or(o.Poll, PollDefault)
	o.Recheck = cmp.Or(o.Recheck, RecheckDefault)
	o.WaitMax = cmp.Or(o.WaitMax, WaitMaxDefault)
	if o.Now == nil {
		o.Now = time.Now
	}
	c := &Cache{fetch: f, store: s, opts: o, log: o.Logger}
	m := map[entryKey]*entry{}
	c.entries.Store(&m)
	return c
}

// Stats returns a snapshot of the counters.
func (c *Cache) Stats() Stats {
	return Stats{
		HitsLocal: c.hitsLocal.Load(), HitsStore: c.hitsStore.Load(), Refreshes: c.refreshes.Load(),
		RefreshFailures: c.refreshFailures.Load(), LockWaits: c.lockWaits.Load(), Invalidations: c.invalidations.Load(),
	}
}

func (c *Cache) entry(k entryKey) *entry {
	if e := (*c.entries.Load())[k]; e != nil {
		return e
	}
	c.addMu.Lock()
	defer c.addMu.Unlock()
	old := *c.entries.Load()
	if e := old[k]; e != nil {
		return e
	}
	m := make(map[entryKey]*entry, len(old)+1)
	for kk, v := range old {
		m[kk] = v
	}
	e := &entry{}
	m[k] = e
	c.entries.Store(&m)
	return e
}

// Get returns valid credentials for an integrator and merchant: from memory
// while fresh (no I/O), else from the store, else from TTC through the one
// caller holding the lock. It waits for another refresher at most until ctx
// ends. A returned value always has more than the expiry margin left.
func (c *Cache) Get(ctx context.Context, integrator, merchantID string) (*Credentials, error) {
	k := entryKey{integrator, merchantID}
	e := c.entry(k)
	now := c.opts.Now()
	if cr := e.cur.Load(); cr.usable(now, c.opts.ExpiryMargin) {
		c.hitsLocal.Add(1)
		if !now.Before(cr.RefreshAt) {
			c.refreshAhead(k, e, cr, now)
		}
		return cr, nil
	}
	ch := c.sf.DoChan(integrator+"/"+merchantID, func() (any, error) {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.WaitMax)
		defer cancel()
		return c.load(lctx, k, e)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		cr := r.Val.(*Credentials)
		if !cr.usable(c.opts.Now(), c.opts.ExpiryMargin) {
			return nil, ErrNoCredentials
		}
		return cr, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrNoCredentials, context.Cause(ctx))
	}
}

// load is the slow path: the store, else TTC under the lock, else wait.
func (c *Cache) load(ctx context.Context, k entryKey, e *entry) (*Credentials, error) {
	for {
		now := c.opts.Now()
		cr, err := c.store.read(ctx, k)
		if err != nil {
			return nil, fmt.Errorf("tokencache: read store: %w", err)
		}
		if cr.usable(now, c.opts.ExpiryMargin) {
			c.hitsStore.Add(1)
			e.cur.Store(cr)
			if !now.Before(cr.RefreshAt) {
				c.refreshAhead(k, e, cr, now)
			}
			return cr, nil
		}
		prevGen := int64(0)
		if cr != nil {
			prevGen = cr.Generation
		}
		lock, ok, err := c.store.lock(ctx, k, c.opts.LockTTL)
		if err != nil {
			return nil, fmt.Errorf("tokencache: lock: %w", err)
		}
		if ok {
			return c.refreshLocked(ctx, k, e, lock, prevGen)
		}
		c.lockWaits.Add(1)
		t := time.NewTimer(c.opts.Poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w: %w", ErrNoCredentials, context.Cause(ctx))
		case <-t.C:
		}
	}
}

// refreshLocked runs while holding the lock: check the store once more (the
// previous holder may just have written), then call TTC and write the new
// generation, fenced on the generation read before.
func (c *Cache) refreshLocked(ctx context.Context, k entryKey, e *entry, lock string, prevGen int64) (*Credentials, error) {
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if err := c.store.unlock(uctx, k, lock); err != nil {
			c.log.Warn().Str("integrator", k.integrator).Str("merchantId", k.merchant).Err(err).Msg("credential lock release failed; it expires by itself")
		}
	}()
	now := c.opts.Now()
	cur, err := c.store.read(ctx, k)
	if err != nil {
		return nil, fmt.Errorf("tokencache: read store: %w", err)
	}
	if cur != nil && cur.Generation > prevGen && cur.usable(now, c.opts.ExpiryMargin) && now.Before(cur.RefreshAt) {
		e.cur.Store(cur)
		return cur, nil
	}
	if cur != nil {
		prevGen = cur.Generation
	}
	tok, err := c.fetch.Token(ctx, k.integrator, k.merchant)
	if err != nil {
		c.refreshFailures.Add(1)
		c.log.Error().Str("integrator", k.integrator).Str("merchantId", k.merchant).Err(err).Msg("credential refresh failed")
		return nil, fmt.Errorf("tokencache: refresh %s/%s: %w", k.integrator, k.merchant, err)
	}
	c.refreshes.Add(1)
	cr, err := c.credentialsFrom(k, tok, prevGen+1)
	if err != nil {
		c.refreshFailures.Add(1)
		return nil, err
	}
	stored, err := c.store.write(ctx, k, cr, prevGen)
	switch {
	case err != nil:
		// TTC already rotated: hand this token out in this process rather
		// than lose it; the store catches up at the next refresh.
		c.log.Warn().Str("integrator", k.integrator).Str("merchantId", k.merchant).Err(err).Msg("credentials refreshed but not stored")
	case !stored:
		// Someone wrote a newer generation meanwhile (our lock had expired).
		if newer, rerr := c.store.read(ctx, k); rerr == nil && newer.usable(now, c.opts.ExpiryMargin) {
			cr = newer
		}
	}
	c.log.Info().Str("integrator", k.integrator).Str("merchantId", k.merchant).Int64("generation", cr.Generation).
		Time("expiresAt", cr.ExpiresAt).Msg("credentials refreshed")
	e.cur.Store(cr)
	return cr, nil
}

func (c *Cache) credentialsFrom(k entryKey, t *ttc.Token, gen int64) (*Credentials, error) {
	pair, err := tls.X509KeyPair(t.CertPEM, t.KeyPEM)
	if err != nil {
		return nil, fmt.Errorf("tokencache: certificate and key do not form a pair: %w", err)
	}
	ahead := time.Duration(float64(t.Lifetime) * c.opts.RefreshAhead)
	jitter := time.Duration(rand.Float64() * c.opts.RefreshJitter * float64(t.Lifetime))
	return &Credentials{
		Integrator: k.integrator, MerchantID: k.merchant,
		AccessToken: t.AccessToken, ExpiresAt: t.ExpiresAt, Lifetime: t.Lifetime,
		RefreshAt:  t.ExpiresAt.Add(-ahead + jitter),
		Generation: gen, CertPEM: t.CertPEM, KeyPEM: t.KeyPEM, Certificate: &pair,
	}, nil
}

// refreshAhead, inside the refresh window, at most once per Recheck per pod:
// adopt a newer generation from the store, or refresh if this pod gets the
// lock. Callers keep the valid token meanwhile.
func (c *Cache) refreshAhead(k entryKey, e *entry, cr *Credentials, now time.Time) {
	if now.UnixNano() < e.nextCheck.Load() || !e.refreshing.CompareAndSwap(false, true) {
		return
	}
	e.nextCheck.Store(now.Add(c.opts.Recheck).UnixNano())
	go func() {
		defer e.refreshing.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), c.opts.LockTTL)
		defer cancel()
		stored, err := c.store.read(ctx, k)
		if err != nil {
			return
		}
		now := c.opts.Now()
		if stored != nil && stored.Generation > cr.Generation && stored.usable(now, c.opts.ExpiryMargin) {
			e.cur.Store(stored)
			if now.Before(stored.RefreshAt) {
				return
			}
		}
		lock, ok, err := c.store.lock(ctx, k, c.opts.LockTTL)
		if err != nil || !ok {
			return
		}
		gen := cr.Generation
		if stored != nil {
			gen = max(gen, stored.Generation)
		}
		_, _ = c.refreshLocked(ctx, k, e, lock, gen)
	}()
}

// Invalidate drops credentials that CyberSource refused (401), but only if
// the store still holds that same generation: an invalidation for a token
// that was already replaced does not delete the new one.
func (c *Cache) Invalidate(ctx context.Context, cr *Credentials) error {
	k := entryKey{cr.Integrator, cr.MerchantID}
	e := c.entry(k)
	if cur := e.cur.Load(); cur != nil && cur.Generation == cr.Generation {
		e.cur.CompareAndSwap(cur, nil)
	}
	done, err := c.store.invalidate(ctx, k, cr.Generation)
	if err != nil {
		return fmt.Errorf("tokencache: invalidate: %w", err)
	}
	if done {
		c.invalidations.Add(1)
		c.log.Warn().Str("integrator", cr.Integrator).Str("merchantId", cr.MerchantID).Int64("generation", cr.Generation).Msg("credentials invalidated after CyberSource refused them")
	}
	return nil
}

// store is the shared layer: Redis across pods, or memory in one process.
type store interface {
	// read returns the stored credentials (nil when none), even if expired.
	read(ctx context.Context, k entryKey) (*Credentials, error)
	// lock tries to take the refresh lock; the returned token releases it.
	lock(ctx context.Context, k entryKey, ttl time.Duration) (token string, ok bool, err error)
	unlock(ctx context.Context, k entryKey, token string) error
	// write stores cr if the stored generation is still prevGen.
	write(ctx context.Context, k entryKey, cr *Credentials, prevGen int64) (bool, error)
	// invalidate empties the stored credentials if they are of generation gen.
	invalidate(ctx context.Context, k entryKey, gen int64) (bool, error)
}
