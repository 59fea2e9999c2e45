package tokencache

// Lose drops what the store holds for a merchant, as a Redis failover or
// flush that lost the key would (tests only).
func (m *MemoryStore) Lose(integrator, merchantID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.creds, entryKey{integrator, merchantID})
}
