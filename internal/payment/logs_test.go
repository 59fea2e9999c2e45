package payment_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ttcpay/payflow/internal/cybs"
	"github.com/ttcpay/payflow/internal/idempotency"
	"github.com/ttcpay/payflow/internal/payment"
)

// TestLogLinesHaveOneOfEachKey: a delivery that moves from one attempt to
// the next (a lost answer, the timeout reversal, a new charge) logs every
// line with one "attempt" key, the current one. A line with two (zerolog
// appends fields) is read differently by every log pipeline: some keep the
// first, some the last.
func TestLogLinesHaveOneOfEachKey(t *testing.T) {
	b := newBed(t, cut, ok201("REVERSED"), ok201(cybs.StatusAuthorized))
	var logs bytes.Buffer
	b.p = payment.New(payment.Config{Now: func() time.Time { return b.now }}, staticCreds{}, b.cs, b.store, zerolog.New(&logs))
	in := payIntent("log-1", false)
	t0 := b.now
	check(t, b, "log-1", b.deliver(in, 1), want{payment.Wait, "", "", idempotency.StateUnknown})
	b.now = t0.Add(2 * time.Minute)
	check(t, b, "log-1", b.deliver(in, 2), want{payment.Ack, cybs.StatusAuthorized, "", "done"})

	sawSecond := false
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		keys, err := topLevelKeys(line)
		if err != nil {
			t.Fatalf("log line %s: %v", line, err)
		}
		seen := map[string]bool{}
		for _, k := range keys {
			if seen[k] {
				t.Errorf("key %q twice in log line %s", k, line)
			}
			seen[k] = true
		}
		if strings.Contains(line, `"attempt":2`) {
			sawSecond = true
		}
	}
	if !sawSecond {
		t.Fatalf("no line about attempt 2: the scenario did not move to a new attempt\n%s", logs.String())
	}
}

// topLevelKeys lists a JSON object's keys in order, repeats included.
func topLevelKeys(line string) ([]string, error) {
	dec := json.NewDecoder(strings.NewReader(line))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("not a JSON object: %v", err)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		keys = append(keys, tok.(string))
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
	}
	return keys, nil
}
