// Package sandbox is a local stand-in for TTC's Payment Gateway and for
// CyberSource's REST payments API, written from the integration guide and the
// CyberSource reference independently of the clients in internal/ttc and
// internal/cybs (sharing types would let a wrong field name pass every test).
//
// TTC (token endpoint, callback endpoint) and the sandbox's own admin routes
// are served over plain HTTP; CyberSource is served over TLS and requires a
// client certificate issued by the sandbox's CA, which the token endpoint
// hands out. A ledger records everything for tests, and faults can be set at
// start and at run time.
package sandbox

import (
	"cmp"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"
)

// TokenLifetimeDefault is TTC's documented access-token lifetime.
const TokenLifetimeDefault = 899 * time.Second

// Integrator is one integrator known to the sandbox's TTC.
type Integrator struct {
	APIKey string `json:"apiKey"`
	// Merchants that have a stored refresh token. Empty means every merchant
	// does; a merchant not listed gets 404.
	Merchants []string `json:"merchants,omitempty"`
}

// Config configures a sandbox. The zero value is usable: one integrator
// "costco" with a random API key, the documented token lifetime, no faults.
type Config struct {
	Integrators map[string]Integrator
	// TokenLifetime is expires_in of issued tokens. Defaults to 899 s.
	TokenLifetime time.Duration
	// Faults in force from the start.
	Faults Faults
	// Seed makes the fault dice repeatable; 0 picks a random seed.
	Seed uint64
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
}

// Sandbox holds the state behind both APIs.
type Sandbox struct {
	cfg        Config
	ca         *authority
	serverCert tls.Certificate

	mu          sync.Mutex
	rng         *mrand.Rand
	faults      Faults
	tokens      map[string]*issuedToken
	charges     []*Charge
	byID        map[string]*Charge
	byNetworkID map[string]*Charge
	// transactionIds are the merchant's own: CyberSource scopes them (and
	// everything else) by merchant, so every map keyed on one is per merchant.
	byTxnID     map[txnKey]*Charge
	followUps   []*FollowUp
	fuByTxnID   map[txnKey]*FollowUp
	usedTxnIDs  map[txnKey]bool
	inFlight    map[txnKey]*InFlightPayment
	tms         map[string]storedCard
	tokenReqs   []*TokenRequest
	callbacks   map[string]*CallbackRecord
	cbOrder     []string
	cbRejected  int
	handshakes  int
	timeoutRevs []TimeoutReversal
	duplicates  []DuplicateRequest
	cross       []CrossMerchantRequest
	idSeq       uint64
}

// txnKey is a transactionId in its merchant's namespace.
type txnKey struct{ merchant, txn string }

type issuedToken struct {
	integrator, merchant string
	expires              time.Time
	revoked              bool
}

type storedCard struct {
	number, month, year string
}

// New builds a sandbox and its CA.
func New(cfg Config) (*Sandbox, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.TokenLifetime = cmp.Or(cfg.TokenLifetime, TokenLifetimeDefault)
	if len(cfg.Integrators) == 0 {
		cfg.Integrators = map[string]Integrator{"costco": {APIKey: "sbx-" + randomHex(16)}}
	}
	for name, in := range cfg.Integrators {
		if in.APIKey == "" {
			return nil, fmt.Errorf("integrator %q: empty API key", name)
		}
	}
	if err := cfg.Faults.validate(); err != nil {
		return nil, fmt.Errorf("faults: %w", err)
	}
	ca, err := newAuthority("payflow sandbox CA")
	if err != nil {
		return nil, err
	}
	sc, err := ca.serverCert()
	if err != nil {
		return nil, err
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = mrand.Uint64()
	}
	s := &Sandbox{
		cfg:        cfg,
		ca:         ca,
		serverCert: sc,
		rng:        mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
	}
	s.resetLocked()
	s.faults = cfg.Faults
	s.faults.HoldInFlight = s.faults.HoldInFlight.clone()
	s.faults.anchor(cfg.Now())
	return s, nil
}

func (s *Sandbox) resetLocked() {
	s.tokens = map[string]*issuedToken{}
	s.charges = nil
	s.byID = map[string]*Charge{}
	s.byNetworkID = map[string]*Charge{}
	s.byTxnID = map[txnKey]*Charge{}
	s.followUps = nil
	s.fuByTxnID = map[txnKey]*FollowUp{}
	s.usedTxnIDs = map[txnKey]bool{}
	s.inFlight = map[txnKey]*InFlightPayment{}
	s.tms = map[string]storedCard{}
	s.tokenReqs = nil
	s.callbacks = map[string]*CallbackRecord{}
	s.cbOrder = nil
	s.cbRejected = 0
	s.handshakes = 0
	s.timeoutRevs = nil
	s.duplicates = nil
	s.cross = nil
}

// CACertPEM is the sandbox CA certificate: trust it to reach the CyberSource
// listener, and it is the issuer of every client certificate.
func (s *Sandbox) CACertPEM() []byte { return s.ca.certPEM }

// APIKey returns the API key of an integrator.
func (s *Sandbox) APIKey(integrator string) string { return s.cfg.Integrators[integrator].APIKey }

// TokenLifetime is the expires_in the token endpoint hands out.
func (s *Sandbox) TokenLifetime() time.Duration { return s.cfg.TokenLifetime }

// Reset empties the ledger and forgets issued tokens (faults stay).
func (s *Sandbox) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resetLocked()
}

// SetFaults replaces the faults in force.
func (s *Sandbox) SetFaults(f Faults) error {
	if err := f.validate(); err != nil {
		return err
	}
	f.anchor(s.cfg.Now())
	f.HoldInFlight = f.HoldInFlight.clone()
	s.mu.Lock()
	s.faults = f
	s.mu.Unlock()
	return nil
}

// Faults returns the faults in force.
func (s *Sandbox) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.faults
	f.HoldInFlight = f.HoldInFlight.clone()
	return f
}

// RevokeTokens revokes every token issued for an integrator and merchant,
// as if CyberSource had invalidated them; the next payment with one gets 401.
func (s *Sandbox) RevokeTokens(integrator, merchant string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, t := range s.tokens {
		if t.integrator == integrator && t.merchant == merchant && !t.revoked {
			t.revoked = true
			n++
		}
	}
	return n
}

// Ledger returns a snapshot of the ledger.
func (s *Sandbox) Ledger() Ledger {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	l := Ledger{
		Charges:           make([]Charge, 0, len(s.charges)),
		FollowUps:         make([]FollowUp, 0, len(s.followUps)),
		TokenRequests:     make([]TokenRequest, 0, len(s.tokenReqs)),
		Callbacks:         make([]CallbackRecord, 0, len(s.cbOrder)),
		TimeoutReversals:  append([]TimeoutReversal{}, s.timeoutRevs...),
		DuplicateRequests: append([]DuplicateRequest{}, s.duplicates...),
		CrossMerchant:     append([]CrossMerchantRequest{}, s.cross...),
		InFlight:          make([]InFlightPayment, 0, len(s.inFlight)),
		CallbacksRejected: s.cbRejected,
		TLSHandshakes:     s.handshakes,
	}
	for _, c := range s.charges {
		s.settledLocked(c, now)
		cc := *c
		cc.Refunds = append([]string(nil), c.Refunds...)
		l.Charges = append(l.Charges, cc)
	}
	for _, f := range s.followUps {
		s.followUpSettledLocked(f, now)
		ff := *f
		ff.charge = nil
		l.FollowUps = append(l.FollowUps, ff)
	}
	for _, f := range s.inFlight {
		l.InFlight = append(l.InFlight, *f)
	}
	slices.SortFunc(l.InFlight, func(a, b InFlightPayment) int { return a.Since.Compare(b.Since) })
	for _, r := range s.tokenReqs {
		l.TokenRequests = append(l.TokenRequests, *r)
	}
	for _, id := range s.cbOrder {
		l.Callbacks = append(l.Callbacks, *s.callbacks[id])
	}
	return l
}

// roll returns true with probability p.
func (s *Sandbox) roll(p float64) bool {
	if p <= 0 {
		return false
	}
	if p >= 1 {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rng.Float64() < p
}

// delay applies the latency fault of an endpoint. It does not stop when the
// client goes away: a real server keeps processing a request it received.
func (s *Sandbox) delay(endpoint string) {
	s.mu.Lock()
	l, ok := s.faults.Latency[endpoint]
	var j time.Duration
	if ok && l.Jitter > 0 {
		j = time.Duration(s.rng.Int64N(int64(l.Jitter)))
	}
	s.mu.Unlock()
	if ok {
		time.Sleep(time.Duration(l.Fixed) + j)
	}
}

// injected returns the status to fail the request with, or 0: an outage
// (503) or an error-rate fault.
func (s *Sandbox) injected(endpoint string) int {
	s.mu.Lock()
	outage := s.faults.inOutage(endpoint, s.cfg.Now())
	ef, ok := s.faults.Errors[endpoint]
	s.mu.Unlock()
	if outage {
		return http.StatusServiceUnavailable
	}
	if ok && s.roll(ef.Rate) {
		return ef.Status
	}
	return 0
}

// newID returns a 22-digit CyberSource-style request id.
func (s *Sandbox) newIDLocked() string {
	s.idSeq++
	return fmt.Sprintf("%013d%09d", s.cfg.Now().UnixMilli(), s.idSeq%1e9)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func randomDigits(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = '0' + b[i]%10
	}
	if b[0] == '0' {
		b[0] = '1'
	}
	return string(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// readBody reads at most 1 MiB of a request body.
func readBody(r *http.Request) ([]byte, error) {
	return io.ReadAll(io.LimitReader(r.Body, 1<<20))
}

// IntegratorNames yields the configured integrators.
func (s *Sandbox) IntegratorNames() map[string]struct{} {
	m := make(map[string]struct{}, len(s.cfg.Integrators))
	for n := range s.cfg.Integrators {
		m[n] = struct{}{}
	}
	return m
}

// TokenExpiry is the ground truth for a token the sandbox issued: when it
// expires, and whether it is known and not revoked.
func (s *Sandbox) TokenExpiry(token string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tokens[token]
	if t == nil || t.revoked {
		return time.Time{}, false
	}
	return t.expires, true
}

// Counts returns how many charges and callback transactions the ledger
// holds, without copying it (for polling).
func (s *Sandbox) Counts() (charges, callbacks int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.charges), len(s.cbOrder)
}

// IssuedTokens lists every access token the token endpoint handed out (for
// tests that search for leaks).
func (s *Sandbox) IssuedTokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.tokens))
	for t := range s.tokens {
		out = append(out, t)
	}
	return out
}
