package payment_test

// Adversarial review (branch adversary): unit proofs with the in-memory
// store and a scripted CyberSource. Each test is expected to FAIL on the
// code it was written against; each failure is a break.

import (
	"errors"
	"testing"
	"time"

	"github.com/ttcpay/payflow/internal/cybs"
	"github.com/ttcpay/payflow/internal/idempotency"
	"github.com/ttcpay/payflow/internal/intent"
	"github.com/ttcpay/payflow/internal/payment"
)

// TestAdversaryResendForgottenAfterRelease: a void whose answer was lost is
// resolved by sending it again (attempt 2, "resent"). A transient failure
// before that resend goes out (here Redis refuses the reservation once; no
// credentials, a 401 or a dial error do the same) gives the attempt back
// with Release: the record is idle, and the next delivery claims attempt 3
// as a fresh void. CyberSource answers NOT_VOIDABLE (attempt 1 voided the
// sale), which a fresh void reads as a refusal: the void that applied is
// dead-lettered "rejected" with a REJECTED result, and its reservation is
// given back (the ledger then says the sale is not voided).
func TestAdversaryResendForgottenAfterRelease(t *testing.T) {
	b := newBed(t, cut, refused400("NOT_VOIDABLE"))
	b.authorized(t, "pay", true)
	in := opIntent("void-1", "m1", intent.OpVoid, "pay", "")
	d := b.deliver(in, 1) // attempt 1: applied at CyberSource, answer lost
	check(t, b, in.IntentID, d, want{payment.Wait, "", "", idempotency.StateUnknown})

	b.now = b.now.Add(2 * time.Minute)
	failed := false
	b.store.Fail = func(op string) error {
		if op == "reserve" && !failed {
			failed = true
			return errors.New("redis: i/o timeout")
		}
		return nil
	}
	d = b.deliver(in, 2) // resolution: attempt 2 would resend, Redis fails first
	t.Logf("delivery 2: %s (%s), record %s", d.Action, d.Reason, b.state(in.IntentID))

	b.now = b.now.Add(time.Minute)
	d = b.deliver(in, 3) // attempt 3
	status := ""
	if d.Result != nil {
		status = d.Result.Status
	}
	t.Logf("delivery 3: %s %s, calls %v, ledger p_void=%q", d.Action, status, b.cs.calls, b.store.Fields(idempotency.Key("pay"))["p_void"])
	if status == intent.StatusRejected {
		t.Errorf("a void that applied (attempt 1) is reported %s and dead-lettered %q; want VOIDED or UNKNOWN_OUTCOME", status, d.Letter.Class)
	}
	if v := b.store.Fields(idempotency.Key("pay"))["p_void"]; v != "1" {
		t.Errorf("the ledger says the voided sale is not voided (p_void=%q): its reservation was given back", v)
	}
}

// TestAdversaryResentReversalOfTheRest: an authorization of 100.00 is
// partly captured (5.00); a reversal of the rest (no amount: 95.00) loses
// its answer and is sent again. The first one applied, so nothing is left
// to reverse and the rest of the authorization is the captured part:
// CyberSource answers TRANSACTION_ALREADY_SETTLED (what the simulation's
// model answers, and one of the reversal endpoint's documented reasons).
// For a request sent again after its own unknown outcome that answer fits
// "the first applied" as well as "it cannot apply", yet it is read as a
// refusal: REJECTED, dead letter "rejected", reservation given back.
func TestAdversaryResentReversalOfTheRest(t *testing.T) {
	b := newBed(t, ok201("PENDING"), cut, refused400("TRANSACTION_ALREADY_SETTLED"))
	b.authorized(t, "pay", false)
	capture := opIntent("cap-1", "m1", intent.OpCapture, "pay", "5.00")
	if d := b.deliver(capture, 1); d.Action != payment.Ack || d.Result.Status != intent.StatusCaptured {
		t.Fatalf("capture: %+v", d)
	}
	rest := opIntent("rev-1", "m1", intent.OpReverse, "pay", "")
	d := b.deliver(rest, 1) // applied (95.00 reversed), answer lost
	check(t, b, rest.IntentID, d, want{payment.Wait, "", "", idempotency.StateUnknown})
	b.now = b.now.Add(2 * time.Minute)
	d = b.deliver(rest, 2)
	status := ""
	if d.Result != nil {
		status = d.Result.Status
	}
	f := b.store.Fields(idempotency.Key("pay"))
	t.Logf("delivery 2: %s %s, calls %v, ledger auth=%s cap=%s rev=%s", d.Action, status, b.cs.calls, f["p_auth"], f["p_cap"], f["p_rev"])
	if status == intent.StatusRejected {
		t.Errorf("a reversal that applied is reported %s and dead-lettered %q; want REVERSED or UNKNOWN_OUTCOME", status, d.Letter.Class)
	}
}

// TestAdversaryFingerprintIgnoresCardNumber: the fingerprint keeps the card
// as brand, last four digits and expiry. The same intentId, from the same
// merchant, for the same amount but another card with the same last four
// and expiry is not a conflict: it is answered with the first card's
// AUTHORIZED result and never charged.
func TestAdversaryFingerprintIgnoresCardNumber(t *testing.T) {
	first := baseIntent("pay-7", "m1", "42.00", "4111111111111111", false)
	other := baseIntent("pay-7", "m1", "42.00", "4012888888071111", false)
	if other.Card.Number[12:] != first.Card.Number[12:] {
		t.Fatalf("test cards must share their last four digits: %s %s", first.Card.Number[12:], other.Card.Number[12:])
	}
	b := newBed(t, ok201(cybs.StatusAuthorized), ok201(cybs.StatusAuthorized))
	if d := b.deliver(first, 1); d.Action != payment.Ack || d.Result.Status != cybs.StatusAuthorized {
		t.Fatalf("first: %+v", d)
	}
	d := b.deliver(other, 1)
	t.Logf("other card: %s, result %v, calls %v", d.Action, d.Result != nil, b.cs.calls)
	if payment.Fingerprint(first) == payment.Fingerprint(other) {
		t.Errorf("two different card numbers have the same fingerprint")
	}
	if d.Action == payment.Ack && d.Result != nil && d.Result.Status == cybs.StatusAuthorized && len(b.cs.calls) == 1 {
		t.Errorf("an intent for another card (same intentId) is answered with the first card's AUTHORIZED result and never charged")
	}
}
