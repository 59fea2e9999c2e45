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
	"github.com/ttcpay/payflow/internal/tokencache"
)

// charge makes attempt j.a of a payment (authorization or sale).
func (p *Processor) charge(ctx context.Context, j *job, retried401 bool) Decision {
	in := j.in
	if j.a.N > 1 && p.exhausted(j) {
		// Every earlier attempt is settled as not charged: give up cleanly.
		reason := fmt.Sprintf("no attempt succeeded within the retry budget of %s (%d attempts)", p.cfg.RetryBudget, j.a.N-1)
		j.log.Error().Msg(reason)
		return p.endWithLetter(ctx, j, deadletter.ClassExhausted, reason, p.failed(j, reason))
	}
	cr, err := p.credentials(ctx, j)
	if err != nil {
		return p.noCredentials(ctx, j, err)
	}
	if d, ok := p.checkLease(ctx, j); !ok {
		return d
	}
	previousID := ""
	if in.UsesLastSuccessfulID() {
		// Visa wants the last successful transaction of the merchant's series.
		last, err := p.store.LastTransaction(ctx, in.MerchantID, in.Credential.PreviousTransactionID)
		if err != nil {
			if d, ok := p.giveBack(ctx, j); !ok {
				return d
			}
			return p.backoff(j, "cannot read the stored-credential series")
		}
		previousID = last
	}
	req := PaymentRequest(in, j.a.N, p.cfg.SolutionID, previousID)
	txn := req.ClientReferenceInformation.TransactionID
	if p.cfg.Test.BeforeCharge != nil {
		p.cfg.Test.BeforeCharge(in.IntentID, j.a.N)
	}
	start := p.cfg.Now()
	sctx, scancel := p.sendContext(ctx, j)
	resp, err := p.cs.Authorize(sctx, cybsCreds(cr), req)
	scancel()
	p.cfg.Observer.ChargeLatency(p.cfg.Now().Sub(start))
	// From here on the charge may exist: bookkeeping must not be cut short
	// by shutdown.
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), BookkeepingTimeout)
	defer cancel()

	v := classifyPayment(resp, err)
	kind := "authorization"
	if in.Captures() {
		kind = "sale"
	}
	status, paymentID := "", ""
	if resp != nil {
		status, paymentID = resp.Status, resp.ID
	}
	p.note(j, "call", "%s of %s %s, transactionId %s: %s%s", kind, in.Amount, in.Currency, txn, describeAnswer(v, status, err), idOf(paymentID))
	switch v {
	case Applied:
		return p.charged(bg, j, cr, resp)
	case CredentialsRefused:
		j.log.Warn().Err(err).Msg("CyberSource refused the credentials; invalidating them")
		if ierr := p.creds.Invalidate(bg, cr); ierr != nil {
			j.log.Warn().Err(ierr).Msg("invalidate credentials")
		}
		if retried401 {
			return p.noCredentials(bg, j, fmt.Errorf("credentials refused twice: %w", errCredentialsRefused))
		}
		renewed := p.cfg.Now()
		a, aerr := p.store.Advance(bg, j.a, p.cfg.Lease, j.fp)
		if aerr != nil {
			j.log.Warn().Err(aerr).Msg("cannot advance after 401")
			return p.backoff(j, "cannot advance after 401")
		}
		j.a, j.claimed = a, renewed
		p.withAttempt(j)
		return p.charge(ctx, j, true)
	case NotApplied:
		j.log.Warn().Err(err).Msg("CyberSource refused the payment request")
		r := p.failed(j, reasonOf(err))
		r.Status = intent.StatusRejected
		return p.endWithLetter(bg, j, deadletter.ClassRejected, err.Error(), r)
	case NotSent:
		if p.exhausted(j) {
			reason := "payment could not be sent within the retry budget: " + err.Error()
			return p.endWithLetter(bg, j, deadletter.ClassExhausted, reason, p.failed(j, reason))
		}
		return p.giveBackThen(bg, j, func() Decision {
			j.log.Warn().Err(err).Msg("payment not sent; retrying later")
			return p.backoff(j, "payment not sent")
		})
	default: // Unknown: DUPLICATE_REQUEST, no answer, 5xx, undocumented
		p.cfg.Observer.UnknownOutcome()
		j.log.Warn().Err(err).Str("transactionId", txn).Msg("charge outcome unknown; the attempt will be reversed or voided before any retry")
		return p.markUnknown(bg, j, "charge outcome unknown")
	}
}

// errCredentialsRefused: CyberSource refused fresh credentials too.
var errCredentialsRefused = errors.New("CyberSource refused the merchant's credentials")

// markUnknown records that the attempt may have applied; its resolution
// waits for the resolve delay. A caller that lost the attempt only
// redelivers: the record's owner resolves it.
func (p *Processor) markUnknown(ctx context.Context, j *job, why string) Decision {
	err := p.store.MarkUnknown(ctx, j.a)
	switch {
	case errors.Is(err, idempotency.ErrConflict):
		j.log.Warn().Msg("the attempt moved on while its outcome was unknown; its owner resolves it")
		return retry(time.Second, "lease lost")
	case err != nil:
		// The lease's end turns it unknown anyway.
		j.log.Warn().Err(err).Msg("cannot mark the outcome unknown; the lease's end will")
	}
	return wait(p.cfg.ResolveDelay+WakeMargin, why)
}

// credentials gets the merchant's credentials for one attempt.
func (p *Processor) credentials(ctx context.Context, j *job) (*tokencache.Credentials, error) {
	cctx, cancel := context.WithTimeout(ctx, CredentialsTimeout)
	defer cancel()
	return p.creds.Get(cctx, j.in.Integrator, j.in.MerchantID)
}

// checkLease renews the attempt's lease right before a call when the claim
// is not fresh: a pod that was paused past its lease finds out here, and
// never sends.
func (p *Processor) checkLease(ctx context.Context, j *job) (Decision, bool) {
	if p.cfg.Now().Sub(j.claimed) <= LeaseCheckAfter {
		return Decision{}, true
	}
	renewed := p.cfg.Now() // the lease runs from no later than this
	if err := p.store.Extend(ctx, j.a, p.cfg.Lease); err != nil {
		j.log.Warn().Err(err).Msg("lease lost (or not renewed) before the call; not sending")
		return retry(time.Second, "lease lost before the call"), false
	}
	j.claimed = renewed
	return Decision{}, true
}

// charged records a definite answer to the payment (approved or declined)
// and, for an authorized payment, opens its settlement ledger in the same
// step. An authorization behind a refusal is recorded with the reversal it
// still needs, then reversed.
func (p *Processor) charged(ctx context.Context, j *job, cr *tokencache.Credentials, resp *cybs.PaymentResponse) Decision {
	in := j.in
	r := p.resultOf(j, resp)
	out := idempotency.Outcome{}
	if r.Authorized() {
		units, err := intent.AmountUnits(cmp.Or(r.AuthorizedAmount, r.Amount))
		if err == nil {
			out.Payment = &idempotency.Payment{CyberSourceID: r.CyberSourceID, Currency: r.Currency, Authorized: units, Sale: r.Capture, MerchantID: in.MerchantID}
		}
	}
	if resp.HoldsAuthorization() {
		out.Reverse = &idempotency.Reversal{PaymentID: resp.ID, Currency: in.Currency,
			Amount: cmp.Or(resp.OrderInformation.AmountDetails.AuthorizedAmount, in.Amount)}
	}
	out.Result, _ = json.Marshal(r)
	err := p.finish(ctx, j, out)
	switch {
	case errors.Is(err, idempotency.ErrConflict):
		return p.lateCharge(ctx, j, cr, resp)
	case err != nil:
		// Redis is down or the write did not replicate: the lease's end
		// turns the attempt unknown, and its resolution cancels this
		// charge before any new attempt. Never ack what is not recorded.
		j.log.Error().Err(err).Str("cybersourceId", resp.ID).Msg("charged but cannot record it; the redelivery resolves it")
		return retry(time.Second, "cannot record the outcome")
	}
	j.log.Info().Str("status", r.Status).Str("cybersourceId", r.CyberSourceID).Str("reason", r.Reason).Msg("intent charged")
	if out.Reverse != nil {
		return p.reverseHeld(ctx, j, r, out.Reverse, false)
	}
	return p.emit(ctx, j, r, false, nil)
}

// finish records the attempt's outcome, trying again on a failure (Finish
// is idempotent for the same attempt); ErrConflict is final.
func (p *Processor) finish(ctx context.Context, j *job, out idempotency.Outcome) error {
	var err error
	for range RecordTries {
		if err = p.store.Finish(ctx, j.a, out); err == nil || errors.Is(err, idempotency.ErrConflict) {
			return err
		}
	}
	return err
}

// lateCharge: the payment was charged after this pod lost its lease (it was
// paused, or the record was lost): the attempt is no longer this pod's, and
// the charge is not the intent's. It is reversed (authorization) or voided
// (sale) at once and reported; if that fails, a person is told with a dead
// letter. The message itself is only redelivered: its owner finishes it.
func (p *Processor) lateCharge(ctx context.Context, j *job, cr *tokencache.Credentials, resp *cybs.PaymentResponse) Decision {
	txn := intentTxn(j)
	log := j.log.With().Str("cybersourceId", resp.ID).Str("transactionId", txn).Str("status", resp.Status).Logger()
	holds := cybs.PaymentOutcome(resp.Status) == cybs.OutcomeApproved || resp.HoldsAuthorization()
	if !holds {
		log.Warn().Msg("a declined payment was answered after the lease was lost; nothing to undo")
		return retry(time.Second, "lease lost")
	}
	var err error
	for range RecordTries {
		if j.in.Captures() {
			_, err = p.cs.Void(ctx, cybsCreds(cr), resp.ID, &cybs.VoidRequest{
				ClientReferenceInformation: cybs.ClientReference{Code: cmp.Or(j.in.Reference, j.in.IntentID), Comments: "charged after its lease was lost"}})
			if classify(opVoid, err, true) == Applied {
				err = nil
			}
		} else {
			amount := cmp.Or(resp.OrderInformation.AmountDetails.AuthorizedAmount, j.in.Amount)
			_, err = p.cs.Reverse(ctx, cybsCreds(cr), resp.ID, &cybs.ReversalRequest{
				ClientReferenceInformation: cybs.ClientReference{Code: cmp.Or(j.in.Reference, j.in.IntentID)},
				ReversalInformation: cybs.ReversalInformation{AmountDetails: cybs.AmountDetails{TotalAmount: amount, Currency: j.in.Currency},
					Reason: "charged after its lease was lost"}})
			if v := classify(opReverse, err, true); v == Applied || v == Already {
				err = nil
			}
		}
		if err == nil {
			break
		}
	}
	p.cfg.Observer.LateCharge(err == nil)
	p.note(j, "late", "payment %s landed after the lease was lost; undone: %v", resp.ID, err == nil)
	if err == nil {
		log.Error().Msg("a charge landed after this pod lost its lease; it was reversed or voided")
		return retry(time.Second, "lease lost; late charge reversed")
	}
	reason := fmt.Sprintf("attempt %d (transactionId %s) was charged as payment %s after its pod lost the lease, and reversing or voiding it failed (%v): a person must reverse or void payment %s",
		j.a.N, txn, resp.ID, err, resp.ID)
	log.Error().Err(err).Msg("a charge landed after this pod lost its lease and could not be reversed; dead-lettering a report")
	d := retry(time.Second, "lease lost; late charge reported")
	d.Merchant, d.IntentID = j.in.MerchantID, j.in.IntentID
	d.Letter = &Letter{Class: deadletter.ClassUnknownOutcome, Reason: reason, DedupID: "late:" + txn}
	return d
}

// reverseHeld reverses an authorization that came with a refusal
// (AUTHORIZED_RISK_DECLINED, PENDING_REVIEW), recorded on the intent's done
// record; the result is published once it is reversed. Until then the
// message is redelivered (the reversal is sent again: a full reversal is
// safe to repeat); past the retry budget it is dead-lettered "exhausted"
// and a replay tries again.
func (p *Processor) reverseHeld(ctx context.Context, j *job, r *intent.Result, rv *idempotency.Reversal, reemit bool) Decision {
	log := j.log.With().Str("cybersourceId", rv.PaymentID).Logger()
	cr, err := p.credentials(ctx, j)
	var v Verdict
	if err == nil {
		_, err = p.cs.Reverse(ctx, cybsCreds(cr), rv.PaymentID, &cybs.ReversalRequest{
			ClientReferenceInformation: cybs.ClientReference{Code: cmp.Or(j.in.Reference, j.in.IntentID)},
			ReversalInformation: cybs.ReversalInformation{AmountDetails: cybs.AmountDetails{TotalAmount: rv.Amount, Currency: rv.Currency},
				Reason: "declined by risk screening"},
		})
		v = classify(opReverse, err, true)
		if v == CredentialsRefused {
			_ = p.creds.Invalidate(ctx, cr)
		}
	}
	p.note(j, "reverse", "reversal of the authorization behind the refusal (payment %s, %s %s): %s", rv.PaymentID, rv.Amount, rv.Currency, describeAnswer(v, "", err))
	if err == nil || v == Already {
		if derr := p.store.ReversalDone(ctx, j.in.IntentID, rv.PaymentID); derr != nil {
			log.Warn().Err(derr).Msg("authorization reversed but not recorded; retrying")
			return p.backoff(j, "reversal not recorded")
		}
		log.Info().Msg("authorization behind a refusal reversed")
		return p.emit(ctx, j, r, reemit, nil)
	}
	if p.cfg.Now().Sub(j.d.Published) >= p.cfg.RetryBudget && j.d.Delivered > 1 {
		reason := fmt.Sprintf("the authorization behind the refusal (payment %s, %s %s) could not be reversed within the retry budget: %v",
			rv.PaymentID, rv.Amount, rv.Currency, err)
		log.Error().Err(err).Msg("authorization behind a refusal still not reversed; dead-lettering")
		return p.deadLetter(j, deadletter.ClassExhausted, reason, r)
	}
	log.Error().Err(err).Msg("could not reverse the authorization behind a refusal; retrying")
	return p.backoff(j, "authorization behind a refusal not reversed yet")
}

func (p *Processor) resultOf(j *job, resp *cybs.PaymentResponse) *intent.Result {
	in := j.in
	r := &intent.Result{
		IntentID: in.IntentID, Integrator: in.Integrator, MerchantID: in.MerchantID, BookingID: in.BookingID,
		Reference: in.Reference, Status: resp.Status, CyberSourceID: resp.ID, Capture: in.Captures(),
		Amount: in.Amount, Currency: in.Currency, ApprovalCode: resp.ProcessorInformation.ApprovalCode,
		Reason: resp.Reason(), NetworkTransactionID: resp.NetworkTransactionID(), CardType: resp.CardType(),
		Attempts: j.a.N, Time: p.cfg.Now(),
	}
	if in.Card != nil && len(in.Card.Number) >= 4 {
		r.CardLast4 = in.Card.Number[len(in.Card.Number)-4:]
	}
	if r.Authorized() {
		r.AuthorizedAmount = cmp.Or(resp.OrderInformation.AmountDetails.AuthorizedAmount, in.Amount)
	}
	if ti := resp.TokenInformation; ti != nil {
		r.Tokens = &intent.Tokens{}
		if ti.Customer != nil {
			r.Tokens.CustomerID = ti.Customer.ID
		}
		if ti.PaymentInstrument != nil {
			r.Tokens.PaymentInstrumentID = ti.PaymentInstrument.ID
		}
		if ti.InstrumentIdentifier != nil {
			r.Tokens.InstrumentIdentifierID = ti.InstrumentIdentifier.ID
		}
	}
	return r
}

// idOf names a CyberSource id in a history line.
func idOf(id string) string {
	if id == "" {
		return ""
	}
	return " (CyberSource id " + id + ")"
}

// intentTxn is the transactionId of the job's current attempt.
func intentTxn(j *job) string { return intent.TransactionID(j.in.IntentID, j.a.N) }

func cybsCreds(cr *tokencache.Credentials) cybs.Credentials {
	return cybs.Credentials{Key: cr.Key(), Generation: cr.Generation, AccessToken: cr.AccessToken, Certificate: cr.Certificate}
}

func reasonOf(err error) string {
	var e *cybs.Error
	if errors.As(err, &e) {
		return cmp.Or(e.Reason, e.Status, e.Outcome.String())
	}
	return err.Error()
}
