package consume

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ttcpay/payflow/internal/deadletter"
	"github.com/ttcpay/payflow/internal/intent"
)

// IntentOutcomes are the outcome labels of payflow_intents_total.
var IntentOutcomes = []string{"AUTHORIZED", "PARTIAL_AUTHORIZED", "AUTHORIZED_PENDING_REVIEW", "AUTHORIZED_RISK_DECLINED",
	"PENDING_REVIEW", "PENDING_AUTHENTICATION", "DECLINED", "INVALID_REQUEST", intent.StatusCaptured, intent.StatusReversed,
	intent.StatusVoided, intent.StatusRefunded, intent.StatusInvalid, intent.StatusRejected, intent.StatusFailed,
	intent.StatusUnknownOutcome, intent.StatusConflict, "replayed"}

// waitingCallbacks are the callback jobs this pod is retrying, by intent,
// with when each was published: payflow_callback_retry_age_seconds is the
// age of the oldest. A job another pod took over (or delivered) is
// forgotten once it has not come back here for forgetAfter.
type waitingCallbacks struct {
	mu          sync.Mutex
	now         func() time.Time
	jobs        map[string]waitingJob
	forgetAfter time.Duration
}

type waitingJob struct{ published, seen time.Time }

func newWaitingCallbacks(now func() time.Time) *waitingCallbacks {
	return &waitingCallbacks{now: now, jobs: map[string]waitingJob{}, forgetAfter: 15 * time.Minute}
}

// retrying notes a job that failed and will come back.
func (w *waitingCallbacks) retrying(id string, published time.Time, retryMax time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.forgetAfter = max(w.forgetAfter, 3*retryMax)
	w.jobs[id] = waitingJob{published: published, seen: w.now()}
}

// done forgets a job that was delivered or dead-lettered.
func (w *waitingCallbacks) done(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.jobs, id)
}

func (w *waitingCallbacks) oldestAge() float64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.now()
	var oldest time.Time
	for id, j := range w.jobs {
		if now.Sub(j.seen) > w.forgetAfter {
			delete(w.jobs, id)
			continue
		}
		if oldest.IsZero() || j.published.Before(oldest) {
			oldest = j.published
		}
	}
	if oldest.IsZero() {
		return 0
	}
	return now.Sub(oldest).Seconds()
}

// Metrics are the consumers' Prometheus metrics, all prefixed payflow_.
type Metrics struct {
	Intents           *prometheus.CounterVec // outcome
	ChargeSeconds     prometheus.Histogram
	Callbacks         *prometheus.CounterVec // outcome
	Deliveries        *prometheus.CounterVec // role
	Redeliveries      *prometheus.CounterVec // role
	DeadLetters       *prometheus.CounterVec // kind, class
	InFlight          *prometheus.GaugeVec   // role
	UnknownOutcomes   prometheus.Counter
	CallbackRetryAge  prometheus.GaugeFunc
	CallbackAuthFails prometheus.Counter
	LateCharges       *prometheus.CounterVec // outcome: reversed, reported

	waiting *waitingCallbacks
}

// NewMetrics registers the metrics on reg, with every labelled series
// created at 0: an alert on increase() sees the very first event.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	waiting := newWaitingCallbacks(time.Now)
	m := &Metrics{waiting: waiting,
		Intents: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "payflow_intents_total",
			Help: "Intents processed, by outcome (the CyberSource status, INVALID, REJECTED, FAILED, UNKNOWN_OUTCOME, replayed)."}, []string{"outcome"}),
		ChargeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "payflow_charge_seconds",
			Help: "Latency of CyberSource payment calls.", Buckets: prometheus.ExponentialBuckets(0.01, 2, 12)}),
		Callbacks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "payflow_callback_deliveries_total",
			Help: "TTC callback attempts, by outcome (delivered, retry, rejected, unauthorized, exhausted)."}, []string{"outcome"}),
		Deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "payflow_delivery_attempts_total",
			Help: "Messages received from JetStream, by role (redeliveries included)."}, []string{"role"}),
		Redeliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "payflow_redeliveries_total",
			Help: "Messages received from JetStream again (delivery count above 1), by role."}, []string{"role"}),
		DeadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "payflow_dead_letters_total",
			Help: "Dead letters written, by kind and class."}, []string{"kind", "class"}),
		InFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "payflow_in_flight",
			Help: "Messages being processed now, by role."}, []string{"role"}),
		UnknownOutcomes: prometheus.NewCounter(prometheus.CounterOpts{Name: "payflow_unknown_outcomes_total",
			Help: "Charge attempts whose outcome was unknown and had to be resolved by a timeout reversal or void."}),
		CallbackRetryAge: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "payflow_callback_retry_age_seconds",
			Help: "Age of the oldest TTC callback job this pod is still retrying (0 when none waits)."}, waiting.oldestAge),
		CallbackAuthFails: prometheus.NewCounter(prometheus.CounterOpts{Name: "payflow_callback_auth_failures_total",
			Help: "TTC answered 401/403 to a callback: the API key is wrong."}),
		LateCharges: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "payflow_late_charges_total",
			Help: "Charges or operations that landed after their pod lost the lease, by outcome (reversed: undone at once; reported: dead-lettered for a person)."}, []string{"outcome"}),
	}
	reg.MustRegister(m.Intents, m.ChargeSeconds, m.Callbacks, m.Deliveries, m.Redeliveries, m.DeadLetters, m.InFlight,
		m.UnknownOutcomes, m.CallbackRetryAge, m.CallbackAuthFails, m.LateCharges)
	for _, role := range []string{"payments", "callbacks"} {
		m.Deliveries.WithLabelValues(role)
		m.Redeliveries.WithLabelValues(role)
		m.InFlight.WithLabelValues(role)
	}
	for _, kind := range []deadletter.Kind{deadletter.KindIntents, deadletter.KindCallbacks} {
		for _, class := range deadletter.Classes {
			m.DeadLetters.WithLabelValues(string(kind), string(class))
		}
	}
	for _, outcome := range IntentOutcomes {
		m.Intents.WithLabelValues(outcome)
	}
	for _, outcome := range []string{"delivered", "retry", "rejected", "unauthorized", "exhausted"} {
		m.Callbacks.WithLabelValues(outcome)
	}
	for _, outcome := range []string{"reversed", "reported"} {
		m.LateCharges.WithLabelValues(outcome)
	}
	return m
}

// ChargeLatency observes one CyberSource payment call (payment.Observer).
func (m *Metrics) ChargeLatency(d time.Duration) { m.ChargeSeconds.Observe(d.Seconds()) }

// UnknownOutcome counts a call whose outcome must be resolved (payment.Observer).
func (m *Metrics) UnknownOutcome() { m.UnknownOutcomes.Inc() }

// LateCharge counts a charge that landed after its pod lost the lease
// (payment.Observer).
func (m *Metrics) LateCharge(reversed bool) {
	if reversed {
		m.LateCharges.WithLabelValues("reversed").Inc()
	} else {
		m.LateCharges.WithLabelValues("reported").Inc()
	}
}
