package payment

import (
	"github.com/ttcpay/payflow/internal/cybs"
	"github.com/ttcpay/payflow/internal/intent"
)

// PaymentRequest builds the CyberSource authorization (or sale) of an
// intent's attempt: every field of the TTC guide's example, plus the
// attempt's clientReferenceInformation.transactionId (what a timeout
// reversal or void names), the partner solution id when configured, the card
// type code CyberSource recommends sending, and the card-on-file fields of
// the intent's Initiation. previousID is the previous transaction id to send
// on an MIT ("" for the intent's own; Visa gets the last successful id of
// the series).
func PaymentRequest(in *intent.Intent, attempt int, solutionID, previousID string) *cybs.PaymentRequest {
	r := &cybs.PaymentRequest{
		ClientReferenceInformation: cybs.ClientReference{
			Code:          in.Reference,
			TransactionID: intent.TransactionID(in.IntentID, attempt),
		},
		ProcessingInformation: cybs.ProcessingInformation{Capture: in.Captures()},
		OrderInformation: cybs.OrderInformation{
			AmountDetails: cybs.AmountDetails{TotalAmount: in.Amount, Currency: in.Currency},
		},
	}
	if solutionID != "" {
		r.ClientReferenceInformation.Partner = &cybs.Partner{SolutionID: solutionID}
	}
	if in.Tokenize {
		r.ProcessingInformation.ActionList = []string{cybs.ActionTokenCreate}
	}
	if c := in.Card; c != nil {
		r.PaymentInformation.Card = &cybs.Card{
			Number: c.Number, ExpirationMonth: c.ExpirationMonth, ExpirationYear: c.ExpirationYear,
			SecurityCode: c.SecurityCode, Type: intent.CardType(c.Number),
		}
	}
	if sc := in.StoredCard; sc != nil {
		switch {
		case sc.CustomerID != "":
			r.PaymentInformation.Customer = &cybs.IDRef{ID: sc.CustomerID}
		case sc.PaymentInstrumentID != "":
			r.PaymentInformation.PaymentInstrument = &cybs.IDRef{ID: sc.PaymentInstrumentID}
		case sc.InstrumentIdentifierID != "":
			r.PaymentInformation.InstrumentIdentifier = &cybs.IDRef{ID: sc.InstrumentIdentifierID}
		}
	}
	applyInitiation(&r.ProcessingInformation, in.Initiation(previousID))
	if b := in.BillTo; b != nil {
		r.OrderInformation.BillTo = &cybs.BillTo{
			FirstName: b.FirstName, LastName: b.LastName, Address1: b.Address1, Address2: b.Address2,
			Locality: b.Locality, AdministrativeArea: b.AdministrativeArea, PostalCode: b.PostalCode,
			Country: b.Country, Email: b.Email, PhoneNumber: b.PhoneNumber,
		}
	}
	return r
}

// applyInitiation writes the card-on-file meaning into CyberSource's
// processingInformation (reference §4.5 maps each field).
func applyInitiation(pi *cybs.ProcessingInformation, ini intent.Initiation) {
	pi.CommerceIndicator = ini.CommerceIndicator
	if ini.InitiatorType == "" {
		return
	}
	yes := true
	init := &cybs.Initiator{Type: ini.InitiatorType}
	if ini.CredentialStoredOnFile {
		init.CredentialStoredOnFile = &yes
	}
	if ini.StoredCredentialUsed {
		init.StoredCredentialUsed = &yes
	}
	mit := cybs.MerchantInitiatedTransaction{
		Reason:                   ini.ReasonCode,
		PreviousTransactionID:    ini.PreviousTransactionID,
		OriginalAuthorizedAmount: ini.OriginalAuthorizedAmount,
	}
	if mit != (cybs.MerchantInitiatedTransaction{}) {
		init.MerchantInitiatedTransaction = &mit
	}
	pi.AuthorizationOptions = &cybs.AuthorizationOptions{Initiator: init}
}
