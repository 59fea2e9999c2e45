package worker_test

// Adversarial review (branch adversary): end-to-end proofs of breaks that
// the money-safety regressions do not reach. These tests are expected to
// FAIL on the code they were written against; each failure is a break.
//
// Run: go test -count=1 -run 'TestAdversary' ./internal/worker/

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/ttcpay/payflow/internal/idempotency"
	"github.com/ttcpay/payflow/internal/intent"
	"github.com/ttcpay/payflow/internal/sandbox"
	"github.com/ttcpay/payflow/internal/systemtest"
	"github.com/ttcpay/payflow/internal/tracing"
	"github.com/ttcpay/payflow/internal/worker"
)

// TestAdversaryStaleSendDuringResolution: a pod checks its lease, then is
// paused (GC, VM stall, SIGSTOP) past the lease before its charge goes out.
// Another pod turns the attempt unknown (u = the lease's end) and, once
// RESOLVE_DELAY has passed, sends the timeout reversal. The stale pod's
// charge went out after u, is still being processed when the timeout
// reversal arrives (which finds nothing: CyberSource's "original failed"
// answer), lands afterwards, and its answer is lost (client timeout). The
// stale pod's MarkUnknown fails with a conflict and it only redelivers: no
// one ever reverses attempt 1, while attempt 2 is charged as well.
//
// The hold (8 s) is shorter than RESOLVE_DELAY (10 s): CyberSource's own
// promise (processing ends well within the delay) holds. What breaks is the
// README's premise that nothing is sent after the lease's end.
func TestAdversaryStaleSendDuringResolution(t *testing.T) {
	e := systemtest.New(t, sandbox.Config{}, false)
	v := e.Vars(map[string]string{"DUPLICATE_WINDOW": "1s", "RESOLVE_DELAY": "10s"})
	const id = "adv-stale-send"
	const amount = "23.00"
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	freeze := func(got string, attempt int) {
		if got != id || attempt != 1 {
			return
		}
		first := false
		once.Do(func() { first = true })
		if !first {
			return
		}
		close(entered)
		<-release // paused after the lease check, right before the send
	}
	e.Start(v, worker.TestConfig{BeforeCharge: freeze})
	in := systemtest.NewIntent(id, "4111111111111111", amount, false)
	published := time.Now()
	e.Publish(in)
	select {
	case <-entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the pod never reached the charge")
	}
	e.Start(v, worker.TestConfig{}) // a second pod
	time.Sleep(time.Until(published.Add(1500 * time.Millisecond)))
	e.Publish(in) // outside the duplicate window: a message the other pods work on

	// Wait until another delivery turned the attempt unknown (the lease
	// ended), then let the paused pod send 5 s after the lease's end: 5 s
	// before the timeout reversal is due.
	rdb := redis.NewClient(&redis.Options{Addr: e.Redis.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	var since int64
	e.WaitFor("the attempt is unknown", 60*time.Second, func() bool {
		f, err := rdb.HGetAll(context.Background(), idempotency.Key(id)).Result()
		if err != nil || f["s"] != idempotency.StateUnknown {
			return false
		}
		since, _ = strconv.ParseInt(f["u"], 10, 64)
		return since > 0
	})
	time.Sleep(time.Until(time.UnixMilli(since).Add(5 * time.Second)))
	if err := e.SB.SetFaults(sandbox.Faults{HoldInFlight: &sandbox.Hold{For: sandbox.Duration(8 * time.Second), Amount: amount}}); err != nil {
		t.Fatal(err)
	}
	close(release)
	// The paused pod resumes past its send deadline (the lease's end less
	// payment.SendMargin): it gives the charge up unsent. Before the fix it
	// sent it, CyberSource held it in flight, and the timeout reversal found
	// nothing to reverse.
	txn1 := intent.TransactionID(id, 1)
	time.Sleep(3 * time.Second)
	for _, f := range e.SB.Ledger().InFlight {
		if f.TransactionID == txn1 {
			t.Errorf("attempt 1 was sent after its lease had ended (transactionId %s)", txn1)
		}
	}
	if err := e.SB.SetFaults(sandbox.Faults{}); err != nil {
		t.Fatal(err)
	}
	msDrained(e)
	time.Sleep(12 * time.Second) // the held charge lands; late publishes

	l := e.SB.Ledger()
	cs := msCharges(l, "REF-"+id)
	t.Logf("charges %s; timeout reversals that found an original in flight: %d", msDescribeCharges(cs), l.InFlightMisses())
	t.Logf("results %v; dead letters %s", msStatuses(msResultsFor(e, id)), msDescribe(msLettersFor(e, id)))
	if n := l.LiveCharges()["REF-"+id]; n != 1 {
		t.Errorf("%d live charges for one intent, want 1: %s", n, msDescribeCharges(cs))
	}
	for _, c := range cs {
		if c.Live && c.TransactionID == txn1 {
			reported := false
			for _, lt := range msLettersFor(e, id) {
				reported = reported || lt.Class == "unknown-outcome"
			}
			if !reported {
				t.Errorf("attempt 1 (%s) is live and no unknown-outcome dead letter reports it", c.ID)
			}
		}
	}
}

// TestAdversaryMsgIDCardNumberInTraces: upstream (by mistake or on purpose)
// puts a card number in the Nats-Msg-Id of an intent, once on a valid
// merchant subject and once on a subject whose merchant token is the card
// number. The worker refuses both and takes care to mask the digits in its
// logs and dead letters (redact.Digits), but the payment span carries the
// raw header and subject token as attributes (payflow.intent_id,
// payflow.merchant_id), and spans leave the process for the collector.
func TestAdversaryMsgIDCardNumberInTraces(t *testing.T) {
	const pan = "4111111111111111"
	exp := tracetest.NewInMemoryExporter()
	tr := tracing.New(sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp)))
	e := systemtest.New(t, sandbox.Config{}, false)
	e.Start(e.Vars(nil), worker.TestConfig{Tracing: tr})
	b, _ := json.Marshal(systemtest.NewIntent("adv-msgid-pan", pan, "20.00", false))
	e.PublishRaw(pan, merchantA, b)
	e.PublishRaw("adv-subject-pan", pan, []byte(`{}`))
	e.WaitFor("both refused", 30*time.Second, func() bool { return len(msLetters(e)) >= 2 })
	time.Sleep(time.Second)
	for _, sp := range exp.GetSpans() {
		for _, a := range sp.Attributes {
			if strings.Contains(a.Value.Emit(), pan) {
				t.Errorf("span %q attribute %s carries the card number: %q", sp.Name, a.Key, a.Value.Emit())
			}
		}
	}
	for _, line := range strings.Split(e.Logs.String(), "\n") {
		if strings.Contains(line, pan) {
			t.Errorf("a log line carries the card number: %s", line)
		}
	}
}
