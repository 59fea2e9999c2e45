package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ttcpay/payflow/internal/deadletter"
	"github.com/ttcpay/payflow/internal/intent"
	"github.com/ttcpay/payflow/internal/sandbox"
	"github.com/ttcpay/payflow/internal/streams"
	"github.com/ttcpay/payflow/internal/systemtest"
	"github.com/ttcpay/payflow/internal/worker"
)

func TestHappyPathTwoWorkers(t *testing.T) {
	e := systemtest.New(t, sandbox.Config{}, false)
	v := e.Vars(nil)
	e.Start(v, worker.TestConfig{})
	e.Start(v, worker.TestConfig{})
	const n = 200
	declined := 0
	for i := range n {
		card := "4111111111111111"
		if i%4 == 0 {
			card = "4000000000000002"
			declined++
		}
		e.Publish(systemtest.NewIntent(fmt.Sprintf("happy-%03d", i), card, "10.00", i%2 == 0))
	}
	var res map[string]intent.Result
	e.WaitFor("200 results", 60*time.Second, func() bool { res = e.Results(); return len(res) == n })
	e.WaitFor("callbacks", 30*time.Second, func() bool { return len(e.SB.Ledger().Callbacks) == n-declined })
	l := e.SB.Ledger()
	charges := systemtest.ChargesByRef(l)
	approved := 0
	for id, r := range res {
		switch r.Status {
		case "AUTHORIZED":
			approved++
			if charges["REF-"+id] != 1 || l.LiveCharges()["REF-"+id] != 1 {
				t.Errorf("%s: %d charges", id, charges["REF-"+id])
			}
		case "DECLINED":
		default:
			t.Errorf("%s: status %s", id, r.Status)
		}
	}
	if approved != n-declined {
		t.Fatalf("%d approved, want %d", approved, n-declined)
	}
	e.CheckCallbacks(res)
	if len(l.TokenRequests) != 1 {
		t.Errorf("%d token requests for one merchant, want 1", len(l.TokenRequests))
	}
	// Every payment log line carries the intent, merchant and attempt.
	for _, line := range strings.Split(e.Logs.String(), "\n") {
		if strings.Contains(line, `"message":"intent charged"`) &&
			(!strings.Contains(line, `"intentId"`) || !strings.Contains(line, `"merchantId"`) || !strings.Contains(line, `"attempt"`)) {
			t.Fatalf("log line without intentId/merchantId/attempt: %s", line)
		}
	}
}

func TestDuplicatePublishChargesOnce(t *testing.T) {
	e := systemtest.New(t, sandbox.Config{}, false)
	e.Start(e.Vars(map[string]string{"DUPLICATE_WINDOW": "1s"}), worker.TestConfig{})
	in := systemtest.NewIntent("dup-1", "4111111111111111", "12.00", true)
	e.Publish(in)
	e.Publish(in) // inside the window: JetStream drops it
	e.WaitFor("result", 10*time.Second, func() bool { return len(e.Results()) == 1 })
	time.Sleep(1500 * time.Millisecond)
	e.Publish(in) // outside the window: a second message, settled by the record
	e.WaitFor("the late copy consumed", 10*time.Second, func() bool {
		s, _ := e.JS.Stream(context.Background(), streams.StreamIntents)
		info, _ := s.Info(context.Background())
		return info.State.Msgs == 0 && strings.Contains(e.Logs.String(), "already settled")
	})
	if n := systemtest.ChargesByRef(e.SB.Ledger())["REF-dup-1"]; n != 1 {
		t.Fatalf("%d charges", n)
	}
	e.WaitFor("callback", 10*time.Second, func() bool { return len(e.SB.Ledger().Callbacks) == 1 })
	time.Sleep(500 * time.Millisecond)
	if c := e.SB.Ledger().Callbacks[0].Count; c != 1 {
		t.Fatalf("%d callbacks", c)
	}
}

func TestCrashAfterChargeBeforeAck(t *testing.T) {
	e := systemtest.New(t, sandbox.Config{}, false)
	var once sync.Once
	crashed := false
	e.Start(e.Vars(nil), worker.TestConfig{AfterRecord: func(id string) bool {
		hit := false
		once.Do(func() { hit, crashed = true, true })
		return hit
	}})
	e.Publish(systemtest.NewIntent("crash-1", "4111111111111111", "30.00", true))
	e.WaitFor("result after redelivery", 20*time.Second, func() bool { return len(e.Results()) == 1 })
	e.WaitFor("callback", 10*time.Second, func() bool { return len(e.SB.Ledger().Callbacks) == 1 })
	if !crashed {
		t.Fatal("the hook never fired")
	}
	l := e.SB.Ledger()
	if n := systemtest.ChargesByRef(l)["REF-crash-1"]; n != 1 {
		t.Fatalf("%d charges after the crash and redelivery", n)
	}
	if !strings.Contains(e.Logs.String(), "already settled") {
		t.Fatal("the redelivery did not go through the recorded outcome")
	}
}

func TestCutConnectionIsReversedThenRecharged(t *testing.T) {
	for _, capture := range []bool{false, true} {
		t.Run(fmt.Sprintf("capture=%v", capture), func(t *testing.T) {
			e := systemtest.New(t, sandbox.Config{Faults: sandbox.Faults{CutAfterChargeRate: 1}}, false)
			e.Start(e.Vars(nil), worker.TestConfig{})
			id := fmt.Sprintf("cut-%v", capture)
			e.Publish(systemtest.NewIntent(id, "4111111111111111", "44.00", capture))
			e.WaitFor("the cut charge", 10*time.Second, func() bool { return len(e.SB.Ledger().Charges) == 1 })
			_ = e.SB.SetFaults(sandbox.Faults{})
			var res map[string]intent.Result
			e.WaitFor("result", 20*time.Second, func() bool { res = e.Results(); return len(res) == 1 })
			l := e.SB.Ledger()
			if len(l.Charges) != 2 || l.LiveCharges()["REF-"+id] != 1 {
				t.Fatalf("charges %+v", l.Charges)
			}
			first := l.Charges[0]
			if first.Live || (capture && !first.Voided) || (!capture && !first.Reversed) {
				t.Fatalf("first attempt not cancelled: %+v", first)
			}
			if first.TransactionID == l.Charges[1].TransactionID {
				t.Fatal("the new attempt reused the transactionId")
			}
			if r := res[id]; r.Status != "AUTHORIZED" || r.Attempts != 2 || r.CyberSourceID != l.Charges[1].ID {
				t.Fatalf("result %+v", r)
			}
			e.WaitFor("callback", 10*time.Second, func() bool { return e.SB.Ledger().CallbackCount(l.Charges[1].ID) == 1 })
		})
	}
}

func TestCallbacksRetryThenDeliver(t *testing.T) {
	e := systemtest.New(t, sandbox.Config{Faults: sandbox.Faults{Errors: map[string]sandbox.ErrorFault{"callback": {Rate: 1, Status: 500}}}}, false)
	e.Start(e.Vars(nil), worker.TestConfig{})
	for i := range 5 {
		e.Publish(systemtest.NewIntent(fmt.Sprintf("cb-%d", i), "4111111111111111", "5.00", true))
	}
	e.WaitFor("results", 10*time.Second, func() bool { return len(e.Results()) == 5 })
	time.Sleep(2 * time.Second) // TTC answers 500 meanwhile
	if n := len(e.SB.Ledger().Callbacks); n != 0 {
		t.Fatalf("%d callbacks during the outage", n)
	}
	// Each retry line names the payment and the delivery (never
	// "attempt", which is a charge attempt), its age in milliseconds and
	// when the next delivery is due.
	retries := logLines(e, "callback failed; retrying")
	if len(retries) < 5 {
		t.Fatalf("%d retry lines for 5 failing callbacks", len(retries))
	}
	for _, l := range retries {
		next, err := time.Parse(time.RFC3339, fmt.Sprint(l["nextRetryAt"]))
		_, age := l["ageMs"].(float64)
		if l["intentId"] == nil || l["merchantId"] == nil || l["delivery"] == nil || l["attempt"] != nil || !age || err != nil || next.IsZero() {
			t.Fatalf("retry line without intentId, merchantId, delivery, ageMs or nextRetryAt (or with attempt): %v", l)
		}
	}
	_ = e.SB.SetFaults(sandbox.Faults{})
	e.WaitFor("callbacks delivered", 30*time.Second, func() bool { return len(e.SB.Ledger().Callbacks) == 5 })
	e.CheckCallbacks(e.Results())
	if d := e.DeadLetters(); len(d) != 0 {
		t.Fatalf("%d dead letters", len(d))
	}
}

func TestCallbackRejectedIsDeadLettered(t *testing.T) {
	e := systemtest.New(t, sandbox.Config{Faults: sandbox.Faults{Errors: map[string]sandbox.ErrorFault{"callback": {Rate: 1, Status: 400}}}}, false)
	e.Start(e.Vars(nil), worker.TestConfig{})
	e.Publish(systemtest.NewIntent("cb400", "4111111111111111", "5.00", true))
	var dl []jetstream.Msg
	e.WaitFor("dead letter", 15*time.Second, func() bool { dl = e.DeadLetters(); return len(dl) == 1 })
	h := dl[0].Headers()
	if h.Get(deadletter.HeaderClass) != "rejected" || h.Get(deadletter.HeaderKind) != "callbacks" ||
		h.Get(deadletter.HeaderSubject) != streams.Callbacks("ttc_ttusas_m") || h.Get(deadletter.HeaderIntentID) != "cb400" ||
		h.Get(deadletter.HeaderReason) == "" || dl[0].Subject() != "payments.dlq.callbacks.ttc_ttusas_m" {
		t.Fatalf("dead letter %s %v", dl[0].Subject(), h)
	}
}

func TestInvalidIntentsDeadLettered(t *testing.T) {
	e := systemtest.New(t, sandbox.Config{}, false)
	e.Start(e.Vars(nil), worker.TestConfig{})
	good := func(id string) *intent.Intent { return systemtest.NewIntent(id, "4111111111111111", "10.00", true) }
	mutate := func(id string, f func(m map[string]any)) []byte {
		b, _ := json.Marshal(good(id))
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		f(m)
		b, _ = json.Marshal(m)
		return b
	}
	card := func(m map[string]any) map[string]any { return m["card"].(map[string]any) }
	bill := func(m map[string]any) map[string]any { return m["billTo"].(map[string]any) }
	bad := map[string][]byte{
		"bad-json":       []byte(`{"version":1,"intentId":`),
		"not-object":     []byte(`"hello"`),
		"empty":          []byte(``),
		"wrong-version":  mutate("wrong-version", func(m map[string]any) { m["version"] = 2 }),
		"no-intent-id":   mutate("x", func(m map[string]any) { delete(m, "intentId") }),
		"no-integrator":  mutate("no-integrator", func(m map[string]any) { delete(m, "integrator") }),
		"no-booking":     mutate("no-booking", func(m map[string]any) { delete(m, "bookingId") }),
		"no-reference":   mutate("no-reference", func(m map[string]any) { delete(m, "reference") }),
		"no-amount":      mutate("no-amount", func(m map[string]any) { delete(m, "amount") }),
		"negative":       mutate("negative", func(m map[string]any) { m["amount"] = "-5.00" }),
		"decimals":       mutate("decimals", func(m map[string]any) { m["amount"] = "5.001" }),
		"jpy-decimals":   mutate("jpy-decimals", func(m map[string]any) { m["currency"] = "JPY"; m["amount"] = "5.5" }),
		"currency":       mutate("currency", func(m map[string]any) { m["currency"] = "XYZ" }),
		"no-capture":     mutate("no-capture", func(m map[string]any) { delete(m, "capture") }),
		"luhn":           mutate("luhn", func(m map[string]any) { card(m)["number"] = "4111111111111112" }),
		"expired":        mutate("expired", func(m map[string]any) { card(m)["expirationYear"] = "2020" }),
		"month":          mutate("month", func(m map[string]any) { card(m)["expirationMonth"] = "00" }),
		"no-card":        mutate("no-card", func(m map[string]any) { delete(m, "card") }),
		"no-billto":      mutate("no-billto", func(m map[string]any) { delete(m, "billTo") }),
		"no-country":     mutate("no-country", func(m map[string]any) { delete(bill(m), "country") }),
		"email":          mutate("email", func(m map[string]any) { bill(m)["email"] = "x" }),
		"unknown-field":  mutate("unknown-field", func(m map[string]any) { m["amountt"] = "1" }),
		"oversize":       mutate("oversize", func(m map[string]any) { bill(m)["address2"] = strings.Repeat("a", intent.MaxSize) }),
		"other-merchant": mutate("other-merchant", func(m map[string]any) { m["merchantId"] = "someone_else" }),
	}
	i := 0
	for id, data := range bad {
		e.PublishRaw(id, "ttc_ttusas_m", data)
		e.Publish(good(fmt.Sprintf("ok-%02d", i)))
		i++
	}
	var dl []jetstream.Msg
	e.WaitFor("dead letters", 30*time.Second, func() bool { dl = e.DeadLetters(); return len(dl) == len(bad) })
	e.WaitFor("results", 30*time.Second, func() bool { return len(e.Results()) == 2*len(bad) })
	for _, m := range dl {
		h := m.Headers()
		id := h.Get(deadletter.HeaderIntentID)
		// The original payload, its card data scrubbed (no dead-letter key here).
		want, _ := deadletter.NewScrubber(nil).Payload(bad[id])
		if h.Get(deadletter.HeaderClass) != "invalid" || h.Get(deadletter.HeaderReason) == "" || !bytes.Equal(m.Data(), want) {
			t.Errorf("%s: class %q reason %q", id, h.Get(deadletter.HeaderClass), h.Get(deadletter.HeaderReason))
		}
		t.Logf("%-15s %s", id, h.Get(deadletter.HeaderReason))
	}
	// Every line about an invalid intent names it, as every payment line does.
	for _, l := range logLines(e, "invalid intent") {
		if id, _ := l["intentId"].(string); id == "" || l["delivery"] == nil {
			t.Errorf("invalid-intent line without intentId or delivery: %v", l)
		}
	}
	res := e.Results()
	l := e.SB.Ledger()
	for id := range bad {
		if r := res[id]; r.Status != intent.StatusInvalid || r.Reason == "" {
			t.Errorf("%s: result %+v", id, r)
		}
	}
	for j := range len(bad) {
		if systemtest.ChargesByRef(l)[fmt.Sprintf("REF-ok-%02d", j)] != 1 {
			t.Errorf("valid intent ok-%02d not charged once", j)
		}
	}
	if len(l.Charges) != len(bad) {
		t.Fatalf("%d charges, want only the %d valid ones", len(l.Charges), len(bad))
	}
}

func TestSIGTERMUnderLoad(t *testing.T) {
	e := systemtest.New(t, sandbox.Config{Faults: sandbox.Faults{Latency: map[string]sandbox.Latency{
		"payments": {Fixed: sandbox.Duration(200 * time.Millisecond)}}}}, false)
	v := e.Vars(map[string]string{"PAYMENTS_CONCURRENCY": "8"})
	w := e.Start(v, worker.TestConfig{})
	const n = 120
	for i := range n {
		e.Publish(systemtest.NewIntent(fmt.Sprintf("term-%03d", i), "4111111111111111", "7.00", true))
	}
	e.WaitFor("some progress", 20*time.Second, func() bool { return len(e.Results()) >= 20 })
	took := w.Stop(t)
	if took > 5*time.Second+2*time.Second {
		t.Fatalf("drain took %v, grace is 5s", took)
	}
	t.Logf("drained in %v with %d results", took, len(e.Results()))
	e.Start(v, worker.TestConfig{})
	var res map[string]intent.Result
	e.WaitFor("all results", 60*time.Second, func() bool { res = e.Results(); return len(res) == n })
	l := e.SB.Ledger()
	for id := range res {
		if c := systemtest.ChargesByRef(l)["REF-"+id]; c != 1 {
			t.Errorf("%s charged %d times", id, c)
		}
	}
	e.WaitFor("callbacks", 30*time.Second, func() bool { return len(e.SB.Ledger().Callbacks) == n })
	e.CheckCallbacks(res)
}

func TestRedisDownUnderLoad(t *testing.T) {
	e := systemtest.New(t, sandbox.Config{Faults: sandbox.Faults{Latency: map[string]sandbox.Latency{
		"payments": {Fixed: sandbox.Duration(20 * time.Millisecond)}}}}, true)
	e.Start(e.Vars(nil), worker.TestConfig{})
	const n = 150
	go func() {
		for i := range n {
			e.Publish(systemtest.NewIntent(fmt.Sprintf("redis-%03d", i), "4111111111111111", "9.00", i%2 == 0))
			time.Sleep(40 * time.Millisecond)
		}
	}()
	e.WaitFor("some progress", 20*time.Second, func() bool { return len(e.Results()) >= 10 })
	e.Redis.Stop()
	stoppedAt := len(e.SB.Ledger().Charges)
	time.Sleep(10 * time.Second)
	// Without Redis nothing can be claimed, so nothing new is charged
	// (a charge already sent when Redis went away may still land).
	during := len(e.SB.Ledger().Charges) - stoppedAt
	e.Redis.Restart()
	var res map[string]intent.Result
	e.WaitFor("all results", 90*time.Second, func() bool { res = e.Results(); return len(res) == n })
	t.Logf("charges while Redis was down: %d (in flight when it stopped)", during)
	if during > 8 {
		t.Errorf("%d charges while Redis was down", during)
	}
	l := e.SB.Ledger()
	for ref, c := range l.LiveCharges() {
		if c != 1 {
			t.Errorf("%s: %d live charges", ref, c)
		}
	}
	if len(l.LiveCharges()) != n {
		t.Errorf("%d intents with a live charge, want %d", len(l.LiveCharges()), n)
	}
	e.WaitFor("callbacks", 60*time.Second, func() bool { return len(e.SB.Ledger().Callbacks) == n })
	e.CheckCallbacks(res)
}

func TestCyberSource400IsRejected(t *testing.T) {
	e := systemtest.New(t, sandbox.Config{}, false)
	e.Start(e.Vars(nil), worker.TestConfig{})
	e.Publish(systemtest.NewIntent("rej-1", "4111111111111111", "4000.00", true))
	var dl []jetstream.Msg
	e.WaitFor("dead letter", 15*time.Second, func() bool { dl = e.DeadLetters(); return len(dl) == 1 })
	if c := dl[0].Headers().Get(deadletter.HeaderClass); c != "rejected" {
		t.Fatalf("class %q", c)
	}
	e.WaitFor("result", 10*time.Second, func() bool { return e.Results()["rej-1"].Status == intent.StatusRejected })
	if r := e.Results()["rej-1"]; r.Reason != "INVALID_AMOUNT" {
		t.Fatalf("result %+v", r)
	}
	if n := len(e.SB.Ledger().Charges); n != 0 {
		t.Fatalf("%d charges", n)
	}
}

func TestRevokedTokenRefreshedOnce(t *testing.T) {
	e := systemtest.New(t, sandbox.Config{}, false)
	e.Start(e.Vars(nil), worker.TestConfig{})
	e.Publish(systemtest.NewIntent("tok-1", "4111111111111111", "3.00", true))
	e.WaitFor("first result", 10*time.Second, func() bool { return len(e.Results()) == 1 })
	e.SB.RevokeTokens("costco", "ttc_ttusas_m") // CyberSource stops accepting the cached token
	e.Publish(systemtest.NewIntent("tok-2", "4111111111111111", "3.00", true))
	e.WaitFor("second result", 10*time.Second, func() bool { return len(e.Results()) == 2 })
	r := e.Results()["tok-2"]
	if r.Status != "AUTHORIZED" || r.Attempts != 2 {
		t.Fatalf("result %+v", r)
	}
	l := e.SB.Ledger()
	if len(l.TokenRequests) != 2 || systemtest.ChargesByRef(l)["REF-tok-2"] != 1 {
		t.Fatalf("%d token requests, %d charges", len(l.TokenRequests), systemtest.ChargesByRef(l)["REF-tok-2"])
	}
}

func TestTTC404IsConfigAfterBudget(t *testing.T) {
	e := systemtest.New(t, sandbox.Config{}, false)
	// This integrator's TTC holds a refresh token for another merchant only.
	_ = e.SB.Close()
	sb, err := sandbox.Listen(sandbox.Config{Integrators: map[string]sandbox.Integrator{"costco": {APIKey: systemtest.APIKey, Merchants: []string{"elsewhere"}}}}, "127.0.0.1:0", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sb.Close() })
	e.SB = sb
	_ = os.WriteFile(e.CAFile, sb.CACertPEM(), 0o600)
	e.Start(e.Vars(map[string]string{"CONFIG_BUDGET": "2s"}), worker.TestConfig{})
	e.Publish(systemtest.NewIntent("cfg-1", "4111111111111111", "3.00", true))
	var dl []jetstream.Msg
	e.WaitFor("dead letter", 20*time.Second, func() bool { dl = e.DeadLetters(); return len(dl) == 1 })
	h := dl[0].Headers()
	if h.Get(deadletter.HeaderClass) != "config" || !strings.Contains(h.Get(deadletter.HeaderReason), "no-refresh-token") {
		t.Fatalf("dead letter %v", h)
	}
	if r := e.Results()["cfg-1"]; r.Status != intent.StatusFailed {
		t.Fatalf("result %+v", r)
	}
	if strings.Contains(e.Logs.String(), systemtest.APIKey) {
		t.Fatal("the API key is in the logs")
	}
}

func TestMetricsExposed(t *testing.T) {
	e := systemtest.New(t, sandbox.Config{}, false)
	w := e.Start(e.Vars(nil), worker.TestConfig{})
	e.Publish(systemtest.NewIntent("m-1", "4111111111111111", "3.00", true))
	e.WaitFor("result", 10*time.Second, func() bool { return len(e.Results()) == 1 })
	resp, err := http.Get("http://" + w.Addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	for _, want := range []string{`payflow_intents_total{outcome="AUTHORIZED"} 1`, "payflow_charge_seconds_bucket",
		"payflow_credentials_refreshes_total 1", "payflow_cybersource_tls_handshakes_total 1", `payflow_in_flight{role="payments"} 0`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// logLines are the workers' log lines with this message, decoded.
func logLines(e *systemtest.Env, msg string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(e.Logs.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["message"] == msg {
			out = append(out, m)
		}
	}
	return out
}
