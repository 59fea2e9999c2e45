package tokencache

import (
	"fmt"
	"testing"
	"time"
)

// TestEvictLeavesAMapAtItsCapAlone: evict runs for a caller whose new entry
// took the map over MaxEntries, but only after it gets the eviction lock;
// another caller may have evicted meanwhile and new merchants refilled the
// map. A map back at exactly its cap is not over it, and nothing is evicted
// (an eighth of it would otherwise go: store reads for busy merchants). That
// interleaving cannot be forced through Get, so evict is called directly.
// (Kills cache.go:291:23 CONDITIONALS_BOUNDARY, which evicts at the cap.)
func TestEvictLeavesAMapAtItsCapAlone(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	c := New(nil, NewMemoryStore(), Options{MaxEntries: 8, Now: func() time.Time { return now }})
	for i := range 8 {
		c.entry(entryKey{"costco", fmt.Sprintf("m%d", i)}, now)
	}
	c.evict(now)
	if s := c.Stats(); s.Entries != 8 || s.Evictions != 0 {
		t.Fatalf("evict at the cap: %d entries, %d evictions, want 8 and 0", s.Entries, s.Evictions)
	}
	// One more goes over the cap: down to 7/8 of it.
	c.entry(entryKey{"costco", "m8"}, now)
	if s := c.Stats(); s.Entries != 7 || s.Evictions != 2 {
		t.Fatalf("over the cap: %d entries, %d evictions, want 7 and 2", s.Entries, s.Evictions)
	}
}
