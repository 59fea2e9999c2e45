package consume

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ttcpay/payflow/internal/cybs"
	"github.com/ttcpay/payflow/internal/dlq"
	"github.com/ttcpay/payflow/internal/idempotency"
	"github.com/ttcpay/payflow/internal/intent"
)

// operate runs a settlement operation (capture, reverse, void, refund) on an
// earlier payment, for the claimed attempt. Its amount is reserved on the
// payment's ledger first, so that a capture or refund beyond what is left is
// refused before any call, and a redelivered operation reserves nothing new.
func (p *Payments) operate(ctx context.Context, j *job) {
	in := j.in
	op := in.Op()
	paymentID, payIntent := in.PaymentID, in.PaymentIntentID
	if payIntent == "" {
		id, err := p.records.PaymentIntent(ctx, paymentID)
		if err != nil {
			p.release(ctx, j)
			j.log.Warn().Err(err).Msg("cannot look the payment up; retrying")
			p.nak(j, p.cfg.Retry.Delay(j.delivered))
			return
		}
		if id == "" {
			p.release(ctx, j)
			p.refuse(ctx, j, paymentID, fmt.Sprintf("%s of payment %s refused: %v", op, paymentID, idempotency.ErrUnknownPayment))
			return
		}
		payIntent = id
	}
	if in.PaymentIntentID != "" {
		b, err := p.records.Result(ctx, in.PaymentIntentID)
		if err != nil {
			p.release(ctx, j)
			j.log.Warn().Err(err).Msg("cannot read the payment's record; retrying")
			p.nak(j, p.cfg.Retry.Delay(j.delivered))
			return
		}
		if b == nil {
			// The payment may still be on its way: wait for it, within budget.
			p.release(ctx, j)
			if p.exhausted(j) {
				p.giveUp(ctx, j, fmt.Errorf("payment intent %s was never settled", in.PaymentIntentID))
				return
			}
			j.log.Info().Str("paymentIntentId", in.PaymentIntentID).Msg("payment not settled yet; waiting for it")
			p.nak(j, p.cfg.Retry.Delay(j.delivered))
			return
		}
		var r intent.Result
		if err := json.Unmarshal(b, &r); err != nil || !r.Authorized() {
			p.release(ctx, j)
			p.refuse(ctx, j, "", fmt.Sprintf("payment intent %s is not an authorized payment (status %s)", in.PaymentIntentID, r.Status))
			return
		}
		paymentID = r.CyberSourceID
	}
	amount := int64(-1)
	if in.Amount != "" {
		u, err := intent.AmountUnits(in.Amount)
		if err != nil {
			p.release(ctx, j)
			p.refuse(ctx, j, paymentID, err.Error())
			return
		}
		amount = u
	}
	units, currency, err := p.records.Reserve(ctx, payIntent, in.IntentID, op, amount)
	switch {
	case errors.Is(err, idempotency.ErrUnknownPayment), errors.Is(err, idempotency.ErrNotVoidable):
		p.release(ctx, j)
		p.refuse(ctx, j, paymentID, fmt.Sprintf("%s of payment %s refused: %v", op, paymentID, err))
		return
	case errors.Is(err, idempotency.ErrNothingLeft):
		p.release(ctx, j)
		p.refuse(ctx, j, paymentID, fmt.Sprintf("%s of %s refused: only %s %s is left of payment %s",
			op, in.Amount, intent.FormatAmount(units, currency), currency, paymentID))
		return
	case err != nil:
		p.release(ctx, j)
		j.log.Warn().Err(err).Msg("cannot reserve the amount; retrying")
		p.nak(j, p.cfg.Retry.Delay(j.delivered))
		return
	}
	if in.Currency != "" && in.Currency != currency {
		_ = p.records.Unreserve(ctx, payIntent, in.IntentID, op)
		p.release(ctx, j)
		p.refuse(ctx, j, paymentID, fmt.Sprintf("currency %s differs from the payment's %s", in.Currency, currency))
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	cr, err := p.creds.Get(cctx, in.Integrator, in.MerchantID)
	cancel()
	if err != nil {
		p.release(ctx, j)
		p.credentialsFailed(ctx, j, err)
		return
	}
	amountStr := intent.FormatAmount(units, currency)
	ref := cybs.ClientReference{Code: cmp.Or(in.Reference, in.IntentID), TransactionID: intent.TransactionID(in.IntentID, j.attempt)}
	order := cybs.OrderInformation{AmountDetails: cybs.AmountDetails{TotalAmount: amountStr, Currency: currency}}
	cc := cybsCreds(cr)
	var fu *cybs.FollowUpResponse
	switch op {
	case intent.OpCapture:
		fu, err = p.charger.Capture(ctx, cc, paymentID, &cybs.CaptureRequest{ClientReferenceInformation: ref, OrderInformation: order})
	case intent.OpRefund:
		fu, err = p.charger.Refund(ctx, cc, paymentID, &cybs.RefundRequest{ClientReferenceInformation: ref, OrderInformation: order})
	case intent.OpReverse:
		fu, err = p.charger.Reverse(ctx, cc, paymentID, &cybs.ReversalRequest{ClientReferenceInformation: ref,
			ReversalInformation: cybs.ReversalInformation{AmountDetails: order.AmountDetails, Reason: "cancelled"}})
	case intent.OpVoid:
		fu, err = p.charger.Void(ctx, cc, paymentID, &cybs.VoidRequest{ClientReferenceInformation: ref})
	}
	bg, cancelBG := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancelBG()
	var e *cybs.Error
	errors.As(err, &e)
	alreadyDone := e != nil && j.attempt > 1 && (op == intent.OpReverse && e.Reason == "AUTH_ALREADY_REVERSED" ||
		op == intent.OpVoid && e.Reason == "TRANSACTION_ALREADY_REVERSED_OR_SETTLED")
	switch o := cybs.OutcomeOf(err); {
	case err == nil || alreadyDone:
		status := map[string]string{intent.OpCapture: intent.StatusCaptured, intent.OpRefund: intent.StatusRefunded,
			intent.OpReverse: intent.StatusReversed, intent.OpVoid: intent.StatusVoided}[op]
		r := &intent.Result{IntentID: in.IntentID, Integrator: in.Integrator, MerchantID: in.MerchantID, BookingID: in.BookingID,
			Reference: in.Reference, Status: status, Operation: op, PaymentID: paymentID, Amount: amountStr, Currency: currency,
			Attempts: j.attempt, Time: p.cfg.Now()}
		if fu != nil {
			r.CyberSourceID = fu.ID
		}
		p.finish(bg, j, r)
	case o == cybs.OutcomeInvalid || o == cybs.OutcomeDeclined:
		_ = p.records.Unreserve(bg, payIntent, in.IntentID, op)
		p.release(bg, j)
		p.refuse(bg, j, paymentID, err.Error())
	case o == cybs.OutcomeCredentialsRejected:
		_ = p.creds.Invalidate(bg, cr)
		p.release(bg, j)
		p.nak(j, time.Second)
	case o == cybs.OutcomeNotSent:
		p.release(bg, j)
		if p.exhausted(j) {
			_ = p.records.Unreserve(bg, payIntent, in.IntentID, op)
			p.giveUp(bg, j, fmt.Errorf("%s could not be sent within the retry budget: %w", op, err))
			return
		}
		p.nak(j, p.cfg.Retry.Delay(j.delivered))
	default:
		// Unknown: a capture or refund is cancelled by a timeout void of
		// this attempt before it is tried again; a reversal or void is
		// simply repeated.
		p.m.UnknownOutcomes.Inc()
		j.log.Warn().Err(err).Msg(op + " outcome unknown")
		if merr := p.records.MarkUnknown(bg, in.IntentID, j.owner, j.attempt); merr != nil {
			j.log.Warn().Err(merr).Msg("mark unknown")
		}
		p.nak(j, p.cfg.ResolveDelay+100*time.Millisecond)
	}
}

// refuse dead-letters a settlement operation that cannot be done, with a
// REJECTED result.
func (p *Payments) refuse(ctx context.Context, j *job, paymentID, reason string) {
	in := j.in
	j.log.Warn().Str("reason", reason).Msg("settlement operation refused")
	p.deadLetter(ctx, j, in.MerchantID, dlq.ClassRejected, reason, &intent.Result{
		IntentID: in.IntentID, Integrator: in.Integrator, MerchantID: in.MerchantID, BookingID: in.BookingID,
		Reference: in.Reference, Status: intent.StatusRejected, Operation: in.Op(), PaymentID: paymentID,
		Amount: in.Amount, Currency: in.Currency, Reason: reason, Attempts: j.attempt, Time: p.cfg.Now(),
	})
}
