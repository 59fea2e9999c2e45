package worker_test

import (
	"sync"
	"testing"
	"time"

	"github.com/ttcpay/payflow/internal/deadletter"
	"github.com/ttcpay/payflow/internal/intent"
	"github.com/ttcpay/payflow/internal/sandbox"
	"github.com/ttcpay/payflow/internal/systemtest"
	"github.com/ttcpay/payflow/internal/worker"
)

func op(id, operation, paymentIntentID, amount string) *intent.Intent {
	in := &intent.Intent{Version: 1, IntentID: id, Integrator: "costco", MerchantID: "ttc_ttusas_m",
		Operation: operation, PaymentIntentID: paymentIntentID, Reference: "REF-" + id}
	if amount != "" {
		in.Amount, in.Currency = amount, "USD"
	}
	return in
}

func waitResult(e *systemtest.Env, id string) intent.Result {
	e.T().Helper()
	var r intent.Result
	e.WaitFor("result of "+id, 20*time.Second, func() bool {
		var ok bool
		r, ok = e.Results()[id]
		return ok
	})
	return r
}

func chargeOf(l sandbox.Ledger, id string) sandbox.Charge {
	for _, c := range l.Charges {
		if c.ID == id {
			return c
		}
	}
	return sandbox.Charge{}
}

func TestCardOnFileCITThenMITs(t *testing.T) {
	e := systemtest.New(t, sandbox.Config{}, false)
	e.Start(e.Vars(nil), worker.TestConfig{})
	cit := systemtest.NewIntent("cof-cit", "4111111111111111", "50.00", true)
	cit.Tokenize = true
	cit.Credential = &intent.Credential{Type: intent.CredentialCITStore, Reason: "recurring"}
	e.Publish(cit)
	r := waitResult(e, "cof-cit")
	if !r.Authorized() || r.NetworkTransactionID == "" || r.Tokens == nil || r.Tokens.PaymentInstrumentID == "" {
		t.Fatalf("CIT result %+v", r)
	}
	mit := func(id, reason string) *intent.Intent {
		in := systemtest.NewIntent(id, "", "20.00", true)
		in.Card = nil
		in.StoredCard = &intent.StoredCard{PaymentInstrumentID: r.Tokens.PaymentInstrumentID, Brand: "visa"}
		in.Credential = &intent.Credential{Type: intent.CredentialMIT, Reason: reason, PreviousTransactionID: r.NetworkTransactionID}
		return in
	}
	e.Publish(mit("cof-recurring", "recurring"))
	rec := waitResult(e, "cof-recurring")
	e.Publish(mit("cof-noshow", "no_show"))
	ns := waitResult(e, "cof-noshow")
	if !rec.Authorized() || !ns.Authorized() {
		t.Fatalf("MITs: %+v %+v", rec, ns)
	}
	l := e.SB.Ledger()
	c, m1, m2 := chargeOf(l, r.CyberSourceID), chargeOf(l, rec.CyberSourceID), chargeOf(l, ns.CyberSourceID)
	if c.Credential.InitiatorType != "customer" || !c.Credential.CredentialStoredOnFile || !c.TokenCreated {
		t.Fatalf("CIT at CyberSource: %+v", c.Credential)
	}
	if m1.Credential.InitiatorType != "merchant" || !m1.Credential.StoredCredentialUsed || m1.CommerceIndic != "recurring" ||
		m1.Credential.PreviousTransactionID != r.NetworkTransactionID {
		t.Fatalf("MIT recurring at CyberSource: %+v %s", m1.Credential, m1.CommerceIndic)
	}
	// Visa: the last successful transaction of the series, i.e. the recurring MIT.
	if m2.Credential.Reason != "4" || m2.Credential.PreviousTransactionID != rec.NetworkTransactionID {
		t.Fatalf("MIT no-show at CyberSource: %+v (want previous %s)", m2.Credential, rec.NetworkTransactionID)
	}
	if n := len(e.SB.Ledger().Callbacks); n > 3 {
		t.Fatalf("%d callbacks", n)
	}
	e.WaitFor("three callbacks", 10*time.Second, func() bool { return len(e.SB.Ledger().Callbacks) == 3 })
}

func TestSettlementOperations(t *testing.T) {
	e := systemtest.New(t, sandbox.Config{}, false)
	var mu sync.Mutex
	crashed := map[string]bool{}
	e.Start(e.Vars(nil), worker.TestConfig{AfterRecord: func(id string) bool {
		mu.Lock()
		defer mu.Unlock()
		if id == "refund-1" && !crashed[id] {
			crashed[id] = true
			return true // crash after the refund is recorded, before the ack
		}
		return false
	}})

	// Authorize only, then capture all.
	e.Publish(systemtest.NewIntent("auth-1", "4111111111111111", "80.00", false))
	a1 := waitResult(e, "auth-1")
	e.Publish(op("cap-1", "capture", "auth-1", ""))
	if r := waitResult(e, "cap-1"); r.Status != intent.StatusCaptured || r.Amount != "80.00" || r.PaymentID != a1.CyberSourceID {
		t.Fatalf("capture %+v", r)
	}
	if c := chargeOf(e.SB.Ledger(), a1.CyberSourceID); c.CapturedAmount != "80.00" {
		t.Fatalf("ledger %+v", c)
	}

	// Partial capture, then reversal of the rest.
	e.Publish(systemtest.NewIntent("auth-2", "4111111111111111", "100.00", false))
	a2 := waitResult(e, "auth-2")
	e.Publish(op("cap-2", "capture", "auth-2", "60.00"))
	waitResult(e, "cap-2")
	e.Publish(op("rev-2", "reverse", "auth-2", ""))
	if r := waitResult(e, "rev-2"); r.Status != intent.StatusReversed || r.Amount != "40.00" {
		t.Fatalf("reversal %+v", r)
	}
	if c := chargeOf(e.SB.Ledger(), a2.CyberSourceID); c.CapturedAmount != "60.00" || c.ReversedAmount != "40.00" {
		t.Fatalf("ledger %+v", c)
	}
	// Beyond what is left: refused before any call.
	before := e.SB.Ledger()
	e.Publish(op("cap-2b", "capture", "auth-2", "1.00"))
	if r := waitResult(e, "cap-2b"); r.Status != intent.StatusRejected {
		t.Fatalf("over-capture %+v", r)
	}
	if c := chargeOf(e.SB.Ledger(), a2.CyberSourceID); c.CapturedAmount != chargeOf(before, a2.CyberSourceID).CapturedAmount {
		t.Fatal("the over-capture reached CyberSource")
	}

	// Sale, then a refund redelivered after a crash: refunded once.
	e.Publish(systemtest.NewIntent("sale-1", "4111111111111111", "45.00", true))
	s1 := waitResult(e, "sale-1")
	e.Publish(op("refund-1", "refund", "sale-1", "15.00"))
	if r := waitResult(e, "refund-1"); r.Status != intent.StatusRefunded {
		t.Fatalf("refund %+v", r)
	}
	mu.Lock()
	if !crashed["refund-1"] {
		t.Fatal("the crash hook did not fire")
	}
	mu.Unlock()
	time.Sleep(500 * time.Millisecond)
	if c := chargeOf(e.SB.Ledger(), s1.CyberSourceID); len(c.Refunds) != 1 || c.RefundedAmount != "15.00" {
		t.Fatalf("refunds %v (%s)", c.Refunds, c.RefundedAmount)
	}
	// The same refund intent published again: nothing new.
	e.Publish(op("refund-1", "refund", "sale-1", "15.00"))
	e.Publish(op("refund-2", "refund", "sale-1", "40.00")) // more than the 30.00 left
	if r := waitResult(e, "refund-2"); r.Status != intent.StatusRejected {
		t.Fatalf("over-refund %+v", r)
	}
	if c := chargeOf(e.SB.Ledger(), s1.CyberSourceID); len(c.Refunds) != 1 {
		t.Fatalf("refunds %v", c.Refunds)
	}
	// Void the sale's remaining capture? It is refunded in part: refused.
	e.Publish(op("void-1", "void", "sale-1", ""))
	if r := waitResult(e, "void-1"); r.Status != intent.StatusRejected {
		t.Fatalf("void of a refunded sale %+v", r)
	}
	// A sale voided.
	e.Publish(systemtest.NewIntent("sale-2", "4111111111111111", "12.00", true))
	s2 := waitResult(e, "sale-2")
	e.Publish(op("void-2", "void", "sale-2", ""))
	if r := waitResult(e, "void-2"); r.Status != intent.StatusVoided {
		t.Fatalf("void %+v", r)
	}
	if c := chargeOf(e.SB.Ledger(), s2.CyberSourceID); !c.Voided || c.Live {
		t.Fatalf("ledger %+v", c)
	}
	// A capture naming the payment by its CyberSource id.
	e.Publish(systemtest.NewIntent("auth-3", "4111111111111111", "30.00", false))
	a3 := waitResult(e, "auth-3")
	byID := op("cap-3", "capture", "", "")
	byID.PaymentID = a3.CyberSourceID
	e.Publish(byID)
	if r := waitResult(e, "cap-3"); r.Status != intent.StatusCaptured || r.Amount != "30.00" {
		t.Fatalf("capture by paymentId %+v", r)
	}
	// Every refusal is a dead letter with its reason.
	rejected := 0
	for _, m := range e.DeadLetters() {
		if m.Headers().Get(deadletter.HeaderClass) == "rejected" {
			rejected++
		}
	}
	if rejected != 3 {
		t.Fatalf("%d rejected dead letters, want 3", rejected)
	}
}

func TestSettlementWaitsForItsPayment(t *testing.T) {
	e := systemtest.New(t, sandbox.Config{Faults: sandbox.Faults{Latency: map[string]sandbox.Latency{"payments": {Fixed: sandbox.Duration(500 * time.Millisecond)}}}}, false)
	e.Start(e.Vars(nil), worker.TestConfig{})
	// The capture arrives before its payment is settled: it waits for it.
	e.Publish(op("early-cap", "capture", "late-auth", ""))
	time.Sleep(200 * time.Millisecond)
	e.Publish(systemtest.NewIntent("late-auth", "4111111111111111", "10.00", false))
	if r := waitResult(e, "early-cap"); r.Status != intent.StatusCaptured {
		t.Fatalf("%+v", r)
	}
}

// TestSettlementUnknownOutcome: a capture and a refund whose answers are lost
// are cancelled with a timeout void of their transactionId, then sent again:
// each is applied exactly once.
func TestSettlementUnknownOutcome(t *testing.T) {
	e := systemtest.New(t, sandbox.Config{}, false)
	e.Start(e.Vars(nil), worker.TestConfig{})
	e.Publish(systemtest.NewIntent("u-auth", "4111111111111111", "70.00", false))
	auth := waitResult(e, "u-auth")
	e.Publish(systemtest.NewIntent("u-sale", "4111111111111111", "50.00", true))
	sale := waitResult(e, "u-sale")

	_ = e.SB.SetFaults(sandbox.Faults{CutAfterFollowUpRate: 1})
	e.Publish(op("u-cap", "capture", "u-auth", "70.00"))
	e.Publish(op("u-ref", "refund", "u-sale", "20.00"))
	e.WaitFor("both operations reach CyberSource", 10*time.Second, func() bool {
		c, s := chargeOf(e.SB.Ledger(), auth.CyberSourceID), chargeOf(e.SB.Ledger(), sale.CyberSourceID)
		return c.CapturedAmount != "" && s.RefundedAmount != ""
	})
	_ = e.SB.SetFaults(sandbox.Faults{})

	if r := waitResult(e, "u-cap"); r.Status != intent.StatusCaptured || r.Attempts != 2 {
		t.Fatalf("capture %+v", r)
	}
	if r := waitResult(e, "u-ref"); r.Status != intent.StatusRefunded || r.Attempts != 2 {
		t.Fatalf("refund %+v", r)
	}
	l := e.SB.Ledger()
	if c := chargeOf(l, auth.CyberSourceID); c.CapturedAmount != "70.00" {
		t.Fatalf("captured %q, want 70.00 once", c.CapturedAmount)
	}
	if s := chargeOf(l, sale.CyberSourceID); s.RefundedAmount != "20.00" {
		t.Fatalf("refunded %q (%v), want 20.00 once", s.RefundedAmount, s.Refunds)
	}
	voids := 0
	for _, tr := range l.TimeoutReversals {
		if tr.Kind == "void" && tr.Found {
			voids++
		}
	}
	if voids != 2 {
		t.Fatalf("%d timeout voids of lost operations, want 2 (%+v)", voids, l.TimeoutReversals)
	}
}
