package payment

import (
	"errors"
	"fmt"

	"github.com/ttcpay/payflow/internal/cybs"
)

// Verdict is what a CyberSource answer proves about the request it answers.
// Only an answer that proves nothing happened lets the request be given up
// or sent again as new; anything else is an unknown outcome, resolved by a
// timeout reversal or void, or handed to a person.
type Verdict int

// Verdicts.
const (
	// Applied: 201 accepted (for a payment: a definite answer, approved or
	// declined, that Finish records).
	Applied Verdict = iota + 1
	// NotApplied: a documented refusal that proves nothing happened.
	NotApplied
	// Already: the goal already holds (a full reversal answered "already
	// reversed"); the operation counts as applied only when it was sent
	// again after an unknown outcome of its own.
	Already
	// Ambiguous: the answer fits both "our earlier request applied" and "it
	// cannot apply" (a void answered NOT_VOIDABLE after an unknown outcome).
	Ambiguous
	// CredentialsRefused: 401; nothing happened; the token is invalidated.
	CredentialsRefused
	// NotSent: the request never left; nothing happened.
	NotSent
	// Unknown: it may have applied (no answer, 5xx, DUPLICATE_REQUEST, an
	// undocumented reason or status).
	Unknown
	// Cancelled (timeout reversal/void): the lost original is cancelled, or
	// CyberSource says it failed or never existed.
	Cancelled
	// Exists (timeout reversal/void): the lost original exists and cannot
	// be cancelled (settled, already reversed or voided, refused): a person
	// must decide.
	Exists
)

func (v Verdict) String() string {
	return [...]string{"none", "applied", "not-applied", "already", "ambiguous", "credentials", "not-sent", "unknown", "cancelled", "exists"}[v]
}

// Operations whose answers are classified.
const (
	opAuthorize       = "authorize"
	opCapture         = "capture"
	opReverse         = "reverse"
	opVoid            = "void"
	opRefund          = "refund"
	opTimeoutReversal = "timeout-reversal"
	opTimeoutVoid     = "timeout-void"
)

// refusals are the documented 400 reasons of each endpoint that prove the
// request was refused before anything happened (CyberSource REST SDK,
// PtsV2*Post400Response reason enums). DUPLICATE_REQUEST is in every enum
// and is never here: it means an earlier request with the same
// transactionId exists. A reason missing from the table (CyberSource may add
// some) is an unknown outcome.
var refusals = map[string]map[string]bool{
	opAuthorize: set("MISSING_FIELD", "INVALID_DATA", "INVALID_CARD", "CARD_TYPE_NOT_ACCEPTED", "INVALID_MERCHANT_CONFIGURATION",
		"PROCESSOR_UNAVAILABLE", "INVALID_AMOUNT", "INVALID_CARD_TYPE", "INVALID_PAYMENT_ID", "DEBIT_CARD_USEAGE_EXCEEDD_LIMIT"),
	opCapture: set("MISSING_FIELD", "INVALID_DATA", "INVALID_MERCHANT_CONFIGURATION", "EXCEEDS_AUTH_AMOUNT", "AUTH_ALREADY_REVERSED",
		"TRANSACTION_ALREADY_SETTLED", "INVALID_AMOUNT", "MISSING_AUTH", "TRANSACTION_ALREADY_REVERSED_OR_SETTLED"),
	opReverse: set("MISSING_FIELD", "INVALID_DATA", "INVALID_MERCHANT_CONFIGURATION", "PROCESSOR_UNAVAILABLE", "INVALID_AMOUNT",
		"MISSING_AUTH", "TRANSACTION_ALREADY_SETTLED", "AUTH_ALREADY_REVERSED", "TRANSACTION_ALREADY_REVERSED_OR_SETTLED"),
	opVoid: set("MISSING_FIELD", "INVALID_DATA", "INVALID_MERCHANT_CONFIGURATION", "NOT_SUPPORTED", "NOT_VOIDABLE",
		"TRANSACTION_ALREADY_REVERSED_OR_SETTLED"),
	opRefund: set("MISSING_FIELD", "INVALID_DATA", "INVALID_CARD", "INVALID_MERCHANT_CONFIGURATION", "INVALID_AMOUNT",
		"CAPTURE_ALREADY_VOIDED", "ACCOUNT_NOT_ALLOWED_CREDIT"),
}

// alreadyDone are the refusals that, for a request sent again after an
// unknown outcome of its own, say the earlier one may have applied: an
// "already reversed" answers a full reversal (the goal holds), and the
// "voided or settled" answers of a void are ambiguous.
var alreadyDone = map[string]map[string]Verdict{
	opReverse: {"AUTH_ALREADY_REVERSED": Already, "TRANSACTION_ALREADY_REVERSED_OR_SETTLED": Ambiguous},
	opVoid:    {"NOT_VOIDABLE": Ambiguous, "TRANSACTION_ALREADY_REVERSED_OR_SETTLED": Ambiguous},
}

// cancelledAnswers are the timeout reversal/void refusals that prove the
// lost original is not (or no longer) charged. Every other refusal means it
// exists: settled, already voided (perhaps by our own earlier timeout void),
// or "reversed or settled", which fits both.
var cancelledAnswers = map[string]map[string]bool{
	opTimeoutReversal: set("AUTH_ALREADY_REVERSED", "MISSING_AUTH"),
	opTimeoutVoid:     set(),
}

func set(xs ...string) map[string]bool {
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}

// classify reads the answer to one call of op. resent: the request is the
// same operation sent again after an unknown outcome of its own.
func classify(op string, err error, resent bool) Verdict {
	if err == nil {
		if op == opTimeoutReversal || op == opTimeoutVoid {
			return Cancelled
		}
		return Applied
	}
	var e *cybs.Error
	if !errors.As(err, &e) {
		return Unknown
	}
	switch e.Outcome {
	case cybs.OutcomeNotSent:
		return NotSent
	case cybs.OutcomeCredentialsRejected:
		return CredentialsRefused
	case cybs.OutcomeDeclined:
		// A 201 whose status is a definite refusal (DECLINED, INVALID_REQUEST,
		// FAILED): nothing happened; for a timeout request, nothing was
		// cancelled.
		if op == opTimeoutReversal || op == opTimeoutVoid {
			return Exists
		}
		return refused(resent)
	case cybs.OutcomeInvalid:
		if e.HTTPStatus != 400 {
			return Unknown // a bare 4xx is not a documented refusal
		}
		if op == opTimeoutReversal || op == opTimeoutVoid {
			if cancelledAnswers[op][e.Reason] {
				return Cancelled
			}
			return Exists
		}
		if v, ok := alreadyDone[op][e.Reason]; ok && resent {
			return v
		}
		if refusals[op][e.Reason] {
			return refused(resent)
		}
		return Unknown
	}
	return Unknown
}

// refused is the verdict of a documented refusal: nothing happened, unless
// the request was sent again after an unknown outcome of its own. Then the
// refusal answers only the second request: the first may have applied
// (a reversal of what is left answered TRANSACTION_ALREADY_SETTLED because
// the first reversed it), so a person decides.
func refused(resent bool) Verdict {
	if resent {
		return Ambiguous
	}
	return NotApplied
}

// classifyPayment reads the answer to a payment: a 201 whose status is
// documented is Applied (approved or declined, both definite).
func classifyPayment(resp *cybs.PaymentResponse, err error) Verdict {
	if err != nil {
		return classify(opAuthorize, err, false)
	}
	if cybs.PaymentOutcome(resp.Status) == cybs.OutcomeUnknown {
		return Unknown
	}
	return Applied
}

// describeAnswer names an answer for the intent's history by its verdict,
// HTTP status, status and reason: never its message text, which may quote
// outside input.
func describeAnswer(v Verdict, status string, err error) string {
	var e *cybs.Error
	if errors.As(err, &e) {
		out := v.String()
		switch {
		case e.HTTPStatus != 0 && e.Reason != "":
			out += fmt.Sprintf(" (HTTP %d %s)", e.HTTPStatus, e.Reason)
		case e.HTTPStatus != 0:
			out += fmt.Sprintf(" (HTTP %d %s)", e.HTTPStatus, e.Status)
		case e.Outcome == cybs.OutcomeUnknown:
			out += " (no answer)"
		case e.Outcome == cybs.OutcomeNotSent:
			out += " (not sent)"
		}
		return out
	}
	if err != nil || status == "" {
		return v.String()
	}
	return v.String() + " " + status
}
