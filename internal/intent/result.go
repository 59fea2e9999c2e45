package intent

import "time"

// Result statuses besides CyberSource's own (AUTHORIZED, DECLINED, ...).
const (
	StatusCaptured       = "CAPTURED"        // a capture was accepted
	StatusReversed       = "REVERSED"        // an authorization reversal was accepted
	StatusVoided         = "VOIDED"          // a void was accepted
	StatusRefunded       = "REFUNDED"        // a refund was accepted
	StatusInvalid        = "INVALID"         // the intent was malformed; never charged
	StatusRejected       = "REJECTED"        // CyberSource answered 400; not charged
	StatusFailed         = "FAILED"          // dead-lettered before charging (configuration, budget)
	StatusUnknownOutcome = "UNKNOWN_OUTCOME" // a charge that could not be settled; a person must look
	StatusConflict       = "CONFLICT"        // the intentId was used by another intent (other merchant or content); not charged
)

// Result is published on payments.results.<merchantId> for every outcome,
// and is what the idempotency record keeps for a terminal intent.
type Result struct {
	IntentID             string    `json:"intentId"`
	Integrator           string    `json:"integrator,omitempty"`
	MerchantID           string    `json:"merchantId"`
	BookingID            string    `json:"bookingId,omitempty"`
	Reference            string    `json:"reference,omitempty"`
	Status               string    `json:"status"`
	Operation            string    `json:"operation,omitempty"` // capture, reverse, void, refund (absent: authorize)
	PaymentID            string    `json:"paymentId,omitempty"` // the payment a settlement operation acted on
	CyberSourceID        string    `json:"cybersourceId,omitempty"`
	Capture              bool      `json:"capture,omitempty"`
	Amount               string    `json:"amount,omitempty"`
	AuthorizedAmount     string    `json:"authorizedAmount,omitempty"`
	Currency             string    `json:"currency,omitempty"`
	ApprovalCode         string    `json:"approvalCode,omitempty"`
	Reason               string    `json:"reason,omitempty"`
	NetworkTransactionID string    `json:"networkTransactionId,omitempty"`
	Tokens               *Tokens   `json:"tokens,omitempty"`
	CardType             string    `json:"cardType,omitempty"`
	CardLast4            string    `json:"cardLast4,omitempty"`
	Attempts             int       `json:"attempts,omitempty"`
	Time                 time.Time `json:"time"`
}

// Tokens are the TMS ids a TOKEN_CREATE returned.
type Tokens struct {
	CustomerID             string `json:"customerId,omitempty"`
	PaymentInstrumentID    string `json:"paymentInstrumentId,omitempty"`
	InstrumentIdentifierID string `json:"instrumentIdentifierId,omitempty"`
}

// Authorized reports the statuses that get a TTC callback: an authorization
// exists for (part of) the amount.
func (r Result) Authorized() bool {
	switch r.Status {
	case "AUTHORIZED", "PARTIAL_AUTHORIZED", "AUTHORIZED_PENDING_REVIEW":
		return true
	}
	return false
}

// CallbackJob is published on payments.callbacks.<merchantId> for every
// authorized intent, with Nats-Msg-Id = intentId; the callbacks consumer
// turns it into TTC's callback.
type CallbackJob struct {
	IntentID      string `json:"intentId"`
	Integrator    string `json:"integrator"`
	MerchantID    string `json:"merchantId"`
	TransactionID string `json:"transactionId"` // CyberSource's payment id
	BookingID     string `json:"bookingId"`
	Currency      string `json:"currency"`
	Amount        string `json:"amount"` // the authorized amount
}

// CallbackJob builds the job of an authorized result.
func (r Result) CallbackJob() CallbackJob {
	amount := r.AuthorizedAmount
	if amount == "" {
		amount = r.Amount
	}
	return CallbackJob{
		IntentID: r.IntentID, Integrator: r.Integrator, MerchantID: r.MerchantID,
		TransactionID: r.CyberSourceID, BookingID: r.BookingID, Currency: r.Currency, Amount: amount,
	}
}
