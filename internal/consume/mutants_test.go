package consume

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/ttcpay/payflow/internal/deadletter"
	"github.com/ttcpay/payflow/internal/idempotency"
	"github.com/ttcpay/payflow/internal/intent"
	"github.com/ttcpay/payflow/internal/payment"
	"github.com/ttcpay/payflow/internal/redelivery"
	"github.com/ttcpay/payflow/internal/streams"
)

// Tests for the survivors of gremlins' runs on this package
// (docs/mutation.md, "internal/consume").

// fakeMsg is an intent delivery without a server: it records what the
// consumer does with it.
type fakeMsg struct {
	jetstream.Msg
	delivered uint64
	ackErr    error
	acks      int
	naks      []time.Duration
}

func (m *fakeMsg) Metadata() (*jetstream.MsgMetadata, error) {
	return &jetstream.MsgMetadata{NumDelivered: m.delivered, Sequence: jetstream.SequencePair{Stream: 1}, Timestamp: time.Unix(1_700_000_000, 0)}, nil
}
func (m *fakeMsg) Data() []byte         { return []byte(`{}`) }
func (m *fakeMsg) Subject() string      { return streams.Intents("m1") }
func (m *fakeMsg) Headers() nats.Header { return nats.Header{} }
func (m *fakeMsg) InProgress() error    { return nil }
func (m *fakeMsg) Ack() error           { m.acks++; return m.ackErr }
func (m *fakeMsg) NakWithDelay(d time.Duration) error {
	m.naks = append(m.naks, d)
	return nil
}

// fakePublisher keeps what is published, or refuses it all with err.
type fakePublisher struct {
	err  error
	msgs []*nats.Msg
}

func (p *fakePublisher) PublishMsg(_ context.Context, m *nats.Msg, _ ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	if p.err != nil {
		return nil, p.err
	}
	p.msgs = append(p.msgs, m)
	return &jetstream.PubAck{}, nil
}

// fakeHistory keeps the histories appended, by intent.
type fakeHistory struct {
	got map[string][]idempotency.Event
}

func (h *fakeHistory) AppendHistory(_ context.Context, id string, _ time.Duration, events ...idempotency.Event) error {
	if h.got == nil {
		h.got = map[string][]idempotency.Event{}
	}
	h.got[id] = append(h.got[id], events...)
	return nil
}

func authorized(id string) payment.Decision {
	r := &intent.Result{IntentID: id, MerchantID: "m1", Status: "AUTHORIZED", Attempts: 1, CyberSourceID: "7000000000000000000001"}
	return payment.Decision{Action: payment.Ack, Result: r, ResultMsgID: payment.ResultMsgID(r), Merchant: "m1", IntentID: id, HistoryID: id}
}

// TestForgottenCallbackJobs: a job this pod retries is forgotten by the
// age gauge once it has not come back for 15 minutes, or three times the
// longest retry backoff when that is longer; not a moment earlier.
func TestForgottenCallbackJobs(t *testing.T) {
	start := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name     string
		retryMax time.Duration
		forget   time.Duration // how long an unseen job is still counted
	}{
		{"ShortBackoff", time.Minute, 15 * time.Minute},
		{"LongBackoff", 10 * time.Minute, 3 * 10 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := start
			w := newWaitingCallbacks(func() time.Time { return now })
			published := start.Add(-time.Minute)
			w.retrying("i1:1", published, tc.retryMax)
			now = start.Add(tc.forget)
			if got, want := w.oldestAge(), now.Sub(published).Seconds(); got != want {
				t.Fatalf("age %v after %v unseen, want %v (still waiting)", got, tc.forget, want)
			}
			now = now.Add(time.Nanosecond)
			if got := w.oldestAge(); got != 0 {
				t.Fatalf("age %v once unseen for longer than %v, want 0 (forgotten)", got, tc.forget)
			}
		})
	}
}

// TestRedeliveriesCounted: payflow_redeliveries_total counts deliveries
// after the first, not the first.
func TestRedeliveriesCounted(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	p := NewPayments(PaymentsConfig{}, decided(payment.Decision{Action: payment.Ack}), &fakePublisher{}, zerolog.Nop(), m)
	for i, want := range []float64{0, 1, 2} {
		p.Handle(context.Background(), &fakeMsg{delivered: uint64(i + 1)})
		if got := testutil.ToFloat64(m.Redeliveries.WithLabelValues("payments")); got != want {
			t.Fatalf("after delivery %d: %v redeliveries counted, want %v", i+1, got, want)
		}
	}
	if got := testutil.ToFloat64(m.Deliveries.WithLabelValues("payments")); got != 3 {
		t.Fatalf("%v deliveries counted, want 3", got)
	}
}

// TestPublishFailureBacksOff: a result that cannot be published is
// redelivered after the configured backoff, or the default one when none
// is configured, never at once.
func TestPublishFailureBacksOff(t *testing.T) {
	down := &fakePublisher{err: errors.New("nats: timeout")}
	fixed := redelivery.Backoff{Initial: 7 * time.Second, Max: 7 * time.Second, Multiplier: 1}
	msg := &fakeMsg{delivered: 1}
	NewPayments(PaymentsConfig{Retry: fixed}, decided(authorized("i1")), down, zerolog.Nop(), NewMetrics(prometheus.NewRegistry())).Handle(context.Background(), msg)
	if len(msg.naks) != 1 || msg.naks[0] != fixed.Initial || msg.acks != 0 {
		t.Fatalf("configured backoff: naks %v, acks %d; want one nak after %v", msg.naks, msg.acks, fixed.Initial)
	}
	msg = &fakeMsg{delivered: 1}
	NewPayments(PaymentsConfig{}, decided(authorized("i1")), down, zerolog.Nop(), NewMetrics(prometheus.NewRegistry())).Handle(context.Background(), msg)
	d := payment.RetryDefault
	lo := time.Duration(float64(d.Initial) * (1 - d.Jitter))
	hi := time.Duration(float64(d.Initial) * (1 + d.Jitter))
	if len(msg.naks) != 1 || msg.naks[0] < lo || msg.naks[0] > hi || msg.acks != 0 {
		t.Fatalf("default backoff: naks %v, acks %d; want one nak after %v..%v", msg.naks, msg.acks, lo, hi)
	}
}

// TestHistoryOfARetry: a redelivery is written to the intent's history,
// at the configured clock's time; nothing is written without a history id,
// and the default clock is used when none is configured.
func TestHistoryOfARetry(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	retry := payment.Decision{Action: payment.Retry, Delay: time.Minute, Reason: "TTC busy", Merchant: "m1", IntentID: "i1", HistoryID: "i1"}
	h := &fakeHistory{}
	msg := &fakeMsg{delivered: 1}
	NewPayments(PaymentsConfig{History: h, Now: func() time.Time { return now }}, decided(retry), &fakePublisher{}, zerolog.Nop(), NewMetrics(prometheus.NewRegistry())).
		Handle(context.Background(), msg)
	ev := h.got["i1"]
	if len(ev) != 1 || ev[0].Kind != "retry" || !ev[0].At.Equal(now) || !strings.Contains(ev[0].Detail, now.Add(time.Minute).Format(time.RFC3339)) {
		t.Fatalf("history %+v, want one retry event at %v naming the redelivery at %v", ev, now, now.Add(time.Minute))
	}
	if len(msg.naks) != 1 || msg.naks[0] != time.Minute {
		t.Fatalf("naks %v, want one after the decision's delay", msg.naks)
	}

	noID := retry
	noID.HistoryID = ""
	h = &fakeHistory{}
	NewPayments(PaymentsConfig{History: h}, decided(noID), &fakePublisher{}, zerolog.Nop(), NewMetrics(prometheus.NewRegistry())).
		Handle(context.Background(), &fakeMsg{delivered: 1})
	if len(h.got) != 0 {
		t.Fatalf("history written without a history id: %+v", h.got)
	}

	// No clock configured: the wall clock (a dead letter is stamped too).
	h = &fakeHistory{}
	letter := payment.Decision{Action: payment.DeadLetter, Letter: &payment.Letter{Class: deadletter.ClassRejected, Reason: "no such merchant"}, Merchant: "m1", IntentID: "i2", HistoryID: "i2"}
	pub := &fakePublisher{}
	before := time.Now()
	NewPayments(PaymentsConfig{History: h}, decided(letter), pub, zerolog.Nop(), NewMetrics(prometheus.NewRegistry())).
		Handle(context.Background(), &fakeMsg{delivered: 1})
	if ev := h.got["i2"]; len(ev) != 1 || ev[0].Kind != "dead-letter" || ev[0].At.Before(before) || len(pub.msgs) != 1 {
		t.Fatalf("dead letter with the default clock: history %+v, %d published", h.got, len(pub.msgs))
	}
}

// TestAfterRecordSeam: the crash seam abandons a first emission after its
// record, before anything is published or acked; it is not consulted for a
// re-emit or for a decision without a result.
func TestAfterRecordSeam(t *testing.T) {
	var asked []string
	crash := PaymentsTest{AfterRecord: func(id string) bool { asked = append(asked, id); return true }}

	pub, msg := &fakePublisher{}, &fakeMsg{delivered: 1}
	NewPayments(PaymentsConfig{Test: crash}, decided(authorized("i1")), pub, zerolog.Nop(), NewMetrics(prometheus.NewRegistry())).
		Handle(context.Background(), msg)
	if len(pub.msgs) != 0 || msg.acks != 0 || len(msg.naks) != 0 || len(asked) != 1 {
		t.Fatalf("crash after record: %d published, %d acks, naks %v, seam asked %v", len(pub.msgs), msg.acks, msg.naks, asked)
	}

	again := authorized("i2")
	again.Reemit = true
	for _, dec := range []payment.Decision{again, {Action: payment.Ack, IntentID: "i3"}} {
		pub, msg = &fakePublisher{}, &fakeMsg{delivered: 2}
		NewPayments(PaymentsConfig{Test: crash}, decided(dec), pub, zerolog.Nop(), NewMetrics(prometheus.NewRegistry())).
			Handle(context.Background(), msg)
		if msg.acks != 1 {
			t.Fatalf("%s (reemit %v): %d acks, want 1; seam asked %v", dec.IntentID, dec.Reemit, msg.acks, asked)
		}
	}
	if len(asked) != 1 {
		t.Fatalf("seam asked for %v, want only i1", asked)
	}

	// Without the seam, an authorized result is published and acked.
	pub, msg = &fakePublisher{}, &fakeMsg{delivered: 1}
	NewPayments(PaymentsConfig{}, decided(authorized("i4")), pub, zerolog.Nop(), NewMetrics(prometheus.NewRegistry())).
		Handle(context.Background(), msg)
	if len(pub.msgs) != 2 || msg.acks != 1 {
		t.Fatalf("no seam: %d published (want result and callback job), %d acks", len(pub.msgs), msg.acks)
	}
}

// TestAckWarning: a failed ack is logged as a warning; a delivery that
// went well logs none.
func TestAckWarning(t *testing.T) {
	for _, tc := range []struct {
		ackErr error
		warned bool
	}{{nil, false}, {nats.ErrConnectionClosed, true}} {
		var buf bytes.Buffer
		log := zerolog.New(&buf).Level(zerolog.WarnLevel)
		NewPayments(PaymentsConfig{}, decided(authorized("i1")), &fakePublisher{}, log, NewMetrics(prometheus.NewRegistry())).
			Handle(context.Background(), &fakeMsg{delivered: 1, ackErr: tc.ackErr})
		if warned := buf.Len() > 0; warned != tc.warned {
			t.Fatalf("ack error %v: warned %v (%q), want %v", tc.ackErr, warned, buf.String(), tc.warned)
		}
	}
}
