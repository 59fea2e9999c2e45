package payment_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ttcpay/payflow/internal/cybs"
	"github.com/ttcpay/payflow/internal/payment"
)

// The CyberSource model: the documented semantics of the REST payments API
// (shared/reference/cybersource-rest.md and the SDK's 400 reason enums),
// not the happy path. It keeps its own ledger, which the checker reads as
// ground truth:
//   - clientReferenceInformation.transactionId is unique: a reused one is
//     refused with 400 DUPLICATE_REQUEST, for payments and follow-ups;
//   - a payment is received, processed for a while (in flight), then
//     answered; the answer can be lost (connection cut, 502 after the
//     charge), or a 502 can come before anything was charged;
//   - a timeout reversal/void names the lost request's transactionId; one
//     that arrives while the original is still in flight finds nothing
//     (the documented "original failed" answer) and the original then lands;
//   - sales and captures settle after a while: a void then answers
//     NOT_VOIDABLE (or TRANSACTION_ALREADY_REVERSED_OR_SETTLED, the reason
//     the reversal and capture enums use for the same condition);
//   - partial reversals, captures and refunds change the amounts; refunds
//     are not deduplicated;
//   - payment ids belong to a merchant: any call that names another
//     merchant's payment is recorded as a violation (the worker must
//     refuse it before any call).

type csCharge struct {
	id, merchant, txn, code, status, network string
	capture                                  bool
	amount, authorized, captured, reversed   int64
	refunded                                 int64
	voided                                   bool
	at                                       time.Time
	prev                                     string // MIT previousTransactionId
}

// live: an authorization or a sale that still holds or took money.
func (c *csCharge) live() bool {
	if !approvedStatus(c.status) || c.voided {
		return false
	}
	return c.captured > 0 || c.authorized-c.reversed > 0
}

// holdsAfterRefusal: an authorization behind a refusal that is still live.
func (c *csCharge) holdsAfterRefusal() bool {
	return (c.status == cybs.StatusAuthorizedRiskDeclined || c.status == cybs.StatusPendingReview) && !c.voided && c.authorized-c.reversed > 0
}

func approvedStatus(s string) bool {
	switch s {
	case cybs.StatusAuthorized, cybs.StatusPartialAuthorized, cybs.StatusAuthorizedPendingReview,
		cybs.StatusAuthorizedRiskDeclined, cybs.StatusPendingReview:
		return true
	}
	return false
}

type csFollow struct {
	id, merchant, txn, code, kind, payment string
	amount                                 int64
	voided                                 bool
	at                                     time.Time
}

type cybsFaults struct {
	notSent, unauthorized, p502Before, p502After, cut float64
	slow                                              float64       // chance of a long processing (past the client timeout)
	followCut, follow502                              float64       // follow-ups: answer lost after applying; 502 before
	settleAfter                                       time.Duration // sales and captures settle after this
	settleAltReason                                   float64       // chance a settled void answers TRANSACTION_ALREADY_REVERSED_OR_SETTLED
	// processorUnavailable: a payment is refused with the documented 400
	// PROCESSOR_UNAVAILABLE before anything is charged (a transient refusal:
	// the same intent may be authorized when tried again).
	processorUnavailable float64
}

type csModel struct {
	w          *world
	seq        int
	charges    []*csCharge
	byID       map[string]*csCharge
	byTxn      map[string]*csCharge
	follows    []*csFollow
	followTxn  map[string]*csFollow
	usedTxn    map[string]bool
	inflight   map[string]bool
	netOwner   map[string]string // network transaction id → merchant
	violations []string
	dupRefused int
	injected   int // faults drawn (lost answers, 502s, not sent, 401s, slow processing)
	notFound   int // timeout requests that found nothing while the original was in flight
}

func newCSModel(w *world) *csModel {
	return &csModel{w: w, byID: map[string]*csCharge{}, byTxn: map[string]*csCharge{}, followTxn: map[string]*csFollow{},
		usedTxn: map[string]bool{}, inflight: map[string]bool{}, netOwner: map[string]string{}}
}

var _ payment.CyberSource = (*csModel)(nil)

func merchantOfKey(cr cybs.Credentials) string {
	_, m, _ := strings.Cut(cr.Key, "/")
	return m
}

func (cs *csModel) newID() string {
	cs.seq++
	return fmt.Sprintf("7%021d", cs.seq)
}

func cents(s string) int64 {
	whole, frac, _ := strings.Cut(s, ".")
	w, _ := strconv.ParseInt(whole, 10, 64)
	for len(frac) < 2 {
		frac += "0"
	}
	f, _ := strconv.ParseInt(frac[:2], 10, 64)
	return w*100 + f
}

func amountOf(c int64) string { return fmt.Sprintf("%d.%02d", c/100, c%100) }

func csErr(op string, o cybs.Outcome, status int, reason string) error {
	return &cybs.Error{Op: op, Outcome: o, HTTPStatus: status, Status: "INVALID_REQUEST", Reason: reason}
}

func notSentErr(op string) error {
	return &cybs.Error{Op: op, Outcome: cybs.OutcomeNotSent, Err: errors.New("dial tcp: connection refused")}
}

func unknownErr(op string, status int, why string) error {
	return &cybs.Error{Op: op, Outcome: cybs.OutcomeUnknown, HTTPStatus: status, Message: why}
}

func (cs *csModel) faultsOn() bool { return cs.w.faultsOn() }

// fault draws an injected fault with probability p during the chaos period.
func (cs *csModel) fault(p float64) bool {
	if cs.faultsOn() && cs.w.s.chance(p) {
		cs.injected++
		return true
	}
	return false
}

// Authorize is POST /pts/v2/payments.
func (cs *csModel) Authorize(ctx context.Context, cr cybs.Credentials, req *cybs.PaymentRequest) (*cybs.PaymentResponse, error) {
	w, f := cs.w, cs.w.cfg.cybs
	merchant, txn, code := merchantOfKey(cr), req.ClientReferenceInformation.TransactionID, req.ClientReferenceInformation.Code
	w.step("cybs authorize %s txn %s %s", code, txn, req.OrderInformation.AmountDetails.TotalAmount)
	t := w.s.cur
	if cs.late(ctx) {
		return nil, notSentErr("authorize")
	}
	if cs.fault(f.notSent) {
		return nil, notSentErr("authorize")
	}
	if cs.fault(f.unauthorized) {
		return nil, &cybs.Error{Op: "authorize", Outcome: cybs.OutcomeCredentialsRejected, HTTPStatus: 401, Reason: "ACCESS_TOKEN_EXPIRED"}
	}
	if cs.usedTxn[txn] {
		cs.dupRefused++
		w.s.logf("  -> 400 DUPLICATE_REQUEST (transactionId %s used)", txn)
		return nil, csErr("authorize", cybs.OutcomeInvalid, 400, "DUPLICATE_REQUEST")
	}
	cs.usedTxn[txn] = true
	if req.OrderInformation.AmountDetails.TotalAmount == amountRejected {
		return nil, csErr("authorize", cybs.OutcomeInvalid, 400, "INVALID_AMOUNT")
	}
	if cs.fault(f.processorUnavailable) {
		w.s.logf("  -> 400 PROCESSOR_UNAVAILABLE")
		return nil, csErr("authorize", cybs.OutcomeInvalid, 400, "PROCESSOR_UNAVAILABLE")
	}
	if cs.fault(f.p502Before) {
		w.s.logf("  -> 502 before processing")
		return nil, unknownErr("authorize", 502, "SERVER_ERROR before processing")
	}
	// In flight: received, being processed.
	proc := w.s.between(0, 2*time.Second)
	if cs.fault(f.slow) {
		proc = w.s.between(simClientTimeout/2, simClientTimeout+15*time.Second)
	}
	cs.inflight[txn] = true
	// CyberSource processes what it received on its own clock, whatever
	// the calling pod does meanwhile (a frozen pod does not freeze it).
	var c *csCharge
	w.s.after(proc, func() {
		delete(cs.inflight, txn)
		c = cs.land(merchant, txn, code, req)
	})
	// The client gives up at its timeout, or at the send deadline: the
	// call's context ends there (a request on its way is an unknown outcome).
	giveUp := simClientTimeout
	if by, ok := payment.SendBy(ctx); ok {
		giveUp = min(giveUp, by.Sub(w.s.now))
	}
	if proc > giveUp {
		// The client gives up; CyberSource finishes later.
		w.s.sleep(t, giveUp)
		w.s.logf("  -> client timeout (still processing)")
		return nil, unknownErr("authorize", 0, "context deadline exceeded")
	}
	w.s.sleep(t, proc)
	if c == nil {
		return nil, unknownErr("authorize", 0, "no answer")
	}
	if cs.fault(f.cut) {
		w.s.logf("  -> charged %s, connection cut", c.id)
		return nil, unknownErr("authorize", 0, "connection reset after the request was written")
	}
	if cs.fault(f.p502After) {
		w.s.logf("  -> charged %s, 502", c.id)
		return nil, unknownErr("authorize", 502, "SERVER_TIMEOUT")
	}
	resp := &cybs.PaymentResponse{ID: c.id, Status: c.status}
	resp.ClientReferenceInformation.Code, resp.ClientReferenceInformation.TransactionID = code, txn
	if approvedStatus(c.status) {
		resp.OrderInformation.AmountDetails.AuthorizedAmount = amountOf(c.authorized)
		resp.ProcessorInformation.NetworkTransactionID = c.network
		resp.ProcessorInformation.ApprovalCode = "831000"
	}
	if c.status != cybs.StatusAuthorized && c.status != cybs.StatusPartialAuthorized {
		resp.ErrorInformation = &cybs.ErrorInformation{Reason: "PROCESSOR_DECLINED"}
	}
	w.s.logf("  -> 201 %s %s", c.status, c.id)
	return resp, nil
}

// late: the pod resumed past the call's send deadline (payment.SendBy):
// the client's context has ended, so the request is never written.
func (cs *csModel) late(ctx context.Context) bool {
	if by, ok := payment.SendBy(ctx); ok && cs.w.s.now.After(by) {
		cs.w.s.logf("  -> not sent: past the send deadline %s", by.Format("15:04:05.000"))
		return true
	}
	return false
}

// land records the charge of a processed payment.
func (cs *csModel) land(merchant, txn, code string, req *cybs.PaymentRequest) *csCharge {
	amount := cents(req.OrderInformation.AmountDetails.TotalAmount)
	c := &csCharge{id: cs.newID(), merchant: merchant, txn: txn, code: code, amount: amount, capture: req.ProcessingInformation.Capture,
		at: cs.w.s.now, status: cybs.StatusAuthorized}
	if card := req.PaymentInformation.Card; card != nil {
		switch card.Number {
		case cardDeclined:
			c.status = cybs.StatusDeclined
		case cardRiskDeclined:
			c.status = cybs.StatusAuthorizedRiskDeclined
		case cardPendingReview:
			c.status = cybs.StatusPendingReview
		case cardPartial:
			c.status = cybs.StatusPartialAuthorized
		}
	}
	if ini := req.ProcessingInformation.AuthorizationOptions; ini != nil && ini.Initiator != nil && ini.Initiator.MerchantInitiatedTransaction != nil {
		c.prev = ini.Initiator.MerchantInitiatedTransaction.PreviousTransactionID
	}
	if approvedStatus(c.status) {
		c.authorized = amount
		if c.status == cybs.StatusPartialAuthorized {
			c.authorized = amount / 2
		}
		if c.capture && c.status != cybs.StatusAuthorizedRiskDeclined && c.status != cybs.StatusPendingReview {
			c.captured = c.authorized
		}
		c.network = fmt.Sprintf("N%014d", cs.seq)
		cs.netOwner[c.network] = merchant
	}
	cs.charges = append(cs.charges, c)
	cs.byID[c.id] = c
	cs.byTxn[txn] = c
	cs.w.s.logf("  CHARGE %s %s %s %s txn %s", c.id, c.code, c.status, amountOf(c.amount), txn)
	return c
}

func (cs *csModel) settled(at time.Time) bool {
	f := cs.w.cfg.cybs
	return f.settleAfter > 0 && cs.w.s.now.Sub(at) >= f.settleAfter
}

// settledReason is what a void of a settled transaction answers.
func (cs *csModel) settledReason() string {
	if cs.w.s.chance(cs.w.cfg.cybs.settleAltReason) {
		return "TRANSACTION_ALREADY_REVERSED_OR_SETTLED"
	}
	return "NOT_VOIDABLE"
}

// followUp runs the common part of a follow-up by payment id: faults,
// ownership, transactionId uniqueness. apply does the operation and
// returns the response or a 400 reason.
func (cs *csModel) followUp(ctx context.Context, op string, cr cybs.Credentials, paymentID string, ref cybs.ClientReference,
	apply func(c *csCharge) (*cybs.FollowUpResponse, string)) (*cybs.FollowUpResponse, error) {
	w, f := cs.w, cs.w.cfg.cybs
	merchant := merchantOfKey(cr)
	w.step("cybs %s %s of %s txn %s", op, ref.Code, paymentID, ref.TransactionID)
	if cs.late(ctx) {
		return nil, notSentErr(op)
	}
	if cs.fault(f.notSent) {
		return nil, notSentErr(op)
	}
	c := cs.byID[paymentID]
	if c != nil && c.merchant != merchant {
		cs.violations = append(cs.violations, fmt.Sprintf("%s %s by %s on %s's payment %s", op, ref.Code, merchant, c.merchant, paymentID))
		return nil, csErr(op, cybs.OutcomeInvalid, 400, "INVALID_DATA")
	}
	if ref.TransactionID != "" {
		if cs.usedTxn[ref.TransactionID] {
			cs.dupRefused++
			w.s.logf("  -> 400 DUPLICATE_REQUEST")
			return nil, csErr(op, cybs.OutcomeInvalid, 400, "DUPLICATE_REQUEST")
		}
		cs.usedTxn[ref.TransactionID] = true
	}
	if cs.fault(f.follow502) {
		return nil, unknownErr(op, 502, "SERVER_ERROR before processing")
	}
	if c == nil || !approvedStatus(c.status) {
		return nil, csErr(op, cybs.OutcomeInvalid, 400, "MISSING_AUTH")
	}
	resp, reason := apply(c)
	if reason != "" {
		w.s.logf("  -> 400 %s", reason)
		return nil, csErr(op, cybs.OutcomeInvalid, 400, reason)
	}
	if cs.fault(f.followCut) {
		w.s.logf("  -> %s applied, connection cut", op)
		return nil, unknownErr(op, 0, "connection reset after the request was written")
	}
	w.s.logf("  -> 201 %s %s", resp.Status, resp.ID)
	return resp, nil
}

func (cs *csModel) note(kind string, c *csCharge, merchant string, ref cybs.ClientReference, amount int64) *cybs.FollowUpResponse {
	fu := &csFollow{id: cs.newID(), merchant: merchant, txn: ref.TransactionID, code: ref.Code, kind: kind, payment: c.id, amount: amount, at: cs.w.s.now}
	cs.follows = append(cs.follows, fu)
	if ref.TransactionID != "" {
		cs.followTxn[ref.TransactionID] = fu
	}
	cs.w.s.logf("  %s %s %s of %s", strings.ToUpper(kind), fu.id, amountOf(amount), c.id)
	status := map[string]string{"capture": "PENDING", "reversal": "REVERSED", "void": "VOIDED", "refund": "PENDING"}[kind]
	return &cybs.FollowUpResponse{ID: fu.id, Status: status}
}

// Capture is POST /pts/v2/payments/{id}/captures.
func (cs *csModel) Capture(ctx context.Context, cr cybs.Credentials, id string, req *cybs.CaptureRequest) (*cybs.FollowUpResponse, error) {
	return cs.followUp(ctx, "capture", cr, id, req.ClientReferenceInformation, func(c *csCharge) (*cybs.FollowUpResponse, string) {
		amt := cents(req.OrderInformation.AmountDetails.TotalAmount)
		switch {
		case c.voided || c.authorized-c.reversed <= 0 && c.captured == 0:
			return nil, "AUTH_ALREADY_REVERSED"
		case amt > c.authorized-c.captured-c.reversed:
			return nil, "EXCEEDS_AUTH_AMOUNT"
		}
		c.captured += amt
		return cs.note("capture", c, merchantOfKey(cr), req.ClientReferenceInformation, amt), ""
	})
}

// Reverse is POST /pts/v2/payments/{id}/reversals.
func (cs *csModel) Reverse(ctx context.Context, cr cybs.Credentials, id string, req *cybs.ReversalRequest) (*cybs.FollowUpResponse, error) {
	return cs.followUp(ctx, "reversal", cr, id, req.ClientReferenceInformation, func(c *csCharge) (*cybs.FollowUpResponse, string) {
		amt := cents(req.ReversalInformation.AmountDetails.TotalAmount)
		left := c.authorized - c.captured - c.reversed
		switch {
		case c.voided || c.authorized-c.reversed <= 0:
			return nil, "AUTH_ALREADY_REVERSED"
		case left <= 0:
			return nil, "TRANSACTION_ALREADY_SETTLED"
		case amt > left:
			return nil, "INVALID_AMOUNT"
		}
		c.reversed += amt
		return cs.note("reversal", c, merchantOfKey(cr), req.ClientReferenceInformation, amt), ""
	})
}

// Void is POST /pts/v2/payments/{id}/voids (a sale).
func (cs *csModel) Void(ctx context.Context, cr cybs.Credentials, id string, req *cybs.VoidRequest) (*cybs.FollowUpResponse, error) {
	return cs.followUp(ctx, "void", cr, id, req.ClientReferenceInformation, func(c *csCharge) (*cybs.FollowUpResponse, string) {
		switch {
		case c.voided || cs.settled(c.at):
			return nil, cs.settledReason()
		case c.captured == 0 || c.refunded > 0:
			return nil, "NOT_SUPPORTED"
		}
		c.voided = true
		return cs.note("void", c, merchantOfKey(cr), req.ClientReferenceInformation, c.captured), ""
	})
}

// Refund is POST /pts/v2/payments/{id}/refunds; refunds are not
// deduplicated.
func (cs *csModel) Refund(ctx context.Context, cr cybs.Credentials, id string, req *cybs.RefundRequest) (*cybs.FollowUpResponse, error) {
	return cs.followUp(ctx, "refund", cr, id, req.ClientReferenceInformation, func(c *csCharge) (*cybs.FollowUpResponse, string) {
		amt := cents(req.OrderInformation.AmountDetails.TotalAmount)
		switch {
		case c.voided:
			return nil, "CAPTURE_ALREADY_VOIDED"
		case amt > c.captured-c.refunded:
			return nil, "INVALID_AMOUNT"
		}
		c.refunded += amt
		return cs.note("refund", c, merchantOfKey(cr), req.ClientReferenceInformation, amt), ""
	})
}

// TimeoutReversal is POST /pts/v2/reversals, keyed on the lost
// authorization's transactionId.
func (cs *csModel) TimeoutReversal(_ context.Context, cr cybs.Credentials, req *cybs.ReversalRequest) (*cybs.FollowUpResponse, error) {
	return cs.timeout("timeout-reversal", cr, req.ClientReferenceInformation.TransactionID)
}

// TimeoutVoid is POST /pts/v2/voids, keyed on the lost sale's, capture's or
// refund's transactionId.
func (cs *csModel) TimeoutVoid(_ context.Context, cr cybs.Credentials, req *cybs.VoidRequest) (*cybs.FollowUpResponse, error) {
	return cs.timeout("timeout-void", cr, req.ClientReferenceInformation.TransactionID)
}

func (cs *csModel) timeout(op string, cr cybs.Credentials, txn string) (*cybs.FollowUpResponse, error) {
	resp, err := cs.timeoutAnswer(op, cr, txn)
	if e := (*cybs.Error)(nil); errors.As(err, &e) && e.Outcome == cybs.OutcomeInvalid {
		cs.w.s.logf("  -> 400 %s", e.Reason)
	}
	return resp, err
}

func (cs *csModel) timeoutAnswer(op string, cr cybs.Credentials, txn string) (*cybs.FollowUpResponse, error) {
	w, f := cs.w, cs.w.cfg.cybs
	merchant := merchantOfKey(cr)
	w.step("cybs %s txn %s", op, txn)
	if cs.fault(f.notSent) {
		return nil, notSentErr(op)
	}
	if cs.fault(f.follow502) {
		return nil, unknownErr(op, 502, "SERVER_ERROR before processing")
	}
	// The transactionId is spent: an original sent after this is refused.
	cs.usedTxn[txn] = true
	lost := func(resp *cybs.FollowUpResponse) (*cybs.FollowUpResponse, error) {
		if cs.fault(f.followCut) {
			w.s.logf("  -> %s applied, connection cut", op)
			return nil, unknownErr(op, 0, "connection reset after the request was written")
		}
		w.s.logf("  -> 201 %s", resp.Status)
		return resp, nil
	}
	notFound := func() (*cybs.FollowUpResponse, error) {
		if cs.inflight[txn] {
			cs.notFound++
			w.s.logf("  NOT FOUND while the original %s is in flight", txn)
		}
		resp := &cybs.FollowUpResponse{ID: cs.newID(), Status: "REVERSED"}
		resp.ProcessorInformation.ResponseCode = "25"
		if op == "timeout-void" {
			resp.Status = "VOIDED"
			resp.VoidAmountDetails = &struct {
				VoidAmount                string `json:"voidAmount"`
				OriginalTransactionAmount string `json:"originalTransactionAmount"`
				Currency                  string `json:"currency"`
			}{OriginalTransactionAmount: "0"}
		} else {
			resp.ReversalAmountDetails = &struct {
				ReversedAmount            string `json:"reversedAmount"`
				OriginalTransactionAmount string `json:"originalTransactionAmount"`
				Currency                  string `json:"currency"`
			}{OriginalTransactionAmount: "0"}
		}
		return lost(resp)
	}
	if fu := cs.followTxn[txn]; fu != nil && op == "timeout-void" {
		if fu.merchant != merchant {
			return notFound()
		}
		c := cs.byID[fu.payment]
		switch {
		case fu.voided || cs.settled(fu.at):
			return nil, csErr(op, cybs.OutcomeInvalid, 400, cs.settledReason())
		}
		fu.voided = true
		switch fu.kind {
		case "capture":
			c.captured -= fu.amount
		case "refund":
			c.refunded -= fu.amount
		}
		w.s.logf("  TIMEOUT-VOID of %s %s", fu.kind, fu.id)
		return lost(&cybs.FollowUpResponse{ID: cs.newID(), Status: "VOIDED"})
	}
	c := cs.byTxn[txn]
	if c == nil || c.merchant != merchant || !approvedStatus(c.status) {
		return notFound()
	}
	switch {
	case op == "timeout-reversal" && c.voided:
		return nil, csErr(op, cybs.OutcomeInvalid, 400, "AUTH_ALREADY_REVERSED")
	case op == "timeout-reversal" && c.authorized-c.reversed <= 0:
		return nil, csErr(op, cybs.OutcomeInvalid, 400, "AUTH_ALREADY_REVERSED")
	case op == "timeout-reversal" && c.captured > 0:
		return nil, csErr(op, cybs.OutcomeInvalid, 400, "TRANSACTION_ALREADY_SETTLED")
	case op == "timeout-reversal":
		c.reversed = c.authorized
		w.s.logf("  TIMEOUT-REVERSAL of %s", c.id)
		return lost(&cybs.FollowUpResponse{ID: cs.newID(), Status: "REVERSED"})
	case !c.capture:
		return nil, csErr(op, cybs.OutcomeInvalid, 400, "NOT_SUPPORTED")
	case c.voided || cs.settled(c.at):
		return nil, csErr(op, cybs.OutcomeInvalid, 400, cs.settledReason())
	}
	c.voided = true
	w.s.logf("  TIMEOUT-VOID of %s", c.id)
	return lost(&cybs.FollowUpResponse{ID: cs.newID(), Status: "VOIDED"})
}
