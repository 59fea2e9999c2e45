package consume

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync/atomic"
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
	nakErr    error
	acks      int
	naks      []time.Duration
	progress  atomic.Int64
}

func (m *fakeMsg) Metadata() (*jetstream.MsgMetadata, error) {
	return &jetstream.MsgMetadata{NumDelivered: m.delivered, Sequence: jetstream.SequencePair{Stream: 1}, Timestamp: time.Unix(1_700_000_000, 0)}, nil
}
func (m *fakeMsg) Data() []byte         { return []byte(`{}`) }
func (m *fakeMsg) Subject() string      { return streams.Intents("m1") }
func (m *fakeMsg) Headers() nats.Header { return nats.Header{} }
func (m *fakeMsg) InProgress() error    { m.progress.Add(1); return nil }
func (m *fakeMsg) Ack() error           { m.acks++; return m.ackErr }
func (m *fakeMsg) NakWithDelay(d time.Duration) error {
	m.naks = append(m.naks, d)
	return m.nakErr
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
	err error // refuses every append
}

func (h *fakeHistory) AppendHistory(_ context.Context, id string, _ time.Duration, events ...idempotency.Event) error {
	if h.err != nil {
		return h.err
	}
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

// TestAckWarning: a failed ack or nak is logged as a warning; a delivery
// that went well logs none.
func TestAckWarning(t *testing.T) {
	retry := payment.Decision{Action: payment.Retry, Delay: time.Minute, Merchant: "m1", IntentID: "i1"}
	for _, tc := range []struct {
		dec    payment.Decision
		msg    *fakeMsg
		warned bool
	}{
		{authorized("i1"), &fakeMsg{delivered: 1}, false},
		{authorized("i1"), &fakeMsg{delivered: 1, ackErr: nats.ErrConnectionClosed}, true},
		{retry, &fakeMsg{delivered: 1}, false},
		{retry, &fakeMsg{delivered: 1, nakErr: nats.ErrConnectionClosed}, true},
	} {
		var buf bytes.Buffer
		log := zerolog.New(&buf).Level(zerolog.WarnLevel)
		NewPayments(PaymentsConfig{}, decided(tc.dec), &fakePublisher{}, log, NewMetrics(prometheus.NewRegistry())).
			Handle(context.Background(), tc.msg)
		if warned := buf.Len() > 0; warned != tc.warned {
			t.Fatalf("%s, ack error %v, nak error %v: warned %v (%q), want %v", tc.dec.Action, tc.msg.ackErr, tc.msg.nakErr, warned, buf.String(), tc.warned)
		}
	}
}

// TestHistoryOfAnAck: an intent that went straight through (claimed at
// attempt 1, one call, acked) writes no history; any other acked intent
// writes its events and the ack; a dead letter's reason is cut after 300
// bytes. A history that cannot be written is logged at debug level, and
// only then.
func TestHistoryOfAnAck(t *testing.T) {
	claim := func(n int) idempotency.Event { return idempotency.Event{Kind: "claim", Attempt: n} }
	call := idempotency.Event{Kind: "call", Attempt: 1}
	for _, tc := range []struct {
		name    string
		events  []idempotency.Event
		reemit  bool
		written bool
	}{
		{"StraightThrough", []idempotency.Event{claim(1), call}, false, false},
		{"SecondAttempt", []idempotency.Event{claim(2), call}, false, true},
		{"ClaimOnly", []idempotency.Event{claim(1)}, false, true},
		{"NotAClaim", []idempotency.Event{{Kind: "resolve", Attempt: 1}, call}, false, true},
		{"Reemit", []idempotency.Event{claim(1), call}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dec := authorized("i1")
			dec.Events, dec.Reemit = tc.events, tc.reemit
			h := &fakeHistory{}
			NewPayments(PaymentsConfig{History: h}, decided(dec), &fakePublisher{}, zerolog.Nop(), NewMetrics(prometheus.NewRegistry())).
				Handle(context.Background(), &fakeMsg{delivered: 1})
			ev := h.got["i1"]
			if !tc.written {
				if len(ev) != 0 {
					t.Fatalf("history written for a straight-through intent: %+v", ev)
				}
				return
			}
			if len(ev) != len(tc.events)+1 || ev[len(ev)-1].Kind != "ack" {
				t.Fatalf("history %+v, want the %d events and the ack", ev, len(tc.events))
			}
		})
	}

	for _, n := range []int{300, 301} {
		h := &fakeHistory{}
		reason := strings.Repeat("r", n)
		letter := payment.Decision{Action: payment.DeadLetter, Letter: &payment.Letter{Class: deadletter.ClassRejected, Reason: reason}, Merchant: "m1", IntentID: "i1", HistoryID: "i1"}
		NewPayments(PaymentsConfig{History: h}, decided(letter), &fakePublisher{}, zerolog.Nop(), NewMetrics(prometheus.NewRegistry())).
			Handle(context.Background(), &fakeMsg{delivered: 1})
		want := string(deadletter.ClassRejected) + ": " + reason[:min(n, 300)]
		if n > 300 {
			want += "…"
		}
		if ev := h.got["i1"]; len(ev) != 1 || ev[0].Detail != want {
			t.Fatalf("reason of %d bytes: history %+v, want detail %q", n, ev, want)
		}
	}

	for _, tc := range []struct {
		err    error
		logged bool
	}{{nil, false}, {errors.New("redis: connection refused"), true}} {
		var buf bytes.Buffer
		dec := authorized("i1")
		dec.Reemit = true
		NewPayments(PaymentsConfig{History: &fakeHistory{err: tc.err}}, decided(dec), &fakePublisher{}, zerolog.New(&buf).Level(zerolog.DebugLevel), NewMetrics(prometheus.NewRegistry())).
			Handle(context.Background(), &fakeMsg{delivered: 1})
		if logged := buf.Len() > 0; logged != tc.logged {
			t.Fatalf("history error %v: logged %v (%q), want %v", tc.err, logged, buf.String(), tc.logged)
		}
	}
}

// slow is a Worker that takes d to decide, then acks.
type slow time.Duration

func (d slow) Work(context.Context, payment.Delivery) payment.Decision {
	time.Sleep(time.Duration(d))
	return payment.Decision{Action: payment.Ack}
}

// TestKeepAliveInterval: while a delivery is worked on, InProgress is sent
// every KeepAlive, KeepAliveDefault when none is configured: a short piece
// of work sends none (an interval of 0 would send them without pause).
func TestKeepAliveInterval(t *testing.T) {
	msg := &fakeMsg{delivered: 1}
	NewPayments(PaymentsConfig{}, slow(50*time.Millisecond), &fakePublisher{}, zerolog.Nop(), NewMetrics(prometheus.NewRegistry())).
		Handle(context.Background(), msg)
	if n := msg.progress.Load(); n != 0 {
		t.Fatalf("%d InProgress during 50 ms of work with the default interval (%v)", n, KeepAliveDefault)
	}
	msg = &fakeMsg{delivered: 1}
	NewPayments(PaymentsConfig{KeepAlive: 5 * time.Millisecond}, slow(200*time.Millisecond), &fakePublisher{}, zerolog.Nop(), NewMetrics(prometheus.NewRegistry())).
		Handle(context.Background(), msg)
	if n := msg.progress.Load(); n == 0 {
		t.Fatal("no InProgress during 200 ms of work with a 5 ms interval")
	}
}
