// Package payment holds the decisions that move money: claim an intent,
// charge it, classify CyberSource's answer, resolve an unknown outcome,
// settle (capture, reverse, void, refund). It runs without NATS, Redis or
// HTTP: every collaborator is a small interface declared here, and every
// step returns a Decision value (ack with a result, retry after a delay,
// dead-letter with a class) that the consumer applies in one place.
//
// The invariants it serves (see the README's "Charging exactly once"):
// an intent is charged at most once whatever is redelivered, replayed or
// retried; every accepted intent ends in exactly one visible terminal
// outcome; no card data or credential leaks.
package payment

import (
	"cmp"
	"context"
	"time"

	"github.com/rs/zerolog"

	"github.com/ttcpay/payflow/internal/cybs"
	"github.com/ttcpay/payflow/internal/idempotency"
	"github.com/ttcpay/payflow/internal/intent"
	"github.com/ttcpay/payflow/internal/redelivery"
	"github.com/ttcpay/payflow/internal/tokencache"
)

// Claims is the intent record's state machine (*idempotency.Store).
type Claims interface {
	Claim(ctx context.Context, intentID, fingerprint, owner string, lease time.Duration) (idempotency.Claim, error)
	Extend(ctx context.Context, a idempotency.Attempt, lease time.Duration) error
	Release(ctx context.Context, a idempotency.Attempt) error
	Advance(ctx context.Context, a idempotency.Attempt, lease time.Duration, fingerprint string) (idempotency.Attempt, error)
	MarkUnknown(ctx context.Context, a idempotency.Attempt) error
	BeginResolve(ctx context.Context, a idempotency.Attempt, lease, delay time.Duration) (time.Duration, bool, error)
	Finish(ctx context.Context, a idempotency.Attempt, out idempotency.Outcome) error
	// Reopen takes a done record whose dead letter (class) says nothing
	// was charged for a new attempt (an operator replayed that letter).
	Reopen(ctx context.Context, a idempotency.Attempt, fingerprint, class string, lease time.Duration) (idempotency.Claim, error)
	// ReversalDone clears a done record's authorization to reverse.
	ReversalDone(ctx context.Context, intentID, paymentID string) error
	// Result is the recorded result of a terminal intent (nil otherwise).
	Result(ctx context.Context, intentID string) ([]byte, error)
	// State is the state of an intent's record ("" when it has none).
	State(ctx context.Context, intentID string) (string, error)
}

// Ledger is the settlement ledger of authorized payments (*idempotency.Store).
type Ledger interface {
	PaymentIntent(ctx context.Context, cybersourceID string) (string, error)
	Reserve(ctx context.Context, paymentIntentID, merchant, kind string, a idempotency.Attempt, amount int64) (int64, string, error)
	Unreserve(ctx context.Context, paymentIntentID, kind string, a idempotency.Attempt) error
}

// Chains are the merchants' card-on-file series (*idempotency.Store):
// Visa's last successful network transaction id.
type Chains interface {
	LastTransaction(ctx context.Context, merchant, root string) (string, error)
	AdvanceChain(ctx context.Context, merchant, root, transactionID string, at time.Time) error
}

// Store is every record capability the payment logic uses.
type Store interface {
	Claims
	Ledger
	Chains
}

// Credentials is the shared credential cache (*tokencache.Cache).
type Credentials interface {
	Get(ctx context.Context, integrator, merchantID string) (*tokencache.Credentials, error)
	Invalidate(ctx context.Context, cr *tokencache.Credentials) error
}

// CyberSource is the CyberSource client (*cybs.Client).
type CyberSource interface {
	Authorize(ctx context.Context, cr cybs.Credentials, req *cybs.PaymentRequest) (*cybs.PaymentResponse, error)
	Reverse(ctx context.Context, cr cybs.Credentials, paymentID string, req *cybs.ReversalRequest) (*cybs.FollowUpResponse, error)
	Capture(ctx context.Context, cr cybs.Credentials, paymentID string, req *cybs.CaptureRequest) (*cybs.FollowUpResponse, error)
	Refund(ctx context.Context, cr cybs.Credentials, paymentID string, req *cybs.RefundRequest) (*cybs.FollowUpResponse, error)
	Void(ctx context.Context, cr cybs.Credentials, paymentID string, req *cybs.VoidRequest) (*cybs.FollowUpResponse, error)
	TimeoutReversal(ctx context.Context, cr cybs.Credentials, req *cybs.ReversalRequest) (*cybs.FollowUpResponse, error)
	TimeoutVoid(ctx context.Context, cr cybs.Credentials, req *cybs.VoidRequest) (*cybs.FollowUpResponse, error)
}

// Cards opens an intent's encryptedCard (*cardcrypt.Keyring).
type Cards interface {
	Decrypt(compact string) (*intent.Card, error)
}

// Observer is told about what metrics count (nil: nothing).
type Observer interface {
	// ChargeLatency is the duration of one CyberSource payment call.
	ChargeLatency(d time.Duration)
	// UnknownOutcome: a call's outcome was unknown and must be resolved.
	UnknownOutcome()
	// LateCharge: a charge landed after its pod lost the lease; reversed
	// tells whether the pod reversed or voided it.
	LateCharge(reversed bool)
}

// Timeouts of the steps that wait.
const (
	// CredentialsTimeout bounds getting credentials for one attempt
	// (in-process, then Redis, then a TTC refresh by this or another pod).
	CredentialsTimeout = 15 * time.Second
	// BookkeepingTimeout bounds the record writes after a CyberSource call:
	// they run on a context detached from shutdown, because the charge may
	// exist and must be recorded.
	BookkeepingTimeout = 10 * time.Second
	// WakeMargin is added to a wait the record computed (a lease's end, a
	// resolution's earliest time) so that the redelivery arrives after it.
	WakeMargin = 100 * time.Millisecond
)

// Config tunes the payment logic. Zero values mean the defaults.
type Config struct {
	// Cards decrypts encryptedCard; nil when no keys are configured.
	Cards Cards
	// FingerprintKeys key the intents' fingerprints (HMAC-SHA256 over the
	// whole card number): the first for new records, all recognised (a
	// rotation). None: the unkeyed fingerprint (BIN and last four digits).
	FingerprintKeys [][]byte
	// RequireEncryptedCard refuses intents with a plaintext card.
	RequireEncryptedCard bool
	// IsConfigError tells a card decryption failure that a configuration
	// change fixes (a missing key) from a bad intent.
	IsConfigError func(error) bool
	// SolutionID goes to clientReferenceInformation.partner.solutionId.
	SolutionID string
	// Lease on an intent's record while it is charged. Must exceed the
	// CyberSource timeout by a margin. Defaults to 2 min.
	Lease time.Duration
	// ResolveDelay: a timeout reversal/void is sent no sooner than this after
	// the lost request (CyberSource asks for 60 s). Defaults to 60 s.
	ResolveDelay time.Duration
	// ConfigBudget: how long a configuration failure (TTC 403/404, no API
	// key) is retried before the intent is dead-lettered. Defaults to 1 h.
	ConfigBudget time.Duration
	// RetryBudget: an intent older than this whose last attempt failed
	// without charging is dead-lettered "exhausted" instead of being tried
	// again. Only ever applied when the intent is definitely not charged.
	// Defaults to 24 h.
	RetryBudget time.Duration
	// ResolveBudget: an intent older than this whose unknown outcome could
	// not be resolved (credentials, lost answers, CyberSource down) is
	// dead-lettered "unknown-outcome" for a person. Defaults to 24 h.
	ResolveBudget time.Duration
	// Retry: redelivery backoff for transient failures.
	Retry redelivery.Backoff
	// Now is the clock (the record's lease timing uses Redis's own clock).
	Now func() time.Time
	// NewOwner returns the owner token of one claim. Defaults to
	// idempotency.NewOwner.
	NewOwner func() string
	// Observer is told what metrics count; nil: nothing.
	Observer Observer
	// Test holds seams for tests; production leaves it zero.
	Test TestHooks
}

// TestHooks are seams for end-to-end tests.
type TestHooks struct {
	// BeforeCharge runs right before the CyberSource call of an attempt
	// (a payment, or a capture, reversal, void or refund), after the lease
	// was checked: blocking there freezes the pod at the most dangerous
	// moment.
	BeforeCharge func(intentID string, attempt int)
}

// Defaults of Config.
const (
	LeaseDefault         = 2 * time.Minute
	ResolveDelayDefault  = 60 * time.Second
	ConfigBudgetDefault  = time.Hour
	RetryBudgetDefault   = 24 * time.Hour
	ResolveBudgetDefault = 24 * time.Hour
	// LeaseCheckAfter: an attempt whose claim is older than this renews
	// (and so checks) its lease right before the CyberSource call.
	LeaseCheckAfter = time.Second
	// RecordTries: a record write after a CyberSource call is tried this
	// many times before the message is redelivered (Finish is idempotent).
	RecordTries = 3
	// SendMargin: a CyberSource call that changes money must be sent at
	// least this long before its attempt's lease ends. Its context carries
	// that deadline (SendBy), so a pod paused past it (after the lease
	// check) gives the request up as not sent instead of sending it while
	// another pod may already be resolving the attempt; a request on its
	// way when the deadline passes is an unknown outcome, resolved as any
	// other. Far from binding normally: CHARGE_LEASE exceeds CYBS_TIMEOUT
	// by more than 10 s, and the lease is renewed right before the call.
	SendMargin = 5 * time.Second
)

type sendByKey struct{}

// SendBy is the time by which the CyberSource call ctx carries must have
// been sent (false: no bound). The call's context has the same deadline in
// real time; the simulation, whose clock is virtual, reads this instead.
func SendBy(ctx context.Context) (time.Time, bool) {
	t, ok := ctx.Value(sendByKey{}).(time.Time)
	return t, ok
}

// sendContext bounds a CyberSource call of the job's attempt by the lease
// (see SendMargin).
func (p *Processor) sendContext(ctx context.Context, j *job) (context.Context, context.CancelFunc) {
	by := j.claimed.Add(p.cfg.Lease - SendMargin)
	ctx = context.WithValue(ctx, sendByKey{}, by)
	return context.WithTimeout(ctx, by.Sub(p.cfg.Now()))
}

// RetryDefault is the redelivery backoff of transient failures.
var RetryDefault = redelivery.Backoff{Initial: time.Second, Max: time.Minute, Multiplier: 2, Jitter: 0.3}

func (c Config) withDefaults() Config {
	c.Lease = cmp.Or(c.Lease, LeaseDefault)
	c.ResolveDelay = cmp.Or(c.ResolveDelay, ResolveDelayDefault)
	c.ConfigBudget = cmp.Or(c.ConfigBudget, ConfigBudgetDefault)
	c.RetryBudget = cmp.Or(c.RetryBudget, RetryBudgetDefault)
	c.ResolveBudget = cmp.Or(c.ResolveBudget, ResolveBudgetDefault)
	if c.Retry.Initial == 0 {
		c.Retry = RetryDefault
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.NewOwner == nil {
		c.NewOwner = idempotency.NewOwner
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	return c
}

type nopObserver struct{}

func (nopObserver) ChargeLatency(time.Duration) {}
func (nopObserver) UnknownOutcome()             {}
func (nopObserver) LateCharge(bool)             {}

// Processor decides what happens to each delivery of an intent.
type Processor struct {
	cfg   Config
	creds Credentials
	cs    CyberSource
	store Store
	log   zerolog.Logger
}

// New wires a Processor.
func New(cfg Config, creds Credentials, cs CyberSource, store Store, log zerolog.Logger) *Processor {
	return &Processor{cfg: cfg.withDefaults(), creds: creds, cs: cs, store: store, log: log}
}

// Delivery is one delivery of one intent message.
type Delivery struct {
	Data    []byte
	Subject string
	MsgID   string // Nats-Msg-Id
	// ReplayedFrom is the Payflow-Replayed-From header: the dead letter's
	// sequence a replay came from ("" for an upstream publish).
	ReplayedFrom string
	// ReplayedAttempt is the Payflow-Replayed-Attempt header: the attempt
	// whose outcome the replayed letter reported (0: unknown).
	ReplayedAttempt int
	// ReplayedIntentID is the Payflow-Intent-Id header of a replay: the
	// intentId of the letter it came from. It names the intent of a replay
	// that cannot be decoded (only when the Nats-Msg-Id is that letter's
	// replay id).
	ReplayedIntentID string
	Delivered        uint64    // delivery count, 1 for the first
	Seq              uint64    // stream sequence
	Published        time.Time // when the stream stored it
}
