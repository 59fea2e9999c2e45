package payment_test

import (
	"testing"
	"time"

	"github.com/ttcpay/payflow/internal/cybs"
	"github.com/ttcpay/payflow/internal/idempotency"
	"github.com/ttcpay/payflow/internal/intent"
	"github.com/ttcpay/payflow/internal/payment"
)

// TestAdversary4RefusedIntentTakesAnotherCardsResult: refuseWithRecord
// (8aa0bd0) claims a refused intent with its cardless fingerprint, so the
// record's card is never compared, although the refused message carries
// its plaintext card (an expired card; a plaintext card on a
// REQUIRE_ENCRYPTED_CARD pod) and Fingerprints could compare it. intentId
// reused by the merchant for another card (as in
// TestAdversary3FingerprintRolloutHidesAnotherCard) is CONFLICT when that
// card is valid, but when it is refused it is answered with the first
// card's AUTHORIZED result: "the same intentId asking for something else
// is a conflict, never a replay of another intent's result" (Fingerprint),
// and the second intent has no outcome of its own (invariant 2).
func TestAdversary4RefusedIntentTakesAnotherCardsResult(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    payment.Config
		expire bool
	}{
		{"ExpiredCard", payment.Config{}, true},
		{"PlaintextOnStrictPod", payment.Config{RequireEncryptedCard: true}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBed(t, ok201(cybs.StatusAuthorized), ok201(cybs.StatusAuthorized))
			b.now = time.Date(2026, 11, 30, 23, 59, 0, 0, time.UTC)
			first := baseIntent("reuse-1", "m1", "100.00", cardApproved, false)
			other := baseIntent("reuse-1", "m1", "100.00", "5555555555554444", false)
			if d := work(b.p, first, 1, b.now, 0); d.Action != payment.Ack || d.Result.Status != cybs.StatusAuthorized {
				t.Fatalf("first intent: %s", describe(d))
			}
			if d := work(b.p, other, 1, b.now, 0); d.Result == nil || d.Result.Status != intent.StatusConflict {
				t.Fatalf("control: another valid card under the same intentId must be a conflict: %s", describe(d))
			}
			pod := b.pod(tc.cfg, staticCreds{})
			if tc.expire {
				other.Card.ExpirationMonth, other.Card.ExpirationYear = "11", "2026"
				b.now = b.now.Add(2 * time.Minute) // December: the card has expired
			}
			d := work(pod, other, 1, b.now, 0)
			t.Logf("record fingerprint %q; refused other card: %s", b.store.Fields(idempotency.Key("reuse-1"))["f"], describe(d))
			if d.Result != nil && d.Result.Status == cybs.StatusAuthorized {
				t.Errorf("intentId reuse-1 reused with another card (last four 4444), refused on its content, is answered with the first card's %s result (card last four %q) instead of CONFLICT or INVALID",
					d.Result.Status, d.Result.CardLast4)
			}
		})
	}
}

// TestAdversary4RefusedOtherCardCancelsTheFirstCharge: the same cardless
// claim while the first card's attempt is unknown. The refused intent
// (another card, expired) resolves the first intent's attempt: it sends the
// timeout reversal of card 1111's authorization and ends intentId
// reuse-2 INVALID, so the first intent, which a valid other card could
// not touch (CONFLICT), is answered INVALID on its own redelivery.
func TestAdversary4RefusedOtherCardCancelsTheFirstCharge(t *testing.T) {
	b := newBed(t, cut, ok201("REVERSED"), ok201(cybs.StatusAuthorized))
	b.now = time.Date(2026, 11, 30, 23, 59, 0, 0, time.UTC)
	t0 := b.now
	first := baseIntent("reuse-2", "m1", "100.00", cardApproved, false)
	other := baseIntent("reuse-2", "m1", "100.00", "5555555555554444", false)
	other.Card.ExpirationMonth, other.Card.ExpirationYear = "11", "2026"
	d := work(b.p, first, 1, t0, 0)
	t.Logf("first: %s; record %s", describe(d), b.state("reuse-2"))
	b.now = t0.Add(2 * time.Minute)
	d = work(b.p, other, 1, b.now, 0)
	t.Logf("refused other card: %s; record %s; calls %v", describe(d), b.state("reuse-2"), b.cs.calls)
	d = work(b.p, first, 2, t0, 0)
	t.Logf("first, redelivered: %s; record %s; calls %v", describe(d), b.state("reuse-2"), b.cs.calls)
	if d.Result != nil && d.Result.Status == intent.StatusInvalid {
		t.Errorf("the first intent (card 1111, valid) is answered %s on its redelivery: another intent's refused message (card 4444, expired) resolved and ended its record", describe(d))
	}
}
