package payment_test

// Adversarial review, fifth round (branch adversary5): unit proofs with the
// in-memory store and a scripted CyberSource. Each test is expected to FAIL
// on the code it was written against; each failure is a break.
//
// Run: go test -count=1 -p 1 -run 'TestAdversary5' ./internal/payment/

import (
	"testing"
	"time"

	"github.com/ttcpay/payflow/internal/cybs"
	"github.com/ttcpay/payflow/internal/idempotency"
	"github.com/ttcpay/payflow/internal/intent"
	"github.com/ttcpay/payflow/internal/payment"
)

// TestAdversary5OtherCardTakesACardlessRecord: a pod without the card key
// ends intent A (card 1111) with a "config" letter; its record holds only
// the cardless part "|G". Intent B, the same intentId reused by the
// merchant for another card (4444), same amount, reaches a pod with the
// key: nothing to compare, so it is not a conflict. It is answered with
// A's outcome, and its claim writes B's card part into A's record. When
// the operator replays A's letter (the key is now deployed, as the config
// letter asks), A is CONFLICT and never charged; B's own letter, replayed,
// reopens the record and charges card 4444 under A's intentId.
func TestAdversary5OtherCardTakesACardlessRecord(t *testing.T) {
	b := newBed(t, ok201(cybs.StatusAuthorized), ok201(cybs.StatusAuthorized))
	box := cardBox{}
	keyed, keyless := b.pod(payment.Config{Cards: box}, staticCreds{}), b.pod(payment.Config{}, staticCreds{})
	a := sealed(baseIntent("take-1", "m1", "100.00", cardApproved, false), box, "a")
	other := sealed(baseIntent("take-1", "m1", "100.00", "5555555555554444", false), box, "b")

	d := work(keyless, a, 1, b.now, 0)
	t.Logf("A on the keyless pod: %s; record f=%q", describe(d), b.store.Fields(idempotency.Key("take-1"))["f"])
	b.now = b.now.Add(10 * time.Minute)
	d = work(keyed, other, 1, b.now, 0)
	t.Logf("B (card 4444) on the pod with the key: %s; record f=%q", describe(d), b.store.Fields(idempotency.Key("take-1"))["f"])
	b.now = b.now.Add(10 * time.Minute)
	dA := work(keyed, a, 1, b.now, 9) // the operator replays A's config letter
	t.Logf("A's letter replayed: %s; calls %v", describe(dA), b.cs.calls)
	dB := work(keyed, other, 1, b.now, 10) // and B's (it carries B's payload)
	t.Logf("B's letter replayed: %s; calls %v", describe(dB), b.cs.calls)

	if dA.Result != nil && dA.Result.Status == intent.StatusConflict {
		t.Errorf("intent A (card 1111), the first under intentId take-1, is answered CONFLICT when its config letter is replayed: B's claim (another card, answered with A's outcome instead of CONFLICT) wrote its card part into A's record")
	}
	if dB.Result != nil && dB.Result.Status == cybs.StatusAuthorized {
		t.Errorf("intent B (card 4444), which reused intentId take-1, is charged (%s) under A's record", describe(dB))
	}
}

// TestAdversary5SameLastFourPoisonsAChargedRecord: a pod without
// FINGERPRINT_KEYS charges A (4111 11.. .... 1111): the record holds "u1"
// only. Intent B reuses the intentId with another card that shares A's
// BIN, last four and expiry (4111 1110 0007 1111); on a pod WITH a
// fingerprint key it is the same card to "u1", so it is answered with A's
// AUTHORIZED result, and its claim merges B's keyed part (the whole
// number) into A's record. A's own redelivery on that pod is then a
// CONFLICT: intent A, charged and told AUTHORIZED, gets a second terminal
// outcome (a CONFLICT result and dead letter) for the same intentId.
func TestAdversary5SameLastFourPoisonsAChargedRecord(t *testing.T) {
	b := newBed(t, ok201(cybs.StatusAuthorized), ok201(cybs.StatusAuthorized))
	plain := b.pod(payment.Config{}, staticCreds{})
	keyedFP := b.pod(payment.Config{FingerprintKeys: [][]byte{[]byte("0123456789abcdef0123456789abcdef")}}, staticCreds{})
	a := baseIntent("poison-1", "m1", "100.00", "4111111111111111", false)
	other := baseIntent("poison-1", "m1", "100.00", "4111111000071111", false)

	if d := work(plain, a, 1, b.now, 0); d.Result == nil || d.Result.Status != cybs.StatusAuthorized {
		t.Fatalf("A: %s", describe(d))
	}
	d := work(keyedFP, other, 1, b.now, 0)
	t.Logf("B (same BIN, last four, expiry) on the keyed pod: %s; record f=%q", describe(d), b.store.Fields(idempotency.Key("poison-1"))["f"])
	d = work(keyedFP, a, 2, b.now, 0) // A redelivered (its ack was lost)
	t.Logf("A redelivered on the keyed pod: %s; calls %v", describe(d), b.cs.calls)
	if d.Result != nil && d.Result.Status == intent.StatusConflict {
		t.Errorf("intent A, charged and answered AUTHORIZED, is answered %s on its redelivery: another card's claim that the record did not reject wrote its keyed fingerprint into A's record", describe(d))
	}
}

// TestAdversary5RefusedSealedCardCancelsTheFirstCharge: the fix for
// TestAdversary4RefusedOtherCardCancelsTheFirstCharge (refusedFingerprint)
// compares the card only when the refusing pod can read it. Intent A
// (sealed card 1111) is charged by a pod with the key and its answer is
// lost: unknown. Intent B reuses the intentId with another sealed card
// (4444) and an address CyberSource would refuse (a bad email), and
// reaches a pod without the card key (a rotation not yet everywhere): it
// claims with the cardless part, is no conflict, resolves A's attempt (the
// timeout reversal cancels A's authorization) and ends the intentId
// INVALID, which no replay reopens. A, valid, is answered INVALID on its
// redelivery and is never charged.
func TestAdversary5RefusedSealedCardCancelsTheFirstCharge(t *testing.T) {
	b := newBed(t, cut, ok201("REVERSED"), ok201(cybs.StatusAuthorized))
	box := cardBox{}
	keyed, keyless := b.pod(payment.Config{Cards: box}, staticCreds{}), b.pod(payment.Config{}, staticCreds{})
	first := sealed(baseIntent("reuse-5", "m1", "100.00", cardApproved, false), box, "a")
	other := sealed(baseIntent("reuse-5", "m1", "100.00", "5555555555554444", false), box, "b")
	other.BillTo.Email = "not-an-email"
	t0 := b.now
	d := work(keyed, first, 1, t0, 0)
	t.Logf("first: %s; record %s", describe(d), b.state("reuse-5"))
	if d := work(keyed, other, 1, t0, 0); d.Result == nil || d.Result.Status != intent.StatusConflict {
		t.Fatalf("control: on the pod with the key the refused other card is a conflict: %s", describe(d))
	}
	b.now = t0.Add(2 * time.Minute)
	d = work(keyless, other, 2, b.now, 0)
	t.Logf("refused other sealed card on the keyless pod: %s; record %s; calls %v", describe(d), b.state("reuse-5"), b.cs.calls)
	d = work(keyed, first, 2, t0, 0)
	t.Logf("first, redelivered: %s; record %s; calls %v", describe(d), b.state("reuse-5"), b.cs.calls)
	if d.Result != nil && d.Result.Status == intent.StatusInvalid {
		t.Errorf("the first intent (card 1111, valid) is answered %s on its redelivery: another intent's refused message (sealed card 4444, unreadable here) resolved and ended its record", describe(d))
	}
}

// TestUnreadableOtherCardLeavesTheRecordIdle: the cardConfig side of
// TestAdversary5RefusedSealedCardCancelsTheFirstCharge. Intent B, valid,
// reuses the intentId with another sealed card and reaches a pod without
// the card key while A's attempt is unknown. It resolves that attempt (a
// timeout reversal needs no card) but, having proved nothing about the
// card, leaves the record idle and is dead-lettered "config" without
// writing it; A's redelivery charges A. Before, B ended the record with its
// config letter and A was answered FAILED, never charged.
func TestUnreadableOtherCardLeavesTheRecordIdle(t *testing.T) {
	b := newBed(t, cut, ok201("REVERSED"), ok201(cybs.StatusAuthorized))
	box := cardBox{}
	keyed, keyless := b.pod(payment.Config{Cards: box}, staticCreds{}), b.pod(payment.Config{}, staticCreds{})
	first := sealed(baseIntent("reuse-6", "m1", "100.00", cardApproved, false), box, "a")
	other := sealed(baseIntent("reuse-6", "m1", "100.00", "5555555555554444", false), box, "b")
	t0 := b.now
	work(keyed, first, 1, t0, 0)
	b.now = t0.Add(2 * time.Minute)
	d := work(keyless, other, 1, b.now, 0)
	if d.Letter == nil || d.Letter.Class != "config" {
		t.Fatalf("the other card on the keyless pod: %s, want a config dead letter", describe(d))
	}
	if st := b.state("reuse-6"); st != "idle" {
		t.Errorf("record %s after the keyless pod cancelled an attempt it could not match, want idle", st)
	}
	d = work(keyed, first, 2, b.now, 0)
	if d.Result == nil || d.Result.Status != cybs.StatusAuthorized {
		t.Errorf("the first intent, redelivered: %s; calls %v; want AUTHORIZED", describe(d), b.cs.calls)
	}
}
