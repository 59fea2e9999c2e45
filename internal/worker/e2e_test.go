package worker

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ttcpay/payflow/internal/harness"
	"github.com/ttcpay/payflow/internal/intent"
	"github.com/ttcpay/payflow/internal/sandbox"
	"github.com/ttcpay/payflow/internal/streams"
)

const apiKey = "e2e-api-key"

type env struct {
	t       *testing.T
	natsURL string
	redis   *harness.Redis
	sb      *sandbox.Server
	caFile  string
	nc      *nats.Conn
	js      jetstream.JetStream
	logs    *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newEnv(t *testing.T, sbCfg sandbox.Config, persistentRedis bool) *env {
	t.Helper()
	n := harness.StartNATS(t)
	e := &env{t: t, natsURL: n.URL(), logs: &syncBuffer{}}
	if persistentRedis {
		e.redis = harness.StartPersistentRedis(t)
	} else {
		e.redis = harness.StartRedis(t)
	}
	sbCfg.Integrators = map[string]sandbox.Integrator{"costco": {APIKey: apiKey}}
	sb, err := sandbox.Listen(sbCfg, "127.0.0.1:0", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sb.Close() })
	e.sb = sb
	e.caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(e.caFile, sb.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	e.nc, err = nats.Connect(e.natsURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.nc.Close)
	e.js, _ = jetstream.New(e.nc)
	return e
}

// vars is a complete worker environment for this test env.
func (e *env) vars(extra map[string]string) map[string]string {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	v := map[string]string{
		"NATS_URL":             e.natsURL,
		"REDIS_URL":            e.redis.URL(),
		"CACHE_ENCRYPTION_KEY": base64.StdEncoding.EncodeToString(key),
		"TTC_BASE_URL":         e.sb.TTCURL,
		"TTC_API_KEYS":         "costco=" + apiKey,
		"CYBS_BASE_URL":        e.sb.CybsURL,
		"CYBS_CA_FILE":         e.caFile,
		"CYBS_SOLUTION_ID":     "ttctestpartner",
		"CYBS_TIMEOUT":         "3s",
		"CHARGE_LEASE":         "15s",
		"RESOLVE_DELAY":        "1s",
		"ACK_WAIT":             "5s",
		"DRAIN_TIMEOUT":        "5s",
		"HTTP_ADDR":            "127.0.0.1:0",
		"LOG_LEVEL":            "debug",
	}
	for k, x := range extra {
		v[k] = x
	}
	return v
}

type running struct {
	cancel context.CancelFunc
	done   chan error
	addr   string
}

// start runs a worker with these variables and hooks until stop.
func (e *env) start(vars map[string]string, h Hooks) *running {
	e.t.Helper()
	cfg, err := LoadConfig(func(k string) string { return vars[k] })
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	log := zerolog.New(e.logs).Level(zerolog.DebugLevel).With().Timestamp().Logger()
	addr := make(chan string, 1)
	h.HTTPReady = func(a string) { addr <- a }
	w, err := New(ctx, cfg, log, h)
	if err != nil {
		cancel()
		e.t.Fatal(err)
	}
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- w.Run(ctx) }()
	r.addr = <-addr
	e.t.Cleanup(func() { r.stop(e.t) })
	e.waitFor("worker ready", 10*time.Second, func() bool {
		resp, err := http.Get("http://" + r.addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return r
}

func (r *running) stop(t *testing.T) time.Duration {
	start := time.Now()
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("worker: %v", err)
		}
		r.done <- nil
	case <-time.After(30 * time.Second):
		t.Error("worker did not stop")
	}
	return time.Since(start)
}

func (e *env) waitFor(what string, timeout time.Duration, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.t.Fatalf("timed out waiting for %s", what)
}

func newIntent(id, card, amount string, capture bool) *intent.Intent {
	return &intent.Intent{
		Version: 1, IntentID: id, Integrator: "costco", MerchantID: "ttc_ttusas_m", BookingID: "B-" + id,
		Reference: "REF-" + id, Amount: amount, Currency: "USD", Capture: &capture,
		Card:   &intent.Card{Number: card, ExpirationMonth: "12", ExpirationYear: "2031", SecurityCode: "123"},
		BillTo: &intent.BillTo{FirstName: "John", LastName: "Doe", Address1: "1 Market St", Locality: "san francisco", AdministrativeArea: "CA", PostalCode: "94105", Country: "US", Email: "test@cybs.com"},
	}
}

func (e *env) publish(in *intent.Intent) {
	e.t.Helper()
	b, _ := json.Marshal(in)
	e.publishRaw(in.IntentID, in.MerchantID, b)
}

func (e *env) publishRaw(msgID, merchant string, data []byte) {
	e.t.Helper()
	m := nats.NewMsg(streams.Intents(merchant))
	m.Data = data
	if msgID != "" {
		m.Header.Set(nats.MsgIdHdr, msgID)
	}
	var err error
	for range 50 { // the stream appears when the first worker starts
		if _, err = e.js.PublishMsg(context.Background(), m); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.t.Fatalf("publish: %v", err)
}

// results reads every result published so far, latest per intent.
func (e *env) results() map[string]intent.Result {
	e.t.Helper()
	out := map[string]intent.Result{}
	s, err := e.js.Stream(context.Background(), streams.StreamResults)
	if err != nil {
		return out
	}
	info, _ := s.Info(context.Background())
	if info.State.Msgs == 0 {
		return out
	}
	c, err := s.OrderedConsumer(context.Background(), jetstream.OrderedConsumerConfig{})
	if err != nil {
		e.t.Fatal(err)
	}
	batch, err := c.FetchNoWait(int(info.State.Msgs))
	if err != nil {
		e.t.Fatal(err)
	}
	for m := range batch.Messages() {
		var r intent.Result
		if json.Unmarshal(m.Data(), &r) == nil {
			key := r.IntentID
			if key == "" {
				key = fmt.Sprintf("?%d", len(out))
			}
			out[key] = r
		}
	}
	return out
}

// deadLetters reads every dead letter.
func (e *env) deadLetters() []jetstream.Msg {
	e.t.Helper()
	s, err := e.js.Stream(context.Background(), streams.StreamDLQ)
	if err != nil {
		return nil
	}
	info, _ := s.Info(context.Background())
	if info.State.Msgs == 0 {
		return nil
	}
	c, _ := s.OrderedConsumer(context.Background(), jetstream.OrderedConsumerConfig{})
	batch, err := c.FetchNoWait(int(info.State.Msgs))
	if err != nil {
		e.t.Fatal(err)
	}
	var out []jetstream.Msg
	for m := range batch.Messages() {
		out = append(out, m)
	}
	return out
}

func liveByRef(l sandbox.Ledger) map[string]int { return l.LiveCharges() }

func chargesByRef(l sandbox.Ledger) map[string]int {
	m := map[string]int{}
	for _, c := range l.Charges {
		m[c.Reference]++
	}
	return m
}

// checkInvariants: no reference has more than one live charge; every
// authorized result's charge is live and has exactly one callback.
func (e *env) checkCallbacks(res map[string]intent.Result) {
	e.t.Helper()
	l := e.sb.Ledger()
	for ref, n := range liveByRef(l) {
		if n > 1 {
			e.t.Errorf("%s has %d live charges", ref, n)
		}
	}
	for id, r := range res {
		if r.Authorized() {
			if n := l.CallbackCount(r.CyberSourceID); n != 1 {
				e.t.Errorf("%s (%s): %d callbacks", id, r.CyberSourceID, n)
			}
		} else if r.CyberSourceID != "" && l.CallbackCount(r.CyberSourceID) != 0 {
			e.t.Errorf("%s (%s) was not authorized but got a callback", id, r.Status)
		}
	}
}

func TestHappyPathTwoWorkers(t *testing.T) {
	e := newEnv(t, sandbox.Config{}, false)
	v := e.vars(nil)
	e.start(v, Hooks{})
	e.start(v, Hooks{})
	const n = 200
	declined := 0
	for i := range n {
		card := "4111111111111111"
		if i%4 == 0 {
			card = "4000000000000002"
			declined++
		}
		e.publish(newIntent(fmt.Sprintf("happy-%03d", i), card, "10.00", i%2 == 0))
	}
	var res map[string]intent.Result
	e.waitFor("200 results", 60*time.Second, func() bool { res = e.results(); return len(res) == n })
	e.waitFor("callbacks", 30*time.Second, func() bool { return len(e.sb.Ledger().Callbacks) == n-declined })
	l := e.sb.Ledger()
	charges := chargesByRef(l)
	approved := 0
	for id, r := range res {
		switch r.Status {
		case "AUTHORIZED":
			approved++
			if charges["REF-"+id] != 1 || liveByRef(l)["REF-"+id] != 1 {
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
	e.checkCallbacks(res)
	if len(l.TokenRequests) != 1 {
		t.Errorf("%d token requests for one merchant, want 1", len(l.TokenRequests))
	}
	// Every payment log line carries the intent, merchant and attempt.
	for _, line := range strings.Split(e.logs.String(), "\n") {
		if strings.Contains(line, `"message":"intent charged"`) &&
			(!strings.Contains(line, `"intentId"`) || !strings.Contains(line, `"merchantId"`) || !strings.Contains(line, `"attempt"`)) {
			t.Fatalf("log line without intentId/merchantId/attempt: %s", line)
		}
	}
}

func TestDuplicatePublishChargesOnce(t *testing.T) {
	e := newEnv(t, sandbox.Config{}, false)
	e.start(e.vars(map[string]string{"DUPLICATE_WINDOW": "1s"}), Hooks{})
	in := newIntent("dup-1", "4111111111111111", "12.00", true)
	e.publish(in)
	e.publish(in) // inside the window: JetStream drops it
	e.waitFor("result", 10*time.Second, func() bool { return len(e.results()) == 1 })
	time.Sleep(1500 * time.Millisecond)
	e.publish(in) // outside the window: a second message, settled by the record
	e.waitFor("the late copy consumed", 10*time.Second, func() bool {
		s, _ := e.js.Stream(context.Background(), streams.StreamIntents)
		info, _ := s.Info(context.Background())
		return info.State.Msgs == 0 && strings.Contains(e.logs.String(), "already settled")
	})
	if n := chargesByRef(e.sb.Ledger())["REF-dup-1"]; n != 1 {
		t.Fatalf("%d charges", n)
	}
	e.waitFor("callback", 10*time.Second, func() bool { return len(e.sb.Ledger().Callbacks) == 1 })
	time.Sleep(500 * time.Millisecond)
	if c := e.sb.Ledger().Callbacks[0].Count; c != 1 {
		t.Fatalf("%d callbacks", c)
	}
}

func TestCrashAfterChargeBeforeAck(t *testing.T) {
	e := newEnv(t, sandbox.Config{}, false)
	var once sync.Once
	crashed := false
	e.start(e.vars(nil), Hooks{AfterRecord: func(id string) bool {
		hit := false
		once.Do(func() { hit, crashed = true, true })
		return hit
	}})
	e.publish(newIntent("crash-1", "4111111111111111", "30.00", true))
	e.waitFor("result after redelivery", 20*time.Second, func() bool { return len(e.results()) == 1 })
	e.waitFor("callback", 10*time.Second, func() bool { return len(e.sb.Ledger().Callbacks) == 1 })
	if !crashed {
		t.Fatal("the hook never fired")
	}
	l := e.sb.Ledger()
	if n := chargesByRef(l)["REF-crash-1"]; n != 1 {
		t.Fatalf("%d charges after the crash and redelivery", n)
	}
	if !strings.Contains(e.logs.String(), "already settled") {
		t.Fatal("the redelivery did not go through the recorded outcome")
	}
}

func TestCutConnectionIsReversedThenRecharged(t *testing.T) {
	for _, capture := range []bool{false, true} {
		t.Run(fmt.Sprintf("capture=%v", capture), func(t *testing.T) {
			e := newEnv(t, sandbox.Config{Faults: sandbox.Faults{CutAfterChargeRate: 1}}, false)
			e.start(e.vars(nil), Hooks{})
			id := fmt.Sprintf("cut-%v", capture)
			e.publish(newIntent(id, "4111111111111111", "44.00", capture))
			e.waitFor("the cut charge", 10*time.Second, func() bool { return len(e.sb.Ledger().Charges) == 1 })
			_ = e.sb.SetFaults(sandbox.Faults{})
			var res map[string]intent.Result
			e.waitFor("result", 20*time.Second, func() bool { res = e.results(); return len(res) == 1 })
			l := e.sb.Ledger()
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
			e.waitFor("callback", 10*time.Second, func() bool { return e.sb.Ledger().CallbackCount(l.Charges[1].ID) == 1 })
		})
	}
}

func TestCallbacksRetryThenDeliver(t *testing.T) {
	e := newEnv(t, sandbox.Config{Faults: sandbox.Faults{Errors: map[string]sandbox.ErrorFault{"callback": {Rate: 1, Status: 500}}}}, false)
	e.start(e.vars(nil), Hooks{})
	for i := range 5 {
		e.publish(newIntent(fmt.Sprintf("cb-%d", i), "4111111111111111", "5.00", true))
	}
	e.waitFor("results", 10*time.Second, func() bool { return len(e.results()) == 5 })
	time.Sleep(2 * time.Second) // TTC answers 500 meanwhile
	if n := len(e.sb.Ledger().Callbacks); n != 0 {
		t.Fatalf("%d callbacks during the outage", n)
	}
	_ = e.sb.SetFaults(sandbox.Faults{})
	e.waitFor("callbacks delivered", 30*time.Second, func() bool { return len(e.sb.Ledger().Callbacks) == 5 })
	e.checkCallbacks(e.results())
	if d := e.deadLetters(); len(d) != 0 {
		t.Fatalf("%d dead letters", len(d))
	}
}

func TestCallbackRejectedIsDeadLettered(t *testing.T) {
	e := newEnv(t, sandbox.Config{Faults: sandbox.Faults{Errors: map[string]sandbox.ErrorFault{"callback": {Rate: 1, Status: 400}}}}, false)
	e.start(e.vars(nil), Hooks{})
	e.publish(newIntent("cb400", "4111111111111111", "5.00", true))
	var dl []jetstream.Msg
	e.waitFor("dead letter", 15*time.Second, func() bool { dl = e.deadLetters(); return len(dl) == 1 })
	h := dl[0].Headers()
	if h.Get(streams.HeaderDLQClass) != "rejected" || h.Get(streams.HeaderDLQKind) != "callbacks" ||
		h.Get(streams.HeaderDLQSubject) != streams.Callbacks("ttc_ttusas_m") || h.Get(streams.HeaderIntentID) != "cb400" ||
		h.Get(streams.HeaderDLQReason) == "" || dl[0].Subject() != "payments.dlq.callbacks.ttc_ttusas_m" {
		t.Fatalf("dead letter %s %v", dl[0].Subject(), h)
	}
}

func TestInvalidIntentsDeadLettered(t *testing.T) {
	e := newEnv(t, sandbox.Config{}, false)
	e.start(e.vars(nil), Hooks{})
	good := func(id string) *intent.Intent { return newIntent(id, "4111111111111111", "10.00", true) }
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
		e.publishRaw(id, "ttc_ttusas_m", data)
		e.publish(good(fmt.Sprintf("ok-%02d", i)))
		i++
	}
	var dl []jetstream.Msg
	e.waitFor("dead letters", 30*time.Second, func() bool { dl = e.deadLetters(); return len(dl) == len(bad) })
	e.waitFor("results", 30*time.Second, func() bool { return len(e.results()) == 2*len(bad) })
	for _, m := range dl {
		h := m.Headers()
		id := h.Get(streams.HeaderIntentID)
		if h.Get(streams.HeaderDLQClass) != "invalid" || h.Get(streams.HeaderDLQReason) == "" || !bytes.Equal(m.Data(), bad[id]) {
			t.Errorf("%s: class %q reason %q", id, h.Get(streams.HeaderDLQClass), h.Get(streams.HeaderDLQReason))
		}
		t.Logf("%-15s %s", id, h.Get(streams.HeaderDLQReason))
	}
	res := e.results()
	l := e.sb.Ledger()
	for id := range bad {
		if r := res[id]; r.Status != intent.StatusInvalid || r.Reason == "" {
			t.Errorf("%s: result %+v", id, r)
		}
	}
	for j := range len(bad) {
		if chargesByRef(l)[fmt.Sprintf("REF-ok-%02d", j)] != 1 {
			t.Errorf("valid intent ok-%02d not charged once", j)
		}
	}
	if len(l.Charges) != len(bad) {
		t.Fatalf("%d charges, want only the %d valid ones", len(l.Charges), len(bad))
	}
}

func TestSIGTERMUnderLoad(t *testing.T) {
	e := newEnv(t, sandbox.Config{Faults: sandbox.Faults{Latency: map[string]sandbox.Latency{
		"payments": {Fixed: sandbox.Duration(200 * time.Millisecond)}}}}, false)
	v := e.vars(map[string]string{"PAYMENTS_CONCURRENCY": "8"})
	w := e.start(v, Hooks{})
	const n = 120
	for i := range n {
		e.publish(newIntent(fmt.Sprintf("term-%03d", i), "4111111111111111", "7.00", true))
	}
	e.waitFor("some progress", 20*time.Second, func() bool { return len(e.results()) >= 20 })
	took := w.stop(t)
	if took > 5*time.Second+2*time.Second {
		t.Fatalf("drain took %v, grace is 5s", took)
	}
	t.Logf("drained in %v with %d results", took, len(e.results()))
	e.start(v, Hooks{})
	var res map[string]intent.Result
	e.waitFor("all results", 60*time.Second, func() bool { res = e.results(); return len(res) == n })
	l := e.sb.Ledger()
	for id := range res {
		if c := chargesByRef(l)["REF-"+id]; c != 1 {
			t.Errorf("%s charged %d times", id, c)
		}
	}
	e.waitFor("callbacks", 30*time.Second, func() bool { return len(e.sb.Ledger().Callbacks) == n })
	e.checkCallbacks(res)
}

func TestRedisDownUnderLoad(t *testing.T) {
	e := newEnv(t, sandbox.Config{Faults: sandbox.Faults{Latency: map[string]sandbox.Latency{
		"payments": {Fixed: sandbox.Duration(20 * time.Millisecond)}}}}, true)
	e.start(e.vars(nil), Hooks{})
	const n = 150
	go func() {
		for i := range n {
			e.publish(newIntent(fmt.Sprintf("redis-%03d", i), "4111111111111111", "9.00", i%2 == 0))
			time.Sleep(40 * time.Millisecond)
		}
	}()
	e.waitFor("some progress", 20*time.Second, func() bool { return len(e.results()) >= 10 })
	e.redis.Stop()
	stoppedAt := len(e.sb.Ledger().Charges)
	time.Sleep(10 * time.Second)
	// Without Redis nothing can be claimed, so nothing new is charged
	// (a charge already sent when Redis went away may still land).
	during := len(e.sb.Ledger().Charges) - stoppedAt
	e.redis.Restart()
	var res map[string]intent.Result
	e.waitFor("all results", 90*time.Second, func() bool { res = e.results(); return len(res) == n })
	t.Logf("charges while Redis was down: %d (in flight when it stopped)", during)
	if during > 8 {
		t.Errorf("%d charges while Redis was down", during)
	}
	l := e.sb.Ledger()
	for ref, c := range l.LiveCharges() {
		if c != 1 {
			t.Errorf("%s: %d live charges", ref, c)
		}
	}
	if len(l.LiveCharges()) != n {
		t.Errorf("%d intents with a live charge, want %d", len(l.LiveCharges()), n)
	}
	e.waitFor("callbacks", 60*time.Second, func() bool { return len(e.sb.Ledger().Callbacks) == n })
	e.checkCallbacks(res)
}

func TestCyberSource400IsRejected(t *testing.T) {
	e := newEnv(t, sandbox.Config{}, false)
	e.start(e.vars(nil), Hooks{})
	e.publish(newIntent("rej-1", "4111111111111111", "4000.00", true))
	var dl []jetstream.Msg
	e.waitFor("dead letter", 15*time.Second, func() bool { dl = e.deadLetters(); return len(dl) == 1 })
	if c := dl[0].Headers().Get(streams.HeaderDLQClass); c != "rejected" {
		t.Fatalf("class %q", c)
	}
	e.waitFor("result", 10*time.Second, func() bool { return e.results()["rej-1"].Status == intent.StatusRejected })
	if r := e.results()["rej-1"]; r.Reason != "INVALID_AMOUNT" {
		t.Fatalf("result %+v", r)
	}
	if n := len(e.sb.Ledger().Charges); n != 0 {
		t.Fatalf("%d charges", n)
	}
}

func TestRevokedTokenRefreshedOnce(t *testing.T) {
	e := newEnv(t, sandbox.Config{}, false)
	e.start(e.vars(nil), Hooks{})
	e.publish(newIntent("tok-1", "4111111111111111", "3.00", true))
	e.waitFor("first result", 10*time.Second, func() bool { return len(e.results()) == 1 })
	e.sb.RevokeTokens("costco", "ttc_ttusas_m") // CyberSource stops accepting the cached token
	e.publish(newIntent("tok-2", "4111111111111111", "3.00", true))
	e.waitFor("second result", 10*time.Second, func() bool { return len(e.results()) == 2 })
	r := e.results()["tok-2"]
	if r.Status != "AUTHORIZED" || r.Attempts != 2 {
		t.Fatalf("result %+v", r)
	}
	l := e.sb.Ledger()
	if len(l.TokenRequests) != 2 || chargesByRef(l)["REF-tok-2"] != 1 {
		t.Fatalf("%d token requests, %d charges", len(l.TokenRequests), chargesByRef(l)["REF-tok-2"])
	}
}

func TestTTC404IsConfigAfterBudget(t *testing.T) {
	e := newEnv(t, sandbox.Config{}, false)
	// This integrator's TTC holds a refresh token for another merchant only.
	_ = e.sb.Close()
	sb, err := sandbox.Listen(sandbox.Config{Integrators: map[string]sandbox.Integrator{"costco": {APIKey: apiKey, Merchants: []string{"elsewhere"}}}}, "127.0.0.1:0", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sb.Close() })
	e.sb = sb
	_ = os.WriteFile(e.caFile, sb.CACertPEM(), 0o600)
	e.start(e.vars(map[string]string{"CONFIG_BUDGET": "2s"}), Hooks{})
	e.publish(newIntent("cfg-1", "4111111111111111", "3.00", true))
	var dl []jetstream.Msg
	e.waitFor("dead letter", 20*time.Second, func() bool { dl = e.deadLetters(); return len(dl) == 1 })
	h := dl[0].Headers()
	if h.Get(streams.HeaderDLQClass) != "config" || !strings.Contains(h.Get(streams.HeaderDLQReason), "no-refresh-token") {
		t.Fatalf("dead letter %v", h)
	}
	if r := e.results()["cfg-1"]; r.Status != intent.StatusFailed {
		t.Fatalf("result %+v", r)
	}
	if strings.Contains(e.logs.String(), apiKey) {
		t.Fatal("the API key is in the logs")
	}
}

func TestMetricsExposed(t *testing.T) {
	e := newEnv(t, sandbox.Config{}, false)
	w := e.start(e.vars(nil), Hooks{})
	e.publish(newIntent("m-1", "4111111111111111", "3.00", true))
	e.waitFor("result", 10*time.Second, func() bool { return len(e.results()) == 1 })
	resp, err := http.Get("http://" + w.addr + "/metrics")
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
