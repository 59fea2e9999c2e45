package consume

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/attribute"

	"github.com/ttcpay/payflow/internal/deadletter"
	"github.com/ttcpay/payflow/internal/idempotency"
	"github.com/ttcpay/payflow/internal/intent"
	"github.com/ttcpay/payflow/internal/payment"
	"github.com/ttcpay/payflow/internal/redact"
	"github.com/ttcpay/payflow/internal/redelivery"
	"github.com/ttcpay/payflow/internal/streams"
	"github.com/ttcpay/payflow/internal/tracing"
)

// Publisher publishes to JetStream (jetstream.JetStream).
type Publisher interface {
	PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
}

// History keeps each intent's story for operators (*idempotency.Store).
type History interface {
	AppendHistory(ctx context.Context, intentID string, retention time.Duration, events ...idempotency.Event) error
}

// Worker decides what happens to a delivery (*payment.Processor).
type Worker interface {
	Work(ctx context.Context, d payment.Delivery) payment.Decision
}

// PaymentsConfig tunes the payments consumer. Zero values mean the defaults.
type PaymentsConfig struct {
	// Tracing continues each message's trace; nil means off.
	Tracing *tracing.Tracing
	// KeepAlive: InProgress interval during slow work. Defaults to 10 s.
	KeepAlive time.Duration
	// Retry: redelivery backoff when publishing a decision's messages fails.
	Retry redelivery.Backoff
	// History keeps each intent's story; nil: none.
	History History
	// HistoryRetention: how long an intent's history lives (0: the
	// store's default).
	HistoryRetention time.Duration
	// Scrub makes dead letters' payloads safe to keep (no plaintext card
	// number, no CVV); nil removes cards (no dead-letter key).
	Scrub *deadletter.Scrubber
	Now   func() time.Time
	// Test holds seams for tests.
	Test PaymentsTest
}

// PaymentsTest holds the payments consumer's test seams.
type PaymentsTest struct {
	// AfterRecord runs after an outcome is recorded and before results are
	// published and the message is acked; returning true abandons the
	// message there, as a crash would.
	AfterRecord func(intentID string) bool
}

// KeepAliveDefault is the InProgress interval.
const KeepAliveDefault = 10 * time.Second

func (c PaymentsConfig) withDefaults() PaymentsConfig {
	if c.KeepAlive == 0 {
		c.KeepAlive = KeepAliveDefault
	}
	if c.Retry.Initial == 0 {
		c.Retry = payment.RetryDefault
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Tracing == nil {
		c.Tracing = tracing.Off()
	}
	return c
}

// Payments is the JetStream side of charging intents: it hands each
// delivery to the payment logic and applies the decision.
type Payments struct {
	cfg PaymentsConfig
	w   Worker
	js  Publisher
	log zerolog.Logger
	m   *Metrics
}

// NewPayments wires the payments consumer.
func NewPayments(cfg PaymentsConfig, w Worker, js Publisher, log zerolog.Logger, m *Metrics) *Payments {
	return &Payments{cfg: cfg.withDefaults(), w: w, js: js, log: log, m: m}
}

// Handle processes one delivery of an intent.
func (p *Payments) Handle(ctx context.Context, msg jetstream.Msg) {
	p.m.Deliveries.WithLabelValues("payments").Inc()
	p.m.InFlight.WithLabelValues("payments").Inc()
	defer p.m.InFlight.WithLabelValues("payments").Dec()
	stop := keepAlive(msg, p.cfg.KeepAlive)
	defer stop()

	delivered, seq, published := msgMeta(msg)
	if delivered > 1 {
		p.m.Redeliveries.WithLabelValues("payments").Inc()
	}
	d := payment.Delivery{Data: msg.Data(), Subject: msg.Subject(), MsgID: msg.Headers().Get(nats.MsgIdHdr),
		ReplayedFrom: msg.Headers().Get(deadletter.HeaderReplayedFrom), ReplayedIntentID: msg.Headers().Get(deadletter.HeaderIntentID), Delivered: delivered, Seq: seq, Published: published}
	d.ReplayedAttempt, _ = strconv.Atoi(msg.Headers().Get(deadletter.HeaderReplayedAttempt))
	ctx, span := p.cfg.Tracing.Start(p.cfg.Tracing.FromMsg(ctx, msg.Headers()), "payflow.payment",
		attribute.String("payflow.intent_id", redact.CardNumbers(d.MsgID)), attribute.String("payflow.merchant_id", redact.CardNumbers(streams.MerchantOf(d.Subject))),
		attribute.Int64("payflow.delivery", int64(delivered)))
	defer span.End()
	p.apply(ctx, msg, d, p.w.Work(ctx, d))
}

// CallbackMsgID is the Nats-Msg-Id of an authorized result's callback job:
// the intent and its CyberSource transaction.
func CallbackMsgID(r *intent.Result) string { return r.IntentID + ":" + r.CyberSourceID }

// HeaderReemit marks a callback job re-published for an already settled
// intent.
const HeaderReemit = "Payflow-Reemit"

// apply carries out a decision: write the dead letter it names (first, so
// that nothing is acked before it is written), publish the result and
// callback job, then ack; or redeliver after its delay. Whatever fails to
// publish is redelivered (everything published is deduplicated).
func (p *Payments) apply(ctx context.Context, msg jetstream.Msg, d payment.Delivery, dec payment.Decision) {
	log := p.log.With().Str("intentId", dec.IntentID).Uint64("delivery", d.Delivered).Str("decision", dec.Action.String()).Logger()
	redeliver := func(delay time.Duration, why string) {
		at := p.cfg.Now().Add(delay).UTC()
		p.remember(ctx, dec, idempotency.Event{Kind: "retry", Next: at, Detail: fmt.Sprintf("redelivery at %s: %s", at.Format(time.RFC3339), why)})
		p.nak(msg, delay)
	}
	if l := dec.Letter; l != nil {
		err := deadletter.Publish(ctx, p.js, p.cfg.Scrub.Letter(deadletter.Letter{
			Kind: deadletter.KindIntents, Class: l.Class, Reason: l.Reason, OriginalSubject: d.Subject,
			MerchantID: dec.Merchant, IntentID: dec.IntentID, Deliveries: d.Delivered, Data: d.Data, DedupID: l.DedupID,
			Attempt: l.Attempt, NoReplay: l.NoReplay,
		}), p.cfg.Now())
		if err != nil {
			log.Warn().Err(err).Msg("dead letter not written; retrying")
			redeliver(p.cfg.Retry.Delay(d.Delivered), "the dead letter could not be written")
			return
		}
		p.m.DeadLetters.WithLabelValues(string(deadletter.KindIntents), string(l.Class)).Inc()
	}
	switch dec.Action {
	case payment.Retry:
		log.Debug().Int64("delayMs", dec.Delay.Milliseconds()).Str("nextDeliveryAt", p.at(dec.Delay)).Str("why", dec.Reason).Msg("redelivering later")
		redeliver(dec.Delay, dec.Reason)
		return
	case payment.Wait:
		log.Debug().Int64("delayMs", dec.Delay.Milliseconds()).Str("nextDeliveryAt", p.at(dec.Delay)).Str("why", dec.Reason).Msg("waiting for an unknown outcome's resolution")
		at := p.cfg.Now().Add(dec.Delay).UTC()
		p.remember(ctx, dec, idempotency.Event{Kind: "wait", Next: at, Detail: fmt.Sprintf("resolving an unknown outcome: redelivery at %s (%s)", at.Format(time.RFC3339), dec.Reason)})
		p.nak(msg, dec.Delay)
		return
	}
	if dec.Action == payment.Ack && dec.Result != nil && !dec.Reemit && p.cfg.Test.AfterRecord != nil && p.cfg.Test.AfterRecord(dec.IntentID) {
		return // simulated crash
	}
	if dec.Result != nil {
		if err := p.publishResult(ctx, dec); err != nil {
			log.Warn().Err(err).Msg("publish result; will re-emit on redelivery")
			redeliver(p.cfg.Retry.Delay(d.Delivered), "the result could not be published")
			return
		}
	}
	switch {
	case dec.Action == payment.DeadLetter:
		p.remember(ctx, dec, idempotency.Event{Kind: "dead-letter", Detail: string(dec.Letter.Class) + ": " + short(dec.Letter.Reason)})
	case dec.Result != nil:
		again := ""
		if dec.Reemit {
			again = " again"
		}
		p.remember(ctx, dec, idempotency.Event{Kind: "ack", Detail: "result " + dec.Result.Status + " published" + again})
	}
	switch {
	case dec.Reemit:
		p.m.Intents.WithLabelValues("replayed").Inc()
	case dec.Result != nil:
		p.m.Intents.WithLabelValues(dec.Result.Status).Inc()
	}
	if err := msg.Ack(); err != nil {
		log.Warn().Err(err).Msg("ack")
	}
}

// remember appends the delivery's events and its decision to the intent's
// history (best effort: it never holds a message back). An intent that went
// straight through (its first attempt answered and acked at once) writes
// none: its record and result tell the same, and the happy path costs no
// Redis round trip and no memory for it.
func (p *Payments) remember(ctx context.Context, dec payment.Decision, decision idempotency.Event) {
	if p.cfg.History == nil || dec.HistoryID == "" {
		return
	}
	if decision.Kind == "ack" && !dec.Reemit && len(dec.Events) == 2 && dec.Events[0].Kind == "claim" && dec.Events[0].Attempt == 1 {
		return
	}
	decision.At = p.cfg.Now()
	events := append(dec.Events, decision)
	if err := p.cfg.History.AppendHistory(ctx, dec.HistoryID, p.cfg.HistoryRetention, events...); err != nil {
		p.log.Debug().Err(err).Str("intentId", dec.HistoryID).Msg("history not written")
	}
}

// at is the time a redelivery after delay happens, for the history.
func (p *Payments) at(delay time.Duration) string {
	return p.cfg.Now().Add(delay).UTC().Format(time.RFC3339)
}

func short(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}

// publishResult publishes the decision's result and, for an authorized
// one, its callback job (Nats-Msg-Id = intentId).
func (p *Payments) publishResult(ctx context.Context, dec payment.Decision) error {
	r := dec.Result
	b, _ := json.Marshal(r)
	m := nats.NewMsg(streams.Results(dec.Merchant))
	m.Data = b
	if dec.ResultMsgID != "" {
		m.Header.Set(nats.MsgIdHdr, dec.ResultMsgID)
	}
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
	// One job per CyberSource transaction: a re-emit of the same outcome is
	// a duplicate, a new charge (its first cancelled after a lost record)
	// is not.
	m.Header.Set(nats.MsgIdHdr, CallbackMsgID(r))
	if dec.Reemit {
		m.Header.Set(HeaderReemit, "1")
	}
	p.cfg.Tracing.ToMsg(ctx, m)
	if _, err := p.js.PublishMsg(ctx, m); err != nil {
		return fmt.Errorf("callback job: %w", err)
	}
	return nil
}

func (p *Payments) nak(msg jetstream.Msg, d time.Duration) {
	if err := msg.NakWithDelay(d); err != nil {
		p.log.Warn().Err(err).Msg("nak")
	}
}
