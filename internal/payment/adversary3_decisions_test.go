package payment_test

// Adversarial review, third round (branch adversary3): unit proofs with
// the in-memory store and a scripted CyberSource, against the code of
// 8f9dbef. Each test is expected to FAIL on that code; each failure is a
// break.
//
// Run: go test -count=1 -run 'TestAdversary3' ./internal/payment/

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ttcpay/payflow/internal/cybs"
	"github.com/ttcpay/payflow/internal/idempotency"
	"github.com/ttcpay/payflow/internal/intent"
	"github.com/ttcpay/payflow/internal/payment"
)

// TestAdversary3FingerprintRolloutHidesAnotherCard: the README promises
// that during a FINGERPRINT_KEYS rollout or rotation "claims recognise
// records under every listed key and records written without a key"; the
// code claims with the FIRST key only (Processor.fingerprint), and
// FingerprintsConflict never compares F parts under different schemes. So
// a record written by a pod with the old configuration is checked on G
// alone (everything but the card) by a pod that HAS the old key (or can
// compute the unkeyed F). Intent "rot-1" of merchant m1 is authorized on
// card 4111…1111; the same intentId from the same merchant, same amount,
// on ANOTHER card (5555…4444, even another brand) reaches a pod with the
// new configuration: it is not a conflict, it is acked with the first
// card's AUTHORIZED result (last four 1111). Issue-12 rule: another
// intent's parameters under a reused intentId must be a conflict, never
// silently answered with someone else's result (invariant 2: the second
// intent has no outcome of its own).
func TestAdversary3FingerprintRolloutHidesAnotherCard(t *testing.T) {
	keyA, keyB := []byte("0123456789abcdef0123456789abcdef"), []byte("fedcba9876543210fedcba9876543210")
	for _, tc := range []struct {
		name     string
		old, new [][]byte
	}{
		{"KeysAdded", nil, [][]byte{keyA}},
		{"Rotation", [][]byte{keyA}, [][]byte{keyB, keyA}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBed(t, ok201(cybs.StatusAuthorized), ok201(cybs.StatusAuthorized))
			oldPod := b.pod(payment.Config{FingerprintKeys: tc.old}, staticCreds{})
			newPod := b.pod(payment.Config{FingerprintKeys: tc.new}, staticCreds{})
			first := baseIntent("rot-1", "m1", "100.00", cardApproved, false)
			other := baseIntent("rot-1", "m1", "100.00", "5555555555554444", false)
			if d := work(oldPod, first, 1, b.now, 0); d.Action != payment.Ack || d.Result.Status != cybs.StatusAuthorized {
				t.Fatalf("first intent: %s", describe(d))
			}
			if d := work(oldPod, other, 1, b.now, 0); d.Result == nil || d.Result.Status != intent.StatusConflict {
				t.Fatalf("control: a pod with the record's own scheme must call the other card a conflict: %s", describe(d))
			}
			b.now = b.now.Add(10 * time.Minute)
			d := work(newPod, other, 2, b.now, 0)
			t.Logf("record fingerprint %q; other card on the new pod: %s", b.store.Fields(idempotency.Key("rot-1"))["f"], describe(d))
			if d.Result == nil || d.Result.Status != intent.StatusConflict {
				last4 := ""
				if d.Result != nil {
					last4 = d.Result.CardLast4
				}
				t.Errorf("intentId rot-1 reused with another card (last four 4444) on a pod with FINGERPRINT_KEYS %d key(s) is answered %s (card last four %q), not CONFLICT, although that pod holds the key (or the unkeyed scheme) the record was written under",
					len(tc.new), describe(d), last4)
			}
		})
	}
}

// TestAdversary3CardNumberInReferenceReachesRedis: ids that look like a
// card number are refused (checkID) because ids reach logs and records,
// but the free-text fields reference and bookingId are only checked for
// printable ASCII. They are copied into every result, and the result is
// stored in the intent's Redis record (field "r") as plaintext JSON (and
// into the dead letter's payload byte for byte). An intent whose reference
// is its own card number (a classic upstream mistake) is charged, and the
// full card number sits in plaintext in Redis for the record's 45 days
// (invariant 3: no card number in plaintext in Redis).
func TestAdversary3CardNumberInReferenceReachesRedis(t *testing.T) {
	for _, ref := range []string{cardApproved, "order 4111 1111 1111 1111"} {
		b := newBed(t, ok201(cybs.StatusAuthorized))
		in := payIntent("ref-1", false)
		in.Reference = ref
		d := b.deliver(in, 1)
		r := b.store.Fields(idempotency.Key("ref-1"))["r"]
		t.Logf("reference %q: %s; record r=%s", ref, describe(d), r)
		digits := strings.Map(func(c rune) rune {
			if c >= '0' && c <= '9' {
				return c
			}
			return -1
		}, r)
		if strings.Contains(digits, cardApproved) {
			t.Errorf("the intent's card number, given as its reference %q, is stored in plaintext in the Redis record (field r)", ref)
		}
	}
}

// TestAdversary3CardExpiresBeforeTheRedelivery: intent.Decode validates
// the card's expiry against the delivery's clock, and work() dead-letters
// a failed validation as INVALID ("never charged") without looking at the
// record. A card valid through November 2026 is charged at 23:59 on
// 30 November:
//
//   - Unknown: the answer is lost (record unknown, message redelivered to
//     resolve it). The redelivery, two minutes later, is on 1 December:
//     the card "has expired", the message is dead-lettered INVALID and
//     ACKED. Nothing is left to resolve attempt 1, which may be charged:
//     it is never reversed, and upstream is told INVALID (invariants 1/2:
//     an unresolved possible charge with a "never charged" outcome).
//   - Authorized: the charge is recorded, but the pod dies before its ack;
//     the redelivery after midnight publishes INVALID (msg id
//     "<id>:INVALID:<seq>", not a duplicate of the AUTHORIZED result):
//     two terminal outcomes for one charged intent, the last one false
//     (invariant 2).
func TestAdversary3CardExpiresBeforeTheRedelivery(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer answer
	}{
		{"Unknown", cut},
		{"Authorized", ok201(cybs.StatusAuthorized)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBed(t, tc.answer, ok201("REVERSED"), ok201(cybs.StatusAuthorized))
			b.now = time.Date(2026, 11, 30, 23, 59, 0, 0, time.UTC)
			in := payIntent("exp-1", false)
			in.Card.ExpirationMonth, in.Card.ExpirationYear = "11", "2026"
			t0 := b.now
			d := work(b.p, in, 1, t0, 0)
			t.Logf("delivery 1 at %s: %s; record %s", b.now.Format(time.RFC3339), describe(d), b.state("exp-1"))
			b.now = t0.Add(2 * time.Minute)
			d = work(b.p, in, 2, t0, 0)
			t.Logf("delivery 2 at %s: %s; record %s; calls %v", b.now.Format(time.RFC3339), describe(d), b.state("exp-1"), b.cs.calls)
			if d.Acks() && b.state("exp-1") == idempotency.StateUnknown {
				t.Errorf("the redelivery of an intent whose attempt 1 is unknown is acked (%s) because its card expired since: no message is left to resolve a charge that may exist", describe(d))
			}
			// INVALID is true once attempt 1 was cancelled (its timeout
			// reversal applied) and the expired card cannot be charged
			// anew; it is false while attempt 1 may be live. (Lead's
			// refinement: the first version flagged any INVALID on an
			// intent with a record.)
			cancelled := slices.ContainsFunc(b.cs.calls, func(c string) bool { return strings.HasPrefix(c, "timeout-reversal ") })
			if d.Result != nil && d.Result.Status == intent.StatusInvalid && b.state("exp-1") != "" && !cancelled {
				t.Errorf("an intent with a record (state %s, attempt 1 charged or maybe charged) is answered INVALID (\"never charged\") on its redelivery because its card expired in between", b.state("exp-1"))
			}
		})
	}
}

// TestAdversary3StricterPodDeadLettersAnUnknownCharge: the same hole as
// TestAdversary3CardExpiresBeforeTheRedelivery, opened by configuration:
// REQUIRE_ENCRYPTED_CARD is turned on by a rolling update. A pod with the
// old configuration charges a plaintext-card intent and loses the answer
// (record unknown); the redelivery reaches a pod with the new
// configuration, which refuses the plaintext card as INVALID without
// looking at the record and ACKS. Attempt 1, which may be charged, is
// never resolved (invariants 1/2), and upstream is told INVALID.
func TestAdversary3StricterPodDeadLettersAnUnknownCharge(t *testing.T) {
	b := newBed(t, cut, ok201("REVERSED"))
	oldPod := b.pod(payment.Config{}, staticCreds{})
	newPod := b.pod(payment.Config{RequireEncryptedCard: true}, staticCreds{})
	in := payIntent("strict-1", false)
	t0 := b.now
	check(t, b, "strict-1", work(oldPod, in, 1, t0, 0), want{payment.Wait, "", "", idempotency.StateUnknown})
	b.now = t0.Add(2 * time.Minute)
	d := work(newPod, in, 2, t0, 0)
	t.Logf("redelivery on a REQUIRE_ENCRYPTED_CARD pod: %s; record %s; calls %v", describe(d), b.state("strict-1"), b.cs.calls)
	if d.Acks() && b.state("strict-1") == idempotency.StateUnknown {
		t.Errorf("the redelivery of an intent whose attempt 1 is unknown is acked (%s) by a pod that now requires encrypted cards: no message is left to resolve a charge that may exist", describe(d))
	}
}

// TestAdversary3RefusalPathsLogGroupedCardNumbers: the paths that refuse
// a message quote its Nats-Msg-Id or subject through redact.Digits, which
// masks runs of 6+ digits but not a card number in groups
// ("4111-1111-1111-1111"), although checkID refuses exactly such ids
// because "ids go to logs". Three deliveries carry a card number grouped
// with '-' (allowed in subject tokens and message ids):
//
//   - MsgIDMismatch: a valid intent whose Nats-Msg-Id is the card number:
//     the INVALID reason (log line "reason", result, letter) quotes it;
//   - UnreadableBody: a body that is not JSON: the Nats-Msg-Id becomes the
//     letter's and result's intentId and the log line's "intentId";
//   - Unroutable: the subject's merchant token is the card number: the log
//     line's "subject" and the letter's reason carry it.
//
// Invariant 3: a card number in a log line and an error string.
func TestAdversary3RefusalPathsLogGroupedCardNumbers(t *testing.T) {
	const pan = "4111-1111-1111-1111"
	valid, _ := json.Marshal(payIntent("grp-1", false))
	for _, tc := range []struct {
		name    string
		subject string
		msgID   string
		data    []byte
	}{
		{"MsgIDMismatch", "payments.intents.m1", pan, valid},
		{"UnreadableBody", "payments.intents.m1", pan, []byte("{not json")},
		{"Unroutable", "payments.intents." + pan, "grp-1", valid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBed(t)
			var logs bytes.Buffer
			p := payment.New(payment.Config{Now: func() time.Time { return b.now }}, staticCreds{}, b.cs, b.store, zerolog.New(&logs))
			d := p.Work(context.Background(), payment.Delivery{Data: tc.data, Subject: tc.subject, MsgID: tc.msgID, Delivered: 1, Seq: 3, Published: b.now})
			out, _ := json.Marshal(d)
			t.Logf("decision %s; logs: %s", describe(d), logs.String())
			if strings.Contains(logs.String(), pan) {
				t.Errorf("a log line carries the card number %s", pan)
			}
			if strings.Contains(string(out), pan) {
				t.Errorf("the decision (result, dead letter reason or intentId) carries the card number %s", pan)
			}
		})
	}
}

// TestAdversary3ResentRestReversalIsPartialAtCyberSource: an unknown
// reversal is resolved by sending it again only when it is "full"
// (in.Amount == ""), on the premise that "already reversed" answers a
// second one. But payflow's full reversal is "all that the LEDGER has
// left", sent as an amount; the ledger counts every reservation of another
// operation as used, and an operation whose outcome is unknown (or in
// flight, or timeout-voided after it applied) keeps its reservation while
// CyberSource has that amount left. The reversal is then partial at
// CyberSource, and sending it again reverses the same amount twice.
//
// Here (sim adv3-replay-storm seed 384 reaches the same with a capture
// whose lost answer was timeout-voided): a 100.00 authorization; a capture
// of 80.00 loses its answer (unknown: the ledger holds 80.00, CyberSource
// never captured it); "reverse the rest" reserves 20.00 and its answer is
// lost after CyberSource applied it. The resolution sends the 20.00
// reversal again, CyberSource (80.00 still left) applies it too: 40.00
// reversed for an intent that asked for 20.00, reported REVERSED
// (invariant 1: an operation applied twice; the same reason the code
// sends a partial reversal's unknown outcome to a person).
func TestAdversary3ResentRestReversalIsPartialAtCyberSource(t *testing.T) {
	b := newBed(t, cut, cut, ok201("REVERSED"))
	b.authorized(t, "pay", false)
	t0 := b.now
	capture := opIntent("cap-80", "m1", intent.OpCapture, "pay", "80.00")
	check(t, b, "cap-80", work(b.p, capture, 1, t0, 0), want{payment.Wait, "", "", idempotency.StateUnknown})
	rest := opIntent("rev-rest", "m1", intent.OpReverse, "pay", "")
	check(t, b, "rev-rest", work(b.p, rest, 1, t0, 0), want{payment.Wait, "", "", idempotency.StateUnknown})
	b.now = t0.Add(2 * time.Minute)
	d := work(b.p, rest, 2, t0, 0)
	reversals := 0
	for _, c := range b.cs.calls {
		if strings.HasPrefix(c, "reverse ") {
			reversals++
		}
	}
	t.Logf("resolution: %s; calls %v; ledger %v", describe(d), b.cs.calls, b.store.Fields(idempotency.Key("pay")))
	if reversals > 1 {
		t.Errorf("a reversal of the ledger's rest (20.00 of a 100.00 authorization, 80.00 held by an unsettled capture) with an unknown outcome was sent %d times: at CyberSource it is a partial reversal, which the second send applies again (result %s)", reversals, describe(d))
	}
}

// TestAdversary3CardNumberAsPaymentID: a settlement operation may name
// its payment by paymentId, validated only as "digits, at most 32"
// (CyberSource's ids have 22). A card number (16 digits, Luhn-valid) is
// accepted: the operation is refused as "unknown payment" with a reason
// that quotes it, and that reason is logged ("reason" field), recorded in
// the Redis record (result r: paymentId and reason; letter dr) and put in
// the dead letter. ids that look like a card number are refused everywhere
// else (checkID) for exactly this reason. Invariant 3: a card number in a
// log line, an error string and plaintext in Redis.
func TestAdversary3CardNumberAsPaymentID(t *testing.T) {
	b := newBed(t)
	var logs bytes.Buffer
	p := payment.New(payment.Config{Now: func() time.Time { return b.now }}, staticCreds{}, b.cs, b.store, zerolog.New(&logs))
	in := &intent.Intent{Version: 1, IntentID: "cap-pan", Integrator: "costco", MerchantID: "m1", Reference: "cap-pan",
		Operation: intent.OpCapture, PaymentID: cardApproved}
	d := work(p, in, 1, b.now, 0)
	rec := b.store.Fields(idempotency.Key("cap-pan"))
	t.Logf("decision %s; record r=%s dr=%s; logs %s", describe(d), rec["r"], rec["dr"], logs.String())
	if strings.Contains(logs.String(), cardApproved) {
		t.Errorf("a log line carries the card number given as paymentId")
	}
	if strings.Contains(rec["r"]+rec["dr"], cardApproved) {
		t.Errorf("the Redis record holds the card number given as paymentId in plaintext")
	}
}

// TestAdversary3ResolvedChargeKeepsCardlessFingerprint: 8f9dbef made
// Reopen complete a record's fingerprint, but a claim completes it only
// when it takes an IDLE record: the Unknown path (and BeginResolve,
// Advance, Finish) never do. A pod that cannot decrypt the card claims
// intent "half-1" with its G part alone ("|G") and crashes before it ends
// it ("pods crash between any two lines"). The redelivery reaches a pod
// with the key: the record is unknown, the timeout reversal cancels the
// attempt, the pod charges the card (AUTHORIZED) and the record keeps "|G"
// for its 45 days. The same intentId with another card (same merchant,
// amount, everything else) is then acked with the first card's AUTHORIZED
// result on every pod, where a record charged by a pod with the key from
// the start answers CONFLICT. Issue-12 rule (a reuse with other
// parameters is answered with someone else's result; invariant 2).
func TestAdversary3ResolvedChargeKeepsCardlessFingerprint(t *testing.T) {
	{ // control: charged by the pod with the key from the start
		cb := newBed(t, ok201(cybs.StatusAuthorized))
		box := cardBox{}
		keyed := cb.pod(payment.Config{Cards: box}, staticCreds{})
		work(keyed, sealed(baseIntent("half-0", "m1", "100.00", cardApproved, false), box, "a"), 1, cb.now, 0)
		if d := work(keyed, sealed(baseIntent("half-0", "m1", "100.00", "5555555555554444", false), box, "b"), 1, cb.now, 0); d.Result == nil || d.Result.Status != intent.StatusConflict {
			t.Fatalf("control: %s", describe(d))
		}
	}
	b := newBed(t, ok201("REVERSED"), ok201(cybs.StatusAuthorized))
	box := cardBox{}
	keyed := b.pod(payment.Config{Cards: box}, staticCreds{})
	first := sealed(baseIntent("half-1", "m1", "100.00", cardApproved, false), box, "a")
	other := sealed(baseIntent("half-1", "m1", "100.00", "5555555555554444", false), box, "b")
	// The keyless pod's claim (cardConfig claims with CardlessFingerprint),
	// then its crash.
	if _, err := b.store.Claim(context.Background(), "half-1", payment.CardlessFingerprint(first), "keyless", payment.LeaseDefault); err != nil {
		t.Fatal(err)
	}
	t0 := b.now
	b.now = t0.Add(payment.LeaseDefault + payment.ResolveDelayDefault + time.Second)
	d := work(keyed, first, 2, t0, 0)
	t.Logf("redelivery on the pod with the key: %s; calls %v; record f=%q", describe(d), b.cs.calls, b.store.Fields(idempotency.Key("half-1"))["f"])
	if d.Result == nil || d.Result.Status != cybs.StatusAuthorized {
		t.Fatalf("the redelivery did not charge: %s", describe(d))
	}
	d = work(keyed, other, 1, b.now, 0)
	t.Logf("the same intentId with another card: %s", describe(d))
	if d.Result == nil || d.Result.Status != intent.StatusConflict {
		t.Errorf("intentId half-1 reused with another card (4444) on a pod with the key is answered %s, not CONFLICT: the record the pod with the key charged kept the keyless pod's fingerprint without its card part", describe(d))
	}
}
