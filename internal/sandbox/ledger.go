package sandbox

import (
	"time"
)

// Ledger is the sandbox's ground truth, served as JSON on GET /sandbox/ledger.
// Tests read it to check what really happened at "CyberSource" and "TTC".
type Ledger struct {
	Charges          []Charge          `json:"charges"`
	TokenRequests    []TokenRequest    `json:"tokenRequests"`
	Callbacks        []CallbackRecord  `json:"callbacks"`
	TimeoutReversals []TimeoutReversal `json:"timeoutReversals"`
	// CallbacksRejected counts callback requests answered 4xx.
	CallbacksRejected int `json:"callbacksRejected"`
	// TLSHandshakes counts full TLS handshakes completed on the CyberSource
	// listener (connection reuse keeps it low).
	TLSHandshakes int `json:"tlsHandshakes"`
}

// Charge is one POST /pts/v2/payments that got a 201 (or that was recorded
// before a fault cut the answer).
type Charge struct {
	ID               string     `json:"id"`
	TransactionID    string     `json:"transactionId,omitempty"`
	Reference        string     `json:"reference"`
	Integrator       string     `json:"integrator"`
	MerchantID       string     `json:"merchantId"`
	Status           string     `json:"status"`
	Reason           string     `json:"reason,omitempty"`
	Amount           string     `json:"amount"`
	AuthorizedAmount string     `json:"authorizedAmount,omitempty"`
	Currency         string     `json:"currency"`
	CardType         string     `json:"cardType,omitempty"`
	CardLast4        string     `json:"cardLast4,omitempty"`
	Capture          bool       `json:"capture"`
	CapturedAmount   string     `json:"capturedAmount,omitempty"`
	ReversedAmount   string     `json:"reversedAmount,omitempty"`
	RefundedAmount   string     `json:"refundedAmount,omitempty"`
	Refunds          []string   `json:"refunds,omitempty"`
	Reversed         bool       `json:"reversed"`
	Voided           bool       `json:"voided"`
	Live             bool       `json:"live"`
	Answered         string     `json:"answered"` // "201", "cut", "502"
	Credential       Credential `json:"credential,omitzero"`
	CommerceIndic    string     `json:"commerceIndicator,omitempty"`
	TokenCreated     bool       `json:"tokenCreated,omitempty"`
	NetworkTxnID     string     `json:"networkTransactionId,omitempty"`
	TraceParent      string     `json:"traceparent,omitempty"` // the W3C trace context the request carried
	CreatedAt        time.Time  `json:"createdAt"`

	// amounts in thousandths, for the bookkeeping
	authorized, captured, reversed, refunded int64
	decimals                                 int
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
	Kind          string    `json:"kind"` // "reversal" or "void"
	TransactionID string    `json:"transactionId"`
	Found         bool      `json:"found"`
	Status        string    `json:"status"`
	At            time.Time `json:"at"`
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
	c.Reversed = c.reversed > 0 && c.reversed >= c.authorized-c.captured
}

func amountOrEmpty(v int64, decimals int) string {
	if v == 0 {
		return ""
	}
	return formatMilli(v, decimals)
}
