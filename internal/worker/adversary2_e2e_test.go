package worker_test

// Adversarial review, second round (branch adversary2): end-to-end proofs
// (real NATS JetStream, Redis, sandbox, workers) against the code after
// 6e84a45 and f663d70. Each test is expected to FAIL on that code; each
// failure is a break.
//
// Run: go test -count=1 -run 'TestAdversary2' ./internal/worker/

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ttcpay/payflow/internal/deadletter"
	"github.com/ttcpay/payflow/internal/intent"
	"github.com/ttcpay/payflow/internal/sandbox"
	"github.com/ttcpay/payflow/internal/streams"
	"github.com/ttcpay/payflow/internal/systemtest"
	"github.com/ttcpay/payflow/internal/worker"
)

// TestAdversary2ReplayDeletesTheOnlyLetter: an intent ends with a dead
// letter that its record keeps (here "unknown-outcome": a partial reversal
// whose answer was lost may have reversed the money, and only a person can
// tell). Within the duplicate window (DUPLICATE_WINDOW, 10 min by default)
// an operator runs `publisher dlq replay` (no class filter: "replays are
// safe"). Replay republishes the letter and DELETES it from the DLQ
// stream. The worker finds the record done, does not reopen (not a
// reopenable class) and re-emits the recorded letter, whose Nats-Msg-Id
// ("dlq:record:<id>:<attempt>:<class>") is the deleted letter's: JetStream
// drops it as a duplicate (deleting a message does not forget its id), and
// the delivery is acked. The DLQ no longer holds any letter for an intent
// whose outcome only a person can settle (invariant 2: "a dead letter a
// person sees"). The same happens to a "config" letter replayed to a pod
// that still lacks the card key, and to any letter the record re-emits.
func TestAdversary2ReplayDeletesTheOnlyLetter(t *testing.T) {
	// Control: outside the duplicate window the re-emitted letter is stored
	// again, which shows that the window is what drops it.
	t.Run("ControlOutsideTheWindow", func(t *testing.T) {
		if n := replayUnknownOutcome(t, map[string]string{"DUPLICATE_WINDOW": "1s"}, 2*time.Second); n != 1 {
			t.Fatalf("control: %d letters after the replay, want the re-emitted one", n)
		}
	})
	t.Run("InsideTheWindow", func(t *testing.T) {
		if n := replayUnknownOutcome(t, nil, 0); n == 0 {
			t.Errorf("after the replay of the unknown-outcome letter the DLQ holds no letter for adv2-rev: the replay deleted it and the worker's re-emitted letter was dropped as a duplicate; only the UNKNOWN_OUTCOME result is left")
		}
	})
}

// replayUnknownOutcome ends a partial reversal with an unknown-outcome
// letter, waits pause, replays every letter, and returns how many letters
// the DLQ holds once the replay was worked on.
func replayUnknownOutcome(t *testing.T, vars map[string]string, pause time.Duration) int {
	e := systemtest.New(t, sandbox.Config{}, false)
	e.Start(e.Vars(vars), worker.TestConfig{})
	pay := systemtest.NewIntent("adv2-pay", "4111111111111111", "40.00", false)
	e.Publish(pay)
	e.WaitFor("the authorization", 20*time.Second, func() bool { return e.Results()["adv2-pay"].Authorized() })

	if err := e.SB.SetFaults(sandbox.Faults{CutAfterFollowUpRate: 1}); err != nil {
		t.Fatal(err)
	}
	rev := &intent.Intent{Version: 1, IntentID: "adv2-rev", Integrator: "costco", MerchantID: pay.MerchantID, Reference: "REF-adv2-rev",
		Operation: intent.OpReverse, PaymentIntentID: "adv2-pay", Amount: "5.00", Currency: "USD"}
	e.Publish(rev)
	e.WaitFor("the unknown-outcome letter", 20*time.Second, func() bool { return len(e.DeadLetters()) == 1 })
	if c := e.DeadLetters()[0].Headers().Get(deadletter.HeaderClass); c != string(deadletter.ClassUnknownOutcome) {
		t.Fatalf("dead letter class %q, want unknown-outcome", c)
	}
	if len(e.SB.Ledger().FollowUps) == 0 {
		t.Fatalf("the sandbox did not apply the partial reversal")
	}
	_ = e.SB.SetFaults(sandbox.Faults{})
	time.Sleep(pause)

	sum, err := deadletter.Replay(context.Background(), e.JS, deadletter.Filter{}, false, nil)
	if err != nil || sum.Replayed != 1 {
		t.Fatalf("replay: %+v %v", sum, err)
	}
	// Wait until the replayed message was worked on and acked.
	e.WaitFor("the replay's delivery", 20*time.Second, func() bool {
		return strings.Contains(e.Logs.String(), "re-emitting its result") && consumerIdle(t, e)
	})
	time.Sleep(time.Second)
	// The letters the DLQ stream holds now (the rig's reader keeps the
	// deleted ones it has seen; the stream also holds the replay note).
	letters, err := deadletter.List(context.Background(), e.JS, deadletter.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	n := len(letters)
	t.Logf("letters after the replay: %d; the sandbox applied %d follow-up(s); result %s", n, len(e.SB.Ledger().FollowUps), e.Results()["adv2-rev"].Status)
	return n
}

// TestAdversary2ReplayChargesAnInvalidIntent: the design says a bad
// intent goes to the DLQ with an INVALID result and is "never charged",
// and the README tells operators to have upstream "publish a corrected
// intent (new intentId)". An intent refused only because of its message
// (Nats-Msg-Id missing, or not the intentId) is, on its own, a valid
// intent: the scrubber seals its card to the dead-letter key and leaves
// the letter replayable. Upstream publishes the corrected intent under a
// new intentId (charged), then the operator runs `publisher dlq replay`
// ("replays are safe"). The replay carries a replay Nats-Msg-Id, which
// checkMsgID accepts, no record stops it (an invalid intent never claims
// one), and it is charged: upstream, told INVALID, now gets AUTHORIZED for
// the first intentId too, and the cardholder has two live charges for one
// purchase (invariants 1 and 2).
func TestAdversary2ReplayChargesAnInvalidIntent(t *testing.T) {
	e := systemtest.New(t, sandbox.Config{}, false)
	vars, _ := dlqKeys(t)
	e.Start(e.Vars(vars), worker.TestConfig{})
	bad := systemtest.NewIntent("adv2-inv-1", "4111111111111111", "61.00", true)
	b, _ := json.Marshal(bad)
	e.PublishRaw("", bad.MerchantID, b) // no Nats-Msg-Id: refused as invalid
	e.WaitFor("the INVALID result", 20*time.Second, func() bool { return e.Results()["adv2-inv-1"].Status == intent.StatusInvalid })
	if n := len(e.DeadLetters()); n != 1 {
		t.Fatalf("%d dead letters, want the invalid one", n)
	}
	fixed := systemtest.NewIntent("adv2-inv-2", "4111111111111111", "61.00", true)
	fixed.BookingID = bad.BookingID
	e.Publish(fixed) // upstream's corrected intent, new intentId
	e.WaitFor("the corrected intent's charge", 20*time.Second, func() bool { return e.Results()["adv2-inv-2"].Authorized() })

	sum, err := deadletter.Replay(context.Background(), e.JS, deadletter.Filter{}, false, nil)
	t.Logf("replay: %+v %v", sum, err)
	e.WaitFor("the replay's delivery", 20*time.Second, func() bool { return sum.Replayed == 0 || consumerIdle(t, e) })
	time.Sleep(time.Second)
	live := 0
	for _, c := range e.SB.Ledger().Charges {
		if c.MerchantID == bad.MerchantID && c.ReversedAmount == "" && c.VoidedAmount == "" {
			live++
		}
	}
	if r := e.Results()["adv2-inv-1"]; r.Status != intent.StatusInvalid || live != 1 {
		t.Errorf("the intent refused INVALID (never charged, per the design) was charged by the replay: its last result is %s, and booking %s has %d live charges", r.Status, bad.BookingID, live)
	}
}

// consumerIdle: the payments consumer has nothing pending or unacked.
func consumerIdle(t *testing.T, e *systemtest.Env) bool {
	t.Helper()
	c, err := e.JS.Consumer(context.Background(), streams.StreamIntents, streams.ConsumerPayments)
	if err != nil {
		return false
	}
	info, err := c.Info(context.Background())
	return err == nil && info.NumPending == 0 && info.NumAckPending == 0
}
