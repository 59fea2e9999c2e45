package ttc

import (
	"errors"
	"fmt"
)

// ErrRedirect is carried by the *Error of a call answered with a 3xx: the
// client never follows a redirect, which would send the x-api-key wherever
// the Location points.
var ErrRedirect = errors.New("redirect refused")

// Kind classifies a failed call to TTC.
type Kind int

const (
	// KindTransient: network error, timeout, 408, 429 or 5xx. Retry later.
	KindTransient Kind = iota + 1
	// KindInvalidRequest: 400. The request itself is wrong; retrying the same
	// request will not help.
	KindInvalidRequest
	// KindBadAPIKey: 401 or 403. A configuration problem on our side.
	KindBadAPIKey
	// KindNoRefreshToken: 404 from the token endpoint: TTC holds no refresh
	// token for that merchant. A configuration problem (onboarding).
	KindNoRefreshToken
	// KindNoAPIKey: this deployment has no API key for the integrator.
	KindNoAPIKey
	// KindBadResponse: an answer that is not usable: a 200 whose body is not
	// a usable token, or a redirect (never followed; Err is ErrRedirect).
	// Transient.
	KindBadResponse
	// KindUnexpected: any other status.
	KindUnexpected
)

func (k Kind) String() string {
	switch k {
	case KindTransient:
		return "transient"
	case KindInvalidRequest:
		return "invalid-request"
	case KindBadAPIKey:
		return "bad-api-key"
	case KindNoRefreshToken:
		return "no-refresh-token"
	case KindNoAPIKey:
		return "no-api-key"
	case KindBadResponse:
		return "bad-response"
	case KindUnexpected:
		return "unexpected"
	}
	return "unknown"
}

// Error is every error the client returns.
type Error struct {
	Op      string // "token" or "callback"
	Kind    Kind
	Status  int    // HTTP status, 0 when there was no response
	Message string // TTC's message, or ours; never a secret
	Err     error  // transport cause, if any
}

func (e *Error) Error() string {
	s := "ttc " + e.Op + ": " + e.Kind.String()
	if e.Status != 0 {
		s += fmt.Sprintf(" (HTTP %d)", e.Status)
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Temporary reports whether the same call may succeed later without a
// configuration change.
func (e *Error) Temporary() bool {
	return e.Kind == KindTransient || e.Kind == KindBadResponse
}

// KindOf returns the Kind of a ttc error anywhere in err's chain, or 0.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}
