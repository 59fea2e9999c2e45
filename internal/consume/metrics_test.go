package consume

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestLabelledSeriesStartAtZero: every labelled series exists before its
// first event, so increase() over it sees that event (a series that starts
// at 1 shows no increase, and the alert on the first unknown-outcome dead
// letter would never fire).
func TestLabelledSeriesStartAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	for name, want := range map[string]int{
		"payflow_dead_letters_total":        12, // 2 kinds x 6 classes
		"payflow_intents_total":             len(IntentOutcomes),
		"payflow_callback_deliveries_total": 5,
		"payflow_late_charges_total":        2,
		"payflow_redeliveries_total":        2,
		"payflow_delivery_attempts_total":   2,
	} {
		if got := testutil.CollectAndCount(reg, name); got != want {
			t.Errorf("%s: %d series at start, want %d", name, got, want)
		}
	}
	if v := testutil.ToFloat64(m.DeadLetters.WithLabelValues("intents", "unknown-outcome")); v != 0 {
		t.Fatalf("unknown-outcome dead letters at start: %v", v)
	}
}

// TestCallbackRetryAgeIsTheOldestWaiting: the gauge is the age of the
// oldest callback still waiting, and 0 once none waits (it used to keep
// the age of the last retried one forever, so its alert never cleared).
func TestCallbackRetryAgeIsTheOldestWaiting(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	w := newWaitingCallbacks(func() time.Time { return now })
	if age := w.oldestAge(); age != 0 {
		t.Fatalf("age with nothing waiting: %v", age)
	}
	w.retrying("a:1", now.Add(-2*time.Hour), 5*time.Minute)
	w.retrying("b:2", now.Add(-10*time.Minute), 5*time.Minute)
	if age := w.oldestAge(); age != (2 * time.Hour).Seconds() {
		t.Fatalf("age %v, want the oldest (2h)", age)
	}
	w.done("a:1")
	if age := w.oldestAge(); age != (10 * time.Minute).Seconds() {
		t.Fatalf("age %v after the oldest was delivered", age)
	}
	// A job another pod took over is forgotten once it has not come back.
	now = now.Add(time.Hour)
	if age := w.oldestAge(); age != 0 {
		t.Fatalf("age %v of a job not seen for an hour", age)
	}
}
