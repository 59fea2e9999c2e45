package consume

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/attribute"

	"github.com/ttcpay/payflow/internal/cybs"
	"github.com/ttcpay/payflow/internal/dlq"
	"github.com/ttcpay/payflow/internal/idempotency"
	"github.com/ttcpay/payflow/internal/intent"
	"github.com/ttcpay/payflow/internal/streams"
	"github.com/ttcpay/payflow/internal/tokencache"
	"github.com/ttcpay/payflow/internal/tracing"
	"github.com/ttcpay/payflow/internal/ttc"
)

// Credentials is the shared credential cache (*tokencache.Cache).
type Credentials interface {
	Get(ctx context.Context, integrator, merchantID string) (*tokencache.Credentials, error)
	Invalidate(ctx context.Context, cr *tokencache.Credentials) error
}

// Charger is the CyberSource client (*cybs.Client).
type Charger interface {
	Authorize(ctx context.Context, cr cybs.Credentials, req *cybs.PaymentRequest) (*cybs.PaymentResponse, error)
	Reverse(ctx context.Context, cr cybs.Credentials, paymentID string, req *cybs.ReversalRequest) (*cybs.FollowUpResponse, error)
	Capture(ctx context.Context, cr cybs.Credentials, paymentID string, req *cybs.CaptureRequest) (*cybs.FollowUpResponse, error)
	Refund(ctx context.Context, cr cybs.Credentials, paymentID string, req *cybs.RefundRequest) (*cybs.FollowUpResponse, error)
	Void(ctx context.Context, cr cybs.Credentials, paymentID string, req *cybs.VoidRequest) (*cybs.FollowUpResponse, error)
	TimeoutReversal(ctx context.Context, cr cybs.Credentials, req *cybs.ReversalRequest) (*cybs.FollowUpResponse, error)
	TimeoutVoid(ctx context.Context, cr cybs.Credentials, req *cybs.VoidRequest) (*cybs.FollowUpResponse, error)
}

// Records is the idempotency store (*idempotency.Store).
type Records interface {
	Claim(ctx context.Context, intentID, owner string, lease time.Duration) (idempotency.Claim, error)
	BeginResolve(ctx context.Context, intentID, owner string, attempt int, lease, delay time.Duration) (time.Duration, bool, error)
	Advance(ctx context.Context, intentID, owner string, attempt int, lease time.Duration) (int, error)
	Release(ctx context.Context, intentID, owner string, attempt int) error
	MarkUnknown(ctx context.Context, intentID, owner string, attempt int) error
	Finish(ctx context.Context, intentID, owner string, attempt int, result []byte, payment *idempotency.Payment) error
	Extend(ctx context.Context, intentID, owner string, attempt int, lease time.Duration) error
	MarkCallbackDelivered(ctx context.Context, intentID string) error
	CallbackDelivered(ctx context.Context, intentID string) (bool, error)
	Result(ctx context.Context, intentID string) ([]byte, error)
	PaymentIntent(ctx context.Context, cybersourceID string) (string, error)
	Reserve(ctx context.Context, paymentIntentID, opID, kind string, amount int64) (int64, string, error)
	Unreserve(ctx context.Context, paymentIntentID, opID, kind string) error
	LastTransaction(ctx context.Context, root string) (string, error)
	AdvanceChain(ctx context.Context, root, transactionID string) error
}

// Publisher publishes to JetStream (jetstream.JetStream).
type Publisher interface {
	PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
}

// CardDecrypter opens an intent's encryptedCard (*cardcrypt.Keyring).
type CardDecrypter interface {
	Decrypt(compact string) (*intent.Card, error)
}

// PaymentsConfig tunes the payments consumer. Zero values mean the defaults.
type PaymentsConfig struct {
	// Tracing continues each message's trace; nil means off.
	Tracing *tracing.Tracing
	// Cards decrypts encryptedCard; nil when no keys are configured.
	Cards CardDecrypter
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
	// without charging (CyberSource unreachable, an outage, credentials
	// unavailable) is dead-lettered "exhausted" instead of being tried
	// again. Only ever applied when the intent is definitely not charged.
	// Defaults to 24 h.
	RetryBudget time.Duration
	// KeepAlive: InProgress interval during slow work. Defaults to 10 s.
	KeepAlive time.Duration
	// Retry: redelivery backoff for transient failures.
	Retry Backoff
	Now   func() time.Time
	// AfterRecord is a test hook: it runs after the outcome is recorded and
	// before results are published and the message is acked; returning true
	// abandons the message there, as a crash would.
	AfterRecord func(intentID string) bool
}

// Defaults of PaymentsConfig.
const (
	LeaseDefault        = 2 * time.Minute
	ResolveDelayDefault = 60 * time.Second
	ConfigBudgetDefault = time.Hour
	RetryBudgetDefault  = 24 * time.Hour
	KeepAliveDefault    = 10 * time.Second
)

func (c PaymentsConfig) withDefaults() PaymentsConfig {
	c.Lease = cmp.Or(c.Lease, LeaseDefault)
	c.ResolveDelay = cmp.Or(c.ResolveDelay, ResolveDelayDefault)
	c.ConfigBudget = cmp.Or(c.ConfigBudget, ConfigBudgetDefault)
	c.RetryBudget = cmp.Or(c.RetryBudget, RetryBudgetDefault)
	c.KeepAlive = cmp.Or(c.KeepAlive, KeepAliveDefault)
	if c.Retry.Initial == 0 {
		c.Retry = Backoff{Initial: time.Second, Max: time.Minute, Multiplier: 2, Jitter: 0.3}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Tracing == nil {
		c.Tracing = tracing.Off()
	}
	return c
}

// Payments charges intents exactly once.
type Payments struct {
	cfg     PaymentsConfig
	creds   Credentials
	charger Charger
	records Records
	js      Publisher
	log     zerolog.Logger
	m       *Metrics
}

// NewPayments wires the payments consumer.
func NewPayments(cfg PaymentsConfig, creds Credentials, charger Charger, records Records, js Publisher, log zerolog.Logger, m *Metrics) *Payments {
	return &Payments{cfg: cfg.withDefaults(), creds: creds, charger: charger, records: records, js: js, log: log, m: m}
}

// job is one delivery of one intent being worked on.
type job struct {
	msg       jetstream.Msg
	in        *intent.Intent
	owner     string
	attempt   int
	claimed   time.Time
	delivered uint64
	seq       uint64
	published time.Time
	log       zerolog.Logger
}

// Handle processes one delivery of an intent.
func (p *Payments) Handle(ctx context.Context, msg jetstream.Msg) {
	p.m.Deliveries.WithLabelValues("payments").Inc()
	p.m.InFlight.WithLabelValues("payments").Inc()
	defer p.m.InFlight.WithLabelValues("payments").Dec()
	stop := keepAlive(msg, p.cfg.KeepAlive)
	defer stop()

	j := &job{msg: msg, owner: idempotency.NewOwner()}
	j.delivered, j.seq, j.published = msgMeta(msg)
	subjMerchant := streams.MerchantOf(msg.Subject())
	ctx, span := p.cfg.Tracing.Start(p.cfg.Tracing.FromMsg(ctx, msg.Headers()), "payflow.payment",
		attribute.String("payflow.intent_id", msg.Headers().Get(nats.MsgIdHdr)), attribute.String("payflow.merchant_id", subjMerchant),
		attribute.Int64("payflow.delivery", int64(j.delivered)))
	defer span.End()
	in, err := intent.Decode(msg.Data(), p.cfg.Now())
	if err == nil && in.MerchantID != subjMerchant {
		err = &intent.ValidationError{Problems: []intent.Problem{{Field: "merchantId", Message: "does not match the subject's merchant " + subjMerchant}}}
	}
	if err == nil {
		err = p.openCard(in)
	}
	var cfgErr *cardConfigError
	if errors.As(err, &cfgErr) {
		j.in = in
		j.log = p.log.With().Str("intentId", in.IntentID).Str("merchantId", in.MerchantID).Uint64("delivery", j.delivered).Logger()
		j.log.Error().Err(err).Msg("card cannot be decrypted: configuration")
		p.deadLetter(ctx, j, in.MerchantID, dlq.ClassConfig, err.Error(), &intent.Result{
			IntentID: in.IntentID, Integrator: in.Integrator, MerchantID: in.MerchantID, BookingID: in.BookingID,
			Reference: in.Reference, Status: intent.StatusFailed, Amount: in.Amount, Currency: in.Currency,
			Reason: err.Error(), Time: p.cfg.Now(),
		})
		return
	}
	if err != nil {
		p.invalid(ctx, j, subjMerchant, err)
		return
	}
	j.in = in
	j.log = p.log.With().Str("intentId", in.IntentID).Str("merchantId", in.MerchantID).Uint64("delivery", j.delivered).Logger()

	c, err := p.records.Claim(ctx, in.IntentID, j.owner, p.cfg.Lease)
	if err != nil {
		// No claim, no charge.
		j.log.Warn().Err(err).Msg("cannot claim intent; retrying later")
		p.nak(j, p.cfg.Retry.Delay(j.delivered))
		return
	}
	switch c.State {
	case idempotency.Done:
		p.replay(ctx, j, c.Result)
	case idempotency.Busy:
		j.log.Debug().Dur("wait", c.Wait).Msg("intent is being charged elsewhere")
		p.nak(j, c.Wait+100*time.Millisecond)
	case idempotency.Unknown:
		j.attempt = c.Attempt
		j.log = j.log.With().Int("attempt", j.attempt).Logger()
		p.resolve(ctx, j)
	case idempotency.Claimed:
		j.attempt, j.claimed = c.Attempt, time.Now()
		j.log = j.log.With().Int("attempt", j.attempt).Logger()
		p.attempt(ctx, j)
	}
}

// attempt runs the intent's operation for the claimed attempt.
func (p *Payments) attempt(ctx context.Context, j *job) {
	if j.in.Op() == intent.OpAuthorize {
		p.charge(ctx, j, false)
		return
	}
	p.operate(ctx, j)
}

type cardConfigError struct{ err error }

func (e *cardConfigError) Error() string { return e.err.Error() }
func (e *cardConfigError) Unwrap() error { return e.err }

// openCard enforces REQUIRE_ENCRYPTED_CARD and decrypts an encryptedCard
// into the intent (in memory only, for the charge), validating the card and
// the brand rules that depend on it.
func (p *Payments) openCard(in *intent.Intent) error {
	if in.Card != nil && p.cfg.RequireEncryptedCard {
		return &intent.ValidationError{Problems: []intent.Problem{{Field: "card",
			Message: "plaintext card refused: this deployment requires encryptedCard (REQUIRE_ENCRYPTED_CARD)"}}}
	}
	if in.EncryptedCard == "" {
		return nil
	}
	var card *intent.Card
	var err error
	if p.cfg.Cards == nil {
		err = errors.New("encryptedCard cannot be read: no card decryption keys are configured")
	} else {
		card, err = p.cfg.Cards.Decrypt(in.EncryptedCard)
	}
	if err != nil {
		if p.cfg.Cards == nil || (p.cfg.IsConfigError != nil && p.cfg.IsConfigError(err)) {
			return &cardConfigError{err}
		}
		return &intent.ValidationError{Problems: []intent.Problem{{Field: "encryptedCard", Message: err.Error()}}}
	}
	if err := intent.CheckCard(card, p.cfg.Now()); err != nil {
		return err
	}
	in.Card, in.EncryptedCard = card, "" // dead letters keep the message's ciphertext
	return in.Validate(p.cfg.Now())      // brand rules now that the card is known
}

// charge makes attempt j.attempt, which j.owner holds.
func (p *Payments) charge(ctx context.Context, j *job, retried401 bool) {
	in := j.in
	if j.attempt > 1 && p.exhausted(j) {
		// Every earlier attempt is settled as not charged: give up cleanly.
		p.release(ctx, j)
		p.giveUp(ctx, j, fmt.Errorf("no attempt succeeded within the retry budget of %s (%d attempts)", p.cfg.RetryBudget, j.attempt-1))
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	cr, err := p.creds.Get(cctx, in.Integrator, in.MerchantID)
	cancel()
	if err != nil {
		p.release(ctx, j)
		if ttc.KindOf(err) == 0 || ttc.KindOf(err) == ttc.KindTransient || ttc.KindOf(err) == ttc.KindBadResponse {
			if p.exhausted(j) {
				p.giveUp(ctx, j, fmt.Errorf("no credentials within the retry budget: %w", err))
				return
			}
		}
		p.credentialsFailed(ctx, j, err)
		return
	}
	// The lease must outlive the call: renew it if credentials took long.
	if time.Since(j.claimed) > p.cfg.Lease/4 {
		if err := p.records.Extend(ctx, in.IntentID, j.owner, j.attempt, p.cfg.Lease); err != nil {
			j.log.Warn().Err(err).Msg("lease lost before charging; not charging")
			p.nak(j, time.Second)
			return
		}
	}
	previousID := ""
	if in.UsesLastSuccessfulID() {
		// Visa wants the last successful transaction of the series.
		last, lerr := p.records.LastTransaction(ctx, in.Credential.PreviousTransactionID)
		if lerr != nil {
			p.release(ctx, j)
			p.nak(j, p.cfg.Retry.Delay(j.delivered))
			return
		}
		previousID = last
	}
	req := in.PaymentRequestWith(j.attempt, p.cfg.SolutionID, previousID)
	start := time.Now()
	resp, err := p.charger.Authorize(ctx, cybsCreds(cr), req)
	p.m.ChargeSeconds.Observe(time.Since(start).Seconds())
	// From here on the charge may exist: bookkeeping must not be cut short
	// by shutdown.
	bg, cancelBG := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancelBG()

	switch o := outcomeOf(resp, err); o {
	case cybs.OutcomeApproved, cybs.OutcomeDeclined:
		if resp.HoldsAuthorization() {
			p.reverseHeld(bg, j, cr, resp)
		}
		r := p.resultOf(j, resp)
		p.finish(bg, j, r)
	case cybs.OutcomeCredentialsRejected:
		j.log.Warn().Err(err).Msg("CyberSource refused the credentials; invalidating them")
		if ierr := p.creds.Invalidate(bg, cr); ierr != nil {
			j.log.Warn().Err(ierr).Msg("invalidate credentials")
		}
		if retried401 {
			p.release(bg, j)
			p.configFailure(bg, j, fmt.Errorf("credentials refused twice: %w", err))
			return
		}
		n, aerr := p.records.Advance(bg, in.IntentID, j.owner, j.attempt, p.cfg.Lease)
		if aerr != nil {
			j.log.Warn().Err(aerr).Msg("cannot advance after 401")
			p.nak(j, p.cfg.Retry.Delay(j.delivered))
			return
		}
		j.attempt, j.claimed = n, time.Now()
		j.log = j.log.With().Int("attempt", j.attempt).Logger()
		p.charge(ctx, j, true)
	case cybs.OutcomeInvalid:
		p.release(bg, j)
		j.log.Warn().Err(err).Msg("CyberSource rejected the payment request")
		p.deadLetter(bg, j, in.MerchantID, dlq.ClassRejected, err.Error(), &intent.Result{
			IntentID: in.IntentID, Integrator: in.Integrator, MerchantID: in.MerchantID, BookingID: in.BookingID,
			Reference: in.Reference, Status: intent.StatusRejected, Amount: in.Amount, Currency: in.Currency,
			Reason: reasonOf(err), Attempts: j.attempt, Time: p.cfg.Now(),
		})
	case cybs.OutcomeNotSent:
		p.release(bg, j)
		if p.exhausted(j) {
			p.giveUp(bg, j, fmt.Errorf("payment could not be sent within the retry budget: %w", err))
			return
		}
		j.log.Warn().Err(err).Msg("payment not sent; retrying later")
		p.nak(j, p.cfg.Retry.Delay(j.delivered))
	default: // unknown
		p.m.UnknownOutcomes.Inc()
		j.log.Warn().Err(err).Str("transactionId", req.ClientReferenceInformation.TransactionID).
			Msg("charge outcome unknown; the attempt will be reversed or voided before any retry")
		if merr := p.records.MarkUnknown(bg, in.IntentID, j.owner, j.attempt); merr != nil {
			// The lease expiry turns it into unknown anyway.
			j.log.Warn().Err(merr).Msg("mark unknown")
		}
		p.nak(j, p.cfg.ResolveDelay+100*time.Millisecond)
	}
}

// resolve cancels an attempt whose outcome is unknown with a timeout
// reversal (authorization) or timeout void (sale), then charges anew.
func (p *Payments) resolve(ctx context.Context, j *job) {
	in := j.in
	wait, ok, err := p.records.BeginResolve(ctx, in.IntentID, j.owner, j.attempt, p.cfg.Lease, p.cfg.ResolveDelay)
	switch {
	case errors.Is(err, idempotency.ErrConflict):
		p.nak(j, time.Second)
		return
	case err != nil:
		j.log.Warn().Err(err).Msg("cannot take the unknown attempt for resolution")
		p.nak(j, p.cfg.Retry.Delay(j.delivered))
		return
	case !ok:
		p.nak(j, wait+100*time.Millisecond)
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	cr, err := p.creds.Get(cctx, in.Integrator, in.MerchantID)
	cancel()
	bg, cancelBG := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancelBG()
	if err != nil {
		_ = p.records.MarkUnknown(bg, in.IntentID, j.owner, j.attempt)
		j.log.Warn().Err(err).Msg("no credentials to resolve the unknown attempt")
		p.nak(j, p.cfg.Retry.Delay(j.delivered))
		return
	}
	txn := intent.TransactionID(in.IntentID, j.attempt)
	ref := cybs.ClientReference{Code: cmp.Or(in.Reference, in.IntentID), TransactionID: txn, Comments: "timeout"}
	var fu *cybs.FollowUpResponse
	switch op := in.Op(); {
	case op == intent.OpReverse || op == intent.OpVoid:
		// Repeating a reversal or void is harmless (CyberSource answers
		// "already reversed/voided"): nothing to cancel first.
	case op == intent.OpCapture || op == intent.OpRefund || in.Captures():
		fu, err = p.charger.TimeoutVoid(ctx, cybsCreds(cr), &cybs.VoidRequest{ClientReferenceInformation: ref})
	default:
		fu, err = p.charger.TimeoutReversal(ctx, cybsCreds(cr), &cybs.ReversalRequest{
			ClientReferenceInformation: ref,
			ReversalInformation: cybs.ReversalInformation{
				AmountDetails: cybs.AmountDetails{TotalAmount: in.Amount, Currency: in.Currency}, Reason: "timeout",
			},
		})
	}
	var e *cybs.Error
	errors.As(err, &e)
	switch {
	case err == nil, e != nil && (e.Reason == "AUTH_ALREADY_REVERSED" || e.Reason == "TRANSACTION_ALREADY_REVERSED_OR_SETTLED" && in.Captures()):
		originalFailed := fu != nil && fu.OriginalFailed()
		n, aerr := p.records.Advance(bg, in.IntentID, j.owner, j.attempt, p.cfg.Lease)
		if aerr != nil {
			j.log.Warn().Err(aerr).Msg("cannot advance after resolving")
			p.nak(j, time.Second)
			return
		}
		j.log.Info().Str("transactionId", txn).Bool("originalFailed", originalFailed).Int("nextAttempt", n).
			Msg("unknown attempt cancelled; charging anew")
		j.attempt, j.claimed = n, time.Now()
		j.log = j.log.With().Int("attempt", j.attempt).Logger()
		p.attempt(ctx, j)
	case cybs.OutcomeOf(err) == cybs.OutcomeCredentialsRejected:
		_ = p.creds.Invalidate(bg, cr)
		_ = p.records.MarkUnknown(bg, in.IntentID, j.owner, j.attempt)
		p.nak(j, time.Second)
	case cybs.OutcomeOf(err) == cybs.OutcomeInvalid || cybs.OutcomeOf(err) == cybs.OutcomeDeclined:
		// CyberSource refuses to cancel it (e.g. already settled): a person
		// must decide. Terminal, visible, never charged again automatically.
		j.log.Error().Err(err).Str("transactionId", txn).Msg("unknown attempt could not be cancelled; dead-lettering for an operator")
		r := &intent.Result{IntentID: in.IntentID, Integrator: in.Integrator, MerchantID: in.MerchantID, BookingID: in.BookingID,
			Reference: in.Reference, Status: intent.StatusUnknownOutcome, Amount: in.Amount, Currency: in.Currency,
			Reason: reasonOf(err), Attempts: j.attempt, Time: p.cfg.Now()}
		b, _ := json.Marshal(r)
		if ferr := p.records.Finish(bg, in.IntentID, j.owner, j.attempt, b, nil); ferr != nil {
			p.nak(j, time.Second)
			return
		}
		p.deadLetter(bg, j, in.MerchantID, dlq.ClassUnknownOutcome,
			fmt.Sprintf("attempt %d (transactionId %s) had an unknown outcome and could not be cancelled: %v", j.attempt, txn, err), r)
	default:
		_ = p.records.MarkUnknown(bg, in.IntentID, j.owner, j.attempt)
		j.log.Warn().Err(err).Msg("timeout reversal/void outcome unknown; will retry")
		p.nak(j, p.cfg.Retry.Delay(j.delivered))
	}
}

// reverseHeld releases an authorization that came with a refusal
// (AUTHORIZED_RISK_DECLINED, PENDING_REVIEW).
func (p *Payments) reverseHeld(ctx context.Context, j *job, cr *tokencache.Credentials, resp *cybs.PaymentResponse) {
	amount := cmp.Or(resp.OrderInformation.AmountDetails.AuthorizedAmount, j.in.Amount)
	_, err := p.charger.Reverse(ctx, cybsCreds(cr), resp.ID, &cybs.ReversalRequest{
		ClientReferenceInformation: cybs.ClientReference{Code: j.in.Reference},
		ReversalInformation: cybs.ReversalInformation{
			AmountDetails: cybs.AmountDetails{TotalAmount: amount, Currency: j.in.Currency}, Reason: "declined by risk screening",
		},
	})
	if err != nil {
		j.log.Error().Err(err).Str("cybersourceId", resp.ID).Msg("could not reverse the authorization behind a refusal")
	}
}

func (p *Payments) resultOf(j *job, resp *cybs.PaymentResponse) *intent.Result {
	in := j.in
	r := &intent.Result{
		IntentID: in.IntentID, Integrator: in.Integrator, MerchantID: in.MerchantID, BookingID: in.BookingID,
		Reference: in.Reference, Status: resp.Status, CyberSourceID: resp.ID, Capture: in.Captures(),
		Amount: in.Amount, Currency: in.Currency, ApprovalCode: resp.ProcessorInformation.ApprovalCode,
		Reason: resp.Reason(), NetworkTransactionID: resp.NetworkTransactionID(), CardType: resp.CardType(),
		Attempts: j.attempt, Time: p.cfg.Now(),
	}
	if in.Card != nil && len(in.Card.Number) >= 4 {
		r.CardLast4 = in.Card.Number[len(in.Card.Number)-4:]
	}
	if r.Authorized() {
		r.AuthorizedAmount = cmp.Or(resp.OrderInformation.AmountDetails.AuthorizedAmount, in.Amount)
	}
	if ti := resp.TokenInformation; ti != nil {
		r.Tokens = &intent.Tokens{}
		if ti.Customer != nil {
			r.Tokens.CustomerID = ti.Customer.ID
		}
		if ti.PaymentInstrument != nil {
			r.Tokens.PaymentInstrumentID = ti.PaymentInstrument.ID
		}
		if ti.InstrumentIdentifier != nil {
			r.Tokens.InstrumentIdentifierID = ti.InstrumentIdentifier.ID
		}
	}
	return r
}

// finish records a definite outcome (and, for an authorized payment, opens
// its settlement ledger in the same step), publishes it and acks.
func (p *Payments) finish(ctx context.Context, j *job, r *intent.Result) {
	b, _ := json.Marshal(r)
	var pay *idempotency.Payment
	if r.Authorized() && r.Operation == "" {
		units, err := intent.AmountUnits(cmp.Or(r.AuthorizedAmount, r.Amount))
		if err == nil {
			pay = &idempotency.Payment{CyberSourceID: r.CyberSourceID, Currency: r.Currency, Authorized: units, Sale: r.Capture}
		}
	}
	if err := p.records.Finish(ctx, j.in.IntentID, j.owner, j.attempt, b, pay); err != nil {
		// Our lease was lost (we were presumed dead) or Redis is down: the
		// record decides on redelivery. Never ack what is not recorded.
		j.log.Warn().Err(err).Msg("cannot record the outcome; redelivery will settle it")
		p.nak(j, time.Second)
		return
	}
	j.log.Info().Str("status", r.Status).Str("cybersourceId", r.CyberSourceID).Str("reason", r.Reason).Msg("intent charged")
	p.m.Intents.WithLabelValues(r.Status).Inc()
	if p.cfg.AfterRecord != nil && p.cfg.AfterRecord(j.in.IntentID) {
		return // simulated crash
	}
	p.emitAndAck(ctx, j, r, b, false)
}

// replay re-emits the recorded outcome of a terminal intent (a redelivery or
// a replay): the result and callback are deduplicated by Nats-Msg-Id.
func (p *Payments) replay(ctx context.Context, j *job, recorded []byte) {
	var r intent.Result
	if err := json.Unmarshal(recorded, &r); err != nil {
		j.log.Error().Err(err).Msg("recorded result is not readable; acking without re-emitting")
		_ = j.msg.Ack()
		return
	}
	j.log.Info().Str("status", r.Status).Msg("intent already settled; re-emitting its result")
	p.m.Intents.WithLabelValues("replayed").Inc()
	p.emitAndAck(ctx, j, &r, recorded, true)
}

// emitAndAck publishes the result (and callback job) and acks. reemit marks
// a callback job re-published for an intent settled earlier, so that the
// callbacks consumer checks whether TTC already has it.
func (p *Payments) emitAndAck(ctx context.Context, j *job, r *intent.Result, resultJSON []byte, reemit bool) {
	if err := p.advanceChain(ctx, j, r); err != nil {
		j.log.Warn().Err(err).Msg("record the stored-credential series; retrying")
		p.nak(j, p.cfg.Retry.Delay(j.delivered))
		return
	}
	if err := p.emit(ctx, r, resultJSON, reemit); err != nil {
		j.log.Warn().Err(err).Msg("publish result; will re-emit on redelivery")
		p.nak(j, p.cfg.Retry.Delay(j.delivered))
		return
	}
	if err := j.msg.Ack(); err != nil {
		j.log.Warn().Err(err).Msg("ack")
	}
}

// advanceChain records an authorized MIT as the last successful transaction
// of its stored-credential series (Visa's previous transaction id). It is
// idempotent, so a redelivery runs it again safely.
func (p *Payments) advanceChain(ctx context.Context, j *job, r *intent.Result) error {
	if !r.Authorized() || r.Operation != "" || j.in == nil || r.NetworkTransactionID == "" {
		return nil
	}
	if c := j.in.Credential; c != nil && c.Type == intent.CredentialMIT {
		return p.records.AdvanceChain(ctx, c.PreviousTransactionID, r.NetworkTransactionID)
	}
	return nil
}

// HeaderReemit marks a callback job re-published for an already settled
// intent.
const HeaderReemit = "Payflow-Reemit"

func (p *Payments) emit(ctx context.Context, r *intent.Result, resultJSON []byte, reemit bool) error {
	m := nats.NewMsg(streams.Results(r.MerchantID))
	m.Data = resultJSON
	m.Header.Set(nats.MsgIdHdr, r.IntentID)
	p.cfg.Tracing.ToMsg(ctx, m)
	if _, err := p.js.PublishMsg(ctx, m); err != nil {
		return fmt.Errorf("result: %w", err)
	}
	if !r.Authorized() {
		return nil
	}
	cb, _ := json.Marshal(r.CallbackJob())
	m = nats.NewMsg(streams.Callbacks(r.MerchantID))
	m.Data = cb
	m.Header.Set(nats.MsgIdHdr, r.IntentID)
	if reemit {
		m.Header.Set(HeaderReemit, "1")
	}
	p.cfg.Tracing.ToMsg(ctx, m)
	if _, err := p.js.PublishMsg(ctx, m); err != nil {
		return fmt.Errorf("callback job: %w", err)
	}
	return nil
}

// invalid dead-letters a bad intent with an INVALID result. Never charged.
func (p *Payments) invalid(ctx context.Context, j *job, merchant string, verr error) {
	id := j.msg.Headers().Get(nats.MsgIdHdr)
	j.log = p.log.With().Str("intentId", id).Str("merchantId", merchant).Uint64("delivery", j.delivered).Logger()
	j.log.Warn().Str("reason", verr.Error()).Msg("invalid intent")
	p.deadLetter(ctx, j, merchant, dlq.ClassInvalid, verr.Error(), &intent.Result{
		IntentID: id, MerchantID: merchant, Status: intent.StatusInvalid, Reason: verr.Error(), Time: p.cfg.Now(),
	})
}

// deadLetter writes the dead letter and the result, then acks; if either
// publish fails the message is redelivered (both are deduplicated).
func (p *Payments) deadLetter(ctx context.Context, j *job, merchant string, class dlq.Class, reason string, r *intent.Result) {
	err := dlq.Publish(ctx, p.js, dlq.Letter{
		Kind: dlq.KindIntents, Class: class, Reason: reason, OriginalSubject: j.msg.Subject(),
		MerchantID: merchant, IntentID: r.IntentID, Attempts: j.delivered, Data: j.msg.Data(),
		DedupID: fmt.Sprintf("%s:%d:%d", streams.StreamIntents, j.seq, j.delivered),
	}, p.cfg.Now())
	if err == nil {
		b, _ := json.Marshal(r)
		m := nats.NewMsg(streams.Results(merchant))
		m.Data = b
		if r.IntentID != "" {
			m.Header.Set(nats.MsgIdHdr, r.IntentID+":"+r.Status)
		}
		_, err = p.js.PublishMsg(ctx, m)
	}
	if err != nil {
		j.log.Warn().Err(err).Msg("dead letter not written; retrying")
		p.nak(j, p.cfg.Retry.Delay(j.delivered))
		return
	}
	p.m.DeadLetters.WithLabelValues(string(dlq.KindIntents), string(class)).Inc()
	p.m.Intents.WithLabelValues(r.Status).Inc()
	_ = j.msg.Ack()
}

// credentialsFailed: a configuration problem is retried until its budget is
// spent, then dead-lettered; anything else is retried with backoff.
func (p *Payments) credentialsFailed(ctx context.Context, j *job, err error) {
	switch ttc.KindOf(err) {
	case ttc.KindBadAPIKey, ttc.KindNoRefreshToken, ttc.KindNoAPIKey, ttc.KindInvalidRequest:
		p.configFailure(ctx, j, err)
	default:
		j.log.Warn().Err(err).Msg("no credentials yet; retrying later")
		p.nak(j, p.cfg.Retry.Delay(j.delivered))
	}
}

func (p *Payments) configFailure(ctx context.Context, j *job, err error) {
	age := p.cfg.Now().Sub(j.published)
	if age < p.cfg.ConfigBudget {
		j.log.Error().Err(err).Dur("age", age).Msg("configuration problem; retrying until the budget is spent")
		p.nak(j, p.cfg.Retry.Delay(j.delivered))
		return
	}
	in := j.in
	p.deadLetter(ctx, j, in.MerchantID, dlq.ClassConfig, err.Error(), &intent.Result{
		IntentID: in.IntentID, Integrator: in.Integrator, MerchantID: in.MerchantID, BookingID: in.BookingID,
		Reference: in.Reference, Status: intent.StatusFailed, Amount: in.Amount, Currency: in.Currency,
		Reason: err.Error(), Time: p.cfg.Now(),
	})
}

// exhausted: the intent has been retried past its budget.
func (p *Payments) exhausted(j *job) bool {
	return j.delivered > 1 && p.cfg.Now().Sub(j.published) >= p.cfg.RetryBudget
}

// giveUp dead-letters an intent that is definitely not charged, with a
// FAILED result. A replay starts it again.
func (p *Payments) giveUp(ctx context.Context, j *job, err error) {
	in := j.in
	j.log.Error().Err(err).Msg("retry budget spent; dead-lettering")
	p.deadLetter(ctx, j, in.MerchantID, dlq.ClassExhausted, err.Error(), &intent.Result{
		IntentID: in.IntentID, Integrator: in.Integrator, MerchantID: in.MerchantID, BookingID: in.BookingID,
		Reference: in.Reference, Status: intent.StatusFailed, Amount: in.Amount, Currency: in.Currency,
		Reason: err.Error(), Attempts: j.attempt, Time: p.cfg.Now(),
	})
}

func (p *Payments) release(ctx context.Context, j *job) {
	if err := p.records.Release(ctx, j.in.IntentID, j.owner, j.attempt); err != nil {
		j.log.Warn().Err(err).Msg("release claim")
	}
}

func (p *Payments) nak(j *job, d time.Duration) {
	if err := j.msg.NakWithDelay(d); err != nil {
		p.log.Warn().Err(err).Msg("nak")
	}
}

func cybsCreds(cr *tokencache.Credentials) cybs.Credentials {
	return cybs.Credentials{Key: cr.Key(), Generation: cr.Generation, AccessToken: cr.AccessToken, Certificate: cr.Certificate}
}

func outcomeOf(resp *cybs.PaymentResponse, err error) cybs.Outcome {
	if err != nil {
		return cybs.OutcomeOf(err)
	}
	return cybs.PaymentOutcome(resp.Status)
}

func reasonOf(err error) string {
	var e *cybs.Error
	if errors.As(err, &e) {
		return cmp.Or(e.Reason, e.Status, e.Outcome.String())
	}
	return err.Error()
}
