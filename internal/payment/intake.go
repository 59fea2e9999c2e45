package payment

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"github.com/ttcpay/payflow/internal/deadletter"
	"github.com/ttcpay/payflow/internal/idempotency"
	"github.com/ttcpay/payflow/internal/intent"
	"github.com/ttcpay/payflow/internal/redact"
	"github.com/ttcpay/payflow/internal/streams"
	"github.com/ttcpay/payflow/internal/ttc"
)

// job is one delivery of one intent being worked on.
type job struct {
	d       Delivery
	in      *intent.Intent
	a       idempotency.Attempt
	claimed time.Time
	// resent: this attempt sends again an operation whose previous attempt
	// had an unknown outcome (a full reversal or a void; its answer reads
	// "already done" as applied or ambiguous).
	resent bool
	// target is the payment intent whose ledger holds this operation's
	// reservation ("" until reserved).
	target string
	// fp is the fingerprint the record accepted.
	fp string
	// noCard: this pod cannot read the intent's card (cardConfig); it may
	// resolve an unknown attempt, never charge a new one. cardErr says why.
	noCard  bool
	cardErr error
	// noCardClass is the dead letter that ends the intent once an unknown
	// attempt of it is cancelled (config, or invalid).
	noCardClass deadletter.Class
	log         zerolog.Logger
	// events: what this delivery did, for the intent's history.
	events []idempotency.Event
}

// note adds an event to the delivery's history. detail must not hold card
// data: callers build it from statuses, reasons, ids and amounts.
func (p *Processor) note(j *job, kind, format string, args ...any) {
	e := idempotency.Event{At: p.cfg.Now(), Attempt: j.a.N, Kind: kind, Detail: fmt.Sprintf(format, args...)}
	if kind == "claim" && j.in != nil {
		e.Merchant = j.in.MerchantID
	}
	j.events = append(j.events, e)
}

// Work processes one delivery of an intent and says what to do with it.
func (p *Processor) Work(ctx context.Context, d Delivery) Decision {
	j := &job{d: d}
	dec := p.work(ctx, j)
	if j.a.IntentID != "" {
		dec.HistoryID, dec.Events = j.a.IntentID, j.events
	}
	return dec
}

func (p *Processor) work(ctx context.Context, j *job) Decision {
	d := j.d
	subjMerchant := streams.MerchantOf(d.Subject)
	if !intent.ValidMerchantID(subjMerchant) {
		return p.unroutable(j, subjMerchant)
	}
	in, err := intent.Decode(d.Data, p.cfg.Now())
	if err == nil && in.MerchantID != subjMerchant {
		err = &intent.ValidationError{Problems: []intent.Problem{{Field: "merchantId", Message: "does not match the subject's merchant " + subjMerchant}}}
	}
	noReplay := ""
	if err == nil {
		if err = p.checkMsgID(in, d); err != nil {
			// A replay would republish it under a replay id, which this
			// check accepts: upstream republishes it under its own id.
			noReplay = "refused for its Nats-Msg-Id: upstream republishes it with Nats-Msg-Id = intentId; a replay could charge it a second time"
		}
	}
	if err == nil {
		err = p.openCard(in)
	}
	var cfgErr *cardConfigError
	if errors.As(err, &cfgErr) {
		j.in = in
		j.log = p.logger(j)
		return p.cardConfig(ctx, j, err)
	}
	if err != nil && noReplay == "" && identified(err) {
		// Refused on its content: the intent it names may have been
		// accepted before (see refuseWithRecord).
		named := in
		if named == nil {
			named, _ = intent.Parse(d.Data)
		}
		if named != nil && named.MerchantID == subjMerchant && p.checkMsgID(named, d) == nil {
			j.in = named
			j.log = p.logger(j)
			if d, ok := p.refuseWithRecord(ctx, j, err); ok {
				return d
			}
		}
	}
	if err != nil {
		d := p.invalid(j, subjMerchant, in, err)
		d.Letter.NoReplay = noReplay
		return d
	}
	j.in = in
	j.log = p.logger(j)

	start := p.cfg.Now()
	c, err := p.claim(ctx, j)
	if err != nil {
		// No claim, no charge.
		j.log.Warn().Err(err).Msg("cannot claim the intent; retrying later")
		return p.backoff(j, "cannot claim the intent")
	}
	switch c.State {
	case idempotency.Conflict:
		return p.conflict(j)
	case idempotency.Done:
		if reopens(d, c) {
			return p.reopen(ctx, j, c)
		}
		j.a.IntentID = in.IntentID // history only: the intent is done
		return p.replay(ctx, j, c)
	case idempotency.Busy:
		j.log.Debug().Int64("waitMs", c.Wait.Milliseconds()).Msg("the intent is being worked on elsewhere")
		return retry(c.Wait+WakeMargin, "the intent is being worked on elsewhere")
	case idempotency.Unknown:
		j.a = c.Attempt
		p.withAttempt(j)
		return p.resolve(ctx, j)
	}
	j.a, j.claimed, j.resent = c.Attempt, start, c.MaybeApplied && resends(in.Op())
	p.withAttempt(j)
	p.note(j, "claim", "delivery %d claimed attempt %d (transactionId %s)", d.Delivered, j.a.N, intentTxn(j))
	return p.attempt(ctx, j)
}

// claim takes the intent's record (see Fingerprint for when it is another
// intent's: Conflict).
func (p *Processor) claim(ctx context.Context, j *job) (idempotency.Claim, error) {
	j.fp = p.fingerprint(j.in)
	return p.store.Claim(ctx, j.in.IntentID, j.fp, p.cfg.NewOwner(), p.cfg.Lease)
}

// resends: the operation is sent again, not cancelled, when an attempt's
// outcome was unknown (a full reversal, a void); its answers then read
// "already done" as applied or ambiguous.
func resends(op string) bool { return op == intent.OpReverse || op == intent.OpVoid }

// reopenClasses are the dead letters of intents that were definitely not
// charged: an operator's replay of one tries the intent again.
var reopenClasses = []deadletter.Class{deadletter.ClassRejected, deadletter.ClassExhausted, deadletter.ClassConfig}

// reopens: the delivery is an operator's replay of the dead letter a done
// intent holds (the record is still ended by the attempt the letter
// reported: a redelivery of the same replay, after the intent was reopened
// and ended again, re-emits instead), and that letter says nothing was
// charged (no authorization is left to reverse either). Every other
// delivery of a done intent re-emits its outcome.
func reopens(d Delivery, c idempotency.Claim) bool {
	return d.ReplayedFrom != "" && d.ReplayedAttempt > 0 && d.ReplayedAttempt == c.Attempt.N &&
		c.Letter != nil && c.Reverse == nil && slices.Contains(reopenClasses, deadletter.Class(c.Letter.Class))
}

// reopen takes a done intent for a new attempt (see reopens). The record
// checks that it is still done by the same attempt with the same letter.
func (p *Processor) reopen(ctx context.Context, j *job, c idempotency.Claim) Decision {
	start := p.cfg.Now()
	r, err := p.store.Reopen(ctx, idempotency.Attempt{IntentID: j.in.IntentID, Owner: p.cfg.NewOwner(), N: c.Attempt.N}, j.fp, c.Letter.Class, p.cfg.Lease)
	switch {
	case errors.Is(err, idempotency.ErrConflict):
		return retry(time.Second, "the intent's record moved on; the redelivery decides")
	case err != nil:
		j.log.Warn().Err(err).Msg("cannot reopen the intent; retrying later")
		return p.backoff(j, "cannot reopen the intent")
	case r.State == idempotency.Conflict:
		return p.conflict(j)
	}
	j.a, j.claimed, j.resent = r.Attempt, start, r.MaybeApplied && resends(j.in.Op())
	p.withAttempt(j)
	p.note(j, "claim", "replay of dead letter %s (%s) reopened the intent as attempt %d (transactionId %s)", j.d.ReplayedFrom, c.Letter.Class, j.a.N, intentTxn(j))
	return p.attempt(ctx, j)
}

// cardConfig: this pod cannot decrypt the card because of its own
// configuration (a key it lacks). The intent is claimed with the part of
// its fingerprint that does not need the card (another intent's record is
// still a conflict) and ended with a "config" dead letter that a replay
// reopens; a done record re-emits its outcome (never reopened here); an
// unknown attempt is resolved as anywhere else (a timeout reversal needs no
// card), but a cancelled one ends with the "config" letter instead of a
// new charge. Never charged here.
func (p *Processor) cardConfig(ctx context.Context, j *job, cause error) Decision {
	j.log.Error().Err(cause).Msg("card cannot be decrypted: configuration")
	j.noCard, j.cardErr, j.noCardClass, j.fp = true, cause, deadletter.ClassConfig, CardlessFingerprint(j.in)
	start := p.cfg.Now()
	c, err := p.store.Claim(ctx, j.in.IntentID, j.fp, p.cfg.NewOwner(), p.cfg.Lease)
	if err != nil {
		j.log.Warn().Err(err).Msg("cannot claim the intent; retrying later")
		return p.backoff(j, "cannot claim the intent")
	}
	switch c.State {
	case idempotency.Conflict:
		return p.conflict(j)
	case idempotency.Done:
		j.a.IntentID = j.in.IntentID
		return p.replay(ctx, j, c)
	case idempotency.Busy:
		return retry(c.Wait+WakeMargin, "the intent is being worked on elsewhere")
	case idempotency.Unknown:
		j.a = c.Attempt
		p.withAttempt(j)
		return p.resolve(ctx, j)
	}
	j.a, j.claimed = c.Attempt, start
	return p.endWithLetter(ctx, j, deadletter.ClassConfig, cause.Error(), p.failed(j, cause.Error()))
}

// identified: a refusal that leaves the intent's identity sound (its
// intentId, merchantId and integrator passed, and it is a version this
// worker reads), so its record, if any, is this intent's.
func identified(err error) bool {
	var verr *intent.ValidationError
	if !errors.As(err, &verr) {
		return false
	}
	for _, pr := range verr.Problems {
		switch pr.Field {
		case "intent", "version", "intentId", "merchantId", "integrator":
			return false
		}
	}
	return true
}

// refuseWithRecord: an intent this pod refuses now may have been accepted
// and charged before (its card expired since, or a pod with other rules
// took it: REQUIRE_ENCRYPTED_CARD turned on by a rolling update). Its
// record decides, as for a card this pod cannot read: a done intent
// re-emits its outcome, a busy one waits, an unknown attempt is resolved
// (cancelled, then ended invalid; never charged anew). Without a record
// (ok false) the refusal stands as INVALID.
func (p *Processor) refuseWithRecord(ctx context.Context, j *job, cause error) (Decision, bool) {
	st, err := p.store.State(ctx, j.in.IntentID)
	switch {
	case err != nil:
		j.log.Warn().Err(err).Msg("cannot read the refused intent's record; retrying later")
		return p.backoff(j, "cannot read the intent's record"), true
	case st == "" || st == idempotency.StateIdle:
		return Decision{}, false
	}
	j.log.Warn().Str("reason", cause.Error()).Str("state", st).Msg("refused intent has a record: it decides")
	j.noCard, j.cardErr, j.noCardClass, j.fp = true, cause, deadletter.ClassInvalid, p.refusedFingerprint(j.in)
	start := p.cfg.Now()
	c, err := p.store.Claim(ctx, j.in.IntentID, j.fp, p.cfg.NewOwner(), p.cfg.Lease)
	if err != nil {
		j.log.Warn().Err(err).Msg("cannot claim the intent; retrying later")
		return p.backoff(j, "cannot claim the intent"), true
	}
	switch c.State {
	case idempotency.Conflict:
		return p.conflict(j), true
	case idempotency.Done:
		j.a.IntentID = j.in.IntentID
		return p.replay(ctx, j, c), true
	case idempotency.Busy:
		return retry(c.Wait+WakeMargin, "the intent is being worked on elsewhere"), true
	case idempotency.Unknown:
		j.a = c.Attempt
		p.withAttempt(j)
		return p.resolve(ctx, j), true
	}
	// Idle again since the read: nothing of it is charged.
	j.a, j.claimed = c.Attempt, start
	return p.endWithLetter(ctx, j, deadletter.ClassInvalid, cause.Error(), p.invalidResult(j, cause.Error())), true
}

// refusedFingerprint is what a refused intent claims its record with: the
// whole fingerprint when its card can be read (a plaintext card, or one
// this pod decrypts), so that another card under the same intentId is a
// conflict and never takes over that intent's record; the cardless part
// only when the card cannot be read.
func (p *Processor) refusedFingerprint(in *intent.Intent) string {
	if in.Card == nil && in.EncryptedCard != "" && p.cfg.Cards != nil {
		if c, err := p.cfg.Cards.Decrypt(in.EncryptedCard); err == nil {
			opened := *in
			opened.Card, opened.EncryptedCard = c, ""
			return p.fingerprint(&opened)
		}
	}
	if in.Card == nil && in.EncryptedCard != "" {
		return CardlessFingerprint(in)
	}
	return p.fingerprint(in)
}

// invalidResult is the INVALID result of a refused intent that has a
// record.
func (p *Processor) invalidResult(j *job, reason string) *intent.Result {
	r := p.failed(j, reason)
	r.Status = intent.StatusInvalid
	return r
}

func (p *Processor) logger(j *job) zerolog.Logger {
	return p.log.With().Str("intentId", j.in.IntentID).Str("merchantId", j.in.MerchantID).Uint64("delivery", j.d.Delivered).Logger()
}

// withAttempt puts the job's current attempt on its log lines (once: a
// job that moves to a new attempt replaces the field, so no line carries
// two "attempt" keys).
func (p *Processor) withAttempt(j *job) {
	j.log = p.logger(j).With().Int("attempt", j.a.N).Logger()
}

// checkMsgID: the Nats-Msg-Id must be the intentId (JetStream deduplicates
// on it: a message that took another intent's id would make that intent's
// real publish a "duplicate"), or, for a dead letter an operator replayed,
// the replay id of that letter.
func (p *Processor) checkMsgID(in *intent.Intent, d Delivery) error {
	if d.MsgID == in.IntentID {
		return nil
	}
	if seq, err := strconv.ParseUint(d.ReplayedFrom, 10, 64); err == nil && d.MsgID == deadletter.ReplayMsgID(in.IntentID, seq) {
		return nil
	}
	msg := "the message's Nats-Msg-Id must be the intentId; it is missing"
	if d.MsgID != "" {
		msg = "the message's Nats-Msg-Id " + strconv.Quote(redact.Untrusted(d.MsgID)) + " is not the intentId"
	}
	return &intent.ValidationError{Problems: []intent.Problem{{Field: "intentId", Message: msg}}}
}

// attempt runs the intent's operation for the claimed attempt.
func (p *Processor) attempt(ctx context.Context, j *job) Decision {
	if j.in.Op() == intent.OpAuthorize {
		return p.charge(ctx, j, false)
	}
	return p.operate(ctx, j)
}

type cardConfigError struct{ err error }

func (e *cardConfigError) Error() string { return e.err.Error() }
func (e *cardConfigError) Unwrap() error { return e.err }

// openCard enforces RequireEncryptedCard and decrypts an encryptedCard
// into the intent (in memory only, for the charge), validating the card and
// the brand rules that depend on it.
func (p *Processor) openCard(in *intent.Intent) error {
	if in.Card != nil && p.cfg.RequireEncryptedCard {
		return &intent.ValidationError{Problems: []intent.Problem{{Field: "card",
			Message: "plaintext card refused: this deployment requires encryptedCard (REQUIRE_ENCRYPTED_CARD)"}}}
	}
	if in.EncryptedCard == "" {
		return nil
	}
	var card *intent.Card
	var err error
	if p.cfg.Cards == nil {
		err = errors.New("encryptedCard cannot be read: no card decryption keys are configured")
	} else {
		card, err = p.cfg.Cards.Decrypt(in.EncryptedCard)
	}
	if err != nil {
		if p.cfg.Cards == nil || (p.cfg.IsConfigError != nil && p.cfg.IsConfigError(err)) {
			return &cardConfigError{err}
		}
		return &intent.ValidationError{Problems: []intent.Problem{{Field: "encryptedCard", Message: err.Error()}}}
	}
	if err := intent.CheckCard(card, p.cfg.Now()); err != nil {
		return err
	}
	in.Card, in.EncryptedCard = card, "" // dead letters keep the message's ciphertext
	return in.Validate(p.cfg.Now())      // brand rules now that the card is known
}

// replay answers a delivery of a terminal intent (a redelivery, a
// duplicate, a replay): it re-emits the recorded result and, when the
// outcome needs a person, its dead letter; an authorization still to be
// reversed is reversed first.
func (p *Processor) replay(ctx context.Context, j *job, c idempotency.Claim) Decision {
	var r intent.Result
	if err := json.Unmarshal(c.Result, &r); err != nil {
		j.log.Error().Err(err).Msg("recorded result is not readable; acking without re-emitting")
		return ackOnly()
	}
	if c.Reverse != nil {
		return p.reverseHeld(ctx, j, &r, c.Reverse, true)
	}
	j.log.Info().Str("status", r.Status).Msg("intent already settled; re-emitting its result")
	return p.emit(ctx, j, &r, true, c.Letter)
}

// emit records an authorized MIT in its series, then publishes the result
// (and callback job; and the dead letter when the outcome needs a person)
// and acks.
func (p *Processor) emit(ctx context.Context, j *job, r *intent.Result, reemit bool, letter *idempotency.Letter) Decision {
	if err := p.advanceChain(ctx, j, r); err != nil {
		j.log.Warn().Err(err).Msg("record the stored-credential series; retrying")
		return p.backoff(j, "cannot record the stored-credential series")
	}
	d := ack(r, reemit)
	if letter != nil {
		d.Action = DeadLetter
		d.Letter = &Letter{Class: deadletter.Class(letter.Class), Reason: letter.Reason, Attempt: r.Attempts,
			DedupID: "record:" + r.IntentID + ":" + strconv.Itoa(r.Attempts) + ":" + letter.Class}
		if j.d.ReplayedFrom != "" {
			// The replay removed the letter it came from: the one it emits
			// again is a new letter, not a duplicate JetStream would drop
			// inside its window.
			d.Letter.DedupID += ":replay:" + j.d.ReplayedFrom
		}
	}
	return d
}

// advanceChain records an authorized MIT as the last successful transaction
// of its merchant's stored-credential series (Visa's previous transaction
// id). It only moves forward, so a redelivery runs it again safely.
func (p *Processor) advanceChain(ctx context.Context, j *job, r *intent.Result) error {
	if !r.Authorized() || r.Operation != "" || j.in == nil || r.NetworkTransactionID == "" {
		return nil
	}
	if c := j.in.Credential; c != nil && c.Type == intent.CredentialMIT {
		return p.store.AdvanceChain(ctx, j.in.MerchantID, c.PreviousTransactionID, r.NetworkTransactionID, r.Time)
	}
	return nil
}

// invalid dead-letters a bad intent with an INVALID result. Never charged.
// The letter names the body's intentId when it can be read, else the
// message's id.
func (p *Processor) invalid(j *job, merchant string, in *intent.Intent, verr error) Decision {
	id := redact.Untrusted(replayedIntent(j.d))
	if in != nil && in.IntentID != "" {
		id = redact.CardNumbers(in.IntentID)
	}
	j.log = p.log.With().Str("intentId", id).Str("merchantId", merchant).Uint64("delivery", j.d.Delivered).Logger()
	j.log.Warn().Str("reason", verr.Error()).Msg("invalid intent")
	d := p.deadLetterFor(j, merchant, id, deadletter.ClassInvalid, verr.Error(), &intent.Result{
		IntentID: id, MerchantID: merchant, Status: intent.StatusInvalid, Reason: verr.Error(), Time: p.cfg.Now(),
	})
	if id != "" {
		d.ResultMsgID = id + ":" + intent.StatusInvalid + ":" + strconv.FormatUint(j.d.Seq, 10)
	}
	return d
}

// replayedIntent is the intentId a delivery names when its payload cannot
// say: the Nats-Msg-Id, or for a replay of a dead letter the letter's own
// intentId (Payflow-Intent-Id), not the replay id (which would give
// "x:replay:2:replay:5" after two replays).
func replayedIntent(d Delivery) string {
	if seq, err := strconv.ParseUint(d.ReplayedFrom, 10, 64); err == nil && d.ReplayedIntentID != "" &&
		d.MsgID == deadletter.ReplayMsgID(d.ReplayedIntentID, seq) {
		return d.ReplayedIntentID
	}
	return d.MsgID
}

// unroutable dead-letters a message whose subject names no valid merchant
// (a wildcard literal, say) to a fixed subject; no result is published.
func (p *Processor) unroutable(j *job, token string) Decision {
	reason := fmt.Sprintf("the subject's merchant token %q is not a merchantId", redact.Untrusted(token))
	p.log.Warn().Str("intentId", redact.Untrusted(j.d.MsgID)).Str("subject", redact.Untrusted(j.d.Subject)).Uint64("delivery", j.d.Delivered).Msg("unroutable intent")
	return Decision{Action: DeadLetter, Merchant: streams.Unroutable,
		Letter: &Letter{Class: deadletter.ClassInvalid, Reason: reason, DedupID: p.seqDedup(j)}}
}

// conflict dead-letters an intent whose intentId belongs to another intent
// (another merchant, or other parameters): never charged, and never
// answered with the other intent's result.
func (p *Processor) conflict(j *job) Decision {
	in := j.in
	reason := "intentId " + in.IntentID + " is already used by another intent (different merchant or parameters); intentIds must be unique across merchants"
	j.log.Warn().Msg("intentId conflict")
	d := p.deadLetter(j, deadletter.ClassConflict, reason, &intent.Result{
		IntentID: in.IntentID, Integrator: in.Integrator, MerchantID: in.MerchantID, BookingID: in.BookingID,
		Reference: in.Reference, Status: intent.StatusConflict, Operation: in.Operation, Amount: in.Amount, Currency: in.Currency,
		Reason: reason, Time: p.cfg.Now(),
	})
	d.ResultMsgID = in.IntentID + ":" + intent.StatusConflict + ":" + strconv.FormatUint(j.d.Seq, 10)
	return d
}

// deadLetter: the intent's dead letter and result are written, then the
// message is acked (both are deduplicated if a redelivery writes them
// again).
func (p *Processor) deadLetter(j *job, class deadletter.Class, reason string, r *intent.Result) Decision {
	return p.deadLetterFor(j, j.in.MerchantID, j.in.IntentID, class, reason, r)
}

func (p *Processor) deadLetterFor(j *job, merchant, intentID string, class deadletter.Class, reason string, r *intent.Result) Decision {
	d := Decision{Action: DeadLetter, Merchant: merchant, IntentID: intentID, Result: r,
		Letter: &Letter{Class: class, Reason: reason, DedupID: p.seqDedup(j), Attempt: j.a.N}}
	if r.IntentID != "" {
		d.ResultMsgID = ResultMsgID(r)
	}
	return d
}

// seqDedup names a dead letter of this delivery.
func (p *Processor) seqDedup(j *job) string {
	return streams.StreamIntents + ":" + strconv.FormatUint(j.d.Seq, 10) + ":" + strconv.FormatUint(j.d.Delivered, 10)
}

// failed is the FAILED result of an intent dead-lettered before any charge.
func (p *Processor) failed(j *job, reason string) *intent.Result {
	in := j.in
	return &intent.Result{
		IntentID: in.IntentID, Integrator: in.Integrator, MerchantID: in.MerchantID, BookingID: in.BookingID,
		Reference: in.Reference, Status: intent.StatusFailed, Operation: in.Operation, Amount: in.Amount, Currency: in.Currency,
		Reason: reason, Attempts: j.a.N, Time: p.cfg.Now(),
	}
}

// noCredentials: nothing was sent. A configuration problem is retried
// until its budget is spent, a transient one until the retry budget; the
// attempt is given back for each retry (fenced), and ended with a dead
// letter once the budget is spent.
func (p *Processor) noCredentials(ctx context.Context, j *job, err error) Decision {
	p.note(j, "credentials", "no credentials: %s", describeTTC(err))
	kind := ttc.KindOf(err)
	if kind == ttc.KindBadAPIKey || kind == ttc.KindNoRefreshToken || kind == ttc.KindNoAPIKey || kind == ttc.KindInvalidRequest ||
		errors.Is(err, errCredentialsRefused) {
		age := p.cfg.Now().Sub(j.d.Published)
		if age >= p.cfg.ConfigBudget {
			return p.endWithLetter(ctx, j, deadletter.ClassConfig, err.Error(), p.failed(j, err.Error()))
		}
		return p.giveBackThen(ctx, j, func() Decision {
			j.log.Error().Err(err).Int64("ageMs", age.Milliseconds()).Msg("configuration problem; retrying until the budget is spent")
			return p.backoff(j, "configuration problem")
		})
	}
	if p.exhausted(j) {
		return p.endWithLetter(ctx, j, deadletter.ClassExhausted, "no credentials within the retry budget: "+err.Error(),
			p.failed(j, "no credentials within the retry budget"))
	}
	return p.giveBackThen(ctx, j, func() Decision {
		j.log.Warn().Err(err).Msg("no credentials yet; retrying later")
		return p.backoff(j, "no credentials yet")
	})
}

// endWithLetter ends the claimed attempt, which was definitely not charged
// (refused, out of budget, misconfigured), with its dead letter: the
// operation's reservation is given back, then the record is finished with
// the result and the letter, so every later delivery re-emits the same
// outcome (a slow pod's late publish can never contradict a newer
// attempt: there is none), and only an operator's replay of the letter
// tries the intent again (reopens). A pod that lost the attempt only
// redelivers.
func (p *Processor) endWithLetter(ctx context.Context, j *job, class deadletter.Class, reason string, r *intent.Result) Decision {
	if j.resent {
		// An earlier attempt's outcome was unknown and this one was to send
		// the operation again: it may have applied. Not "not charged".
		return p.needsPerson(ctx, j, fmt.Sprintf("the %s sent again after attempt %d's unknown outcome could not be completed (%s): the first may have applied; check payment %s",
			j.in.Op(), j.a.N-1, reason, cmp.Or(j.in.PaymentID, j.in.PaymentIntentID)))
	}
	if err := p.unreserve(ctx, j); err != nil {
		j.log.Warn().Err(err).Msg("cannot give the reservation back; the redelivery decides")
		return retry(time.Second, "reservation not given back")
	}
	return p.finishWithLetter(ctx, j, &idempotency.Letter{Class: string(class), Reason: reason}, r)
}

// finishWithLetter records a terminal result with its dead letter and
// emits both.
func (p *Processor) finishWithLetter(ctx context.Context, j *job, letter *idempotency.Letter, r *intent.Result) Decision {
	b, _ := json.Marshal(r)
	if err := p.finish(ctx, j, idempotency.Outcome{Result: b, Letter: letter}); err != nil {
		if errors.Is(err, idempotency.ErrConflict) {
			return retry(time.Second, "lease lost")
		}
		j.log.Warn().Err(err).Msg("cannot record the outcome; the redelivery decides")
		return retry(time.Second, "cannot record the outcome")
	}
	j.log.Warn().Str("class", letter.Class).Str("status", r.Status).Msg("intent dead-lettered")
	return p.emit(ctx, j, r, false, letter)
}

// exhausted: the intent has been retried past its budget.
func (p *Processor) exhausted(j *job) bool {
	return j.d.Delivered > 1 && p.cfg.Now().Sub(j.d.Published) >= p.cfg.RetryBudget
}

// giveBack releases the attempt (nothing was sent or nothing happened) and
// the reservation an operation holds, both fenced on the attempt. ok is
// false when the attempt is no longer the caller's: then d (a retry) is
// what to do, and nothing else may be published for it.
func (p *Processor) giveBack(ctx context.Context, j *job) (d Decision, ok bool) {
	if err := p.unreserve(ctx, j); err != nil {
		j.log.Warn().Err(err).Msg("cannot give the reservation back; the redelivery decides")
		return retry(time.Second, "reservation not given back"), false
	}
	if err := p.store.Release(ctx, j.a); err != nil {
		j.log.Warn().Err(err).Msg("cannot release the attempt; the redelivery decides")
		return retry(time.Second, "attempt not released"), false
	}
	return Decision{}, true
}

// backoff redelivers after the transient-failure backoff.
func (p *Processor) backoff(j *job, reason string) Decision {
	return retry(p.cfg.Retry.Delay(j.d.Delivered), reason)
}

// describeTTC names a credentials failure without its text (which may quote
// outside input).
func describeTTC(err error) string {
	var e *ttc.Error
	if errors.As(err, &e) {
		if e.Status != 0 {
			return fmt.Sprintf("TTC %s (HTTP %d)", e.Kind, e.Status)
		}
		return "TTC " + e.Kind.String()
	}
	if errors.Is(err, errCredentialsRefused) {
		return "CyberSource refused the credentials twice"
	}
	return "credential cache unavailable"
}
