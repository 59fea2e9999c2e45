package idempotency

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Memory is the record store in process, for the payment simulation: the
// same transitions as the Lua scripts (driven by Table), on an injected
// clock that stands for Redis's own. It models replication too: every write
// is pending until Replicate copies it to the replica, and Failover rolls
// every record back to its replicated copy, as a Sentinel promotion of a
// lagging replica would.
type Memory struct {
	mu        sync.Mutex
	now       func() time.Time
	retention time.Duration
	keys      map[string]*memKey // primary
	replica   map[string]*memKey
	dirty     map[string]bool // written since the last Replicate of the key
	history   map[string][]Event
	// Fail, when set, is asked before each operation; a non-nil error fails
	// it without effect (Redis unreachable).
	Fail func(op string) error
	// MinReplicas models WAIT: a guard write is replicated before it
	// returns, or fails with ErrNotReplicated when ReplicaDown says the
	// replica did not acknowledge it (the write stays on the primary).
	MinReplicas int
	ReplicaDown func(op string) bool
}

type memKey struct {
	fields  map[string]string
	expires time.Time // zero: no expiry
}

// fieldsOrNil: the fields of a key that may be missing.
func (k *memKey) fieldsOrNil() map[string]string {
	if k == nil {
		return nil
	}
	return k.fields
}

func (k *memKey) clone() *memKey {
	return &memKey{fields: maps.Clone(k.fields), expires: k.expires}
}

// NewMemory returns an empty store on clock now; retention 0 means
// RetentionDefault.
func NewMemory(now func() time.Time, retention time.Duration) *Memory {
	if retention <= 0 {
		retention = RetentionDefault
	}
	return &Memory{now: now, retention: retention, keys: map[string]*memKey{}, replica: map[string]*memKey{}, dirty: map[string]bool{}}
}

// Replicate copies one key's current value to the replica (a replica that
// caught up with it).
func (m *Memory) Replicate(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.replicateLocked(key)
}

func (m *Memory) replicateLocked(key string) {
	if k := m.keys[key]; k != nil {
		m.replica[key] = k.clone()
	} else {
		delete(m.replica, key)
	}
	delete(m.dirty, key)
}

// ReplicateAll lets the replica catch up with every key.
func (m *Memory) ReplicateAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for key := range m.dirty {
		m.replicateLocked(key)
	}
}

// Dirty lists the keys written since they were last replicated.
func (m *Memory) Dirty() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.dirty))
	for k := range m.dirty {
		out = append(out, k)
	}
	return out
}

// Failover promotes the replica: every write not yet replicated is lost.
// It returns how many keys lost writes.
func (m *Memory) Failover() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	lost := len(m.dirty)
	m.keys = map[string]*memKey{}
	for key, k := range m.replica {
		m.keys[key] = k.clone()
	}
	m.dirty = map[string]bool{}
	return lost
}

// Fields returns a copy of a key's fields (nil when missing or expired).
func (m *Memory) Fields(key string) map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if k := m.get(key); k != nil {
		return maps.Clone(k.fields)
	}
	return nil
}

// get returns a live key. Caller holds mu.
func (m *Memory) get(key string) *memKey {
	k := m.keys[key]
	if k != nil && !k.expires.IsZero() && !m.now().Before(k.expires) {
		delete(m.keys, key)
		m.dirty[key] = true
		return nil
	}
	return k
}

// write returns the key for writing, creating it. Caller holds mu.
func (m *Memory) write(key string) *memKey {
	k := m.get(key)
	if k == nil {
		k = &memKey{fields: map[string]string{}}
		m.keys[key] = k
	}
	m.dirty[key] = true
	return k
}

func (m *Memory) expire(key string, d time.Duration) {
	if k := m.keys[key]; k != nil {
		k.expires = m.now().Add(d)
		m.dirty[key] = true
	}
}

func (m *Memory) fail(op string) error {
	if m.Fail != nil {
		return m.Fail(op)
	}
	return nil
}

// waited models the WAIT that follows every guard script, whether or not
// it wrote: Redis (7.0 on) makes a client wait for the replication offset
// of its last command, which is the primary's offset at that time, so a
// guard that only read a state some other connection wrote still waits
// for that write. A replica that acknowledges the offset has every write
// before it: all keys are replicated. Caller holds mu.
func (m *Memory) waited(op string) error {
	if m.MinReplicas <= 0 {
		return nil
	}
	if m.ReplicaDown != nil && m.ReplicaDown(op) {
		return fmt.Errorf("%w: 0 of %d", ErrNotReplicated, m.MinReplicas)
	}
	for key := range m.dirty {
		m.replicateLocked(key)
	}
	return nil
}

func ms(t time.Time) int64 { return t.UnixMilli() }

// record is the view of an intent record a transition needs.
type record struct {
	k     *memKey
	s     string
	a     int64
	o     string
	lease int64
}

func (m *Memory) record(intentID string) record {
	k := m.get(Key(intentID))
	if k == nil {
		return record{}
	}
	return record{k: k, s: k.fields["s"], a: atoi(k.fields["a"]), o: k.fields["o"], lease: atoi(k.fields["l"])}
}

// fenced: the table allows op from the record's state, and the caller's
// handle matches when the row is fenced.
func (r record) fenced(op string, a Attempt) bool {
	t := Row(op)
	if !t.allows(r.s) {
		return false
	}
	return !t.Fenced || (r.o == a.Owner && r.a == int64(a.N))
}

// Claim: see Store.Claim.
func (m *Memory) Claim(_ context.Context, intentID, fingerprint, owner string, lease time.Duration) (Claim, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail(OpClaim); err != nil {
		return Claim{}, err
	}
	c, undo := m.claim(intentID, fingerprint, owner, lease)
	if err := m.waited(OpClaim); err != nil {
		// Not replicated: undo a new claim, as Store.Claim does.
		if undo != nil {
			undo()
		}
		return Claim{}, err
	}
	return c, nil
}

// claim is Claim's transition. undo gives a new claim back. Caller holds mu.
func (m *Memory) claim(intentID, fingerprint, owner string, lease time.Duration) (c Claim, undo func()) {
	key, now := Key(intentID), ms(m.now())
	r := m.record(intentID)
	if r.k != nil && FingerprintsConflict(r.k.fields["f"], fingerprint) {
		return Claim{State: Conflict}, nil
	}
	if r.k != nil && r.s != "" && r.s != StateIdle && fingerprintVouches(r.k.fields["f"], fingerprint) {
		// A claim that does not take the record adds its parts only when
		// it vouches for being the record's intent (as the claim script).
		if merged := mergeFingerprint(r.k.fields["f"], fingerprint); merged != "" && merged != r.k.fields["f"] {
			m.write(key).fields["f"] = merged
		}
	}
	if Row(OpClaim).allows(r.s) {
		k := m.write(key)
		n := r.a + 1
		k.fields["s"], k.fields["a"], k.fields["l"], k.fields["o"] = StateCharging, strconv.FormatInt(n, 10), strconv.FormatInt(now+lease.Milliseconds(), 10), owner
		if merged := mergeFingerprint(k.fields["f"], fingerprint); merged != "" {
			k.fields["f"] = merged
		}
		m.expire(key, m.retention)
		return Claim{State: Claimed, Attempt: Attempt{intentID, owner, int(n)}, MaybeApplied: k.fields["m"] == "1"}, func() {
			k.fields["s"] = StateIdle
			delete(k.fields, "l")
			delete(k.fields, "o")
		}
	}
	if r.s == StateDone {
		f := r.k.fields
		c := Claim{State: Done, Attempt: Attempt{IntentID: intentID, N: int(r.a)}, Result: []byte(f["r"]), Reverse: decodeReversal(f["rv"])}
		if f["dc"] != "" {
			c.Letter = &Letter{Class: f["dc"], Reason: f["dr"]}
		}
		return c, nil
	}
	if r.s == StateCharging || r.s == StateResolving {
		if r.lease > now {
			return Claim{State: Busy, Wait: time.Duration(r.lease-now) * time.Millisecond}, nil
		}
		k := m.write(key)
		if r.s == StateCharging {
			k.fields["u"] = strconv.FormatInt(r.lease, 10)
		}
		k.fields["s"], k.fields["m"] = StateUnknown, "1"
		delete(k.fields, "o")
		m.expire(key, m.retention)
	}
	u := atoi(m.keys[key].fields["u"])
	return Claim{State: Unknown, Attempt: Attempt{intentID, owner, int(r.a)}, Since: time.UnixMilli(u), Now: time.UnixMilli(now), MaybeApplied: true}, nil
}

// Reopen: see Store.Reopen.
func (m *Memory) Reopen(_ context.Context, a Attempt, fingerprint, class string, lease time.Duration) (Claim, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail(OpReopen); err != nil {
		return Claim{}, err
	}
	r := m.record(a.IntentID)
	if r.k != nil && FingerprintsConflict(r.k.fields["f"], fingerprint) {
		return Claim{State: Conflict}, nil
	}
	f := r.k.fieldsOrNil()
	if !Row(OpReopen).allows(r.s) || r.a != int64(a.N) || class == "" || f["dc"] != class || f["rv"] != "" || f["p_id"] != "" {
		return Claim{}, ErrConflict
	}
	key := Key(a.IntentID)
	k := m.write(key)
	n := r.a + 1
	k.fields["s"], k.fields["a"], k.fields["l"], k.fields["o"] = StateCharging, strconv.FormatInt(n, 10), strconv.FormatInt(ms(m.now())+lease.Milliseconds(), 10), a.Owner
	for _, f := range []string{"r", "dc", "dr"} {
		delete(k.fields, f)
	}
	if merged := mergeFingerprint(k.fields["f"], fingerprint); merged != "" {
		k.fields["f"] = merged
	}
	m.expire(key, m.retention)
	c := Claim{State: Claimed, Attempt: Attempt{a.IntentID, a.Owner, int(n)}, MaybeApplied: k.fields["m"] == "1"}
	if err := m.waited(OpReopen); err != nil {
		return Claim{}, err
	}
	return c, nil
}

// BeginResolve: see Store.BeginResolve.
func (m *Memory) BeginResolve(_ context.Context, a Attempt, lease, delay time.Duration) (time.Duration, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail(OpBeginResolve); err != nil {
		return 0, false, err
	}
	r := m.record(a.IntentID)
	if !r.fenced(OpBeginResolve, a) || r.a != int64(a.N) {
		return 0, false, ErrConflict
	}
	now := ms(m.now())
	ready := atoi(r.k.fields["u"]) + delay.Milliseconds()
	if now < ready {
		return time.Duration(ready-now) * time.Millisecond, false, nil
	}
	k := m.write(Key(a.IntentID))
	k.fields["s"], k.fields["l"], k.fields["o"] = StateResolving, strconv.FormatInt(now+lease.Milliseconds(), 10), a.Owner
	m.expire(Key(a.IntentID), m.retention)
	return 0, true, nil
}

// Advance: see Store.Advance.
func (m *Memory) Advance(_ context.Context, a Attempt, lease time.Duration, fingerprint string) (Attempt, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail(OpAdvance); err != nil {
		return a, err
	}
	r := m.record(a.IntentID)
	if !r.fenced(OpAdvance, a) {
		return a, ErrConflict
	}
	key := Key(a.IntentID)
	k := m.write(key)
	a.N++
	k.fields["s"], k.fields["a"], k.fields["l"] = StateCharging, strconv.Itoa(a.N), strconv.FormatInt(ms(m.now())+lease.Milliseconds(), 10)
	if merged := mergeFingerprint(k.fields["f"], fingerprint); merged != "" {
		k.fields["f"] = merged
	}
	delete(k.fields, "u")
	m.expire(key, m.retention)
	if err := m.waited(OpAdvance); err != nil {
		return a, err
	}
	return a, nil
}

// Release: see Store.Release.
func (m *Memory) Release(_ context.Context, a Attempt) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail(OpRelease); err != nil {
		return err
	}
	r := m.record(a.IntentID)
	if !r.fenced(OpRelease, a) {
		return ErrConflict
	}
	k := m.write(Key(a.IntentID))
	k.fields["s"] = StateIdle
	delete(k.fields, "l")
	delete(k.fields, "o")
	m.expire(Key(a.IntentID), m.retention)
	return nil
}

// MarkUnknown: see Store.MarkUnknown.
func (m *Memory) MarkUnknown(_ context.Context, a Attempt) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail(OpMarkUnknown); err != nil {
		return err
	}
	r := m.record(a.IntentID)
	if !r.fenced(OpMarkUnknown, a) {
		return ErrConflict
	}
	k := m.write(Key(a.IntentID))
	if r.s == StateCharging {
		k.fields["u"] = strconv.FormatInt(ms(m.now()), 10)
	}
	k.fields["s"], k.fields["m"] = StateUnknown, "1"
	delete(k.fields, "l")
	delete(k.fields, "o")
	m.expire(Key(a.IntentID), m.retention)
	return m.waited(OpMarkUnknown)
}

// Finish: see Store.Finish.
func (m *Memory) Finish(_ context.Context, a Attempt, out Outcome) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail(OpFinish); err != nil {
		return err
	}
	if p := out.Payment; p != nil {
		m.setIndex(p.CyberSourceID, a.IntentID)
	}
	r := m.record(a.IntentID)
	if r.s == StateDone && r.o == a.Owner && r.a == int64(a.N) {
		return m.waited(OpFinish)
	}
	if !r.fenced(OpFinish, a) {
		return ErrConflict
	}
	key := Key(a.IntentID)
	k := m.write(key)
	k.fields["s"], k.fields["r"] = StateDone, string(out.Result)
	delete(k.fields, "l")
	delete(k.fields, "u")
	if l := out.Letter; l != nil {
		k.fields["dc"], k.fields["dr"] = l.Class, l.Reason
	} else {
		delete(k.fields, "dc")
		delete(k.fields, "dr")
	}
	if rv := out.Reverse.encode(); rv != "" {
		k.fields["rv"] = rv
	}
	if p := out.Payment; p != nil {
		captured := int64(0)
		if p.Sale {
			captured = p.Authorized
		}
		setnx := func(f, v string) {
			if _, ok := k.fields[f]; !ok {
				k.fields[f] = v
			}
		}
		setnx("p_id", p.CyberSourceID)
		setnx("p_cur", p.Currency)
		setnx("p_auth", strconv.FormatInt(p.Authorized, 10))
		setnx("p_cap", strconv.FormatInt(captured, 10))
		setnx("p_m", p.MerchantID)
		setnx("p_rev", "0")
		setnx("p_ref", "0")
		setnx("p_void", "0")
	}
	m.expire(key, m.retention)
	return m.waited(OpFinish)
}

// ReversalDone: see Store.ReversalDone.
func (m *Memory) ReversalDone(_ context.Context, intentID, paymentID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail("reversalDone"); err != nil {
		return err
	}
	if k := m.get(Key(intentID)); k != nil && strings.HasPrefix(k.fields["rv"], paymentID+"|") {
		delete(m.write(Key(intentID)).fields, "rv")
	}
	return nil
}

func (m *Memory) setIndex(cybersourceID, intentID string) {
	key := PaymentIndexKey(cybersourceID)
	k := m.write(key)
	k.fields["v"] = intentID
	m.expire(key, m.retention)
}

// Extend: see Store.Extend.
func (m *Memory) Extend(_ context.Context, a Attempt, lease time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail(OpExtend); err != nil {
		return err
	}
	r := m.record(a.IntentID)
	if !r.fenced(OpExtend, a) {
		return ErrConflict
	}
	k := m.write(Key(a.IntentID))
	k.fields["l"] = strconv.FormatInt(ms(m.now())+lease.Milliseconds(), 10)
	m.expire(Key(a.IntentID), m.retention)
	return m.waited(OpExtend)
}

// Result: see Store.Result.
// State is the state of an intent's record ("" when it has none).
func (m *Memory) State(_ context.Context, intentID string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail("state"); err != nil {
		return "", err
	}
	return m.record(intentID).s, nil
}

func (m *Memory) Result(_ context.Context, intentID string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail("result"); err != nil {
		return nil, err
	}
	r := m.record(intentID)
	if r.s != StateDone {
		return nil, nil
	}
	return []byte(r.k.fields["r"]), nil
}

// MarkCallbackDelivered: see Store.MarkCallbackDelivered.
func (m *Memory) MarkCallbackDelivered(_ context.Context, intentID, transactionID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail("markCallback"); err != nil {
		return err
	}
	if m.get(Key(intentID)) != nil {
		m.write(Key(intentID)).fields["cb"] = transactionID
	}
	return nil
}

// CallbackDelivered: see Store.CallbackDelivered.
func (m *Memory) CallbackDelivered(_ context.Context, intentID, transactionID string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail("callbackDelivered"); err != nil {
		return false, err
	}
	k := m.get(Key(intentID))
	return k != nil && k.fields["cb"] == transactionID, nil
}

// PaymentIntent: see Store.PaymentIntent.
func (m *Memory) PaymentIntent(_ context.Context, cybersourceID string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail("paymentIntent"); err != nil {
		return "", err
	}
	if k := m.get(PaymentIndexKey(cybersourceID)); k != nil {
		return k.fields["v"], nil
	}
	return "", nil
}

// Reserve: see Store.Reserve.
func (m *Memory) Reserve(_ context.Context, paymentIntentID, merchant, kind string, a Attempt, amount int64) (int64, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail("reserve"); err != nil {
		return 0, "", err
	}
	n, cur, err := m.reserve(paymentIntentID, merchant, kind, a, amount)
	if werr := m.waited("reserve"); werr != nil {
		return 0, "", werr
	}
	return n, cur, err
}

// reserve is Reserve's transition. Caller holds mu.
func (m *Memory) reserve(paymentIntentID, merchant, kind string, a Attempt, amount int64) (int64, string, error) {
	key := Key(paymentIntentID)
	k := m.get(key)
	if k == nil || k.fields["p_cur"] == "" {
		return reserveAnswer(-2, 0, "")
	}
	f := k.fields
	cur := f["p_cur"]
	if pm, ok := f["p_m"]; ok && pm != merchant {
		return reserveAnswer(-4, 0, "")
	}
	opKey := "op:" + a.IntentID
	if held, ok := f[opKey]; ok {
		amt, _, _ := strings.Cut(held, "|")
		k = m.write(key)
		k.fields[opKey] = amt + "|" + holder(a)
		m.expire(key, m.retention)
		return atoi(amt), cur, nil
	}
	auth, capd, rev, ref := atoi(f["p_auth"]), atoi(f["p_cap"]), atoi(f["p_rev"]), atoi(f["p_ref"])
	if f["p_void"] == "1" {
		return reserveAnswer(-3, 0, cur)
	}
	var left int64
	var field string
	switch kind {
	case "capture", "reverse":
		left = auth - capd - rev
		field = "p_rev"
		if kind == "capture" {
			field = "p_cap"
		}
	case "refund":
		left, field = capd-ref, "p_ref"
	default: // void: the whole capture
		if capd == 0 || ref > 0 {
			return reserveAnswer(-3, 0, cur)
		}
		k = m.write(key)
		k.fields["p_void"], k.fields[opKey] = "1", strconv.FormatInt(capd, 10)+"|"+holder(a)
		m.expire(key, m.retention)
		return capd, cur, nil
	}
	if amount < 0 {
		amount = left
	}
	if amount <= 0 || amount > left {
		return reserveAnswer(-1, left, cur)
	}
	k = m.write(key)
	k.fields[field] = strconv.FormatInt(atoi(k.fields[field])+amount, 10)
	k.fields[opKey] = strconv.FormatInt(amount, 10) + "|" + holder(a)
	m.expire(key, m.retention)
	return amount, cur, nil
}

// Unreserve: see Store.Unreserve.
func (m *Memory) Unreserve(_ context.Context, paymentIntentID, kind string, a Attempt) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail("unreserve"); err != nil {
		return err
	}
	key := Key(paymentIntentID)
	k := m.get(key)
	if k == nil {
		return nil
	}
	held, ok := k.fields["op:"+a.IntentID]
	if !ok {
		return nil
	}
	amt, who, _ := strings.Cut(held, "|")
	if who != holder(a) {
		return ErrConflict
	}
	k = m.write(key)
	if kind == "void" {
		k.fields["p_void"] = "0"
	} else {
		field := map[string]string{"capture": "p_cap", "reverse": "p_rev", "refund": "p_ref"}[kind]
		k.fields[field] = strconv.FormatInt(atoi(k.fields[field])-atoi(amt), 10)
	}
	delete(k.fields, "op:"+a.IntentID)
	m.expire(key, m.retention)
	return nil
}

// LastTransaction: see Store.LastTransaction.
func (m *Memory) LastTransaction(_ context.Context, merchant, root string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail("lastTransaction"); err != nil {
		return "", err
	}
	if k := m.get(ChainKey(merchant, root)); k != nil {
		return k.fields["last"], nil
	}
	return "", nil
}

// AdvanceChain: see Store.AdvanceChain.
func (m *Memory) AdvanceChain(_ context.Context, merchant, root, transactionID string, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail("advanceChain"); err != nil {
		return err
	}
	key := ChainKey(merchant, root)
	k := m.write(key)
	if at.UnixMilli() >= atoi(k.fields["at"]) {
		k.fields["last"], k.fields["at"] = transactionID, strconv.FormatInt(at.UnixMilli(), 10)
	}
	m.expire(key, m.retention)
	return m.waited("advanceChain")
}

// Load sets a key's fields as they are (tests build records in any state),
// expiring after the retention.
func (m *Memory) Load(key string, fields map[string]string) { m.LoadTTL(key, fields, m.retention) }

// LoadTTL is Load with the key expiring after ttl.
func (m *Memory) LoadTTL(key string, fields map[string]string, ttl time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := m.write(key)
	k.fields = maps.Clone(fields)
	k.expires = m.now().Add(ttl)
}

// TTL is how long a key has left (0 when it is missing).
func (m *Memory) TTL(key string) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	if k := m.get(key); k != nil && !k.expires.IsZero() {
		return k.expires.Sub(m.now())
	}
	return 0
}

// AppendHistory: see Store.AppendHistory.
func (m *Memory) AppendHistory(_ context.Context, intentID string, _ time.Duration, events ...Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail("history"); err != nil {
		return err
	}
	if m.history == nil {
		m.history = map[string][]Event{}
	}
	h := append(m.history[intentID], events...)
	if len(h) > HistoryMax {
		h = h[len(h)-HistoryMax:]
	}
	m.history[intentID] = h
	return nil
}

// History: see Store.History.
func (m *Memory) History(_ context.Context, intentID string) ([]Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Event(nil), m.history[intentID]...), nil
}
