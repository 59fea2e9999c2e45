package tokencache_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ttcpay/payflow/internal/tokencache"
	"github.com/ttcpay/payflow/internal/ttc"
)

// Tests written for the gremlins survivors of internal/tokencache (issue 19;
// see docs/mutation.md). They run on a fake clock and a memory store: no
// sandbox, no Redis, no sleeping.

// set moves the fetcher's clock, which is also the cache's (Options.Now).
func (f *clockFetcher) set(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = t
}

// refusingFetcher is a clockFetcher for which TTC holds no refresh token of
// any merchant named "unknown-…" (a 404 from the token endpoint).
type refusingFetcher struct{ *clockFetcher }

func (f refusingFetcher) Token(ctx context.Context, integrator, merchantID string) (*ttc.Token, error) {
	if strings.HasPrefix(merchantID, "unknown-") {
		return nil, &ttc.Error{Op: "token", Kind: ttc.KindNoRefreshToken, Status: http.StatusNotFound, Message: "no refresh token for this merchant"}
	}
	return f.clockFetcher.Token(ctx, integrator, merchantID)
}

// fakeClockCache is a cache over a memory store whose clock stands still
// at t0 until the test moves it; tokens live an hour unless o says more.
func fakeClockCache(t *testing.T, lifetime time.Duration, o tokencache.Options) (*tokencache.Cache, *clockFetcher, time.Time) {
	t.Helper()
	certPEM, keyPEM := selfSigned(t)
	t0 := time.Unix(1_700_000_000, 0)
	f := &clockFetcher{now: t0, lifetime: lifetime, cert: certPEM, key: keyPEM}
	o.Now = f.Now
	return tokencache.New(refusingFetcher{f}, tokencache.NewMemoryStore(), o), f, t0
}

// servedFrom gets a known merchant's credentials and tells where they came
// from: "memory" (the in-process entry) or "store" (the entry was evicted).
func servedFrom(t *testing.T, c *tokencache.Cache, merchant string) string {
	t.Helper()
	before := c.Stats()
	if _, err := c.Get(context.Background(), "costco", merchant); err != nil {
		t.Fatalf("%s: %v", merchant, err)
	}
	after := c.Stats()
	switch {
	case after.HitsLocal == before.HitsLocal+1 && after.HitsStore == before.HitsStore:
		return "memory"
	case after.HitsStore == before.HitsStore+1 && after.HitsLocal == before.HitsLocal:
		return "store"
	}
	t.Fatalf("%s: neither a local nor a store hit: %+v → %+v", merchant, before, after)
	return ""
}

// TestTouchRecordsAUseAtMostOnceASecond: the hot path records a merchant's
// last use (the eviction order) only when more than a second has passed
// since the recorded one, so that concurrent Gets of one merchant do not all
// write to its entry. Seen through the eviction order of a full map (8
// entries; a 9th evicts 2: the new, still empty entry and the least
// recently used): a merchant used again within a second, or exactly a
// second, after its first use still counts as used at its first use and is
// evicted; used again later than that, it is kept and the oldest other one
// goes. (Kills cache.go:209:27 ARITHMETIC_BASE and INVERT_NEGATIVES, which
// record every use, 209:42 CONDITIONALS_BOUNDARY, which records one exactly a
// second later, and 209:42 CONDITIONALS_NEGATION, which records only the
// uses within the second.)
func TestTouchRecordsAUseAtMostOnceASecond(t *testing.T) {
	cases := []struct {
		name          string
		again         time.Duration // after the first use
		first, oldest string        // where "first" and the oldest other merchant are then served from
	}{
		{"WithinTheSecond", 500 * time.Millisecond, "store", "memory"},
		{"ExactlyASecond", time.Second, "store", "memory"},
		{"MoreThanASecond", time.Second + time.Nanosecond, "memory", "store"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, f, t0 := fakeClockCache(t, time.Hour, tokencache.Options{MaxEntries: 8})
			ctx := context.Background()
			if _, err := c.Get(ctx, "costco", "first"); err != nil {
				t.Fatal(err)
			}
			// Seven others, each used once, all after "first" and before
			// its second use.
			others := merchantIDs("other-", 7)
			for i, m := range others {
				f.set(t0.Add(time.Duration(i+1) * time.Millisecond))
				if _, err := c.Get(ctx, "costco", m); err != nil {
					t.Fatal(err)
				}
			}
			f.set(t0.Add(tc.again))
			if got := servedFrom(t, c, "first"); got != "memory" {
				t.Fatalf("second use of first: served from %s", got)
			}
			if _, err := c.Get(ctx, "costco", "ninth"); err != nil {
				t.Fatal(err)
			}
			if s := c.Stats(); s.Evictions != 2 {
				t.Fatalf("%d evictions after a 9th merchant with MaxEntries 8, want 2", s.Evictions)
			}
			// The oldest other first: if "first" was evicted, getting it
			// again adds an entry, which must not evict the oldest other.
			if got := servedFrom(t, c, others[0]); got != tc.oldest {
				t.Errorf("the oldest other merchant is served from %s, want %s", got, tc.oldest)
			}
			if got := servedFrom(t, c, "first"); got != tc.first {
				t.Errorf("used again %v after its first use, the merchant is served from %s, want %s", tc.again, got, tc.first)
			}
		})
	}
}

// TestConfiguredRefreshJitter: a negative RefreshJitter means none (every
// generation's refresh point is exactly RefreshAhead of the lifetime before
// expiry), and a positive one is kept as configured, not replaced by the
// default nor dropped. (Kills cache.go:219:28 CONDITIONALS_NEGATION, which
// keeps a negative jitter, refreshing up to a whole lifetime early, and
// drops a positive one.)
func TestConfiguredRefreshJitter(t *testing.T) {
	const lifetime = 1000 * time.Second
	const ahead = 0.25 // 250 s, exact in binary
	const n = 24
	aheadBy := time.Duration(ahead * float64(lifetime))
	offsets := func(t *testing.T, jitter float64) []time.Duration {
		t.Helper()
		c, _, _ := fakeClockCache(t, lifetime, tokencache.Options{RefreshAhead: ahead, RefreshJitter: jitter})
		out := make([]time.Duration, n)
		for i, m := range merchantIDs("m", n) {
			cr, err := c.Get(context.Background(), "costco", m)
			if err != nil {
				t.Fatal(err)
			}
			out[i] = cr.RefreshAt.Sub(cr.ExpiresAt.Add(-aheadBy))
		}
		return out
	}
	t.Run("NegativeMeansNone", func(t *testing.T) {
		for i, o := range offsets(t, -1) {
			if o != 0 {
				t.Fatalf("merchant %d: refresh point %v from expiry − 250 s, want exactly there (no jitter)", i, o)
			}
		}
	})
	t.Run("PositiveIsKept", func(t *testing.T) {
		const jitter = 0.5 // up to 500 s later; the default would allow 50 s
		var most time.Duration
		for i, o := range offsets(t, jitter) {
			if o < 0 || o > time.Duration(jitter*float64(lifetime)) {
				t.Fatalf("merchant %d: refresh point %v after expiry − 250 s, want 0..500s", i, o)
			}
			most = max(most, o)
		}
		// 24 uniform draws in [0, 500 s) all stay under 50 s with
		// probability 0.1^24.
		if most <= 50*time.Second {
			t.Fatalf("refresh points of %d merchants at most %v after expiry − 250 s: the configured jitter of 500 s is not applied", n, most)
		}
	})
}

// TestEvictionSparesUsableCredentials: when the map is full, entries without
// usable credentials go first, even when every merchant with credentials was
// used less recently. Run on several caches, since the order in which the
// map is ranged (the input of the sort) is random per map. (Kills
// cache.go:311:11 ARITHMETIC_BASE and INVERT_NEGATIVES: with -1 turned into
// +1 the comparison says "after" both ways, the sort never moves an entry
// across the usable/unusable line, and what is evicted is what the range
// happened to give first.)
func TestEvictionSparesUsableCredentials(t *testing.T) {
	for round := range 20 {
		c, f, t0 := fakeClockCache(t, time.Hour, tokencache.Options{MaxEntries: 8})
		ctx := context.Background()
		known := merchantIDs(fmt.Sprintf("r%d-m", round), 7)
		for i, m := range known {
			f.set(t0.Add(time.Duration(i) * time.Millisecond))
			if _, err := c.Get(ctx, "costco", m); err != nil {
				t.Fatal(err)
			}
		}
		// Two merchants TTC refuses, used after all the known ones: the
		// second is the 9th entry and evicts 2.
		for i, m := range []string{"unknown-1", "unknown-2"} {
			f.set(t0.Add(time.Duration(i+1) * time.Second))
			if _, err := c.Get(ctx, "costco", m); ttc.KindOf(err) != ttc.KindNoRefreshToken {
				t.Fatalf("%s: %v, want a refusal", m, err)
			}
		}
		if s := c.Stats(); s.Evictions != 2 {
			t.Fatalf("round %d: %d evictions after a 9th merchant with MaxEntries 8, want 2", round, s.Evictions)
		}
		for _, m := range known {
			if got := servedFrom(t, c, m); got != "memory" {
				t.Fatalf("round %d: %s, which has usable credentials, was evicted (served from %s) while refused merchants' entries were in the map", round, m, got)
			}
		}
	}
}

// calls is how many tokens the fetcher has handed out.
func (f *clockFetcher) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// waitForGeneration gets the merchant's credentials until their generation
// reaches gen, for at most 5 s of real time (the refresh ahead runs in the
// background); the fake clock does not move.
func waitForGeneration(t *testing.T, c *tokencache.Cache, merchant string, gen int64) *tokencache.Credentials {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		cr, err := c.Get(context.Background(), "costco", merchant)
		if err != nil {
			t.Fatal(err)
		}
		if cr.Generation >= gen {
			return cr
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still generation %d after 5 s, want %d: no refresh ahead of expiry", merchant, cr.Generation, gen)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRefreshAheadInTheWindow: a Get inside the refresh window returns the
// valid credentials at once and starts one refresh in the background, so
// that the next generation is there before the current one expires (the
// clock stands still, 200 s before expiry). (Kills cache.go:609:20
// CONDITIONALS_NEGATION, which inverts the once-per-Recheck check so that
// no refresh ahead ever starts, and 618:10 CONDITIONALS_NEGATION, which
// gives up whenever the store read succeeds.)
func TestRefreshAheadInTheWindow(t *testing.T) {
	const lifetime = 1000 * time.Second
	c, f, t0 := fakeClockCache(t, lifetime, tokencache.Options{RefreshAhead: 0.25, RefreshJitter: -1})
	first, err := c.Get(context.Background(), "costco", "m1")
	if err != nil {
		t.Fatal(err)
	}
	f.set(t0.Add(800 * time.Second)) // the refresh point is at 750 s
	cr, err := c.Get(context.Background(), "costco", "m1")
	if err != nil || cr.Generation != first.Generation {
		t.Fatalf("in the window: %+v, %v; want the valid generation %d at once", cr, err, first.Generation)
	}
	next := waitForGeneration(t, c, "m1", first.Generation+1)
	if next.Generation != first.Generation+1 || f.callCount() != 2 {
		t.Fatalf("after the refresh ahead: generation %d, %d token requests; want %d and 2", next.Generation, f.callCount(), first.Generation+1)
	}
}

// TestRefreshAheadAfterTheStoreLostTheEntry: a pod holds valid credentials
// that the shared store no longer has (a Redis failover or flush lost the
// key). Inside the refresh window the pod still refreshes ahead of expiry,
// and serves the new generation. (Kills cache.go:633:13
// CONDITIONALS_NEGATION, which reads the generation of the missing stored
// entry: a nil dereference in the background goroutine, which ends the
// process.)
func TestRefreshAheadAfterTheStoreLostTheEntry(t *testing.T) {
	const lifetime = 1000 * time.Second
	certPEM, keyPEM := selfSigned(t)
	t0 := time.Unix(1_700_000_000, 0)
	f := &clockFetcher{now: t0, lifetime: lifetime, cert: certPEM, key: keyPEM}
	store := tokencache.NewMemoryStore()
	c := tokencache.New(refusingFetcher{f}, store, tokencache.Options{RefreshAhead: 0.25, RefreshJitter: -1, Now: f.Now})
	first, err := c.Get(context.Background(), "costco", "m1")
	if err != nil {
		t.Fatal(err)
	}
	store.Lose("costco", "m1")
	f.set(t0.Add(800 * time.Second))
	next := waitForGeneration(t, c, "m1", first.Generation+1)
	if f.callCount() != 2 || next.Generation != first.Generation+1 {
		t.Fatalf("generation %d after %d token requests; want %d after 2", next.Generation, f.callCount(), first.Generation+1)
	}
}

// TestAnotherPodsRefusalIsHonoured: a refusal by TTC that one pod
// remembers in the shared store stops another pod from asking TTC again
// for that merchant while it lasts (here both pods share a memory store).
// (Kills memory.go:120:47 CONDITIONALS_NEGATION: the memory store handed
// out only refusals that had expired.)
func TestAnotherPodsRefusalIsHonoured(t *testing.T) {
	certPEM, keyPEM := selfSigned(t)
	f := &clockFetcher{now: time.Unix(1_700_000_000, 0), lifetime: time.Hour, cert: certPEM, key: keyPEM}
	counting := &countingFetcher{Fetcher: refusingFetcher{f}}
	store := tokencache.NewMemoryStore()
	o := tokencache.Options{Now: f.Now, NegativeTTL: time.Minute}
	podA := tokencache.New(counting, store, o)
	podB := tokencache.New(counting, store, o)
	if _, err := podA.Get(context.Background(), "costco", "unknown-1"); ttc.KindOf(err) != ttc.KindNoRefreshToken {
		t.Fatalf("pod A: %v, want TTC's 404", err)
	}
	_, err := podB.Get(context.Background(), "costco", "unknown-1")
	if ttc.KindOf(err) != ttc.KindNoRefreshToken || counting.n.Load() != 1 {
		t.Fatalf("pod B: %v after %d token requests; want the remembered 404 and 1 request", err, counting.n.Load())
	}
	if s := podB.Stats(); s.NegativeHits != 1 {
		t.Fatalf("pod B's negative hits %d, want 1", s.NegativeHits)
	}
}

// countingFetcher counts the token requests that reach TTC, refused ones
// included.
type countingFetcher struct {
	tokencache.Fetcher
	n atomic.Int64
}

func (f *countingFetcher) Token(ctx context.Context, integrator, merchantID string) (*ttc.Token, error) {
	f.n.Add(1)
	return f.Fetcher.Token(ctx, integrator, merchantID)
}
