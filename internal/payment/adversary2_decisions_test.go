package payment_test

// Adversarial review, second round (branch adversary2): unit proofs with
// the in-memory store and a scripted CyberSource, against the code after
// 6e84a45 and f663d70. Each test is expected to FAIL on that code; each
// failure is a break.
//
// Run: go test -count=1 -run 'TestAdversary2' ./internal/payment/

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ttcpay/payflow/internal/cybs"
	"github.com/ttcpay/payflow/internal/deadletter"
	"github.com/ttcpay/payflow/internal/idempotency"
	"github.com/ttcpay/payflow/internal/intent"
	"github.com/ttcpay/payflow/internal/payment"
	"github.com/ttcpay/payflow/internal/tokencache"
	"github.com/ttcpay/payflow/internal/ttc"
)

// cardBox opens the test's encryptedCards: a pod configured with the key.
type cardBox map[string]intent.Card

func (b cardBox) Decrypt(compact string) (*intent.Card, error) {
	c, ok := b[compact]
	if !ok {
		return nil, errors.New("wrong key")
	}
	return &c, nil
}

// sealed is in with its card replaced by an encryptedCard (a compact JWE
// shape) that box opens.
func sealed(in *intent.Intent, box cardBox, name string) *intent.Intent {
	compact := "eyJhbGciOiJSU0EtT0FFUC0yNTYifQ." + name + ".aXY.Y2lwaGVy.dGFn"
	box[compact] = *in.Card
	in.Card, in.EncryptedCard = nil, compact
	return in
}

// pod is another Processor on the bed's store, clock and CyberSource.
func (b *tbed) pod(cfg payment.Config, creds payment.Credentials) *payment.Processor {
	cfg.Now = func() time.Time { return b.now }
	return payment.New(cfg, creds, b.cs, b.store, zerolog.New(io.Discard))
}

// work delivers in to pod p (published at published).
func work(p *payment.Processor, in *intent.Intent, delivered uint64, published time.Time, replayedFrom uint64) payment.Decision {
	data, _ := json.Marshal(in)
	d := payment.Delivery{Data: data, Subject: "payments.intents." + in.MerchantID, MsgID: in.IntentID,
		Delivered: delivered, Seq: 40 + delivered, Published: published}
	if replayedFrom != 0 {
		// The letters these tests replay were written at their intent's
		// first attempt.
		d.MsgID, d.ReplayedFrom, d.ReplayedAttempt = deadletter.ReplayMsgID(in.IntentID, replayedFrom), fmt.Sprint(replayedFrom), 1
	}
	return p.Work(context.Background(), d)
}

func describe(d payment.Decision) string {
	s := d.Action.String() + " to merchant " + d.Merchant
	if d.Result != nil {
		s += fmt.Sprintf(", result %s/%s %s (attempt %d)", d.Result.MerchantID, d.Result.IntentID, d.Result.Status, d.Result.Attempts)
	}
	if d.Letter != nil {
		s += ", dead letter " + string(d.Letter.Class)
	}
	return s
}

// TestAdversary2KeylessPodSkipsTheFingerprint: a pod that cannot decrypt
// an intent's card (CARD_DECRYPTION_KEYS lacks the key: a rotation that
// has not reached every pod) claims the record with an EMPTY fingerprint
// (cardConfig). The record's scripts skip the fingerprint check for an
// empty one, and a claim with none never writes one. Two interleavings:
//
//   - AnswersAnotherIntent: merchant m1's intent "shared-1" is charged. The
//     same intentId from merchant m2 (the reused-id case the fingerprint
//     exists for) reaches the keyless pod: its claim sees "done", and the
//     delivery is acked with m1's AUTHORIZED result, published on m1's
//     subject. m2 never gets a result or a dead letter: an accepted intent
//     with no visible outcome (invariant 2), instead of the "conflict"
//     letter a pod with the key gives.
//   - RecordWithoutFingerprint: the keyless pod is first. It claims m1's
//     intent "shared-2" without a fingerprint and ends it with a "config"
//     letter; the operator replays the letter once the key is deployed, and
//     Reopen (which never writes a fingerprint either) lets a pod with the
//     key charge it. The record has no fingerprint for the rest of its 45
//     days: m2's intent "shared-2", on a pod WITH the key, is acked with
//     m1's AUTHORIZED result too (invariant 2; the conflict check is gone
//     for good).
func TestAdversary2KeylessPodSkipsTheFingerprint(t *testing.T) {
	t.Run("AnswersAnotherIntent", func(t *testing.T) {
		b := newBed(t, ok201(cybs.StatusAuthorized), ok201(cybs.StatusAuthorized))
		box := cardBox{}
		keyed, keyless := b.pod(payment.Config{Cards: box}, staticCreds{}), b.pod(payment.Config{}, staticCreds{})
		a := sealed(baseIntent("shared-1", "m1", "42.00", cardApproved, false), box, "a")
		other := sealed(baseIntent("shared-1", "m2", "99.00", "5555555555554444", false), box, "b")
		if d := work(keyed, a, 1, b.now, 0); d.Action != payment.Ack || d.Result.Status != cybs.StatusAuthorized {
			t.Fatalf("m1's intent: %s", describe(d))
		}
		if d := work(keyed, other, 1, b.now, 0); d.Letter == nil || d.Letter.Class != deadletter.ClassConflict || d.Merchant != "m2" {
			t.Fatalf("control: a pod with the key must dead-letter m2's reuse as a conflict: %s", describe(d))
		}
		d := work(keyless, other, 2, b.now, 0)
		t.Logf("m2's intent on the keyless pod: %s", describe(d))
		if d.Acks() && d.Merchant != "m2" {
			t.Errorf("merchant m2's intent shared-1 is acked with %s: m2 gets no result and no dead letter (its outcome is lost), where a pod with the key dead-letters a conflict", describe(d))
		}
	})
	t.Run("RecordWithoutFingerprint", func(t *testing.T) {
		b := newBed(t, ok201(cybs.StatusAuthorized), ok201(cybs.StatusAuthorized))
		box := cardBox{}
		keyed, keyless := b.pod(payment.Config{Cards: box}, staticCreds{}), b.pod(payment.Config{}, staticCreds{})
		a := sealed(baseIntent("shared-2", "m1", "42.00", cardApproved, false), box, "a")
		other := sealed(baseIntent("shared-2", "m2", "99.00", "5555555555554444", false), box, "b")
		d := work(keyless, a, 1, b.now, 0)
		check(t, b, "shared-2", d, want{payment.DeadLetter, intent.StatusFailed, deadletter.ClassConfig, "done"})
		b.now = b.now.Add(10 * time.Minute) // the key is deployed; the operator replays the letter
		d = work(keyed, a, 1, b.now, 9)
		check(t, b, "shared-2", d, want{payment.Ack, cybs.StatusAuthorized, "", "done"})
		t.Logf("record after the reopened charge: fingerprint %q", b.store.Fields(idempotency.Key("shared-2"))["f"])

		d = work(keyed, other, 1, b.now, 0)
		t.Logf("m2's intent on a pod with the key: %s", describe(d))
		if d.Letter == nil || d.Letter.Class != deadletter.ClassConflict || d.Merchant != "m2" {
			t.Errorf("merchant m2's reuse of intentId shared-2 is not a conflict on a pod with the key (%s): the record the keyless pod created has no fingerprint, so m2's intent is lost behind m1's result", describe(d))
		}
	})
}

// TestAdversary2ResentOperationEndedFailed: a void (or full reversal)
// whose answer was lost is resolved by sending it again (the record's m
// flag, "resent"). The resend's attempt can still end in endWithLetter,
// which assumes "definitely not charged": it gives the reservation back
// and records a FAILED result with a reopenable letter, although attempt 1
// may have voided the sale.
//
//   - Config: TTC refuses credentials (no refresh token) while the resend
//     waits; the attempt is given back (Release, m kept) until the
//     configuration budget (1 h) is spent, then the next claim (resent)
//     ends FAILED with a "config" letter.
//   - Exhausted: the resend is never sent (dial refused) until the retry
//     budget (24 h) is spent: FAILED, "exhausted".
//
// Upstream is told FAILED for a void that applied (invariant 2: the
// outcome is not true), the ledger says the sale is not voided, and the
// operator's replay of the letter then ends UNKNOWN_OUTCOME: two terminal
// outcomes for one intent.
func TestAdversary2ResentOperationEndedFailed(t *testing.T) {
	t0 := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	noToken := &ttc.Error{Op: "token", Kind: ttc.KindNoRefreshToken, Status: 404}
	for _, tc := range []struct {
		name    string
		answers []answer
		creds   func(now time.Time) error
		late    time.Duration
	}{
		{"Config", []answer{cut}, func(now time.Time) error {
			if now.After(t0) {
				return noToken
			}
			return nil
		}, payment.ConfigBudgetDefault + time.Minute},
		{"Exhausted", []answer{cut, notSent, notSent}, func(time.Time) error { return nil }, payment.RetryBudgetDefault + time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBed(t, tc.answers...)
			b.authorized(t, "pay", true)
			p := b.pod(payment.Config{}, credsFunc(func() error { return tc.creds(b.now) }))
			void := opIntent("void-9", "m1", intent.OpVoid, "pay", "")
			d := work(p, void, 1, t0, 0) // applied at CyberSource, answer lost
			check(t, b, "void-9", d, want{payment.Wait, "", "", idempotency.StateUnknown})

			b.now = t0.Add(2 * time.Minute)
			d = work(p, void, 2, t0, 0) // the resolution resends the void; it cannot go out
			t.Logf("delivery 2: %s (%s), record %s, ledger p_void=%q", describe(d), d.Reason, b.state("void-9"), b.store.Fields(idempotency.Key("pay"))["p_void"])

			b.now = t0.Add(tc.late)
			d = work(p, void, 3, t0, 0)
			t.Logf("delivery 3: %s, calls %v, ledger p_void=%q", describe(d), b.cs.calls, b.store.Fields(idempotency.Key("pay"))["p_void"])
			if d.Result != nil && (d.Result.Status == intent.StatusFailed || d.Result.Status == intent.StatusRejected) {
				t.Errorf("a void that may have applied (attempt 1's answer was lost) is reported %s with a %q dead letter; want VOIDED or UNKNOWN_OUTCOME", d.Result.Status, d.Letter.Class)
			}
			if v := b.store.Fields(idempotency.Key("pay"))["p_void"]; v != "1" {
				t.Errorf("the ledger says the sale is not voided (p_void=%q) while attempt 1's void may have applied", v)
			}
		})
	}
}

// credsFunc fails with what err says at the time of the call.
type credsFunc func() error

func (f credsFunc) Get(ctx context.Context, integrator, merchant string) (*tokencache.Credentials, error) {
	if err := f(); err != nil {
		return nil, err
	}
	return staticCreds{}.Get(ctx, integrator, merchant)
}
func (credsFunc) Invalidate(context.Context, *tokencache.Credentials) error { return nil }

// TestAdversary2FingerprintKeyRollout: FINGERPRINT_KEYS is added (or
// rotated: "put the new one first") by a rolling update, so for a while
// pods with the new configuration and pods with the old one work the same
// stream. A record a new pod writes carries a fingerprint under the new
// key, which an old pod does not recognise: every claim it tries (its own
// keys, then the unkeyed fingerprint) is a Conflict, checked before the
// record's state. Here the new pod's charge loses its answer (record
// unknown, message redelivered to resolve it); the redelivery reaches an
// old pod, which dead-letters "conflict", publishes a CONFLICT result and
// ACKS the message. No message is left to resolve attempt 1, which may be
// charged (invariants 1 and 2): nothing ever reverses it, and upstream is
// told the intentId belongs to another intent, so it publishes the
// payment again under a new id.
func TestAdversary2FingerprintKeyRollout(t *testing.T) {
	keyA, keyB := []byte("0123456789abcdef0123456789abcdef"), []byte("fedcba9876543210fedcba9876543210")
	for _, tc := range []struct {
		name     string
		old, new [][]byte
	}{
		{"KeysAdded", nil, [][]byte{keyA}},
		{"Rotation", [][]byte{keyA}, [][]byte{keyB, keyA}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBed(t, cut, ok201("REVERSED"), ok201(cybs.StatusAuthorized))
			newPod := b.pod(payment.Config{FingerprintKeys: tc.new}, staticCreds{})
			oldPod := b.pod(payment.Config{FingerprintKeys: tc.old}, staticCreds{})
			in := payIntent("roll-1", false)
			t0 := b.now
			d := work(newPod, in, 1, t0, 0)
			check(t, b, "roll-1", d, want{payment.Wait, "", "", idempotency.StateUnknown})

			b.now = t0.Add(2 * time.Minute)
			d = work(oldPod, in, 2, t0, 0)
			t.Logf("redelivery on a pod with the old FINGERPRINT_KEYS: %s; record %s; calls %v", describe(d), b.state("roll-1"), b.cs.calls)
			if d.Acks() && b.state("roll-1") == idempotency.StateUnknown {
				t.Errorf("the intent's own redelivery is acked (%s) while attempt 1 is unknown: no message is left to resolve a charge that may exist", describe(d))
			}
			if d.Result != nil && d.Result.Status == intent.StatusConflict {
				t.Errorf("upstream is told CONFLICT for its own intent (same intentId, same parameters), whose attempt 1 may be charged")
			}
		})
	}
}

// TestAdversary2KeylessPodNeverEndsAnUnknownOutcome: the resolve budget
// (24 h: "an intent whose unknown outcome could not be resolved is
// dead-lettered unknown-outcome for a person") is checked only in
// resolve. A pod that cannot decrypt the card backs off from an unknown
// record before it gets there, although the timeout reversal needs no
// card. With the card's key gone from every pod (a rotation completed
// while the intent was unresolved), the message is redelivered forever:
// no result, no dead letter, nobody told that a charge may exist
// (invariant 2).
func TestAdversary2KeylessPodNeverEndsAnUnknownOutcome(t *testing.T) {
	b := newBed(t, cut)
	box := cardBox{}
	in := sealed(payIntent("lost-key", false), box, "a")
	keyed := b.pod(payment.Config{Cards: box}, staticCreds{})
	t0 := b.now
	check(t, b, "lost-key", work(keyed, in, 1, t0, 0), want{payment.Wait, "", "", idempotency.StateUnknown})
	keyless := b.pod(payment.Config{}, staticCreds{})
	var d payment.Decision
	for n := uint64(2); n < 400; n++ {
		b.now = b.now.Add(10 * time.Minute)
		if d = work(keyless, in, n, t0, 0); d.Action != payment.Retry {
			break
		}
	}
	t.Logf("after %s: %s; record %s; calls %v", b.now.Sub(t0), describe(d), b.state("lost-key"), b.cs.calls)
	if d.Action == payment.Retry && d.Letter == nil {
		t.Errorf("an unknown outcome is still only redelivered %s after publication (resolve budget %s): no dead letter, no result", b.now.Sub(t0), payment.ResolveBudgetDefault)
	}
}

// TestAdversary2CardNumberInIDWithUnderscores: f663d70 refuses ids that
// look like a card number, because ids reach logs, traces, record keys and
// dead-letter headers. Its test for "looks like" (redact.CardNumbers) knows
// groups joined by ' ' or '-', but ids may also contain '_' (and '.'): an
// intentId "4111_1111_1111_1111" is accepted and charged, and the card
// number is then in the record's Redis key, the result, every log line of
// the intent and the span (invariant 3).
func TestAdversary2CardNumberInIDWithUnderscores(t *testing.T) {
	for _, id := range []string{"4111_1111_1111_1111", "pay_4111_1111_1111_1111"} {
		b := newBed(t, ok201(cybs.StatusAuthorized))
		in := payIntent(id, false)
		d := b.deliver(in, 1)
		t.Logf("intentId %q: %s; record key %s exists: %v", id, describe(d), idempotency.Key(id), b.store.Fields(idempotency.Key(id)) != nil)
		if d.Action == payment.Ack && d.Result != nil && d.Result.Status == cybs.StatusAuthorized {
			t.Errorf("an intentId holding a card number (%q, digits grouped with '_') is accepted and charged: it goes to logs, traces and the Redis key", id)
		}
	}
}

// TestAdversary2ReplayReopensTwice: reopens() holds for every delivery of
// a replay message that finds a done record with a reopenable letter, so a
// REDELIVERY of one replay message reopens the intent again: here the
// letter the replay's own first delivery just recorded. Interleaving
// (simulation: adv2-eager-replay-reopen seed 9): attempt 1 is refused
// (PROCESSOR_UNAVAILABLE, transient) and dead-lettered; the operator
// replays the letter. Pod A takes the replay, reopens (attempt 2), is
// refused again, records done with a new "rejected" letter, and freezes
// before publishing. AckWait passes; pod B gets the same replay message,
// reopens again (attempt 3) and is AUTHORIZED. Pod A thaws and publishes
// its REJECTED result (msg id "<id>:2:REJECTED", not a duplicate of
// anything) and its dead letter: upstream's last word on an intent whose
// card is charged is REJECTED (invariant 2), which f663d70's "dead
// letters end the intent" meant to make impossible.
func TestAdversary2ReplayReopensTwice(t *testing.T) {
	b := newBed(t, refused400("PROCESSOR_UNAVAILABLE"), refused400("PROCESSOR_UNAVAILABLE"), ok201(cybs.StatusAuthorized))
	in := payIntent("twice-1", false)
	check(t, b, "twice-1", b.deliver(in, 1), want{payment.DeadLetter, intent.StatusRejected, deadletter.ClassRejected, "done"})

	b.now = b.now.Add(5 * time.Minute)
	podA := work(b.p, in, 1, b.now, 12) // the replay of letter 12, first delivery
	check(t, b, "twice-1", podA, want{payment.DeadLetter, intent.StatusRejected, deadletter.ClassRejected, "done"})
	// Pod A freezes before it publishes podA; AckWait passes.
	b.now = b.now.Add(time.Minute)
	podB := work(b.p, in, 2, b.now.Add(-time.Minute), 12) // the same replay message, redelivered
	t.Logf("replay delivery 1 (pod A, frozen before publishing): %s; delivery 2 (pod B): %s; calls %v", describe(podA), describe(podB), b.cs.calls)
	if podB.Result != nil && podB.Result.Authorized() {
		t.Errorf("one replay message reopened the intent twice: pod B's redelivery charged attempt %d (AUTHORIZED) while pod A still holds the %s of attempt %d to publish; published after it, upstream's last result for a charged intent is %s",
			podB.Result.Attempts, podA.Result.Status, podA.Result.Attempts, podA.Result.Status)
	}
}
