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

	"github.com/ttcpay/payflow/internal/deadletter"
	"github.com/ttcpay/payflow/internal/idempotency"
	"github.com/ttcpay/payflow/internal/intent"
	"github.com/ttcpay/payflow/internal/redact"
	"github.com/ttcpay/payflow/internal/redelivery"
	"github.com/ttcpay/payflow/internal/streams"
	"github.com/ttcpay/payflow/internal/tracing"
	"github.com/ttcpay/payflow/internal/ttc"
)

// CallbackMarks record that TTC has an intent's callback
// (*idempotency.Store).
type CallbackMarks interface {
	MarkCallbackDelivered(ctx context.Context, intentID, transactionID string) error
	CallbackDelivered(ctx context.Context, intentID, transactionID string) (bool, error)
}

// Notifier is TTC's callback endpoint (*ttc.Client).
type Notifier interface {
	Callback(ctx context.Context, integrator string, cb ttc.Callback) error
}

// CallbacksConfig tunes the callbacks consumer. Zero values mean defaults.
type CallbacksConfig struct {
	// Tracing continues each job's trace; nil means off.
	Tracing *tracing.Tracing
	// Budget: a callback job older than this is dead-lettered (exhausted).
	// Defaults to 24 h.
	Budget time.Duration
	// Retry: exponential backoff with jitter by delivery count. Defaults to
	// 1 s doubling up to 5 min.
	Retry redelivery.Backoff
	// History keeps each intent's story; nil: none.
	History History
	// HistoryRetention: see PaymentsConfig.
	HistoryRetention time.Duration
	Now              func() time.Time
}

// BudgetDefault is how long TTC callbacks are retried.
const BudgetDefault = 24 * time.Hour

func (c CallbacksConfig) withDefaults() CallbacksConfig {
	c.Budget = cmp.Or(c.Budget, BudgetDefault)
	if c.Retry.Initial == 0 {
		c.Retry = redelivery.Backoff{Initial: time.Second, Max: 5 * time.Minute, Multiplier: 2, Jitter: 0.3}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Tracing == nil {
		c.Tracing = tracing.Off()
	}
	return c
}

// Callbacks delivers TTC callbacks until TTC has them.
type Callbacks struct {
	cfg     CallbacksConfig
	ttc     Notifier
	records CallbackMarks
	js      Publisher
	log     zerolog.Logger
	m       *Metrics
}

// NewCallbacks wires the callbacks consumer.
func NewCallbacks(cfg CallbacksConfig, n Notifier, records CallbackMarks, js Publisher, log zerolog.Logger, m *Metrics) *Callbacks {
	return &Callbacks{cfg: cfg.withDefaults(), ttc: n, records: records, js: js, log: log, m: m}
}

// Handle delivers one callback job.
func (c *Callbacks) Handle(ctx context.Context, msg jetstream.Msg) {
	c.m.Deliveries.WithLabelValues("callbacks").Inc()
	c.m.InFlight.WithLabelValues("callbacks").Inc()
	defer c.m.InFlight.WithLabelValues("callbacks").Dec()
	delivered, seq, published := msgMeta(msg)
	if delivered > 1 {
		c.m.Redeliveries.WithLabelValues("callbacks").Inc()
	}
	merchant := streams.MerchantOf(msg.Subject())
	ctx, span := c.cfg.Tracing.Start(c.cfg.Tracing.FromMsg(ctx, msg.Headers()), "payflow.callback",
		attribute.String("payflow.intent_id", redact.CardNumbers(msg.Headers().Get(nats.MsgIdHdr))), attribute.String("payflow.merchant_id", redact.CardNumbers(merchant)),
		attribute.Int64("payflow.delivery", int64(delivered)))
	defer span.End()
	var job intent.CallbackJob
	if err := json.Unmarshal(msg.Data(), &job); err != nil || job.IntentID == "" || job.Integrator == "" {
		c.dead(ctx, msg, merchant, "", delivered, seq, deadletter.ClassInvalid, "callback job is not readable")
		return
	}
	log := c.log.With().Str("intentId", job.IntentID).Str("merchantId", job.MerchantID).Uint64("delivery", delivered).Logger()
	var next time.Time // set when this delivery schedules another
	remember := func(outcome, format string, args ...any) {
		if c.cfg.History == nil {
			return
		}
		e := idempotency.Event{At: c.cfg.Now(), Kind: "callback", Next: next, Outcome: outcome,
			Detail: fmt.Sprintf("delivery %d of the callback for %s: ", delivered, job.TransactionID) + fmt.Sprintf(format, args...)}
		if err := c.cfg.History.AppendHistory(ctx, job.IntentID, c.cfg.HistoryRetention, e); err != nil {
			log.Debug().Err(err).Msg("history not written")
		}
	}

	// A redelivery (a worker died after TTC answered) or a job re-published
	// for a settled intent (a replay after the duplicate window) must not
	// tell TTC twice; a first delivery needs no look-up.
	if delivered > 1 || msg.Headers().Get(HeaderReemit) != "" {
		if done, err := c.records.CallbackDelivered(ctx, job.IntentID, job.TransactionID); err == nil && done {
			c.m.waiting.done(job.IntentID + ":" + job.TransactionID)
			log.Info().Msg("callback already delivered")
			_ = msg.Ack()
			return
		}
	}
	err := c.ttc.Callback(ctx, job.Integrator, ttc.Callback{
		MerchantID: job.MerchantID, TransactionID: job.TransactionID, BookingID: job.BookingID,
		Currency: job.Currency, Amount: job.Amount,
	})
	if err == nil {
		c.m.Callbacks.WithLabelValues("delivered").Inc()
		if merr := c.records.MarkCallbackDelivered(ctx, job.IntentID, job.TransactionID); merr != nil {
			log.Warn().Err(merr).Msg("callback delivered but not marked")
		}
		c.m.waiting.done(job.IntentID + ":" + job.TransactionID)
		log.Info().Str("cybersourceId", job.TransactionID).Msg("TTC callback delivered")
		if delivered > 1 {
			remember(idempotency.OutcomeDelivered, "delivered to TTC") // a first-time delivery is told by the record's mark
		}
		_ = msg.Ack()
		return
	}
	age := c.cfg.Now().Sub(published)
	delay := c.cfg.Retry.Delay(delivered)
	nextRetry := c.cfg.Now().Add(delay).UTC()
	switch ttc.KindOf(err) {
	case ttc.KindInvalidRequest:
		c.m.Callbacks.WithLabelValues("rejected").Inc()
		c.m.waiting.done(job.IntentID + ":" + job.TransactionID)
		log.Error().Err(err).Msg("TTC rejected the callback")
		remember(idempotency.OutcomeRejected, "TTC rejected it (%s): dead-lettered rejected", describeTTCError(err))
		c.dead(ctx, msg, merchant, job.IntentID, delivered, seq, deadletter.ClassRejected, err.Error())
		return
	case ttc.KindBadAPIKey, ttc.KindNoAPIKey:
		// A fixed API key must let these flow: keep retrying, loudly.
		c.m.CallbackAuthFails.Inc()
		c.m.Callbacks.WithLabelValues("unauthorized").Inc()
		log.Error().Err(err).Str("nextRetryAt", nextRetry.Format(time.RFC3339)).Msg("TTC refused our API key for a callback; retrying until the key is fixed")
	default:
		c.m.Callbacks.WithLabelValues("retry").Inc()
		log.Warn().Err(err).Int64("ageMs", age.Milliseconds()).Str("nextRetryAt", nextRetry.Format(time.RFC3339)).Msg("callback failed; retrying")
	}
	if age >= c.cfg.Budget {
		c.m.Callbacks.WithLabelValues("exhausted").Inc()
		c.m.waiting.done(job.IntentID + ":" + job.TransactionID)
		remember(idempotency.OutcomeFailed, "failed (%s); the budget of %s is spent: dead-lettered exhausted", describeTTCError(err), c.cfg.Budget)
		c.dead(ctx, msg, merchant, job.IntentID, delivered, seq, deadletter.ClassExhausted,
			fmt.Sprintf("retry budget of %s spent after %d deliveries: %v", c.cfg.Budget, delivered, err))
		return
	}
	c.m.waiting.retrying(job.IntentID+":"+job.TransactionID, published, c.cfg.Retry.Max)
	next = nextRetry
	remember(idempotency.OutcomeFailed, "failed (%s); next delivery at %s", describeTTCError(err), nextRetry.Format(time.RFC3339))
	_ = msg.NakWithDelay(delay)
}

// describeTTCError names a TTC failure by kind and status, never its text.
func describeTTCError(err error) string {
	var e *ttc.Error
	if errors.As(err, &e) {
		if e.Status != 0 {
			return fmt.Sprintf("%s, HTTP %d", e.Kind, e.Status)
		}
		return e.Kind.String()
	}
	return "error"
}

func (c *Callbacks) dead(ctx context.Context, msg jetstream.Msg, merchant, intentID string, delivered, seq uint64, class deadletter.Class, reason string) {
	err := deadletter.Publish(ctx, c.js, deadletter.Letter{
		Kind: deadletter.KindCallbacks, Class: class, Reason: reason, OriginalSubject: msg.Subject(),
		MerchantID: merchant, IntentID: intentID, Deliveries: delivered, Data: msg.Data(),
		DedupID: fmt.Sprintf("%s:%d:%d", streams.StreamCallbacks, seq, delivered),
	}, c.cfg.Now())
	if err != nil {
		c.log.Warn().Err(err).Str("intentId", intentID).Msg("dead letter not written; retrying")
		_ = msg.NakWithDelay(c.cfg.Retry.Delay(delivered))
		return
	}
	c.m.DeadLetters.WithLabelValues(string(deadletter.KindCallbacks), string(class)).Inc()
	_ = msg.Ack()
}
