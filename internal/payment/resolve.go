package payment

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ttcpay/payflow/internal/cybs"
	"github.com/ttcpay/payflow/internal/deadletter"
	"github.com/ttcpay/payflow/internal/idempotency"
	"github.com/ttcpay/payflow/internal/intent"
)

// resolve settles an attempt whose outcome is unknown, no sooner than the
// resolve delay after the request could last have been sent. A payment,
// capture or refund is cancelled with a timeout reversal or void of its
// transactionId, then tried anew; a full reversal or a void is sent again
// (its answer tells whether the first applied); a partial reversal cannot
// be checked and goes to a person. Any answer that does not prove the
// attempt cancelled goes to a person too, never to a new attempt.
func (p *Processor) resolve(ctx context.Context, j *job) Decision {
	in := j.in
	start := p.cfg.Now()
	w, ok, err := p.store.BeginResolve(ctx, j.a, p.cfg.Lease, p.cfg.ResolveDelay)
	switch {
	case errors.Is(err, idempotency.ErrConflict):
		return retry(time.Second, "the unknown attempt moved on")
	case err != nil:
		j.log.Warn().Err(err).Msg("cannot take the unknown attempt for resolution")
		return p.backoff(j, "cannot take the unknown attempt for resolution")
	case !ok:
		return wait(w+WakeMargin, "too early to resolve the unknown attempt")
	}
	j.claimed = start
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), BookkeepingTimeout)
	defer cancel()
	txn := intentTxn(j)
	log := j.log.With().Str("transactionId", txn).Logger()
	if p.cfg.Now().Sub(j.d.Published) >= p.cfg.ResolveBudget {
		return p.needsPerson(bg, j, fmt.Sprintf("attempt %d (transactionId %s) has an unknown outcome that could not be resolved within the resolve budget of %s",
			j.a.N, txn, p.cfg.ResolveBudget))
	}
	op := in.Op()
	switch {
	case op == intent.OpReverse && in.Amount != "":
		return p.needsPerson(bg, j, fmt.Sprintf("the partial reversal's attempt %d (transactionId %s) has an unknown outcome; CyberSource offers no way to cancel or look up a reversal, and sending it again could reverse twice: check payment and reverse by hand",
			j.a.N, txn))
	case op == intent.OpReverse || op == intent.OpVoid:
		// Safe to send again: "already reversed/voided" answers it.
		p.note(j, "resolve", "the %s of transactionId %s had an unknown outcome: sending it again", op, txn)
		renewed := p.cfg.Now()
		a, err := p.store.Advance(bg, j.a, p.cfg.Lease, j.fp)
		if err != nil {
			log.Warn().Err(err).Msg("cannot advance to send the operation again")
			return retry(time.Second, "cannot advance after an unknown outcome")
		}
		j.a, j.claimed, j.resent = a, renewed, true
		p.withAttempt(j)
		return p.attempt(ctx, j)
	}
	cr, err := p.credentials(ctx, j)
	if err != nil {
		log.Warn().Err(err).Msg("no credentials to resolve the unknown attempt")
		return p.resolveLater(bg, j, "no credentials to resolve the unknown attempt")
	}
	ref := cybs.ClientReference{Code: referenceCode(in), TransactionID: txn, Comments: "timeout"}
	top := opTimeoutReversal
	if op == intent.OpCapture || op == intent.OpRefund || in.Captures() {
		top = opTimeoutVoid
		_, err = p.cs.TimeoutVoid(ctx, cybsCreds(cr), &cybs.VoidRequest{ClientReferenceInformation: ref})
	} else {
		_, err = p.cs.TimeoutReversal(ctx, cybsCreds(cr), &cybs.ReversalRequest{
			ClientReferenceInformation: ref,
			ReversalInformation: cybs.ReversalInformation{
				AmountDetails: cybs.AmountDetails{TotalAmount: in.Amount, Currency: in.Currency}, Reason: "timeout",
			},
		})
	}
	v := classify(top, err, false)
	p.note(j, "resolve", "%s of transactionId %s: %s", top, txn, describeAnswer(v, "", err))
	switch v {
	case Cancelled:
		renewed := p.cfg.Now()
		a, aerr := p.store.Advance(bg, j.a, p.cfg.Lease, j.fp)
		if aerr != nil {
			log.Warn().Err(aerr).Msg("cannot advance after resolving")
			return retry(time.Second, "cannot advance after resolving")
		}
		log.Info().Int("nextAttempt", a.N).Msg("unknown attempt cancelled; trying anew")
		j.a, j.claimed = a, renewed
		p.withAttempt(j)
		if j.noCard {
			// Cancelled, so nothing is charged; charging anew needs the
			// card, which this pod cannot read or refuses.
			r := p.failed(j, j.cardErr.Error())
			if j.noCardClass == deadletter.ClassInvalid {
				r = p.invalidResult(j, j.cardErr.Error())
			}
			if unmatched(j) {
				// This pod could not read the card, so nothing proved the
				// cancelled attempt was this intent's: another intent under
				// the same intentId (another card) must not end the record.
				// It goes back to idle, for the intent whose it is (its
				// redelivery charges it anew), and this message is
				// dead-lettered without writing it; a replay of the letter
				// on a pod with the key claims the record as any delivery.
				if d, ok := p.giveBack(bg, j); !ok {
					return d
				}
				j.log.Warn().Str("class", string(j.noCardClass)).Msg("intent dead-lettered; its record left idle")
				return p.deadLetter(j, j.noCardClass, j.cardErr.Error(), r)
			}
			return p.endWithLetter(bg, j, j.noCardClass, j.cardErr.Error(), r)
		}
		return p.attempt(ctx, j)
	case Exists:
		return p.needsPerson(bg, j, fmt.Sprintf("attempt %d (transactionId %s) had an unknown outcome and its %s answered %s: the transaction may exist and cannot be cancelled",
			j.a.N, txn, top, reasonOf(err)))
	case CredentialsRefused:
		_ = p.creds.Invalidate(bg, cr)
		return p.resolveLater(bg, j, "credentials refused while resolving")
	default: // Unknown, NotSent
		log.Warn().Err(err).Msg("timeout reversal/void outcome unknown; will retry")
		return p.resolveLater(bg, j, "timeout reversal/void outcome unknown")
	}
}

// resolveLater gives the resolution back (the attempt stays unknown) and
// redelivers after the backoff.
func (p *Processor) resolveLater(ctx context.Context, j *job, why string) Decision {
	if err := p.store.MarkUnknown(ctx, j.a); errors.Is(err, idempotency.ErrConflict) {
		return retry(time.Second, "lease lost")
	}
	return p.backoff(j, why)
}

// needsPerson ends the intent as UNKNOWN_OUTCOME with an "unknown-outcome"
// dead letter: the charge or operation may exist and could not be
// cancelled, so it is never tried again automatically. A reservation it
// holds stays (the amount counts as used). The letter is recorded with the
// outcome and re-emitted on every redelivery until it is written.
func (p *Processor) needsPerson(ctx context.Context, j *job, reason string) Decision {
	in := j.in
	j.log.Error().Str("reason", reason).Msg("unknown outcome handed to a person")
	r := &intent.Result{IntentID: in.IntentID, Integrator: in.Integrator, MerchantID: in.MerchantID, BookingID: in.BookingID,
		Reference: in.Reference, Status: intent.StatusUnknownOutcome, Operation: in.Operation, PaymentID: in.PaymentID,
		Amount: in.Amount, Currency: in.Currency, Reason: reason, Attempts: j.a.N, Time: p.cfg.Now()}
	return p.finishWithLetter(ctx, j, &idempotency.Letter{Class: string(deadletter.ClassUnknownOutcome), Reason: reason}, r)
}

// unmatched: the job claimed with CardlessFingerprint because its sealed
// card cannot be read here (cardConfig, refusedFingerprint): the claim
// proved nothing about the card.
func unmatched(j *job) bool {
	return j.in != nil && j.in.EncryptedCard != "" && j.fp == CardlessFingerprint(j.in)
}
