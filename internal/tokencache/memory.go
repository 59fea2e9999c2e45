package tokencache

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/ttcpay/payflow/internal/ttc"
)

// MemoryStore is the shared layer for a single process (the demo without
// Redis). Several processes with memory stores each call TTC on their own:
// use Redis when more than one pod runs.
type MemoryStore struct {
	mu      sync.Mutex
	creds   map[entryKey]*Credentials
	locks   map[entryKey]memLock
	refusal map[entryKey]memRefusal
	seq     int
}

type memRefusal struct {
	kind    ttc.Kind
	status  int
	expires time.Time
}

type memLock struct {
	token   string
	expires time.Time
}

var _ store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty in-process store.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{creds: map[entryKey]*Credentials{}, locks: map[entryKey]memLock{}, refusal: map[entryKey]memRefusal{}}
}

func (m *MemoryStore) read(_ context.Context, k entryKey) (*Credentials, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.creds[k], nil
}

func (m *MemoryStore) write(_ context.Context, k entryKey, cr *Credentials, prevGen int64) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var cur int64
	if c := m.creds[k]; c != nil {
		cur = c.Generation
	}
	if cur != prevGen {
		return false, nil
	}
	m.creds[k] = cr
	return true, nil
}

func (m *MemoryStore) invalidate(_ context.Context, k entryKey, gen int64) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.creds[k]
	if c == nil || c.Generation != gen || c.AccessToken == "" {
		return false, nil
	}
	m.creds[k] = &Credentials{Integrator: k.integrator, MerchantID: k.merchant, Generation: gen}
	return true, nil
}

func (m *MemoryStore) lock(_ context.Context, k entryKey, ttl time.Duration) (string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if l, held := m.locks[k]; held && time.Now().Before(l.expires) {
		return "", false, nil
	}
	m.seq++
	tok := strconv.Itoa(m.seq)
	m.locks[k] = memLock{token: tok, expires: time.Now().Add(ttl)}
	return tok, true, nil
}

func (m *MemoryStore) unlock(_ context.Context, k entryKey, tok string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.locks[k].token == tok {
		delete(m.locks, k)
	}
	return nil
}

func (m *MemoryStore) extend(_ context.Context, k entryKey, tok string, ttl time.Duration) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l, held := m.locks[k]
	if !held || l.token != tok || !time.Now().Before(l.expires) {
		return false, nil
	}
	m.locks[k] = memLock{token: tok, expires: time.Now().Add(ttl)}
	return true, nil
}

func (m *MemoryStore) refuse(_ context.Context, k entryKey, kind ttc.Kind, status int, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for kk, r := range m.refusal { // keep the map to the live refusals
		if !time.Now().Before(r.expires) {
			delete(m.refusal, kk)
		}
	}
	m.refusal[k] = memRefusal{kind: kind, status: status, expires: time.Now().Add(ttl)}
	return nil
}

func (m *MemoryStore) refused(_ context.Context, k entryKey) (ttc.Kind, int, time.Duration, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.refusal[k]
	if left := time.Until(r.expires); ok && left > 0 {
		return r.kind, r.status, left, nil
	}
	return 0, 0, 0, nil
}
