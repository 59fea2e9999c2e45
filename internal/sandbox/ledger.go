package sandbox

import (
	"time"
)

// Ledger is the sandbox's ground truth, served as JSON on GET /sandbox/ledger.
// Tests read it to check what really happened at "CyberSource" and "TTC".
type Ledger struct {
	Charges []Charge `json:"charges"`
	// FollowUps are the captures, reversals, voids and refunds that
	// CyberSource applied (by payment id), in order.
	FollowUps        []FollowUp        `json:"followUps"`
	TokenRequests    []TokenRequest    `json:"tokenRequests"`
	Callbacks        []CallbackRecord  `json:"callbacks"`
	TimeoutReversals []TimeoutReversal `json:"timeoutReversals"`
	// DuplicateRequests are the requests refused with DUPLICATE_REQUEST
	// because their transactionId was already taken; none created anything.
	DuplicateRequests []DuplicateRequest `json:"duplicateRequests"`
	// CrossMerchant lists every request that named a payment of another
	// merchant (refused, or for an MIT's previousTransactionId and a
	// callback, flagged). It should stay empty.
	CrossMerchant []CrossMerchantRequest `json:"crossMerchant"`
	// InFlight are the payments held "received but not processed" by the
	// holdInFlight fault right now.
	InFlight []InFlightPayment `json:"inFlight"`
	// CallbacksRejected counts callback requests answered 4xx.
	CallbacksRejected int `json:"callbacksRejected"`
	// TLSHandshakes counts full TLS handshakes completed on the CyberSource
	// listener (connection reuse keeps it low).
	TLSHandshakes int `json:"tlsHandshakes"`
}

// Charge is one POST /pts/v2/payments that got a 201 (or that was recorded
// before a fault cut the answer).
type Charge struct {
	ID               string `json:"id"`
	TransactionID    string `json:"transactionId,omitempty"`
	Reference        string `json:"reference"`
	Integrator       string `json:"integrator"`
	MerchantID       string `json:"merchantId"`
	Status           string `json:"status"`
	Reason           string `json:"reason,omitempty"`
	Amount           string `json:"amount"`
	AuthorizedAmount string `json:"authorizedAmount,omitempty"`
	Currency         string `json:"currency"`
	CardType         string `json:"cardType,omitempty"`
	CardLast4        string `json:"cardLast4,omitempty"`
	Capture          bool   `json:"capture"`
	CapturedAmount   string `json:"capturedAmount,omitempty"`
	ReversedAmount   string `json:"reversedAmount,omitempty"`
	// VoidedAmount is the captured amount that voids cancelled: the whole
	// sale for a void of the payment, the capture's amount for a timeout void
	// of a capture (which leaves the authorization live).
	VoidedAmount   string   `json:"voidedAmount,omitempty"`
	RefundedAmount string   `json:"refundedAmount,omitempty"`
	Refunds        []string `json:"refunds,omitempty"`
	Reversed       bool     `json:"reversed"`
	Voided         bool     `json:"voided"`
	// Settled: captured longer than the settleAfter fault ago (it cannot be
	// voided any more).
	Settled  bool   `json:"settled"`
	Live     bool   `json:"live"`
	Answered string `json:"answered"` // "201", "cut", "502"
	// Held: the holdInFlight fault kept the request "received but not
	// processed" before this charge was recorded.
	Held bool `json:"held,omitempty"`
	// MissedByTimeout: a timeout reversal or void for this transactionId
	// found nothing while the request was held, and the charge happened
	// anyway.
	MissedByTimeout bool       `json:"missedByTimeout,omitempty"`
	Credential      Credential `json:"credential,omitzero"`
	CommerceIndic   string     `json:"commerceIndicator,omitempty"`
	TokenCreated    bool       `json:"tokenCreated,omitempty"`
	NetworkTxnID    string     `json:"networkTransactionId,omitempty"`
	TraceParent     string     `json:"traceparent,omitempty"` // the W3C trace context the request carried
	CreatedAt       time.Time  `json:"createdAt"`

	// amounts in thousandths, for the bookkeeping
	authorized, captured, reversed, refunded, voided int64
	decimals                                         int
	// capturedAt is when the oldest capture still standing was made: the
	// clock settlement runs on.
	capturedAt time.Time
}

// FollowUp is one capture, reversal, void or refund that CyberSource applied.
type FollowUp struct {
	ID            string `json:"id"`
	Kind          string `json:"kind"` // "capture", "reversal", "void", "refund"
	PaymentID     string `json:"paymentId"`
	MerchantID    string `json:"merchantId"`
	TransactionID string `json:"transactionId,omitempty"`
	Reference     string `json:"reference,omitempty"`
	Amount        string `json:"amount"`
	Currency      string `json:"currency"`
	// Voided: a timeout void of its transactionId cancelled it.
	Voided bool `json:"voided"`
	// Settled: a capture older than the settleAfter fault.
	Settled  bool      `json:"settled,omitempty"`
	Answered string    `json:"answered"` // "201" or "cut"
	At       time.Time `json:"at"`

	charge *Charge
	amount int64
}

// DuplicateRequest is one request refused with DUPLICATE_REQUEST.
type DuplicateRequest struct {
	// Endpoint is "payments", "captures", "reversals", "voids" or "refunds".
	Endpoint      string    `json:"endpoint"`
	MerchantID    string    `json:"merchantId"`
	TransactionID string    `json:"transactionId"`
	At            time.Time `json:"at"`
}

// CrossMerchantRequest is a request by one merchant that named a payment of
// another.
type CrossMerchantRequest struct {
	// Endpoint is "captures", "reversals", "voids", "refunds",
	// "timeoutReversal", "timeoutVoid", "payments" (an MIT whose
	// previousTransactionId is another merchant's network transaction id) or
	// "callback".
	Endpoint        string    `json:"endpoint"`
	MerchantID      string    `json:"merchantId"`
	OwnerMerchantID string    `json:"ownerMerchantId"`
	PaymentID       string    `json:"paymentId,omitempty"`
	TransactionID   string    `json:"transactionId,omitempty"`
	At              time.Time `json:"at"`
}

// InFlightPayment is a payment held "received but not processed".
type InFlightPayment struct {
	MerchantID    string    `json:"merchantId"`
	TransactionID string    `json:"transactionId"`
	Since         time.Time `json:"since"`
	Until         time.Time `json:"until"`

	missed bool // a timeout request found nothing meanwhile
}

// Credential is what a charge said about stored credentials.
type Credential struct {
	InitiatorType          string `json:"initiatorType,omitempty"`
	CredentialStoredOnFile bool   `json:"credentialStoredOnFile,omitempty"`
	StoredCredentialUsed   bool   `json:"storedCredentialUsed,omitempty"`
	Reason                 string `json:"reason,omitempty"`
	PreviousTransactionID  string `json:"previousTransactionId,omitempty"`
	OriginalAmount         string `json:"originalAuthorizedAmount,omitempty"`
}

// TokenRequest is one call to the TTC token endpoint.
type TokenRequest struct {
	Integrator string    `json:"integrator"`
	MerchantID string    `json:"merchantId"`
	Start      time.Time `json:"start"`
	End        time.Time `json:"end"`
	Status     int       `json:"status"`
	// Overlapped is true when another request for the same integrator and
	// merchant was in progress at the same time: the refresh-token race.
	Overlapped bool `json:"overlapped"`

	done bool
}

// CallbackRecord counts accepted callbacks for one CyberSource transaction.
type CallbackRecord struct {
	TransactionID string    `json:"transactionId"`
	MerchantID    string    `json:"merchantId"`
	BookingID     string    `json:"bookingId"`
	Amount        string    `json:"amount"`
	Currency      string    `json:"currency"`
	Count         int       `json:"count"`
	First         time.Time `json:"first"`
	Last          time.Time `json:"last"`
	TraceParent   string    `json:"traceparent,omitempty"`
}

// TimeoutReversal is one POST /pts/v2/reversals or /pts/v2/voids keyed on a
// transactionId.
type TimeoutReversal struct {
	Kind          string `json:"kind"` // "reversal" or "void"
	MerchantID    string `json:"merchantId"`
	TransactionID string `json:"transactionId"`
	// Found: the merchant has a charge or follow-up with that transactionId.
	Found bool `json:"found"`
	// PaymentID is the id of the payment it found.
	PaymentID string `json:"paymentId,omitempty"`
	// InFlight: nothing was found, but a payment with that transactionId
	// was held "received but not processed" at the time (it is charged
	// afterwards: see Charge.MissedByTimeout).
	InFlight bool `json:"inFlight,omitempty"`
	// Status is the answer: REVERSED or VOIDED, or the 400 reason.
	Status string    `json:"status"`
	At     time.Time `json:"at"`
}

// LiveCharges counts the live charges (authorized and neither reversed nor
// voided) per reference.
func (l Ledger) LiveCharges() map[string]int {
	m := map[string]int{}
	for _, c := range l.Charges {
		if c.Live {
			m[c.Reference]++
		}
	}
	return m
}

// Charge returns the merchant's charge with a transactionId.
func (l Ledger) Charge(merchantID, transactionID string) (Charge, bool) {
	for _, c := range l.Charges {
		if c.MerchantID == merchantID && c.TransactionID == transactionID {
			return c, true
		}
	}
	return Charge{}, false
}

// InFlightMisses counts the timeout reversals and voids that found nothing
// while the original was held in flight.
func (l Ledger) InFlightMisses() int {
	n := 0
	for _, t := range l.TimeoutReversals {
		if t.InFlight {
			n++
		}
	}
	return n
}

// OverlappingTokenRequests counts token requests flagged as overlapping.
func (l Ledger) OverlappingTokenRequests() int {
	n := 0
	for _, r := range l.TokenRequests {
		if r.Overlapped {
			n++
		}
	}
	return n
}

// CallbackCount is how many callbacks were accepted for a transaction.
func (l Ledger) CallbackCount(transactionID string) int {
	for _, c := range l.Callbacks {
		if c.TransactionID == transactionID {
			return c.Count
		}
	}
	return 0
}

func isApproved(status string) bool {
	switch status {
	case "AUTHORIZED", "PARTIAL_AUTHORIZED", "AUTHORIZED_PENDING_REVIEW", "AUTHORIZED_RISK_DECLINED":
		return true
	}
	return false
}

func (c *Charge) refresh() {
	c.Live = isApproved(c.Status) && !c.Voided && c.authorized-c.reversed > 0
	c.CapturedAmount = amountOrEmpty(c.captured, c.decimals)
	c.ReversedAmount = amountOrEmpty(c.reversed, c.decimals)
	c.RefundedAmount = amountOrEmpty(c.refunded, c.decimals)
	c.VoidedAmount = amountOrEmpty(c.voided, c.decimals)
	c.Reversed = c.reversed > 0 && c.reversed >= c.authorized-c.captured
}

func amountOrEmpty(v int64, decimals int) string {
	if v == 0 {
		return ""
	}
	return formatMilli(v, decimals)
}
