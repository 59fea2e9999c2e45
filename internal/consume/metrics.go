package consume

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the consumers' Prometheus metrics, all prefixed payflow_.
type Metrics struct {
	Intents           *prometheus.CounterVec // outcome
	ChargeSeconds     prometheus.Histogram
	Callbacks         *prometheus.CounterVec // outcome
	Deliveries        *prometheus.CounterVec // role
	DeadLetters       *prometheus.CounterVec // kind, class
	InFlight          *prometheus.GaugeVec   // role
	UnknownOutcomes   prometheus.Counter
	CallbackRetryAge  prometheus.Gauge
	CallbackAuthFails prometheus.Counter
}

// NewMetrics registers the metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Intents: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "payflow_intents_total",
			Help: "Intents processed, by outcome (the CyberSource status, INVALID, REJECTED, FAILED, UNKNOWN_OUTCOME, replayed)."}, []string{"outcome"}),
		ChargeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "payflow_charge_seconds",
			Help: "Latency of CyberSource payment calls.", Buckets: prometheus.ExponentialBuckets(0.01, 2, 12)}),
		Callbacks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "payflow_callback_deliveries_total",
			Help: "TTC callback attempts, by outcome (delivered, retry, rejected, unauthorized, exhausted)."}, []string{"outcome"}),
		Deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "payflow_delivery_attempts_total",
			Help: "Messages received from JetStream, by role (redeliveries included)."}, []string{"role"}),
		DeadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "payflow_dead_letters_total",
			Help: "Dead letters written, by kind and class."}, []string{"kind", "class"}),
		InFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "payflow_in_flight",
			Help: "Messages being processed now, by role."}, []string{"role"}),
		UnknownOutcomes: prometheus.NewCounter(prometheus.CounterOpts{Name: "payflow_unknown_outcomes_total",
			Help: "Charge attempts whose outcome was unknown and had to be resolved by a timeout reversal or void."}),
		CallbackRetryAge: prometheus.NewGauge(prometheus.GaugeOpts{Name: "payflow_callback_retry_age_seconds",
			Help: "Age of the last callback job that had to be retried."}),
		CallbackAuthFails: prometheus.NewCounter(prometheus.CounterOpts{Name: "payflow_callback_auth_failures_total",
			Help: "TTC answered 401/403 to a callback: the API key is wrong."}),
	}
	reg.MustRegister(m.Intents, m.ChargeSeconds, m.Callbacks, m.Deliveries, m.DeadLetters, m.InFlight,
		m.UnknownOutcomes, m.CallbackRetryAge, m.CallbackAuthFails)
	return m
}
