package payment_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ttcpay/payflow/internal/cybs"
	"github.com/ttcpay/payflow/internal/deadletter"
	"github.com/ttcpay/payflow/internal/intent"
	"github.com/ttcpay/payflow/internal/payment"
)

// replay delivers in as an operator's replay of dead letter seq, which
// the worker wrote at attempt (its Payflow-Dlq-Attempt header).
func (b *tbed) replay(in *intent.Intent, seq uint64, attempt int) payment.Decision {
	data, _ := json.Marshal(in)
	return b.p.Work(context.Background(), payment.Delivery{Data: data, Subject: "payments.intents." + in.MerchantID,
		MsgID: deadletter.ReplayMsgID(in.IntentID, seq), ReplayedFrom: fmt.Sprint(seq), ReplayedAttempt: attempt,
		Delivered: 1, Seq: 100 + seq, Published: b.now})
}

// TestDeadLetterEndsTheIntent: a refused intent is done with its dead
// letter: a redelivery (a slow pod's, a duplicate) re-emits the same
// refusal and never charges; only the operator's replay of the letter
// tries it again, once.
func TestDeadLetterEndsTheIntent(t *testing.T) {
	b := newBed(t, refused400("PROCESSOR_UNAVAILABLE"), ok201(cybs.StatusAuthorized))
	in := payIntent("p1", false)
	d := b.deliver(in, 1)
	check(t, b, "p1", d, want{payment.DeadLetter, intent.StatusRejected, deadletter.ClassRejected, "done"})
	first := d.Letter.DedupID

	d = b.deliver(in, 2)
	check(t, b, "p1", d, want{payment.DeadLetter, intent.StatusRejected, deadletter.ClassRejected, "done"})
	if d.Letter.DedupID != first || !d.Reemit {
		t.Fatalf("the redelivery's dead letter %q (re-emit %v); want the first one's id %q re-emitted", d.Letter.DedupID, d.Reemit, first)
	}
	if len(b.cs.calls) != 1 {
		t.Fatalf("a redelivery of a refused intent called CyberSource: %v", b.cs.calls)
	}

	d = b.replay(in, 12, d.Letter.Attempt)
	check(t, b, "p1", d, want{payment.Ack, cybs.StatusAuthorized, "", "done"})
	if d.Result.Attempts != 2 || len(b.cs.calls) != 2 {
		t.Fatalf("the replay: attempt %d, calls %v; want attempt 2 charged", d.Result.Attempts, b.cs.calls)
	}
	// The same letter replayed again: the intent is authorized now.
	d = b.replay(in, 12, 1)
	check(t, b, "p1", d, want{payment.Ack, cybs.StatusAuthorized, "", "done"})
	if len(b.cs.calls) != 2 {
		t.Fatalf("a second replay charged again: %v", b.cs.calls)
	}
}

// TestReplayNeverReopensWhatMayBeCharged: a replayed dead letter of an
// unknown outcome, or of an authorization still to reverse, re-emits the
// outcome and calls nothing new.
func TestReplayNeverReopensWhatMayBeCharged(t *testing.T) {
	t.Run("UnknownOutcome", func(t *testing.T) {
		b := newBed(t, cut, refused400("NOT_VOIDABLE"))
		b.authorized(t, "pay", true)
		in := opIntent("v1", "m1", intent.OpVoid, "pay", "")
		b.deliver(in, 1)
		b.now = b.now.Add(2 * time.Minute)
		d := b.deliver(in, 2)
		check(t, b, "v1", d, want{payment.DeadLetter, intent.StatusUnknownOutcome, deadletter.ClassUnknownOutcome, "done"})
		calls := len(b.cs.calls)
		d = b.replay(in, 5, d.Letter.Attempt)
		check(t, b, "v1", d, want{payment.DeadLetter, intent.StatusUnknownOutcome, deadletter.ClassUnknownOutcome, "done"})
		if len(b.cs.calls) != calls {
			t.Fatalf("the replay called CyberSource: %v", b.cs.calls[calls:])
		}
	})
	t.Run("HeldAuthorization", func(t *testing.T) {
		// AUTHORIZED_RISK_DECLINED: recorded with the reversal it needs;
		// the reversal keeps failing until the budget is spent.
		b := newBed(t, ok201(cybs.StatusAuthorizedRiskDeclined), bad502, bad502, ok201("REVERSED"))
		in := payIntent("h1", false)
		b.deliver(in, 1)
		b.now = b.now.Add(25 * time.Hour)
		data, _ := json.Marshal(in)
		d := b.p.Work(context.Background(), payment.Delivery{Data: data, Subject: "payments.intents.m1", MsgID: "h1", Delivered: 9, Seq: 7, Published: b.now.Add(-25 * time.Hour)})
		if d.Action != payment.DeadLetter || d.Letter.Class != deadletter.ClassExhausted {
			t.Fatalf("held authorization past the budget: %+v", d)
		}
		d = b.replay(in, 6, d.Letter.Attempt) // tries the reversal again; never a new charge
		if d.Action != payment.Ack || d.Result.Status != cybs.StatusAuthorizedRiskDeclined {
			t.Fatalf("replay: %+v", d)
		}
		for _, c := range b.cs.calls[1:] {
			if c[:len("authorize")] == "authorize" {
				t.Fatalf("the replay charged again: %v", b.cs.calls)
			}
		}
	})
}

// TestNothingSentPastTheLease: a pod paused after its lease check, past
// the point where another pod may be resolving the attempt, does not send:
// its call's context ended (payment.SendMargin before the lease's end).
func TestNothingSentPastTheLease(t *testing.T) {
	for _, tc := range []struct {
		name  string
		pause time.Duration
		want  string
	}{
		{"Authorization", payment.LeaseDefault - payment.SendMargin + time.Millisecond, "late authorize"},
		{"Capture", payment.LeaseDefault - payment.SendMargin + time.Millisecond, "late capture"},
		{"AuthorizationInTime", payment.LeaseDefault - payment.SendMargin - time.Second, "authorize"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBed(t, ok201(cybs.StatusAuthorized), ok201("PENDING"))
			in := payIntent("p1", false)
			if tc.name == "Capture" {
				b.authorized(t, "pay", false)
				in = opIntent("p1", "m1", intent.OpCapture, "pay", "")
			}
			b.p = payment.New(payment.Config{Now: func() time.Time { return b.now },
				Test: payment.TestHooks{BeforeCharge: func(string, int) { b.now = b.now.Add(tc.pause) }}},
				staticCreds{}, b.cs, b.store, zerolog.New(io.Discard))
			d := b.deliver(in, 1)
			if len(b.cs.calls) != 1 || !strings.HasPrefix(b.cs.calls[0], tc.want+" ") {
				t.Fatalf("calls %v; want one %q", b.cs.calls, tc.want)
			}
			if late := strings.HasPrefix(tc.want, "late "); late && d.Action != payment.Retry || !late && d.Action != payment.Ack {
				t.Fatalf("decision %+v", d)
			}
		})
	}
}

// TestFingerprintKeys: with FINGERPRINT_KEYS the fingerprint covers the
// whole card number (two cards that share BIN, last four and expiry
// differ); a rotation recognises records written under the old key or
// without a key; the fingerprint never holds the number.
func TestFingerprintKeys(t *testing.T) {
	keyA, keyB := []byte("0123456789abcdef0123456789abcdef"), []byte("fedcba9876543210fedcba9876543210")
	one := baseIntent("f1", "m1", "42.00", "4111111111111111", false)
	twin := baseIntent("f1", "m1", "42.00", "4111111111111111", false)
	twin.Card.Number = "4111110000091111" // same BIN, last four and expiry; passes Luhn
	if payment.Fingerprint(one) != payment.Fingerprint(twin) {
		t.Fatalf("the unkeyed fingerprint was meant to see BIN, last four and expiry only")
	}
	if payment.FingerprintWithKey(one, keyA) == payment.FingerprintWithKey(twin, keyA) {
		t.Fatalf("keyed fingerprints of two card numbers are equal")
	}
	if strings.Contains(payment.FingerprintWithKey(one, keyA), "1111") && strings.Contains(payment.FingerprintWithKey(one, keyA), "411111") {
		t.Fatalf("the fingerprint holds card digits")
	}
	withKeys := func(b *tbed, keys ...[]byte) {
		b.p = payment.New(payment.Config{Now: func() time.Time { return b.now }, FingerprintKeys: keys}, staticCreds{}, b.cs, b.store, zerolog.New(io.Discard))
	}
	for _, tc := range []struct {
		name          string
		before, after [][]byte
		conflict      bool
	}{
		{"Rotation", [][]byte{keyA}, [][]byte{keyB, keyA}, false},
		{"KeysAdded", nil, [][]byte{keyA}, false},
		// Fingerprints under different keys are not compared (a pod
		// without the old key cannot tell); the cardless part still is,
		// and it matches: the same intent, not a conflict.
		{"OldKeyDropped", [][]byte{keyA}, [][]byte{keyB}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBed(t, ok201(cybs.StatusAuthorized))
			withKeys(b, tc.before...)
			if d := b.deliver(one, 1); d.Action != payment.Ack {
				t.Fatalf("first: %+v", d)
			}
			withKeys(b, tc.after...)
			d := b.deliver(one, 2)
			if got := d.Letter != nil && d.Letter.Class == deadletter.ClassConflict; got != tc.conflict {
				t.Fatalf("redelivery after the key change: %+v; conflict %v, want %v", d, got, tc.conflict)
			}
			if len(b.cs.calls) != 1 {
				t.Fatalf("charged again: %v", b.cs.calls)
			}
		})
	}
	t.Run("TwinCardIsAConflict", func(t *testing.T) {
		b := newBed(t, ok201(cybs.StatusAuthorized), ok201(cybs.StatusAuthorized))
		withKeys(b, keyA)
		b.deliver(one, 1)
		d := b.deliver(twin, 1)
		if d.Letter == nil || d.Letter.Class != deadletter.ClassConflict || len(b.cs.calls) != 1 {
			t.Fatalf("another card under the same intentId: %+v, calls %v", d, b.cs.calls)
		}
	})
}
