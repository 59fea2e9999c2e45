package payment_test

// Tests for the survivors of gremlins on this package (issue 19; see
// docs/mutation.md, "internal/payment (gremlins)"). Each one was seen
// failing with its mutant applied by hand and passing on the real code.
// They run over the fakes of decisions_test.go: the in-memory record store
// on a fixed clock and a scripted CyberSource.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ttcpay/payflow/internal/cybs"
	"github.com/ttcpay/payflow/internal/deadletter"
	"github.com/ttcpay/payflow/internal/idempotency"
	"github.com/ttcpay/payflow/internal/intent"
	"github.com/ttcpay/payflow/internal/payment"
	"github.com/ttcpay/payflow/internal/redelivery"
	"github.com/ttcpay/payflow/internal/tokencache"
	"github.com/ttcpay/payflow/internal/ttc"
)

// mutCreds hands out credentials, runs onGet first (a pod paused while it
// gets them), and counts and fails invalidations as told.
type mutCreds struct {
	onGet         func()
	err           error
	invalidated   int
	invalidateErr error
}

func (c *mutCreds) Get(_ context.Context, integrator, merchant string) (*tokencache.Credentials, error) {
	if c.onGet != nil {
		c.onGet()
	}
	if c.err != nil {
		return nil, c.err
	}
	return &tokencache.Credentials{Integrator: integrator, MerchantID: merchant, AccessToken: "t", Generation: 1}, nil
}

func (c *mutCreds) Invalidate(context.Context, *tokencache.Credentials) error {
	c.invalidated++
	return c.invalidateErr
}

// lateObserver records what LateCharge was told.
type lateObserver struct{ late []bool }

func (*lateObserver) ChargeLatency(time.Duration) {}
func (*lateObserver) UnknownOutcome()             {}
func (o *lateObserver) LateCharge(reversed bool)  { o.late = append(o.late, reversed) }

// thenAuthorize is the script's CyberSource, with then run once the payment
// is answered (the pod pauses while its answer travels).
type thenAuthorize struct {
	*script
	then func()
}

func (t thenAuthorize) Authorize(ctx context.Context, cr cybs.Credentials, req *cybs.PaymentRequest) (*cybs.PaymentResponse, error) {
	r, err := t.script.Authorize(ctx, cr, req)
	t.then()
	return r, err
}

// failingBox is a card keyring that opens nothing.
type failingBox struct{ err error }

func (f failingBox) Decrypt(string) (*intent.Card, error) { return nil, f.err }

var errKeyMissing = errors.New("no key for this kid")

// events of kind k in d's history.
func events(d payment.Decision, k string) []idempotency.Event {
	var es []idempotency.Event
	for _, e := range d.Events {
		if e.Kind == k {
			es = append(es, e)
		}
	}
	return es
}

// failOnce makes the store's next op fail (Redis unreachable) once; the
// flag says whether it did.
func (b *tbed) failOnce(op string) *bool {
	failed := false
	b.store.Fail = func(o string) error {
		if o == op && !failed {
			failed = true
			return errors.New("redis: i/o timeout")
		}
		return nil
	}
	return &failed
}

func (b *tbed) deliverAt(in *intent.Intent, delivered uint64, published time.Time) payment.Decision {
	data, _ := json.Marshal(in)
	return b.p.Work(context.Background(), payment.Delivery{Data: data, Subject: "payments.intents." + in.MerchantID, MsgID: in.IntentID,
		Delivered: delivered, Seq: 7, Published: published})
}

// TestFirstAttemptIsNeverExhausted: an intent first claimed long after it
// was published (Redis was down for a day) is charged: the retry budget
// ends only attempts that follow one settled as not charged.
// charge.go:21:11 (boundary and negation of j.a.N > 1).
func TestFirstAttemptIsNeverExhausted(t *testing.T) {
	b := newBed(t, ok201(cybs.StatusAuthorized))
	in := payIntent("late-1", false)
	d := b.deliverAt(in, 9, b.now.Add(-25*time.Hour))
	check(t, b, in.IntentID, d, want{payment.Ack, cybs.StatusAuthorized, "", "done"})
	if d.Result.Attempts != 1 || len(b.cs.calls) != 1 {
		t.Fatalf("attempt %d, calls %v; want attempt 1 charged once", d.Result.Attempts, b.cs.calls)
	}
}

// TestVisaSeriesAdvancesOnMITsOnly: an authorized Visa MIT becomes the last
// successful transaction of its series, which the next MIT reads; a CIT
// never moves the series. charge.go:38:10, intake.go:434:36, 434:50,
// 434:83, 437:46.
func TestVisaSeriesAdvancesOnMITsOnly(t *testing.T) {
	const root = "Nroot1"
	last := func(b *tbed) string {
		t.Helper()
		v, err := b.store.LastTransaction(context.Background(), "m1", root)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	withCredential := func(id, typ string) *intent.Intent {
		in := baseIntent(id, "m1", "15.00", cardApproved, true)
		// A CIT with a stored card takes no reason; it names the series'
		// first transaction too, so that a CIT moving the series would show.
		in.Credential = &intent.Credential{Type: typ, PreviousTransactionID: root}
		if typ == intent.CredentialMIT {
			in.Credential.Reason = "recurring"
		}
		return in
	}
	b := newBed(t, ok201(cybs.StatusAuthorized), ok201(cybs.StatusAuthorized), ok201(cybs.StatusAuthorized))

	cit := withCredential("cit-1", intent.CredentialCITStored)
	if d := b.deliver(cit, 1); d.Action != payment.Ack || d.Result.NetworkTransactionID == "" {
		t.Fatalf("CIT: %s", describe(d))
	}
	if v := last(b); v != "" {
		t.Fatalf("a CIT moved the series to %q", v)
	}
	for _, id := range []string{"mit-1", "mit-2"} {
		before := last(b)
		d := b.deliver(withCredential(id, intent.CredentialMIT), 1)
		if d.Action != payment.Ack || d.Result.Status != cybs.StatusAuthorized {
			t.Fatalf("%s: %s (calls %v)", id, describe(d), b.cs.calls)
		}
		if v := last(b); v != d.Result.NetworkTransactionID || v == before {
			t.Fatalf("%s: the series' last transaction is %q; want this MIT's %q", id, v, d.Result.NetworkTransactionID)
		}
	}
}

// TestResolutionWaitsLongEnough: every Wait or Retry that waits for the
// record (the resolve delay after an unknown outcome, a resolution that
// is too early, another pod's lease) redelivers no sooner than the record
// allows: the redelivery after that delay makes progress instead of
// waiting again. charge.go:128:32, resolve.go:33:16 (34:16 in the first
// run), intake.go:138:22.
func TestResolutionWaitsLongEnough(t *testing.T) {
	t.Run("AfterUnknownOutcome", func(t *testing.T) {
		b := newBed(t, cut, ok201("REVERSED"), ok201(cybs.StatusAuthorized))
		in := payIntent("w1", false)
		d := b.deliver(in, 1)
		check(t, b, in.IntentID, d, want{payment.Wait, "", "", "unknown"})
		b.now = b.now.Add(d.Delay)
		check(t, b, in.IntentID, b.deliver(in, 2), want{payment.Ack, cybs.StatusAuthorized, "", "done"})
	})
	t.Run("TooEarly", func(t *testing.T) {
		b := newBed(t, ok201("REVERSED"), ok201(cybs.StatusAuthorized))
		in := payIntent("w2", false)
		b.store.Load(idempotency.Key(in.IntentID), map[string]string{"s": "unknown", "a": "1",
			"u": fmt.Sprint(b.now.Add(-30 * time.Second).UnixMilli()), "f": payment.Fingerprint(in)})
		d := b.deliver(in, 2)
		check(t, b, in.IntentID, d, want{payment.Wait, "", "", "unknown"})
		b.now = b.now.Add(d.Delay)
		check(t, b, in.IntentID, b.deliver(in, 3), want{payment.Ack, cybs.StatusAuthorized, "", "done"})
	})
	t.Run("Busy", func(t *testing.T) {
		b := newBed(t)
		in := payIntent("w3", false)
		if _, err := b.store.Claim(context.Background(), in.IntentID, payment.Fingerprint(in), "other", 30*time.Second); err != nil {
			t.Fatal(err)
		}
		d := b.deliver(in, 1)
		check(t, b, in.IntentID, d, want{payment.Retry, "", "", "charging"})
		b.now = b.now.Add(d.Delay)
		// The other pod's lease ended: the attempt is unknown now, and its
		// resolution waits for the resolve delay.
		check(t, b, in.IntentID, b.deliver(in, 2), want{payment.Wait, "", "", "unknown"})
	})
}

// TestLeaseCheckedRightBeforeTheCall: a claim older than LeaseCheckAfter
// renews its lease before the call (and a claim no older does not); a pod
// paused past its lease renews it and charges when no one took the
// attempt, and sends nothing when another pod did. charge.go:142:32
// (boundary and negation), 146:55.
func TestLeaseCheckedRightBeforeTheCall(t *testing.T) {
	for _, tc := range []struct {
		name    string
		pause   time.Duration
		stolen  bool
		extends int
		want    want
	}{
		{"Fresh", payment.LeaseCheckAfter, false, 0, want{payment.Ack, cybs.StatusAuthorized, "", "done"}},
		{"Older", payment.LeaseCheckAfter + time.Millisecond, false, 1, want{payment.Ack, cybs.StatusAuthorized, "", "done"}},
		{"PausedPastTheLease", payment.LeaseDefault + time.Second, false, 1, want{payment.Ack, cybs.StatusAuthorized, "", "done"}},
		{"TakenMeanwhile", payment.LeaseDefault + time.Second, true, 1, want{payment.Retry, "", "", "unknown"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBed(t, ok201(cybs.StatusAuthorized))
			in := payIntent("l1", false)
			paused := false
			creds := &mutCreds{onGet: func() {
				if paused {
					return
				}
				paused = true
				b.now = b.now.Add(tc.pause)
				if tc.stolen {
					if _, err := b.store.Claim(context.Background(), in.IntentID, payment.Fingerprint(in), "other", payment.LeaseDefault); err != nil {
						t.Fatal(err)
					}
				}
			}}
			b.p = b.pod(payment.Config{}, creds)
			extends := 0
			b.store.Fail = func(op string) error {
				if op == idempotency.OpExtend {
					extends++
				}
				return nil
			}
			check(t, b, in.IntentID, b.deliver(in, 1), tc.want)
			if extends != tc.extends {
				t.Fatalf("%d lease renewals before the call; want %d", extends, tc.extends)
			}
			if wantCalls := map[bool]int{true: 0, false: 1}[tc.stolen]; len(b.cs.calls) != wantCalls {
				t.Fatalf("calls %v; want %d", b.cs.calls, wantCalls)
			}
		})
	}
}

// TestFinishIsTriedAgain: a record write that fails once after the charge
// is tried again before the message is redelivered. charge.go:196:47.
func TestFinishIsTriedAgain(t *testing.T) {
	b := newBed(t, ok201(cybs.StatusAuthorized))
	failed := b.failOnce(idempotency.OpFinish)
	in := payIntent("f1", false)
	check(t, b, in.IntentID, b.deliver(in, 1), want{payment.Ack, cybs.StatusAuthorized, "", "done"})
	if !*failed {
		t.Fatal("the write never failed: the test proves nothing")
	}
}

// TestLateChargeUndone: a payment answered after its pod lost the lease
// (another pod took the attempt meanwhile) is reversed (authorization) or
// voided (sale) at once, tried up to RecordTries times; only when that
// fails is a person told with a dead letter. The metric and the history
// say whether it was undone. charge.go:211:44, 221:35, 230:46, 230:62,
// 234:10, 238:32, 239:91, 240:9.
func TestLateChargeUndone(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sale    bool
		answers []answer // the payment's, then the undoing's
		undo    int      // reversals or voids sent
		undone  bool
	}{
		{"Reversed", false, []answer{ok201(cybs.StatusAuthorized), ok201("REVERSED")}, 1, true},
		{"ReversedSecondTime", false, []answer{ok201(cybs.StatusAuthorized), bad502, ok201("REVERSED")}, 2, true},
		{"NotReversed", false, []answer{ok201(cybs.StatusAuthorized), bad502, bad502, bad502}, 3, false},
		{"Voided", true, []answer{ok201(cybs.StatusAuthorized), ok201("VOIDED")}, 1, true},
		{"NotVoided", true, []answer{ok201(cybs.StatusAuthorized), bad502, bad502, bad502}, 3, false},
		{"DeclinedNothingToUndo", false, []answer{ok201(cybs.StatusDeclined)}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBed(t, tc.answers...)
			in := payIntent("late-1", tc.sale)
			obs := &lateObserver{}
			cs := thenAuthorize{script: b.cs, then: func() {
				b.now = b.now.Add(payment.LeaseDefault + time.Second)
				if _, err := b.store.Claim(context.Background(), in.IntentID, payment.Fingerprint(in), "other", payment.LeaseDefault); err != nil {
					t.Fatal(err)
				}
			}}
			b.p = payment.New(payment.Config{Now: func() time.Time { return b.now }, Observer: obs}, staticCreds{}, cs, b.store, zerolog.New(io.Discard))
			d := b.deliver(in, 1)
			if d.Action != payment.Retry || d.Result != nil {
				t.Fatalf("late charge: %s; want a retry without a result (the attempt's owner ends it)", describe(d))
			}
			if undo := len(b.cs.calls) - 1; undo != tc.undo {
				t.Fatalf("calls %v; want %d reversals or voids", b.cs.calls, tc.undo)
			}
			if tc.undo == 0 {
				if d.Letter != nil || len(obs.late) != 0 {
					t.Fatalf("a declined late payment: letter %+v, LateCharge %v; want neither", d.Letter, obs.late)
				}
				return
			}
			if got := d.Letter != nil && d.Letter.Class == deadletter.ClassUnknownOutcome; got == tc.undone {
				t.Fatalf("undone %v: letter %+v; a person is told only when it could not be undone", tc.undone, d.Letter)
			}
			if len(obs.late) != 1 || obs.late[0] != tc.undone {
				t.Fatalf("LateCharge told %v; want [%v]", obs.late, tc.undone)
			}
			late := events(d, "late")
			if len(late) != 1 || !strings.HasSuffix(late[0].Detail, fmt.Sprintf("undone: %v", tc.undone)) {
				t.Fatalf("history %+v; want one late event saying undone: %v", late, tc.undone)
			}
		})
	}
}

// TestHeldAuthorizationBudget: the authorization behind a refusal
// (AUTHORIZED_RISK_DECLINED) that cannot be reversed is retried; the
// intent is dead-lettered "exhausted" only on a redelivery once the retry
// budget is spent (its first delivery always tries). A reversal refused
// for its credentials invalidates them. charge.go:270:8, 283:36, 283:74.
func TestHeldAuthorizationBudget(t *testing.T) {
	t.Run("FirstDeliveryOfAnOldIntent", func(t *testing.T) {
		b := newBed(t, ok201(cybs.StatusAuthorizedRiskDeclined), bad502)
		in := payIntent("h1", false)
		check(t, b, in.IntentID, b.deliverAt(in, 1, b.now.Add(-25*time.Hour)), want{payment.Retry, "", "", "done"})
	})
	t.Run("BudgetJustSpent", func(t *testing.T) {
		b := newBed(t, ok201(cybs.StatusAuthorizedRiskDeclined), bad502, bad502)
		in := payIntent("h2", false)
		t0 := b.now
		check(t, b, in.IntentID, b.deliver(in, 1), want{payment.Retry, "", "", "done"})
		b.now = t0.Add(payment.RetryBudgetDefault)
		check(t, b, in.IntentID, b.deliverAt(in, 2, t0), want{payment.DeadLetter, cybs.StatusAuthorizedRiskDeclined, deadletter.ClassExhausted, "done"})
	})
	for _, tc := range []struct {
		name        string
		reversal    answer
		invalidated int
	}{
		{"Unauthorized", unauth401, 1},
		{"BadGateway", bad502, 0},
		{"Reversed", ok201("REVERSED"), 0},
	} {
		t.Run("Credentials"+tc.name, func(t *testing.T) {
			b := newBed(t, ok201(cybs.StatusAuthorizedRiskDeclined), tc.reversal)
			creds := &mutCreds{}
			b.p = b.pod(payment.Config{}, creds)
			b.deliver(payIntent("h3", false), 1)
			if creds.invalidated != tc.invalidated {
				t.Fatalf("credentials invalidated %d times; want %d", creds.invalidated, tc.invalidated)
			}
		})
	}
}

// TestResultNamesTheCardsLastFour: the result of a card payment carries the
// card's last four digits. charge.go:302:13, 302:43 (negation).
func TestResultNamesTheCardsLastFour(t *testing.T) {
	b := newBed(t, ok201(cybs.StatusAuthorized))
	in := payIntent("c4", false)
	d := b.deliver(in, 1)
	if want := in.Card.Number[len(in.Card.Number)-4:]; d.Result == nil || d.Result.CardLast4 != want {
		t.Fatalf("%s: last four %q; want %q", describe(d), d.Result.CardLast4, want)
	}
}

// TestHistoryOfACharge: a delivery's history is attached to its intent
// (none to a delivery that claimed nothing); the claim names the merchant,
// and the call names CyberSource's status and id, and no id when there was
// no answer. intake.go:54:10, 54:29, 64:18, charge.go:325:8,
// classify.go:196:9, 196:26.
func TestHistoryOfACharge(t *testing.T) {
	b := newBed(t, ok201(cybs.StatusAuthorized), cut)
	in := payIntent("hist-1", false)
	d := b.deliver(in, 1)
	if d.HistoryID != in.IntentID || len(d.Events) == 0 {
		t.Fatalf("history %q with %d events; want the intent's", d.HistoryID, len(d.Events))
	}
	for _, e := range d.Events {
		if want := map[bool]string{true: in.MerchantID, false: ""}[e.Kind == "claim"]; e.Merchant != want {
			t.Fatalf("event %+v names merchant %q; want %q (claims only)", e, e.Merchant, want)
		}
	}
	if claims := events(d, "claim"); len(claims) != 1 {
		t.Fatalf("claims %+v; want one", claims)
	}
	calls := events(d, "call")
	if len(calls) != 1 || !strings.Contains(calls[0].Detail, cybs.StatusAuthorized) || !strings.Contains(calls[0].Detail, d.Result.CyberSourceID) {
		t.Fatalf("calls %+v; want one naming %s and %s", calls, cybs.StatusAuthorized, d.Result.CyberSourceID)
	}

	lost := payIntent("hist-2", false)
	d = b.deliver(lost, 1)
	if calls := events(d, "call"); len(calls) != 1 || strings.Contains(calls[0].Detail, "CyberSource id") {
		t.Fatalf("calls %+v; want one naming no CyberSource id (no answer)", calls)
	}

	bad := payIntent("hist-3", false)
	bad.Amount = "-1"
	if d := b.deliver(bad, 1); d.Action != payment.DeadLetter || d.HistoryID != "" || len(d.Events) != 0 {
		t.Fatalf("invalid intent: %s, history %q %v; want a dead letter and no history", describe(d), d.HistoryID, d.Events)
	}
}

// TestHistoryNamesTheTTCStatus: a credentials failure is named in the
// history by TTC's kind, with its HTTP status when there was one.
// intake.go:626:15.
func TestHistoryNamesTheTTCStatus(t *testing.T) {
	for _, status := range []int{403, 0} {
		b := newBed(t)
		b.p = b.pod(payment.Config{}, &mutCreds{err: &ttc.Error{Op: "token", Kind: ttc.KindBadAPIKey, Status: status}})
		d := b.deliver(payIntent("ttc-1", false), 1)
		es := events(d, "credentials")
		if len(es) != 1 {
			t.Fatalf("status %d: events %+v", status, d.Events)
		}
		if named := strings.Contains(es[0].Detail, "HTTP"); named != (status != 0) || status != 0 && !strings.Contains(es[0].Detail, fmt.Sprint(status)) {
			t.Fatalf("status %d: %q", status, es[0].Detail)
		}
	}
}

// TestResentReversalAfterRelease: a full reversal whose first send had an
// unknown outcome and whose resend was given back before it went out
// (Redis refused the reservation) is still a resend on the next claim:
// "already reversed" answers it as applied. intake.go:160:42.
func TestResentReversalAfterRelease(t *testing.T) {
	b := newBed(t, cut, refused400("AUTH_ALREADY_REVERSED"))
	b.authorized(t, "pay", false)
	in := opIntent("rev-1", "m1", intent.OpReverse, "pay", "")
	check(t, b, in.IntentID, b.deliver(in, 1), want{payment.Wait, "", "", "unknown"})
	b.now = b.now.Add(2 * time.Minute)
	b.failOnce("reserve")
	check(t, b, in.IntentID, b.deliver(in, 2), want{payment.Retry, "", "", "idle"})
	b.now = b.now.Add(time.Minute)
	check(t, b, in.IntentID, b.deliver(in, 3), want{payment.Ack, intent.StatusReversed, "", "done"})
}

// TestRefusedSealedCardTheRecordDecides: a sealed card this pod refuses
// (its keyring cannot open it) claims with the cardless fingerprint, so the
// intent's record decides: the charged intent re-emits its outcome instead
// of being called a conflict. intake.go:303:13, 303:40.
func TestRefusedSealedCardTheRecordDecides(t *testing.T) {
	b := newBed(t, ok201(cybs.StatusAuthorized))
	box := cardBox{}
	in := sealed(baseIntent("sealed-1", "m1", "100.00", cardApproved, false), box, "a")
	if d := work(b.pod(payment.Config{Cards: box}, staticCreds{}), in, 1, b.now, 0); d.Action != payment.Ack {
		t.Fatalf("charge: %s", describe(d))
	}
	d := work(b.pod(payment.Config{Cards: failingBox{errors.New("ciphertext does not open")}}, staticCreds{}), in, 2, b.now, 0)
	if d.Action != payment.Ack || d.Result == nil || d.Result.Status != cybs.StatusAuthorized || !d.Reemit {
		t.Fatalf("redelivery to a pod that cannot open the card: %s; want the recorded AUTHORIZED re-emitted", describe(d))
	}
	if len(b.cs.calls) != 1 {
		t.Fatalf("calls %v", b.cs.calls)
	}
}

// TestMsgIDProblemNamesTheID: an intent refused for its Nats-Msg-Id names
// the id it came with, and says when there was none. intake.go:340:13.
func TestMsgIDProblemNamesTheID(t *testing.T) {
	b := newBed(t)
	data, _ := json.Marshal(payIntent("i1", false))
	for _, msgID := range []string{"victim-1", ""} {
		d := b.p.Work(context.Background(), payment.Delivery{Data: data, Subject: "payments.intents.m1", MsgID: msgID, Delivered: 1, Seq: 3, Published: b.now})
		if d.Action != payment.DeadLetter || d.Letter.Class != deadletter.ClassInvalid {
			t.Fatalf("msgID %q: %s", msgID, describe(d))
		}
		if quoted := strings.Contains(d.Letter.Reason, fmt.Sprintf("%q", msgID)); quoted != (msgID != "") {
			t.Fatalf("msgID %q: reason %q", msgID, d.Letter.Reason)
		}
	}
}

// TestRequireEncryptedCard: with REQUIRE_ENCRYPTED_CARD a plaintext card is
// refused before any claim, and a sealed one is charged. intake.go:363:13.
func TestRequireEncryptedCard(t *testing.T) {
	b := newBed(t, ok201(cybs.StatusAuthorized))
	box := cardBox{}
	strict := b.pod(payment.Config{Cards: box, RequireEncryptedCard: true}, staticCreds{})
	plain := payIntent("plain-1", false)
	if d := work(strict, plain, 1, b.now, 0); d.Action != payment.DeadLetter || d.Letter.Class != deadletter.ClassInvalid || len(b.cs.calls) != 0 {
		t.Fatalf("plaintext card: %s, calls %v", describe(d), b.cs.calls)
	}
	in := sealed(payIntent("sealed-2", false), box, "s")
	if d := work(strict, in, 1, b.now, 0); d.Action != payment.Ack || d.Result.Status != cybs.StatusAuthorized {
		t.Fatalf("sealed card: %s, calls %v", describe(d), b.cs.calls)
	}
}

// TestCardDecryptionConfigError: a card the keyring cannot open for its
// configuration (IsConfigError: a key it lacks) ends "config" with a FAILED
// result, which a replay reopens; any other failure is an invalid intent.
// intake.go:378:49.
func TestCardDecryptionConfigError(t *testing.T) {
	isConfig := func(err error) bool { return errors.Is(err, errKeyMissing) }
	for _, tc := range []struct {
		err    error
		class  deadletter.Class
		status string
	}{
		{fmt.Errorf("kid k2: %w", errKeyMissing), deadletter.ClassConfig, intent.StatusFailed},
		{errors.New("ciphertext does not open"), deadletter.ClassInvalid, intent.StatusInvalid},
	} {
		b := newBed(t)
		in := sealed(payIntent("dec-1", false), cardBox{}, "d")
		d := work(b.pod(payment.Config{Cards: failingBox{tc.err}, IsConfigError: isConfig}, staticCreds{}), in, 1, b.now, 0)
		if d.Action != payment.DeadLetter || d.Letter.Class != tc.class || d.Result.Status != tc.status {
			t.Fatalf("%v: %s; want %s %s", tc.err, describe(d), tc.status, tc.class)
		}
	}
}

// TestResultMsgIDs: a dead-lettered intent's result carries its Nats-Msg-Id
// (a re-sent one is a duplicate); an invalid one that names no intent has
// none. intake.go:456:8, 509:16.
func TestResultMsgIDs(t *testing.T) {
	b := newBed(t, refused400("INVALID_DATA"))
	d := b.deliver(payIntent("rej-1", false), 1)
	if d.Action != payment.DeadLetter || d.ResultMsgID == "" || d.ResultMsgID != payment.ResultMsgID(d.Result) {
		t.Fatalf("rejected: %s, result id %q", describe(d), d.ResultMsgID)
	}
	bad := payIntent("inv-1", false)
	bad.Amount = "-1"
	data, _ := json.Marshal(bad)
	ids := map[string]bool{}
	for _, seq := range []uint64{3, 3, 4} {
		d := b.p.Work(context.Background(), payment.Delivery{Data: data, Subject: "payments.intents.m1", MsgID: "inv-1", Delivered: 1, Seq: seq, Published: b.now})
		if d.Action != payment.DeadLetter || !strings.HasPrefix(d.ResultMsgID, "inv-1:") {
			t.Fatalf("invalid: %s, result id %q", describe(d), d.ResultMsgID)
		}
		ids[d.ResultMsgID] = true
	}
	if len(ids) != 2 {
		t.Fatalf("result ids %v; want one per stream sequence", ids)
	}
	d = b.p.Work(context.Background(), payment.Delivery{Data: []byte("{"), Subject: "payments.intents.m1", Delivered: 1, Seq: 5, Published: b.now})
	if d.Action != payment.DeadLetter || d.Result == nil || d.Result.IntentID != "" || d.ResultMsgID != "" {
		t.Fatalf("unnamed invalid: %s, result id %q; want no id", describe(d), d.ResultMsgID)
	}
}

// TestUnreadableReplayNamesItsIntent: a replayed letter whose payload
// cannot be read is named by the letter's intentId when the Nats-Msg-Id is
// that letter's replay id, and by its Nats-Msg-Id otherwise.
// intake.go:467:64, 467:93, 468:11.
func TestUnreadableReplayNamesItsIntent(t *testing.T) {
	b := newBed(t)
	for _, tc := range []struct {
		name                       string
		msgID, from, replayedID, w string
	}{
		{"Replay", deadletter.ReplayMsgID("i1", 5), "5", "i1", "i1"},
		{"NoSequence", deadletter.ReplayMsgID("i1", 5), "", "i1", deadletter.ReplayMsgID("i1", 5)},
		{"NoIntent", deadletter.ReplayMsgID("i1", 5), "5", "", deadletter.ReplayMsgID("i1", 5)},
		{"OtherID", "i2", "5", "i1", "i2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := b.p.Work(context.Background(), payment.Delivery{Data: []byte("{"), Subject: "payments.intents.m1", MsgID: tc.msgID,
				ReplayedFrom: tc.from, ReplayedIntentID: tc.replayedID, Delivered: 1, Seq: 9, Published: b.now})
			if d.Action != payment.DeadLetter || d.IntentID != tc.w || d.Result.IntentID != tc.w {
				t.Fatalf("%s: named %q; want %q", describe(d), d.IntentID, tc.w)
			}
		})
	}
}

// TestConfigProblemsOutliveTheirBudget: a TTC configuration problem (bad
// or missing API key, no refresh token, an invalid request) is retried for
// CONFIG_BUDGET, then dead-lettered "config" (at the budget exactly); a
// transient failure is retried within the longer retry budget.
// intake.go:537:10, 537:73, 537:101, 540:10.
func TestConfigProblemsOutliveTheirBudget(t *testing.T) {
	for _, tc := range []struct {
		kind   ttc.Kind
		age    time.Duration
		config bool
	}{
		{ttc.KindBadAPIKey, 2 * time.Hour, true},
		{ttc.KindNoRefreshToken, 2 * time.Hour, true},
		{ttc.KindNoAPIKey, 2 * time.Hour, true},
		{ttc.KindInvalidRequest, 2 * time.Hour, true},
		{ttc.KindBadAPIKey, payment.ConfigBudgetDefault, true},
		{ttc.KindBadAPIKey, payment.ConfigBudgetDefault - time.Millisecond, false},
		{ttc.KindTransient, 2 * time.Hour, false},
		{ttc.KindBadResponse, 2 * time.Hour, false},
		{ttc.KindUnexpected, 2 * time.Hour, false},
	} {
		t.Run(fmt.Sprintf("%s/%s", tc.kind, tc.age), func(t *testing.T) {
			b := newBed(t)
			b.p = b.pod(payment.Config{}, &mutCreds{err: &ttc.Error{Op: "token", Kind: tc.kind}})
			in := payIntent("cfg-1", false)
			w := want{payment.Retry, "", "", "idle"}
			if tc.config {
				w = want{payment.DeadLetter, intent.StatusFailed, deadletter.ClassConfig, "done"}
			}
			check(t, b, in.IntentID, b.deliverAt(in, 5, b.now.Add(-tc.age)), w)
		})
	}
}

// TestRetryBudgetBoundaries: a payment not sent is dead-lettered
// "exhausted" on a redelivery at the retry budget exactly; its first
// delivery always tries and retries. intake.go:597:23, 597:61.
func TestRetryBudgetBoundaries(t *testing.T) {
	b := newBed(t, notSent)
	in := payIntent("x1", false)
	check(t, b, in.IntentID, b.deliverAt(in, 1, b.now.Add(-25*time.Hour)), want{payment.Retry, "", "", "idle"})

	b = newBed(t, notSent)
	check(t, b, in.IntentID, b.deliverAt(in, 2, b.now.Add(-payment.RetryBudgetDefault)), want{payment.DeadLetter, intent.StatusFailed, deadletter.ClassExhausted, "done"})
}

// TestResentOperationNamesTheUnknownAttempt: a void sent again after its
// first send's unknown outcome, and not sent within the retry budget, goes
// to a person naming the attempt whose outcome is unknown.
// intake.go:571:20 (both mutants).
func TestResentOperationNamesTheUnknownAttempt(t *testing.T) {
	b := newBed(t, cut, notSent)
	b.authorized(t, "pay", true)
	b.p = b.pod(payment.Config{RetryBudget: time.Hour}, staticCreds{})
	in := opIntent("void-1", "m1", intent.OpVoid, "pay", "")
	t0 := b.now
	check(t, b, in.IntentID, b.deliver(in, 1), want{payment.Wait, "", "", "unknown"})
	b.now = t0.Add(2 * time.Hour)
	d := b.deliverAt(in, 2, t0)
	check(t, b, in.IntentID, d, want{payment.DeadLetter, intent.StatusUnknownOutcome, deadletter.ClassUnknownOutcome, "done"})
	if named := fmt.Sprintf("attempt %d's unknown outcome", d.Result.Attempts-1); !strings.Contains(d.Letter.Reason, named) {
		t.Fatalf("reason %q; want it to name %q", d.Letter.Reason, named)
	}
}

// TestDecisionAcks: a decision acks its message when it acks or
// dead-letters, never when it redelivers. decision.go:89:49, 89:68.
func TestDecisionAcks(t *testing.T) {
	for a, acks := range map[payment.Action]bool{payment.Ack: true, payment.DeadLetter: true, payment.Retry: false, payment.Wait: false, 0: false} {
		if got := (payment.Decision{Action: a}).Acks(); got != acks {
			t.Errorf("%s acks %v; want %v", a, got, acks)
		}
	}
}

// TestRetryBackoffConfig: the configured redelivery backoff is used, and
// without one the default (never zero: no hot loop). payment.go:222:21.
func TestRetryBackoffConfig(t *testing.T) {
	custom := redelivery.Backoff{Initial: 7 * time.Second, Max: 7 * time.Second, Multiplier: 2}
	for _, tc := range []struct {
		retry redelivery.Backoff
		ok    func(time.Duration) bool
	}{
		{redelivery.Backoff{}, func(d time.Duration) bool { return d > 0 }},
		{custom, func(d time.Duration) bool { return d == custom.Delay(1) }},
	} {
		b := newBed(t, notSent)
		b.p = b.pod(payment.Config{Retry: tc.retry}, staticCreds{})
		d := b.deliver(payIntent("r1", false), 1)
		if d.Action != payment.Retry || !tc.ok(d.Delay) {
			t.Fatalf("backoff %+v: %s after %s", tc.retry, d.Action, d.Delay)
		}
	}
}

// TestResolveBudgetIsInclusive: an unknown outcome still unresolved at the
// resolve budget exactly goes to a person. resolve.go:40:36 (41:36 in the
// first run).
func TestResolveBudgetIsInclusive(t *testing.T) {
	b := newBed(t, ok201("REVERSED"), ok201(cybs.StatusAuthorized))
	in := payIntent("rb-1", false)
	b.unknownFor(in)
	d := b.deliverAt(in, 3, b.now.Add(-payment.ResolveBudgetDefault))
	check(t, b, in.IntentID, d, want{payment.DeadLetter, intent.StatusUnknownOutcome, deadletter.ClassUnknownOutcome, "done"})
	if len(b.cs.calls) != 0 {
		t.Fatalf("calls %v", b.cs.calls)
	}
}

// TestCancelledUnreadableIntentEnds: an unknown attempt that a pod which
// cannot charge the intent cancels ends it with the result of why: INVALID
// for an intent it refuses (a plaintext card under REQUIRE_ENCRYPTED_CARD),
// FAILED for a card it cannot decrypt (config). resolve.go:97:21 (98:21 in
// the first run).
func TestCancelledUnreadableIntentEnds(t *testing.T) {
	t.Run("Refused", func(t *testing.T) {
		b := newBed(t, ok201("REVERSED"))
		in := payIntent("ru-1", false)
		b.unknownFor(in)
		d := work(b.pod(payment.Config{RequireEncryptedCard: true}, staticCreds{}), in, 2, b.now, 0)
		check(t, b, in.IntentID, d, want{payment.DeadLetter, intent.StatusInvalid, deadletter.ClassInvalid, "done"})
	})
	t.Run("Config", func(t *testing.T) {
		b := newBed(t, ok201("REVERSED"))
		in := sealed(payIntent("ru-2", false), cardBox{}, "c")
		b.unknownFor(in)
		d := work(b.pod(payment.Config{}, staticCreds{}), in, 2, b.now, 0)
		check(t, b, in.IntentID, d, want{payment.DeadLetter, intent.StatusFailed, deadletter.ClassConfig, "idle"})
	})
}

// TestFullOperationTakesTheWholeAmount: a capture or reversal without an
// amount takes what is left of the payment: all of it here.
// settle.go:64:18.
func TestFullOperationTakesTheWholeAmount(t *testing.T) {
	for _, op := range []string{intent.OpCapture, intent.OpReverse} {
		t.Run(op, func(t *testing.T) {
			b := newBed(t, ok201("PENDING"))
			b.authorized(t, "pay", false)
			raw, err := b.store.Result(context.Background(), "pay")
			if err != nil {
				t.Fatal(err)
			}
			var paid intent.Result
			if err := json.Unmarshal(raw, &paid); err != nil {
				t.Fatal(err)
			}
			d := b.deliver(opIntent("op-1", "m1", op, "pay", ""), 1)
			if d.Action != payment.Ack || d.Result.Amount != paid.AuthorizedAmount {
				t.Fatalf("%s: %s amount %q; want the authorized %q", op, describe(d), d.Result.Amount, paid.AuthorizedAmount)
			}
		})
	}
}

// TestUnkeyedFingerprintIsBINAndLastFour: the unkeyed fingerprint sees a
// card as its brand, first six and last four digits and expiry, so a
// number of exactly ten digits is the same card as a longer one that shares
// them (a refused intent's card can be that short). fingerprint.go:102:43.
func TestUnkeyedFingerprintIsBINAndLastFour(t *testing.T) {
	short := baseIntent("fp-1", "m1", "10.00", "4111111111", false)
	long := baseIntent("fp-1", "m1", "10.00", "4111110000001111", false)
	if payment.Fingerprint(short) != payment.Fingerprint(long) {
		t.Fatalf("a ten-digit number is not seen as its first six and last four digits")
	}
}

// TestFailedInvalidationIsLogged: credentials CyberSource refused that
// cannot be invalidated are logged with the cause. charge.go:76:47.
func TestFailedInvalidationIsLogged(t *testing.T) {
	b := newBed(t, unauth401, ok201(cybs.StatusAuthorized))
	var logs bytes.Buffer
	invalidateErr := errors.New("token cache unreachable")
	b.p = payment.New(payment.Config{Now: func() time.Time { return b.now }}, &mutCreds{invalidateErr: invalidateErr}, b.cs, b.store, zerolog.New(&logs))
	if d := b.deliver(payIntent("inv-1", false), 1); d.Action != payment.Ack {
		t.Fatalf("%s", describe(d))
	}
	logged := 0
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var l struct{ Level, Error string }
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("log line %s: %v", line, err)
		}
		if l.Level == "warn" && l.Error == invalidateErr.Error() {
			logged++
		}
	}
	if logged != 1 {
		t.Fatalf("the invalidation's failure logged %d times; want once\n%s", logged, logs.String())
	}
}
