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
//
// The lock is held for as long as TTC may be working on its request: renewed
// while the call runs, and kept for another lease after a call that got no
// answer. A refusal by TTC (400, 401/403, 404) is remembered for a short
// while, so that intents for an unknown merchant do not each cost a token
// request. A stored copy that no configured key opens (after a key rotation)
// is a miss, refreshed once under the lock.
package tokencache

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
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
	NegativeTTLDefault   = 30 * time.Second
	MaxEntriesDefault    = 10_000
)

// OtherIntegrator is the name under which refresh failures of integrators
// not listed in Options.Integrators are counted.
const OtherIntegrator = "other"

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

	// undecryptable: the store holds this generation, but no configured key
	// opens it (or it did not parse); it counts as a miss.
	undecryptable bool
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
	// LockTTL is the lease of the refresh lock. The holder renews it every
	// LockTTL/3 while its TTC call runs, so a call slower than the lease
	// keeps the lock; a crashed holder blocks the others for at most
	// LockTTL. After a call that got no answer (a timeout, a cut connection,
	// a 502 or 504 from a gateway) TTC may still be working on it, so the
	// holder keeps the lock for another LockTTL instead of releasing it: no
	// pod asks TTC for that merchant while the abandoned request may still
	// rotate the refresh token. Give it at least the TTC call timeout (the
	// worker uses max(30 s, TTC_TIMEOUT)). Defaults to 30 s.
	LockTTL time.Duration
	// Poll is how often a waiter re-reads the store. Defaults to 100 ms.
	Poll time.Duration
	// Recheck is how often, inside the refresh window, a pod looks for a
	// newer generation in the store. Defaults to 1 s.
	Recheck time.Duration
	// WaitMax bounds one shared load, and one refresh ahead of expiry, when
	// the callers' contexts do not. Defaults to 30 s.
	WaitMax time.Duration
	// NegativeTTL is how long a refusal by TTC (400, 401/403 or 404: the
	// same request cannot succeed before someone changes a configuration)
	// is remembered per integrator and merchant, in the store for every pod
	// and in memory; meanwhile callers get the same error without a token
	// request. Defaults to 30 s; negative: not remembered.
	NegativeTTL time.Duration
	// MaxEntries caps the in-process map. When it is full, an eighth of it
	// is evicted: entries without usable credentials first, then the least
	// recently used. An evicted merchant costs one store read, not a token
	// request. Defaults to 10,000.
	MaxEntries int
	// Integrators are the integrators this deployment serves. Refresh
	// failures are counted per integrator for these and under
	// OtherIntegrator for any other name, so the counts stay few.
	Integrators []string
	Logger      zerolog.Logger
	Now         func() time.Time
}

// Stats are the cache's counters.
type Stats struct {
	HitsLocal, HitsStore, Refreshes, RefreshFailures, LockWaits, Invalidations int64
	// RefreshFailuresByIntegrator splits RefreshFailures by integrator: one
	// key per Options.Integrators, plus OtherIntegrator.
	RefreshFailuresByIntegrator map[string]int64
	// NegativeHits: calls answered with a remembered TTC refusal.
	NegativeHits int64
	// Undecryptable: stored credentials that no configured key opened (or
	// that did not parse), replaced by a refresh.
	Undecryptable int64
	// Entries in the in-process map now, and Evictions from it so far.
	Entries, Evictions int64
}

// Cache is the layered credential cache. Safe for concurrent use.
type Cache struct {
	fetch Fetcher
	store store
	opts  Options
	log   zerolog.Logger

	entries  sync.Map // entryKey → *entry; loads take no lock
	nEntries atomic.Int64
	evictMu  sync.Mutex
	sf       singleflight.Group

	hitsLocal, hitsStore, refreshes, refreshFailures, lockWaits, invalidations atomic.Int64
	negativeHits, undecryptable, evictions                                     atomic.Int64
	failuresBy                                                                 map[string]*atomic.Int64 // fixed at New
}

type entryKey struct{ integrator, merchant string }

type entry struct {
	cur        atomic.Pointer[Credentials]
	refused    atomic.Pointer[refusal] // a remembered TTC refusal
	refreshing atomic.Bool
	nextCheck  atomic.Int64 // unix nanos
	used       atomic.Int64 // unix nanos of the last use, to the second
}

// refusal is a TTC refusal remembered until a time.
type refusal struct {
	err   error
	until time.Time
}

// touch records a use, writing at most once a second so that the hot path
// does not contend on the entry.
func (e *entry) touch(now time.Time) {
	if n := now.UnixNano(); n-e.used.Load() > int64(time.Second) {
		e.used.Store(n)
	}
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
	if o.NegativeTTL == 0 {
		o.NegativeTTL = NegativeTTLDefault
	}
	o.MaxEntries = cmp.Or(o.MaxEntries, MaxEntriesDefault)
	o.MaxEntries = max(o.MaxEntries, 8)
	if o.Now == nil {
		o.Now = time.Now
	}
	c := &Cache{fetch: f, store: s, opts: o, log: o.Logger, failuresBy: map[string]*atomic.Int64{}}
	for _, in := range append(slices.Clone(o.Integrators), OtherIntegrator) {
		c.failuresBy[in] = new(atomic.Int64)
	}
	return c
}

// Stats returns a snapshot of the counters.
func (c *Cache) Stats() Stats {
	return Stats{
		HitsLocal: c.hitsLocal.Load(), HitsStore: c.hitsStore.Load(), Refreshes: c.refreshes.Load(),
		RefreshFailures: c.refreshFailures.Load(), LockWaits: c.lockWaits.Load(), Invalidations: c.invalidations.Load(),
		RefreshFailuresByIntegrator: c.failuresByIntegrator(),
		NegativeHits:                c.negativeHits.Load(), Undecryptable: c.undecryptable.Load(),
		Entries: c.nEntries.Load(), Evictions: c.evictions.Load(),
	}
}

func (c *Cache) failuresByIntegrator() map[string]int64 {
	m := make(map[string]int64, len(c.failuresBy))
	for in, n := range c.failuresBy {
		m[in] = n.Load()
	}
	return m
}

func (c *Cache) refreshFailed(integrator string) {
	c.refreshFailures.Add(1)
	n := c.failuresBy[integrator]
	if n == nil {
		n = c.failuresBy[OtherIntegrator]
	}
	n.Add(1)
}

func (c *Cache) entry(k entryKey, now time.Time) *entry {
	if v, ok := c.entries.Load(k); ok {
		e := v.(*entry)
		e.touch(now)
		return e
	}
	e := &entry{}
	e.used.Store(now.UnixNano())
	v, loaded := c.entries.LoadOrStore(k, e)
	if !loaded && c.nEntries.Add(1) > int64(c.opts.MaxEntries) {
		c.evict(now)
	}
	return v.(*entry)
}

// evict brings the map down to 7/8 of MaxEntries: entries without usable
// credentials go first, then the least recently used. A caller holding an
// evicted entry finishes with it; the next caller starts a new one.
func (c *Cache) evict(now time.Time) {
	c.evictMu.Lock()
	defer c.evictMu.Unlock()
	if c.nEntries.Load() <= int64(c.opts.MaxEntries) {
		return // another caller evicted meanwhile
	}
	type candidate struct {
		k      entryKey
		e      *entry
		usable bool
		used   int64
	}
	var cs []candidate
	c.entries.Range(func(k, v any) bool {
		e := v.(*entry)
		cs = append(cs, candidate{k.(entryKey), e, e.cur.Load().usable(now, c.opts.ExpiryMargin), e.used.Load()})
		return true
	})
	slices.SortFunc(cs, func(a, b candidate) int {
		if a.usable != b.usable {
			if a.usable {
				return 1
			}
			return -1
		}
		return cmp.Compare(a.used, b.used)
	})
	keep := c.opts.MaxEntries - c.opts.MaxEntries/8
	for _, x := range cs[:max(0, len(cs)-keep)] {
		if c.entries.CompareAndDelete(x.k, x.e) {
			c.nEntries.Add(-1)
			c.evictions.Add(1)
		}
	}
}

// Get returns valid credentials for an integrator and merchant: from memory
// while fresh (no I/O), else from the store, else from TTC through the one
// caller holding the lock. It waits for another refresher at most until ctx
// ends. A returned value always has more than the expiry margin left.
func (c *Cache) Get(ctx context.Context, integrator, merchantID string) (*Credentials, error) {
	k := entryKey{integrator, merchantID}
	now := c.opts.Now()
	e := c.entry(k, now)
	if cr := e.cur.Load(); cr.usable(now, c.opts.ExpiryMargin) {
		c.hitsLocal.Add(1)
		if !now.Before(cr.RefreshAt) {
			c.refreshAhead(k, e, cr, now)
		}
		return cr, nil
	}
	if r := e.refused.Load(); r != nil && now.Before(r.until) {
		c.negativeHits.Add(1)
		return nil, r.err
	}
	for retried := false; ; retried = true {
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
			if cr := r.Val.(*Credentials); cr.usable(c.opts.Now(), c.opts.ExpiryMargin) {
				return cr, nil
			}
			// The credentials reached the margin between the load and this
			// caller running again (a busy CPU, a slow TTC): load once more,
			// which waits for the refresher, within the caller's time.
			if retried {
				return nil, ErrNoCredentials
			}
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", ErrNoCredentials, context.Cause(ctx))
		}
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
		if err := c.checkRefused(ctx, k, e); err != nil {
			return nil, err
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

// checkRefused returns the remembered refusal of TTC for k, if there is one
// in the store (another pod's), and remembers it in e too. It returns nil
// when there is none or when the store cannot tell.
func (c *Cache) checkRefused(ctx context.Context, k entryKey, e *entry) error {
	if c.opts.NegativeTTL <= 0 {
		return nil
	}
	kind, status, left, err := c.store.refused(ctx, k)
	if err != nil || kind == 0 {
		return nil // no refusal (or the store cannot say): ask TTC
	}
	rerr := fmt.Errorf("tokencache: refresh %s/%s: TTC refused it within the last %s (remembered): %w",
		k.integrator, k.merchant, c.opts.NegativeTTL, &ttc.Error{Op: "token", Kind: kind, Status: status, Message: "refusal remembered from an earlier request"})
	e.refused.Store(&refusal{err: rerr, until: c.opts.Now().Add(left)})
	c.negativeHits.Add(1)
	return rerr
}

// remembered: refusals that the same request cannot overcome until someone
// changes a configuration (TTC's onboarding, our API key, the request).
func remembered(err error) bool {
	switch ttc.KindOf(err) {
	case ttc.KindInvalidRequest, ttc.KindBadAPIKey, ttc.KindNoRefreshToken:
		return true
	}
	return false
}

// mayBeInFlight reports whether TTC may still be working on a request that
// failed: no answer came back (a timeout or a cut connection), or a gateway
// answered for a backend that may still run (502, 504). An error that does
// not come from the TTC client is taken as the worst case.
func mayBeInFlight(err error) bool {
	var te *ttc.Error
	if !errors.As(err, &te) {
		return true
	}
	switch {
	case te.Kind == ttc.KindNoAPIKey:
		return false // never sent
	case te.Status == 0:
		return true
	case te.Status == http.StatusBadGateway || te.Status == http.StatusGatewayTimeout:
		return true
	}
	return false
}

// refreshLocked runs while holding the lock: check the store once more (the
// previous holder may just have written, or been refused), then call TTC
// and write the new generation, fenced on the generation read before. The
// lock is renewed while TTC works, and kept for another lease if TTC did not
// answer: it is released only when no request of ours can still be running
// at TTC.
func (c *Cache) refreshLocked(ctx context.Context, k entryKey, e *entry, lock string, prevGen int64) (*Credentials, error) {
	keep := false // keep the lock to its lease instead of releasing it
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if keep {
			if _, err := c.store.extend(uctx, k, lock, c.opts.LockTTL); err != nil {
				c.log.Warn().Str("integrator", k.integrator).Str("merchantId", k.merchant).Err(err).Msg("credential lock not extended after an unanswered TTC call; it keeps its current lease")
			}
			return
		}
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
	if !cur.usable(now, c.opts.ExpiryMargin) {
		if err := c.checkRefused(ctx, k, e); err != nil {
			return nil, err
		}
	}
	if cur != nil {
		prevGen = cur.Generation
		if cur.undecryptable {
			c.undecryptable.Add(1)
			c.log.Warn().Str("integrator", k.integrator).Str("merchantId", k.merchant).Int64("generation", cur.Generation).
				Msg("stored credentials do not open with any configured key (CACHE_ENCRYPTION_KEYS rotated?); refreshing them")
		}
	}
	tok, err := c.fetchHolding(ctx, k, lock)
	if err != nil {
		c.refreshFailed(k.integrator)
		ev := c.log.Error().Str("integrator", k.integrator).Str("merchantId", k.merchant).Err(err)
		switch {
		case remembered(err) && c.opts.NegativeTTL > 0:
			rerr := fmt.Errorf("tokencache: refresh %s/%s (TTC's refusal is remembered for %s): %w", k.integrator, k.merchant, c.opts.NegativeTTL, err)
			e.refused.Store(&refusal{err: rerr, until: c.opts.Now().Add(c.opts.NegativeTTL)})
			if serr := c.store.refuse(ctx, k, ttc.KindOf(err), statusOf(err), c.opts.NegativeTTL); serr != nil {
				c.log.Warn().Str("integrator", k.integrator).Str("merchantId", k.merchant).Err(serr).Msg("TTC refusal not remembered in the store")
			}
			ev.Int64("rememberedForMs", c.opts.NegativeTTL.Milliseconds()).Msg("credential refresh refused by TTC")
			return nil, rerr
		case mayBeInFlight(err):
			keep = true
			ev.Int64("lockKeptForMs", c.opts.LockTTL.Milliseconds()).Msg("credential refresh got no answer; keeping the lock while TTC may still work on it")
		default:
			ev.Msg("credential refresh failed")
		}
		return nil, fmt.Errorf("tokencache: refresh %s/%s: %w", k.integrator, k.merchant, err)
	}
	c.refreshes.Add(1)
	cr, err := c.credentialsFrom(k, tok, prevGen+1)
	if err != nil {
		c.refreshFailed(k.integrator)
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
	e.refused.Store(nil)
	e.cur.Store(cr)
	return cr, nil
}

// fetchHolding calls TTC and renews the lock's lease every LockTTL/3 while
// the call runs, fenced on the lock token: a lease shorter than the call
// does not hand the lock to another pod meanwhile.
func (c *Cache) fetchHolding(ctx context.Context, k entryKey, lock string) (*ttc.Token, error) {
	hctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(c.opts.LockTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-hctx.Done():
				return
			case <-t.C:
			}
			held, err := c.store.extend(hctx, k, lock, c.opts.LockTTL)
			switch {
			case err != nil && hctx.Err() == nil:
				c.log.Warn().Str("integrator", k.integrator).Str("merchantId", k.merchant).Err(err).Msg("credential lock not renewed; retrying")
			case err == nil && !held:
				c.log.Warn().Str("integrator", k.integrator).Str("merchantId", k.merchant).Msg("credential lock lost during the TTC call")
				return
			}
		}
	}()
	tok, err := c.fetch.Token(ctx, k.integrator, k.merchant)
	stop()
	<-done
	return tok, err
}

func statusOf(err error) int {
	var te *ttc.Error
	if errors.As(err, &te) {
		return te.Status
	}
	return 0
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
	if r := e.refused.Load(); r != nil && now.Before(r.until) {
		return // TTC refused this merchant a moment ago: keep the valid token
	}
	if now.UnixNano() < e.nextCheck.Load() || !e.refreshing.CompareAndSwap(false, true) {
		return
	}
	e.nextCheck.Store(now.Add(c.opts.Recheck).UnixNano())
	go func() {
		defer e.refreshing.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), c.opts.WaitMax)
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
	e := c.entry(k, c.opts.Now())
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
	// extend sets the lock's lease to ttl from now if token still holds it.
	extend(ctx context.Context, k entryKey, token string, ttl time.Duration) (held bool, err error)
	unlock(ctx context.Context, k entryKey, token string) error
	// refuse remembers a TTC refusal for ttl; refused returns it (kind 0:
	// none) with the time it has left.
	refuse(ctx context.Context, k entryKey, kind ttc.Kind, status int, ttl time.Duration) error
	refused(ctx context.Context, k entryKey) (kind ttc.Kind, status int, left time.Duration, err error)
	// write stores cr if the stored generation is still prevGen.
	write(ctx context.Context, k entryKey, cr *Credentials, prevGen int64) (bool, error)
	// invalidate empties the stored credentials if they are of generation gen.
	invalidate(ctx context.Context, k entryKey, gen int64) (bool, error)
}
