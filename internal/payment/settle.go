package payment

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ttcpay/payflow/internal/cybs"
	"github.com/ttcpay/payflow/internal/deadletter"
	"github.com/ttcpay/payflow/internal/idempotency"
	"github.com/ttcpay/payflow/internal/intent"
)

// operate runs a settlement operation (capture, reverse, void, refund) on an
// earlier payment of the same merchant, for the claimed attempt. Its amount
// is reserved on the payment's ledger first, so that a capture or refund
// beyond what is left, or any operation on another merchant's payment, is
// refused before any call, and a redelivered operation reserves nothing new.
func (p *Processor) operate(ctx context.Context, j *job) Decision {
	in := j.in
	op := in.Op()
	paymentID, payIntent := in.PaymentID, in.PaymentIntentID
	if payIntent == "" {
		id, err := p.store.PaymentIntent(ctx, paymentID)
		if err != nil {
			return p.giveBackThen(ctx, j, func() Decision { return p.backoff(j, "cannot look the payment up") })
		}
		if id == "" {
			return p.refuse(ctx, j, paymentID, fmt.Sprintf("%s of payment %s refused: %v", op, paymentID, idempotency.ErrUnknownPayment))
		}
		payIntent = id
	}
	b, err := p.store.Result(ctx, payIntent)
	if err != nil {
		return p.giveBackThen(ctx, j, func() Decision { return p.backoff(j, "cannot read the payment's record") })
	}
	if b == nil {
		// The payment may still be on its way: wait for it, within budget.
		if p.exhausted(j) {
			reason := fmt.Sprintf("payment intent %s was never settled", payIntent)
			return p.endWithLetter(ctx, j, deadletter.ClassExhausted, reason, p.failed(j, reason))
		}
		return p.giveBackThen(ctx, j, func() Decision {
			j.log.Info().Str("paymentIntentId", payIntent).Msg("payment not settled yet; waiting for it")
			return p.backoff(j, "payment not settled yet")
		})
	}
	var r intent.Result
	switch err := json.Unmarshal(b, &r); {
	case err != nil || r.MerchantID != in.MerchantID:
		return p.refuse(ctx, j, paymentID, fmt.Sprintf("payment intent %s is not a payment of merchant %s", payIntent, in.MerchantID))
	case !r.Authorized() || r.Operation != "":
		return p.refuse(ctx, j, paymentID, fmt.Sprintf("payment intent %s is not an authorized payment (status %s)", payIntent, r.Status))
	case (op == intent.OpRefund || op == intent.OpVoid) && !r.Capture:
		// CyberSource takes these on the capture (/pts/v2/captures/{id}/…),
		// and a payment may have several captures: not supported yet.
		return p.refuse(ctx, j, r.CyberSourceID, fmt.Sprintf("%s of payment intent %s refused: it is an authorization captured separately, and a %s goes to one of its captures (CyberSource's /pts/v2/captures/{id}), which payflow does not do yet; only sales (capture with the authorization) take a %s",
			op, payIntent, op, op))
	}
	paymentID = r.CyberSourceID
	amount := int64(-1)
	if in.Amount != "" {
		u, err := intent.AmountUnits(in.Amount)
		if err != nil {
			return p.refuse(ctx, j, paymentID, err.Error())
		}
		amount = u
	}
	units, currency, err := p.store.Reserve(ctx, payIntent, in.MerchantID, op, j.a, amount)
	switch {
	case errors.Is(err, idempotency.ErrForeign):
		return p.refuse(ctx, j, paymentID, fmt.Sprintf("%s of payment %s refused: it is not a payment of merchant %s", op, paymentID, in.MerchantID))
	case errors.Is(err, idempotency.ErrUnknownPayment), errors.Is(err, idempotency.ErrNotVoidable):
		return p.refuse(ctx, j, paymentID, fmt.Sprintf("%s of payment %s refused: %v", op, paymentID, err))
	case errors.Is(err, idempotency.ErrNothingLeft):
		return p.refuse(ctx, j, paymentID, fmt.Sprintf("%s of %s refused: only %s %s is left of payment %s",
			op, in.Amount, intent.FormatAmount(units, currency), currency, paymentID))
	case err != nil:
		j.log.Warn().Err(err).Msg("cannot reserve the amount; retrying")
		return p.giveBackThen(ctx, j, func() Decision { return p.backoff(j, "cannot reserve the amount") })
	}
	j.target = payIntent
	if in.Currency != "" && in.Currency != currency {
		return p.refuse(ctx, j, paymentID, fmt.Sprintf("currency %s differs from the payment's %s", in.Currency, currency))
	}
	if j.resent && op == intent.OpReverse {
		// A reversal is sent again only when it is full at CyberSource,
		// where "already reversed" answers the second one. "The rest" is
		// the ledger's rest: with part of the payment held by other
		// operations (an unsettled capture among them) it is partial there,
		// and a second send would reverse the same amount again.
		total, terr := intent.AmountUnits(cmp.Or(r.AuthorizedAmount, r.Amount))
		if terr != nil || units != total {
			bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), BookkeepingTimeout)
			defer cancel()
			return p.needsPerson(bg, j, fmt.Sprintf("an earlier send of the reversal of %s %s of payment %s (intent %s, before attempt %d) had an unknown outcome, and the reversal is partial at CyberSource (other operations hold part of the payment): sending it again could reverse twice: check the payment and reverse by hand",
				intent.FormatAmount(units, currency), currency, paymentID, in.IntentID, j.a.N))
		}
	}
	cr, err := p.credentials(ctx, j)
	if err != nil {
		return p.noCredentials(ctx, j, err)
	}
	if d, ok := p.checkLease(ctx, j); !ok {
		return d
	}
	amountStr := intent.FormatAmount(units, currency)
	ref := cybs.ClientReference{Code: referenceCode(in), TransactionID: intentTxn(j)}
	order := cybs.OrderInformation{AmountDetails: cybs.AmountDetails{TotalAmount: amountStr, Currency: currency}}
	cc := cybsCreds(cr)
	var fu *cybs.FollowUpResponse
	if p.cfg.Test.BeforeCharge != nil {
		p.cfg.Test.BeforeCharge(in.IntentID, j.a.N)
	}
	sctx, scancel := p.sendContext(ctx, j)
	switch op {
	case intent.OpCapture:
		fu, err = p.cs.Capture(sctx, cc, paymentID, &cybs.CaptureRequest{ClientReferenceInformation: ref, OrderInformation: order})
	case intent.OpRefund:
		fu, err = p.cs.Refund(sctx, cc, paymentID, &cybs.RefundRequest{ClientReferenceInformation: ref, OrderInformation: order})
	case intent.OpReverse:
		fu, err = p.cs.Reverse(sctx, cc, paymentID, &cybs.ReversalRequest{ClientReferenceInformation: ref,
			ReversalInformation: cybs.ReversalInformation{AmountDetails: order.AmountDetails, Reason: "cancelled"}})
	case intent.OpVoid:
		fu, err = p.cs.Void(sctx, cc, paymentID, &cybs.VoidRequest{ClientReferenceInformation: ref})
	}
	scancel()
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), BookkeepingTimeout)
	defer cancel()
	v := classify(op, err, j.resent)
	fuID := ""
	if fu != nil {
		fuID = fu.ID
	}
	p.note(j, "call", "%s of %s %s of payment %s, transactionId %s: %s%s", op, amountStr, currency, paymentID, intentTxn(j), describeAnswer(v, "", err), idOf(fuID))
	switch v {
	case Applied, Already:
		status := map[string]string{intent.OpCapture: intent.StatusCaptured, intent.OpRefund: intent.StatusRefunded,
			intent.OpReverse: intent.StatusReversed, intent.OpVoid: intent.StatusVoided}[op]
		r := &intent.Result{IntentID: in.IntentID, Integrator: in.Integrator, MerchantID: in.MerchantID, BookingID: in.BookingID,
			Reference: in.Reference, Status: status, Operation: op, PaymentID: paymentID, Amount: amountStr, Currency: currency,
			Attempts: j.a.N, Time: p.cfg.Now()}
		if fu != nil {
			r.CyberSourceID = fu.ID
		}
		b, _ := json.Marshal(r)
		switch err := p.finish(bg, j, idempotency.Outcome{Result: b}); {
		case errors.Is(err, idempotency.ErrConflict):
			return p.lateOperation(j, op, paymentID, r.CyberSourceID)
		case err != nil:
			j.log.Error().Err(err).Msg(op + " applied but cannot record it; the redelivery resolves it")
			return retry(time.Second, "cannot record the outcome")
		}
		j.log.Info().Str("status", status).Str("paymentId", paymentID).Str("amount", amountStr).Msg("settlement operation applied")
		return p.emit(bg, j, r, false, nil)
	case Ambiguous:
		return p.needsPerson(bg, j, fmt.Sprintf("the %s of payment %s was sent again after an unknown outcome and CyberSource answered %s: the first may have applied",
			op, paymentID, reasonOf(err)))
	case NotApplied:
		return p.refuse(bg, j, paymentID, err.Error())
	case CredentialsRefused:
		_ = p.creds.Invalidate(bg, cr)
		return p.giveBackThen(bg, j, func() Decision { return retry(time.Second, "credentials refused") })
	case NotSent:
		if p.exhausted(j) {
			reason := fmt.Sprintf("%s could not be sent within the retry budget: %v", op, err)
			return p.endWithLetter(bg, j, deadletter.ClassExhausted, reason, p.failed(j, reason))
		}
		return p.giveBackThen(bg, j, func() Decision { return p.backoff(j, op+" not sent") })
	}
	// Unknown.
	p.cfg.Observer.UnknownOutcome()
	j.log.Warn().Err(err).Msg(op + " outcome unknown")
	if op == intent.OpReverse && in.Amount != "" {
		return p.needsPerson(bg, j, fmt.Sprintf("the partial reversal of %s %s of payment %s (attempt %d, transactionId %s) has an unknown outcome; CyberSource offers no way to cancel or look up a reversal, and sending it again could reverse twice: check the payment and reverse by hand",
			amountStr, currency, paymentID, j.a.N, intentTxn(j)))
	}
	return p.markUnknown(bg, j, op+" outcome unknown")
}

// lateOperation: a settlement operation applied after this pod lost its
// lease. CyberSource cannot undo a reversal, and an operation is not
// cancelled by id here: a person is told.
func (p *Processor) lateOperation(j *job, op, paymentID, cybersourceID string) Decision {
	reason := fmt.Sprintf("the %s of payment %s (attempt %d, transactionId %s, CyberSource id %s) applied after its pod lost the lease: check that the operation applied once",
		op, paymentID, j.a.N, intentTxn(j), cmp.Or(cybersourceID, "unknown"))
	j.log.Error().Msg(reason)
	p.cfg.Observer.LateCharge(false)
	d := retry(time.Second, "lease lost; late operation reported")
	d.Merchant, d.IntentID = j.in.MerchantID, j.in.IntentID
	d.Letter = &Letter{Class: deadletter.ClassUnknownOutcome, Reason: reason, DedupID: "late:" + intentTxn(j)}
	return d
}

// refuse ends a settlement operation that cannot be done with a REJECTED
// result and a "rejected" dead letter, its reservation given back.
func (p *Processor) refuse(ctx context.Context, j *job, paymentID, reason string) Decision {
	j.log.Warn().Str("reason", reason).Msg("settlement operation refused")
	r := p.failed(j, reason)
	r.Status, r.PaymentID = intent.StatusRejected, paymentID
	return p.endWithLetter(ctx, j, deadletter.ClassRejected, reason, r)
}

// giveBackThen gives the attempt (and the reservation) back, then decides;
// an attempt that is no longer the caller's only redelivers.
func (p *Processor) giveBackThen(ctx context.Context, j *job, then func() Decision) Decision {
	if d, ok := p.giveBack(ctx, j); !ok {
		return d
	}
	return then()
}

// unreserve gives the operation's reservation back (fenced on the attempt
// that holds it); nothing to do before a reservation was made, nor for an
// operation sent again after an unknown outcome (the first may have
// applied: its amount stays reserved).
func (p *Processor) unreserve(ctx context.Context, j *job) error {
	if j.target == "" || j.resent {
		return nil
	}
	return p.store.Unreserve(ctx, j.target, j.in.Op(), j.a)
}

// referenceCode is clientReferenceInformation.code of an intent's
// follow-ups: its reference, or its intentId (validated to fit).
func referenceCode(in *intent.Intent) string { return cmp.Or(in.Reference, in.IntentID) }
