package tokencache

import (
	"context"
	"strconv"
	"sync"
	"time"
)

// MemoryStore is the shared layer for a single process (the demo without
// Redis). Several processes with memory stores each call TTC on their own:
// use Redis when more than one pod runs.
type MemoryStore struct {
	mu    sync.Mutex
	creds map[entryKey]*Credentials
	locks map[entryKey]memLock
	seq   int
}

type memLock struct {
	token   string
	expires time.Time
}

var _ store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty in-process store.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{creds: map[entryKey]*Credentials{}, locks: map[entryKey]memLock{}}
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
