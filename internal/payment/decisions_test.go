package payment_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
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

// answer is one scripted CyberSource answer.
type answer struct {
	status string // 201 status ("" with err)
	err    error
}

// script is a CyberSource that answers each call with the next scripted
// answer and records the calls.
type script struct {
	answers []answer
	calls   []string
}

func (s *script) next(ctx context.Context, call string) answer {
	if ctx.Err() != nil {
		// The call's context ended before it was sent (the send deadline):
		// an HTTP client never writes the request.
		s.calls = append(s.calls, "late "+call)
		return answer{err: &cybs.Error{Op: call, Outcome: cybs.OutcomeNotSent, Err: ctx.Err()}}
	}
	s.calls = append(s.calls, call)
	if len(s.answers) == 0 {
		return answer{err: &cybs.Error{Op: call, Outcome: cybs.OutcomeNotSent, Err: errors.New("no scripted answer")}}
	}
	a := s.answers[0]
	s.answers = s.answers[1:]
	return a
}

func (s *script) Authorize(ctx context.Context, _ cybs.Credentials, req *cybs.PaymentRequest) (*cybs.PaymentResponse, error) {
	a := s.next(ctx, "authorize "+req.ClientReferenceInformation.TransactionID)
	if a.err != nil {
		return nil, a.err
	}
	r := &cybs.PaymentResponse{ID: "pay-" + req.ClientReferenceInformation.TransactionID, Status: a.status}
	r.OrderInformation.AmountDetails.AuthorizedAmount = req.OrderInformation.AmountDetails.TotalAmount
	r.ProcessorInformation.NetworkTransactionID = "N" + req.ClientReferenceInformation.TransactionID
	return r, nil
}

func (s *script) follow(ctx context.Context, call string) (*cybs.FollowUpResponse, error) {
	a := s.next(ctx, call)
	if a.err != nil {
		return nil, a.err
	}
	return &cybs.FollowUpResponse{ID: "fu-" + strconv.Itoa(len(s.calls)), Status: a.status}, nil
}

func (s *script) Capture(ctx context.Context, _ cybs.Credentials, id string, _ *cybs.CaptureRequest) (*cybs.FollowUpResponse, error) {
	return s.follow(ctx, "capture "+id)
}
func (s *script) Reverse(ctx context.Context, _ cybs.Credentials, id string, _ *cybs.ReversalRequest) (*cybs.FollowUpResponse, error) {
	return s.follow(ctx, "reverse "+id)
}
func (s *script) Void(ctx context.Context, _ cybs.Credentials, id string, _ *cybs.VoidRequest) (*cybs.FollowUpResponse, error) {
	return s.follow(ctx, "void "+id)
}
func (s *script) Refund(ctx context.Context, _ cybs.Credentials, id string, _ *cybs.RefundRequest) (*cybs.FollowUpResponse, error) {
	return s.follow(ctx, "refund "+id)
}
func (s *script) TimeoutReversal(ctx context.Context, _ cybs.Credentials, r *cybs.ReversalRequest) (*cybs.FollowUpResponse, error) {
	return s.follow(ctx, "timeout-reversal "+r.ClientReferenceInformation.TransactionID)
}
func (s *script) TimeoutVoid(ctx context.Context, _ cybs.Credentials, r *cybs.VoidRequest) (*cybs.FollowUpResponse, error) {
	return s.follow(ctx, "timeout-void "+r.ClientReferenceInformation.TransactionID)
}

type staticCreds struct{ err error }

func (c staticCreds) Get(_ context.Context, integrator, merchant string) (*tokencache.Credentials, error) {
	if c.err != nil {
		return nil, c.err
	}
	return &tokencache.Credentials{Integrator: integrator, MerchantID: merchant, AccessToken: "t", Generation: 1}, nil
}
func (staticCreds) Invalidate(context.Context, *tokencache.Credentials) error { return nil }

// Scripted answers.
var (
	ok201      = func(status string) answer { return answer{status: status} }
	refused400 = func(reason string) answer {
		return answer{err: &cybs.Error{Op: "x", Outcome: cybs.OutcomeInvalid, HTTPStatus: 400, Status: "INVALID_REQUEST", Reason: reason}}
	}
	declined201 = answer{err: &cybs.Error{Op: "x", Outcome: cybs.OutcomeDeclined, HTTPStatus: 201, Status: "DECLINED"}}
	unauth401   = answer{err: &cybs.Error{Op: "x", Outcome: cybs.OutcomeCredentialsRejected, HTTPStatus: 401, Reason: "ACCESS_TOKEN_EXPIRED"}}
	bad502      = answer{err: &cybs.Error{Op: "x", Outcome: cybs.OutcomeUnknown, HTTPStatus: 502, Reason: "SERVER_TIMEOUT"}}
	cut         = answer{err: &cybs.Error{Op: "x", Outcome: cybs.OutcomeUnknown, Err: errors.New("connection reset")}}
	notSent     = answer{err: &cybs.Error{Op: "x", Outcome: cybs.OutcomeNotSent, Err: errors.New("dial refused")}}
	duplicate   = refused400("DUPLICATE_REQUEST")
)

// tbed is one Processor over an in-memory record store on a fixed clock.
type tbed struct {
	now   time.Time
	store *idempotency.Memory
	cs    *script
	p     *payment.Processor
}

func newBed(t *testing.T, answers ...answer) *tbed {
	b := &tbed{now: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC), cs: &script{answers: answers}}
	b.store = idempotency.NewMemory(func() time.Time { return b.now }, 0)
	owners := 0
	b.p = payment.New(payment.Config{Now: func() time.Time { return b.now }, NewOwner: func() string { owners++; return fmt.Sprintf("o%d", owners) }},
		staticCreds{}, b.cs, b.store, zerolog.New(io.Discard))
	return b
}

func payIntent(id string, capture bool) *intent.Intent {
	return baseIntent(id, "m1", "100.00", cardApproved, capture)
}

// deliver works one delivery of in, published at the bed's clock.
func (b *tbed) deliver(in *intent.Intent, delivered uint64) payment.Decision {
	data, _ := json.Marshal(in)
	return b.p.Work(context.Background(), payment.Delivery{Data: data, Subject: "payments.intents." + in.MerchantID, MsgID: in.IntentID,
		Delivered: delivered, Seq: 7, Published: b.now})
}

// authorized records an authorized payment of 100.00 (an authorization, or
// a sale) for the settlement cases.
func (b *tbed) authorized(t *testing.T, id string, sale bool) {
	t.Helper()
	bed := *b
	bed.cs = &script{answers: []answer{ok201(cybs.StatusAuthorized)}}
	bed.p = payment.New(payment.Config{Now: func() time.Time { return b.now }}, staticCreds{}, bed.cs, b.store, zerolog.New(io.Discard))
	if d := bed.deliver(payIntent(id, sale), 1); d.Action != payment.Ack || d.Result.Status != cybs.StatusAuthorized {
		t.Fatalf("payment %s: %+v", id, d)
	}
}

func (b *tbed) state(id string) string { return b.store.Fields(idempotency.Key(id))["s"] }

// unknownFor leaves the record of in unknown at attempt 1, resolvable now.
func (b *tbed) unknownFor(in *intent.Intent) {
	b.store.Load(idempotency.Key(in.IntentID), map[string]string{"s": "unknown", "a": "1",
		"u": strconv.FormatInt(b.now.Add(-2*time.Minute).UnixMilli(), 10), "f": payment.Fingerprint(in)})
}

// want is an expected decision and record transition.
type want struct {
	action payment.Action
	status string           // the result's status ("" no result)
	class  deadletter.Class // the dead letter's class ("" none)
	state  string           // the record's state afterwards
}

func check(t *testing.T, b *tbed, id string, d payment.Decision, w want) {
	t.Helper()
	status, class := "", deadletter.Class("")
	if d.Result != nil {
		status = d.Result.Status
	}
	if d.Letter != nil {
		class = d.Letter.Class
	}
	if d.Action != w.action || status != w.status || class != w.class || b.state(id) != w.state {
		t.Fatalf("decision %s status %q class %q, record %q; want %s %q %q, record %q (calls %v)",
			d.Action, status, class, b.state(id), w.action, w.status, w.class, w.state, b.cs.calls)
	}
}

// TestPaymentDecisions: every CyberSource outcome of an authorization and a
// sale, with the decision and the record transition each one leads to.
func TestPaymentDecisions(t *testing.T) {
	for _, sale := range []bool{false, true} {
		cases := []struct {
			name    string
			answers []answer
			want    want
		}{
			{"Approved", []answer{ok201(cybs.StatusAuthorized)}, want{payment.Ack, cybs.StatusAuthorized, "", "done"}},
			{"PartialApproved", []answer{ok201(cybs.StatusPartialAuthorized)}, want{payment.Ack, cybs.StatusPartialAuthorized, "", "done"}},
			{"Declined", []answer{ok201(cybs.StatusDeclined)}, want{payment.Ack, cybs.StatusDeclined, "", "done"}},
			{"RiskDeclinedReversed", []answer{ok201(cybs.StatusAuthorizedRiskDeclined), ok201("REVERSED")},
				want{payment.Ack, cybs.StatusAuthorizedRiskDeclined, "", "done"}},
			{"RiskDeclinedReversalFails", []answer{ok201(cybs.StatusAuthorizedRiskDeclined), bad502}, want{payment.Retry, "", "", "done"}},
			{"Refused400", []answer{refused400("INVALID_AMOUNT")}, want{payment.DeadLetter, intent.StatusRejected, deadletter.ClassRejected, "done"}},
			{"DuplicateRequest", []answer{duplicate}, want{payment.Wait, "", "", "unknown"}},
			{"UndocumentedReason", []answer{refused400("SOMETHING_NEW")}, want{payment.Wait, "", "", "unknown"}},
			{"Unauthorized", []answer{unauth401, ok201(cybs.StatusAuthorized)}, want{payment.Ack, cybs.StatusAuthorized, "", "done"}},
			{"UnauthorizedTwice", []answer{unauth401, unauth401}, want{payment.Retry, "", "", "idle"}},
			{"BadGateway", []answer{bad502}, want{payment.Wait, "", "", "unknown"}},
			{"ConnectionCut", []answer{cut}, want{payment.Wait, "", "", "unknown"}},
			{"NotSent", []answer{notSent}, want{payment.Retry, "", "", "idle"}},
			{"UnknownStatus", []answer{ok201("PENDING")}, want{payment.Wait, "", "", "unknown"}},
		}
		for _, tc := range cases {
			t.Run(fmt.Sprintf("sale=%v/%s", sale, tc.name), func(t *testing.T) {
				b := newBed(t, tc.answers...)
				in := payIntent("i1", sale)
				check(t, b, "i1", b.deliver(in, 1), tc.want)
			})
		}
	}
}

// TestResolutionDecisions: the timeout reversal (authorization) or void
// (sale) of an unknown attempt, by its answer.
func TestResolutionDecisions(t *testing.T) {
	for _, sale := range []bool{false, true} {
		cases := []struct {
			name    string
			answers []answer
			want    want
		}{
			{"CancelledThenCharged", []answer{ok201("REVERSED"), ok201(cybs.StatusAuthorized)}, want{payment.Ack, cybs.StatusAuthorized, "", "done"}},
			{"AlreadyReversedIsCancelled", []answer{refused400("AUTH_ALREADY_REVERSED"), ok201(cybs.StatusAuthorized)}, want{payment.Ack, cybs.StatusAuthorized, "", "done"}},
			{"NotVoidable", []answer{refused400("NOT_VOIDABLE")}, want{payment.DeadLetter, intent.StatusUnknownOutcome, deadletter.ClassUnknownOutcome, "done"}},
			{"ReversedOrSettled", []answer{refused400("TRANSACTION_ALREADY_REVERSED_OR_SETTLED")}, want{payment.DeadLetter, intent.StatusUnknownOutcome, deadletter.ClassUnknownOutcome, "done"}},
			{"AlreadySettled", []answer{refused400("TRANSACTION_ALREADY_SETTLED")}, want{payment.DeadLetter, intent.StatusUnknownOutcome, deadletter.ClassUnknownOutcome, "done"}},
			{"DuplicateRequest", []answer{duplicate}, want{payment.DeadLetter, intent.StatusUnknownOutcome, deadletter.ClassUnknownOutcome, "done"}},
			{"Declined201", []answer{declined201}, want{payment.DeadLetter, intent.StatusUnknownOutcome, deadletter.ClassUnknownOutcome, "done"}},
			{"Unauthorized", []answer{unauth401}, want{payment.Retry, "", "", "unknown"}},
			{"BadGateway", []answer{bad502}, want{payment.Retry, "", "", "unknown"}},
			{"NotSent", []answer{notSent}, want{payment.Retry, "", "", "unknown"}},
		}
		for _, tc := range cases {
			if tc.name == "AlreadyReversedIsCancelled" && sale {
				continue // a timeout void has no such answer
			}
			t.Run(fmt.Sprintf("sale=%v/%s", sale, tc.name), func(t *testing.T) {
				b := newBed(t, tc.answers...)
				in := payIntent("i1", sale)
				b.unknownFor(in)
				check(t, b, "i1", b.deliver(in, 2), tc.want)
				first := "timeout-reversal "
				if sale {
					first = "timeout-void "
				}
				if b.cs.calls[0] != first+intent.TransactionID("i1", 1) {
					t.Fatalf("resolution sent %v", b.cs.calls)
				}
			})
		}
	}
	t.Run("TooEarly", func(t *testing.T) {
		b := newBed(t)
		in := payIntent("i1", false)
		b.unknownFor(in)
		b.store.Load(idempotency.Key("i1"), map[string]string{"s": "unknown", "a": "1", "u": strconv.FormatInt(b.now.UnixMilli(), 10)})
		check(t, b, "i1", b.deliver(in, 2), want{payment.Wait, "", "", "unknown"})
		if len(b.cs.calls) != 0 {
			t.Fatalf("resolved before the resolve delay: %v", b.cs.calls)
		}
	})
	t.Run("BudgetSpent", func(t *testing.T) {
		b := newBed(t)
		in := payIntent("i1", false)
		b.unknownFor(in)
		data, _ := json.Marshal(in)
		d := b.p.Work(context.Background(), payment.Delivery{Data: data, Subject: "payments.intents.m1", MsgID: "i1", Delivered: 9, Seq: 1,
			Published: b.now.Add(-25 * time.Hour)})
		check(t, b, "i1", d, want{payment.DeadLetter, intent.StatusUnknownOutcome, deadletter.ClassUnknownOutcome, "done"})
	})
}

// TestSettlementDecisions: every outcome of each settlement operation on an
// authorized payment (authorization for capture and reverse, sale for void
// and refund), and of the resolution of an unknown one.
func TestSettlementDecisions(t *testing.T) {
	type tcase struct {
		name    string
		op      string
		amount  string
		resent  bool // the record is unknown: the operation is resolved first
		answers []answer
		want    want
	}
	done := func(status string) want { return want{payment.Ack, status, "", "done"} }
	// A refusal ends the intent (done with its dead letter): only an
	// operator's replay of the letter tries it again.
	rejected := want{payment.DeadLetter, intent.StatusRejected, deadletter.ClassRejected, "done"}
	person := want{payment.DeadLetter, intent.StatusUnknownOutcome, deadletter.ClassUnknownOutcome, "done"}
	waiting := want{payment.Wait, "", "", "unknown"}
	var cases []tcase
	for _, op := range []struct{ op, amount, status, target string }{
		{intent.OpCapture, "", intent.StatusCaptured, "auth"},
		{intent.OpCapture, "30.00", intent.StatusCaptured, "auth"},
		{intent.OpReverse, "", intent.StatusReversed, "auth"},
		{intent.OpVoid, "", intent.StatusVoided, "sale"},
		{intent.OpRefund, "20.00", intent.StatusRefunded, "sale"},
	} {
		name := op.op
		if op.amount != "" {
			name += "Partial"
		}
		cases = append(cases,
			tcase{name + "/Applied", op.op, op.amount, false, []answer{ok201("PENDING")}, done(op.status)},
			tcase{name + "/Declined201", op.op, op.amount, false, []answer{declined201}, rejected},
			tcase{name + "/Refused400", op.op, op.amount, false, []answer{refused400("INVALID_DATA")}, rejected},
			tcase{name + "/DuplicateRequest", op.op, op.amount, false, []answer{duplicate}, waiting},
			tcase{name + "/Unauthorized", op.op, op.amount, false, []answer{unauth401}, want{payment.Retry, "", "", "idle"}},
			tcase{name + "/Unknown", op.op, op.amount, false, []answer{cut}, waiting},
			tcase{name + "/NotSent", op.op, op.amount, false, []answer{notSent}, want{payment.Retry, "", "", "idle"}},
		)
	}
	cases = append(cases,
		// A partial reversal whose outcome is unknown cannot be checked.
		tcase{"reversePartial/Unknown", intent.OpReverse, "40.00", false, []answer{cut}, person},
		// Resolutions: capture and refund are cancelled by a timeout void;
		// a full reversal and a void are sent again.
		tcase{"capture/ResolvedCancelled", intent.OpCapture, "", true, []answer{ok201("VOIDED"), ok201("PENDING")}, done(intent.StatusCaptured)},
		tcase{"capture/ResolvedNotVoidable", intent.OpCapture, "", true, []answer{refused400("NOT_VOIDABLE")}, person},
		tcase{"refund/ResolvedCancelled", intent.OpRefund, "20.00", true, []answer{ok201("VOIDED"), ok201("PENDING")}, done(intent.StatusRefunded)},
		tcase{"reverse/ResentApplied", intent.OpReverse, "", true, []answer{ok201("REVERSED")}, done(intent.StatusReversed)},
		tcase{"reverse/ResentAlreadyReversed", intent.OpReverse, "", true, []answer{refused400("AUTH_ALREADY_REVERSED")}, done(intent.StatusReversed)},
		tcase{"reverse/ResentReversedOrSettled", intent.OpReverse, "", true, []answer{refused400("TRANSACTION_ALREADY_REVERSED_OR_SETTLED")}, person},
		// Any other refusal of a request sent again answers the second one
		// only: the first may have applied (a reversal of the rest answered
		// "already settled" because the first reversed it).
		tcase{"reverse/ResentAlreadySettled", intent.OpReverse, "", true, []answer{refused400("TRANSACTION_ALREADY_SETTLED")}, person},
		tcase{"reverse/ResentInvalidData", intent.OpReverse, "", true, []answer{refused400("INVALID_DATA")}, person},
		tcase{"reverse/ResentDeclined201", intent.OpReverse, "", true, []answer{declined201}, person},
		tcase{"void/ResentNotSupported", intent.OpVoid, "", true, []answer{refused400("NOT_SUPPORTED")}, person},
		tcase{"reversePartial/Resolved", intent.OpReverse, "40.00", true, nil, person},
		tcase{"void/ResentNotVoidable", intent.OpVoid, "", true, []answer{refused400("NOT_VOIDABLE")}, person},
		tcase{"void/ResentApplied", intent.OpVoid, "", true, []answer{ok201("VOIDED")}, done(intent.StatusVoided)},
	)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := newBed(t, tc.answers...)
			sale := tc.op == intent.OpVoid || tc.op == intent.OpRefund
			b.authorized(t, "pay", sale)
			in := opIntent("op1", "m1", tc.op, "pay", tc.amount)
			if tc.resent {
				b.unknownFor(in)
				// The ledger holds the operation's amount since its first
				// attempt.
				amt := int64(-1)
				if tc.amount != "" {
					amt, _ = intent.AmountUnits(tc.amount)
				}
				if _, _, err := b.store.Reserve(context.Background(), "pay", "m1", tc.op, idempotency.Attempt{IntentID: "op1", Owner: "first", N: 1}, amt); err != nil {
					t.Fatal(err)
				}
			}
			check(t, b, "op1", b.deliver(in, 1), tc.want)
			// A refused operation gave its reservation back; an applied or
			// unknown one holds it.
			held := b.store.Fields(idempotency.Key("pay"))["op:op1"] != ""
			if wantHeld := tc.want.action != payment.Retry && tc.want.class != deadletter.ClassRejected; held != wantHeld {
				t.Fatalf("reservation held %v, want %v", held, wantHeld)
			}
		})
	}
}

// TestSettlementRefusedBeforeAnyCall: an operation on another merchant's
// payment, on itself, or beyond what is left is refused before CyberSource
// is called.
func TestSettlementRefusedBeforeAnyCall(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   *intent.Intent
	}{
		{"OtherMerchant", opIntent("op1", "m2", intent.OpRefund, "pay", "5.00")},
		{"BeyondWhatIsLeft", opIntent("op1", "m1", intent.OpCapture, "pay", "500.00")},
		{"UnknownPayment", opIntent("op1", "m1", intent.OpCapture, "nope", "")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBed(t)
			b.authorized(t, "pay", false)
			b.now = b.now.Add(2 * time.Minute)
			d := b.deliver(tc.in, 1)
			if tc.name == "UnknownPayment" {
				check(t, b, "op1", d, want{payment.Retry, "", "", "idle"}) // it may still be on its way
			} else {
				check(t, b, "op1", d, want{payment.DeadLetter, intent.StatusRejected, deadletter.ClassRejected, "done"})
			}
			if len(b.cs.calls) != 0 {
				t.Fatalf("CyberSource was called: %v", b.cs.calls)
			}
		})
	}
}

// TestNoRefundOrVoidOfSeparateCaptures: a refund or void of an
// authorization captured separately belongs to one of its captures at
// CyberSource (/pts/v2/captures/{id}/…), not to the payment's own
// endpoints: refused before any call (it went to /pts/v2/payments/{id}/…).
func TestNoRefundOrVoidOfSeparateCaptures(t *testing.T) {
	for _, op := range []string{intent.OpRefund, intent.OpVoid} {
		t.Run(op, func(t *testing.T) {
			b := newBed(t, ok201("PENDING"), ok201("PENDING"))
			b.authorized(t, "pay", false)
			if d := b.deliver(opIntent("cap1", "m1", intent.OpCapture, "pay", "40.00"), 1); d.Action != payment.Ack {
				t.Fatalf("capture: %+v", d)
			}
			amount := ""
			if op == intent.OpRefund {
				amount = "5.00"
			}
			d := b.deliver(opIntent("op1", "m1", op, "pay", amount), 1)
			check(t, b, "op1", d, want{payment.DeadLetter, intent.StatusRejected, deadletter.ClassRejected, "done"})
			if len(b.cs.calls) != 1 {
				t.Fatalf("CyberSource was called: %v", b.cs.calls)
			}
		})
	}
}

// TestIntakeDecisions: what is refused before any claim.
func TestIntakeDecisions(t *testing.T) {
	b := newBed(t)
	in := payIntent("i1", true)
	data, _ := json.Marshal(in)
	work := func(subject, msgID, replayed string, data []byte) payment.Decision {
		return b.p.Work(context.Background(), payment.Delivery{Data: data, Subject: subject, MsgID: msgID, ReplayedFrom: replayed, Delivered: 1, Seq: 3, Published: b.now})
	}
	for _, tc := range []struct {
		name, subject, msgID, replayed string
		data                           []byte
		class                          deadletter.Class
		merchant                       string
	}{
		{"MsgIDMismatch", "payments.intents.m1", "victim-1", "", data, deadletter.ClassInvalid, "m1"},
		{"NoMsgID", "payments.intents.m1", "", "", data, deadletter.ClassInvalid, "m1"},
		{"ForgedReplay", "payments.intents.m1", "i1:replay:9", "8", data, deadletter.ClassInvalid, "m1"},
		{"OtherMerchantsSubject", "payments.intents.m2", "i1", "", data, deadletter.ClassInvalid, "m2"},
		{"WildcardSubject", "payments.intents.*", "i1", "", data, deadletter.ClassInvalid, "!unroutable"},
		{"NotJSON", "payments.intents.m1", "i1", "", []byte("{"), deadletter.ClassInvalid, "m1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := work(tc.subject, tc.msgID, tc.replayed, tc.data)
			if d.Action != payment.DeadLetter || d.Letter.Class != tc.class || d.Merchant != tc.merchant {
				t.Fatalf("%+v", d)
			}
			if b.state("i1") != "" || len(b.cs.calls) != 0 {
				t.Fatalf("claimed or charged: %q %v", b.state("i1"), b.cs.calls)
			}
		})
	}
	t.Run("ReplayAccepted", func(t *testing.T) {
		b.cs.answers = []answer{ok201(cybs.StatusAuthorized)}
		if d := work("payments.intents.m1", "i1:replay:9", "9", data); d.Action != payment.Ack {
			t.Fatalf("%+v", d)
		}
	})
	t.Run("ConflictingReuse", func(t *testing.T) {
		other := payIntent("i1", true)
		other.Amount = "55.00"
		od, _ := json.Marshal(other)
		d := work("payments.intents.m1", "i1", "", od)
		if d.Action != payment.DeadLetter || d.Letter.Class != deadletter.ClassConflict || d.Result.Status != intent.StatusConflict {
			t.Fatalf("%+v", d)
		}
	})
	t.Run("NoCredentialsConfig", func(t *testing.T) {
		b := newBed(t)
		b.p = payment.New(payment.Config{Now: func() time.Time { return b.now }}, staticCreds{err: &ttc.Error{Kind: ttc.KindNoRefreshToken}}, b.cs, b.store, zerolog.New(io.Discard))
		in := payIntent("i2", true)
		data, _ := json.Marshal(in)
		d := b.p.Work(context.Background(), payment.Delivery{Data: data, Subject: "payments.intents.m1", MsgID: "i2", Delivered: 5, Seq: 1, Published: b.now.Add(-2 * time.Hour)})
		check(t, b, "i2", d, want{payment.DeadLetter, intent.StatusFailed, deadletter.ClassConfig, "done"})
	})
}
