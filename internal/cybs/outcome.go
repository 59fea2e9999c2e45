package cybs

import (
	"errors"
	"fmt"
	"strings"
)

// Outcome is the class of a CyberSource call's result: the one thing the
// caller needs to decide what happens next.
type Outcome int

const (
	// OutcomeApproved: 201 with AUTHORIZED, PARTIAL_AUTHORIZED or
	// AUTHORIZED_PENDING_REVIEW (payments), or the follow-up was accepted.
	OutcomeApproved Outcome = iota + 1
	// OutcomeDeclined: 201 with a definite refusal (DECLINED, INVALID_REQUEST,
	// AUTHORIZED_RISK_DECLINED, PENDING_REVIEW, PENDING_AUTHENTICATION,
	// FAILED...). Nothing to retry. See PaymentResponse.HoldsAuthorization.
	OutcomeDeclined
	// OutcomeInvalid: 400 (or another 4xx that means "refused, not
	// processed"). Definite: nothing was charged.
	OutcomeInvalid
	// OutcomeCredentialsRejected: 401. The token (or certificate) was refused;
	// nothing was charged. Invalidate the token, refresh, retry once.
	OutcomeCredentialsRejected
	// OutcomeUnknown: the request may have been processed and the answer was
	// lost: timeout, connection cut after the request was written, 408, 429,
	// 5xx/502, an unreadable 201, an unknown status. Never retry blindly:
	// cancel the attempt with a timeout reversal/void first.
	OutcomeUnknown
	// OutcomeNotSent: the request never left (dial, TLS handshake, or
	// cancelled before it was written). Definite: nothing was charged.
	OutcomeNotSent
)

func (o Outcome) String() string {
	switch o {
	case OutcomeApproved:
		return "approved"
	case OutcomeDeclined:
		return "declined"
	case OutcomeInvalid:
		return "invalid"
	case OutcomeCredentialsRejected:
		return "credentials-rejected"
	case OutcomeUnknown:
		return "unknown"
	case OutcomeNotSent:
		return "not-sent"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Payment statuses documented for a 201 of POST /pts/v2/payments.
const (
	StatusAuthorized              = "AUTHORIZED"
	StatusPartialAuthorized       = "PARTIAL_AUTHORIZED"
	StatusAuthorizedPendingReview = "AUTHORIZED_PENDING_REVIEW"
	StatusAuthorizedRiskDeclined  = "AUTHORIZED_RISK_DECLINED"
	StatusPendingAuthentication   = "PENDING_AUTHENTICATION"
	StatusPendingReview           = "PENDING_REVIEW"
	StatusDeclined                = "DECLINED"
	StatusInvalidRequest          = "INVALID_REQUEST"
)

// PaymentOutcome classifies the status of a payment 201.
func PaymentOutcome(status string) Outcome {
	switch status {
	case StatusAuthorized, StatusPartialAuthorized, StatusAuthorizedPendingReview:
		return OutcomeApproved
	case StatusDeclined, StatusInvalidRequest, StatusAuthorizedRiskDeclined,
		StatusPendingReview, StatusPendingAuthentication:
		return OutcomeDeclined
	}
	// PENDING (payment-only APMs), or a status CyberSource added since: the
	// charge may exist, so it is not a definite answer.
	return OutcomeUnknown
}

// HoldsAuthorization reports a refused payment behind which an issuer
// authorization may still hold funds (AUTHORIZED_RISK_DECLINED,
// PENDING_REVIEW): the caller should reverse it by id.
func (r *PaymentResponse) HoldsAuthorization() bool {
	return r.Status == StatusAuthorizedRiskDeclined || r.Status == StatusPendingReview
}

// FollowUpOutcome classifies the status of a follow-up 201.
func FollowUpOutcome(status string) Outcome {
	switch status {
	case "PENDING", "TRANSMITTED", "REVERSED", "VOIDED", "CANCELLED", "AUTHORIZED":
		return OutcomeApproved
	case "DECLINED", "INVALID_REQUEST", "FAILED":
		return OutcomeDeclined
	}
	return OutcomeUnknown
}

// Error is every failed call: a non-201 answer or no answer.
type Error struct {
	Op         string // "authorize", "capture", "timeout-reversal", ...
	Outcome    Outcome
	HTTPStatus int    // 0 when there was no answer
	Status     string // body status, e.g. INVALID_REQUEST, SERVER_ERROR
	Reason     string // body reason, e.g. MISSING_FIELD, SERVER_TIMEOUT, ACCESS_TOKEN_EXPIRED
	Message    string
	Details    []FieldDetail
	Err        error // transport cause
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cybersource %s: %s", e.Op, e.Outcome)
	if e.HTTPStatus != 0 {
		fmt.Fprintf(&b, " (HTTP %d)", e.HTTPStatus)
	}
	if e.Reason != "" {
		b.WriteString(" " + e.Reason)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	for i, d := range e.Details {
		if i == 0 {
			b.WriteString(" [")
		} else {
			b.WriteString(", ")
		}
		b.WriteString(d.Field + " " + d.Reason)
		if i == len(e.Details)-1 {
			b.WriteString("]")
		}
	}
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// OutcomeOf returns the outcome class carried by err (nil: approved).
// An error that is not a cybs error is treated as unknown.
func OutcomeOf(err error) Outcome {
	if err == nil {
		return OutcomeApproved
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Outcome
	}
	return OutcomeUnknown
}

// classifyStatus maps a non-201 HTTP status to an outcome.
func classifyStatus(status int) Outcome {
	switch {
	case status == 400:
		return OutcomeInvalid
	case status == 401:
		return OutcomeCredentialsRejected
	case status == 408 || status == 429 || status >= 500:
		return OutcomeUnknown
	case status >= 400:
		return OutcomeInvalid // refused before processing (403, 404, 405, 415...)
	}
	return OutcomeUnknown // 1xx/2xx/3xx other than 201: not documented
}
