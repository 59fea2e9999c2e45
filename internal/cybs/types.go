package cybs

import "fmt"

// Request types follow the REST field names of the TTC guide's example and
// ../shared/reference/cybersource-rest.md. Field order matches the guide, so
// that a rendered body reads like the guide's.

// PaymentRequest is the body of POST /pts/v2/payments.
type PaymentRequest struct {
	ClientReferenceInformation ClientReference       `json:"clientReferenceInformation"`
	ProcessingInformation      ProcessingInformation `json:"processingInformation"`
	PaymentInformation         PaymentInformation    `json:"paymentInformation"`
	OrderInformation           OrderInformation      `json:"orderInformation"`
}

// ClientReference is clientReferenceInformation.
type ClientReference struct {
	Code string `json:"code,omitempty"`
	// TransactionID is unique per attempt; timeout reversals and voids key on it.
	TransactionID string   `json:"transactionId,omitempty"`
	Comments      string   `json:"comments,omitempty"`
	Partner       *Partner `json:"partner,omitempty"`
}

// Partner is clientReferenceInformation.partner.
type Partner struct {
	SolutionID string `json:"solutionId,omitempty"`
}

// ProcessingInformation is processingInformation.
type ProcessingInformation struct {
	Capture              bool                  `json:"capture"`
	ActionList           []string              `json:"actionList,omitempty"`
	ActionTokenTypes     []string              `json:"actionTokenTypes,omitempty"`
	CommerceIndicator    string                `json:"commerceIndicator,omitempty"`
	AuthorizationOptions *AuthorizationOptions `json:"authorizationOptions,omitempty"`
}

// ActionTokenCreate asks CyberSource to tokenize the card (TMS).
const ActionTokenCreate = "TOKEN_CREATE"

// AuthorizationOptions is processingInformation.authorizationOptions.
type AuthorizationOptions struct {
	Initiator *Initiator `json:"initiator,omitempty"`
}

// Initiator is ...authorizationOptions.initiator (stored credentials).
type Initiator struct {
	Type                         string                        `json:"type,omitempty"` // "customer" or "merchant"
	CredentialStoredOnFile       *bool                         `json:"credentialStoredOnFile,omitempty"`
	StoredCredentialUsed         *bool                         `json:"storedCredentialUsed,omitempty"`
	MerchantInitiatedTransaction *MerchantInitiatedTransaction `json:"merchantInitiatedTransaction,omitempty"`
}

// MerchantInitiatedTransaction is ...initiator.merchantInitiatedTransaction.
type MerchantInitiatedTransaction struct {
	Reason                   string `json:"reason,omitempty"`
	PreviousTransactionID    string `json:"previousTransactionId,omitempty"`
	OriginalAuthorizedAmount string `json:"originalAuthorizedAmount,omitempty"`
}

// PaymentInformation is paymentInformation: a card, or TMS token ids.
type PaymentInformation struct {
	Card                 *Card  `json:"card,omitempty"`
	Customer             *IDRef `json:"customer,omitempty"`
	PaymentInstrument    *IDRef `json:"paymentInstrument,omitempty"`
	InstrumentIdentifier *IDRef `json:"instrumentIdentifier,omitempty"`
}

// IDRef is an object holding only an id.
type IDRef struct {
	ID string `json:"id"`
}

// Card is paymentInformation.card. Its String and GoString show only the
// last four digits.
type Card struct {
	Number          string `json:"number"`
	ExpirationMonth string `json:"expirationMonth"`
	ExpirationYear  string `json:"expirationYear"`
	SecurityCode    string `json:"securityCode,omitempty"`
	Type            string `json:"type,omitempty"`
}

func (c Card) String() string {
	return fmt.Sprintf("card{%s %s/%s type:%s}", MaskPAN(c.Number), c.ExpirationMonth, c.ExpirationYear, c.Type)
}

// GoString masks too, for %#v.
func (c Card) GoString() string { return c.String() }

// MaskPAN keeps only the last four digits of a card number.
func MaskPAN(n string) string {
	if len(n) <= 4 {
		return "****"
	}
	return "****" + n[len(n)-4:]
}

// OrderInformation is orderInformation.
type OrderInformation struct {
	AmountDetails AmountDetails `json:"amountDetails"`
	BillTo        *BillTo       `json:"billTo,omitempty"`
}

// AmountDetails is orderInformation.amountDetails.
type AmountDetails struct {
	TotalAmount string `json:"totalAmount"`
	Currency    string `json:"currency"`
}

// BillTo is orderInformation.billTo.
type BillTo struct {
	FirstName          string `json:"firstName,omitempty"`
	LastName           string `json:"lastName,omitempty"`
	Address1           string `json:"address1,omitempty"`
	Address2           string `json:"address2,omitempty"`
	Locality           string `json:"locality,omitempty"`
	AdministrativeArea string `json:"administrativeArea,omitempty"`
	PostalCode         string `json:"postalCode,omitempty"`
	Country            string `json:"country,omitempty"`
	Email              string `json:"email,omitempty"`
	PhoneNumber        string `json:"phoneNumber,omitempty"`
}

// PaymentResponse is the 201 body of POST /pts/v2/payments (the fields this
// service uses).
type PaymentResponse struct {
	ID                         string `json:"id"`
	Status                     string `json:"status"`
	SubmitTimeUTC              string `json:"submitTimeUtc"`
	ReconciliationID           string `json:"reconciliationId"`
	ClientReferenceInformation struct {
		Code          string `json:"code"`
		TransactionID string `json:"transactionId"`
	} `json:"clientReferenceInformation"`
	ErrorInformation *ErrorInformation `json:"errorInformation"`
	OrderInformation struct {
		AmountDetails struct {
			AuthorizedAmount string `json:"authorizedAmount"`
			TotalAmount      string `json:"totalAmount"`
			Currency         string `json:"currency"`
		} `json:"amountDetails"`
	} `json:"orderInformation"`
	ProcessorInformation struct {
		ApprovalCode         string `json:"approvalCode"`
		NetworkTransactionID string `json:"networkTransactionId"`
		TransactionID        string `json:"transactionId"`
		ResponseCode         string `json:"responseCode"`
	} `json:"processorInformation"`
	PaymentInformation struct {
		Card struct {
			Type string `json:"type"`
		} `json:"card"`
		TokenizedCard struct {
			Type string `json:"type"`
		} `json:"tokenizedCard"`
	} `json:"paymentInformation"`
	PaymentAccountInformation struct {
		Card struct {
			Type string `json:"type"`
		} `json:"card"`
	} `json:"paymentAccountInformation"`
	TokenInformation *TokenInformation `json:"tokenInformation"`
	Links            map[string]Link   `json:"_links"`
}

// ErrorInformation is errorInformation of a 201.
type ErrorInformation struct {
	Reason  string        `json:"reason"`
	Message string        `json:"message"`
	Details []FieldDetail `json:"details"`
}

// FieldDetail names one field that was missing or invalid.
type FieldDetail struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// TokenInformation holds the TMS ids created by TOKEN_CREATE.
type TokenInformation struct {
	Customer             *IDRef `json:"customer"`
	PaymentInstrument    *IDRef `json:"paymentInstrument"`
	InstrumentIdentifier *struct {
		ID    string `json:"id"`
		State string `json:"state"`
	} `json:"instrumentIdentifier"`
	InstrumentIdentifierNew bool `json:"instrumentidentifierNew"`
}

// Link is one _links entry.
type Link struct {
	Method string `json:"method"`
	Href   string `json:"href"`
}

// NetworkTransactionID is processorInformation.networkTransactionId, or
// processorInformation.transactionId (documented as the same value) when the
// former is absent.
func (r *PaymentResponse) NetworkTransactionID() string {
	if r.ProcessorInformation.NetworkTransactionID != "" {
		return r.ProcessorInformation.NetworkTransactionID
	}
	return r.ProcessorInformation.TransactionID
}

// CardType is the three-digit card type code the response echoes.
func (r *PaymentResponse) CardType() string {
	for _, t := range []string{r.PaymentInformation.Card.Type, r.PaymentAccountInformation.Card.Type, r.PaymentInformation.TokenizedCard.Type} {
		if t != "" {
			return t
		}
	}
	return ""
}

// Reason is errorInformation.reason, if any.
func (r *PaymentResponse) Reason() string {
	if r.ErrorInformation == nil {
		return ""
	}
	return r.ErrorInformation.Reason
}

// CaptureRequest is the body of POST /pts/v2/payments/{id}/captures.
type CaptureRequest struct {
	ClientReferenceInformation ClientReference  `json:"clientReferenceInformation"`
	OrderInformation           OrderInformation `json:"orderInformation"`
}

// RefundRequest is the body of POST /pts/v2/payments/{id}/refunds.
type RefundRequest = CaptureRequest

// ReversalRequest is the body of POST /pts/v2/payments/{id}/reversals and of
// the timeout reversal POST /pts/v2/reversals.
type ReversalRequest struct {
	ClientReferenceInformation ClientReference     `json:"clientReferenceInformation"`
	ReversalInformation        ReversalInformation `json:"reversalInformation"`
}

// ReversalInformation is reversalInformation.
type ReversalInformation struct {
	AmountDetails AmountDetails `json:"amountDetails"`
	Reason        string        `json:"reason,omitempty"`
}

// VoidRequest is the body of POST /pts/v2/payments/{id}/voids and of the
// timeout void POST /pts/v2/voids.
type VoidRequest struct {
	ClientReferenceInformation ClientReference `json:"clientReferenceInformation"`
}

// FollowUpResponse is the 201 body of a capture, reversal, void or refund.
type FollowUpResponse struct {
	ID                    string            `json:"id"`
	Status                string            `json:"status"`
	SubmitTimeUTC         string            `json:"submitTimeUtc"`
	ErrorInformation      *ErrorInformation `json:"errorInformation"`
	ReversalAmountDetails *struct {
		ReversedAmount            string `json:"reversedAmount"`
		OriginalTransactionAmount string `json:"originalTransactionAmount"`
		Currency                  string `json:"currency"`
	} `json:"reversalAmountDetails"`
	VoidAmountDetails *struct {
		VoidAmount                string `json:"voidAmount"`
		OriginalTransactionAmount string `json:"originalTransactionAmount"`
		Currency                  string `json:"currency"`
	} `json:"voidAmountDetails"`
	ProcessorInformation struct {
		ResponseCode string `json:"responseCode"`
	} `json:"processorInformation"`
}

// OriginalFailed reports, for a timeout reversal or void, that CyberSource
// says the lost original had failed (so there was nothing to cancel): the
// documented answer then carries originalTransactionAmount.
func (r *FollowUpResponse) OriginalFailed() bool {
	if r.ReversalAmountDetails != nil && r.ReversalAmountDetails.OriginalTransactionAmount != "" {
		return true
	}
	return r.VoidAmountDetails != nil && r.VoidAmountDetails.OriginalTransactionAmount != ""
}
