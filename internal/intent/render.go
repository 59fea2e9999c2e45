package intent

import (
	"fmt"

	"github.com/ttcpay/payflow/internal/cybs"
)

// PaymentRequest builds the CyberSource authorization (or sale) for an
// attempt: every field of the TTC guide's example, plus the attempt's
// clientReferenceInformation.transactionId (for timeout reversals and voids),
// the partner solution id when configured, and the card type code
// CyberSource recommends sending.
func (in *Intent) PaymentRequest(attempt int, solutionID string) *cybs.PaymentRequest {
	return in.PaymentRequestWith(attempt, solutionID, "")
}

// PaymentRequestWith is PaymentRequest with the previous transaction id to
// send on an MIT ("" for the intent's own; the worker passes Visa's last
// successful id of the series).
func (in *Intent) PaymentRequestWith(attempt int, solutionID, previousID string) *cybs.PaymentRequest {
	r := &cybs.PaymentRequest{
		ClientReferenceInformation: cybs.ClientReference{
			Code:          in.Reference,
			TransactionID: TransactionID(in.IntentID, attempt),
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
			SecurityCode: c.SecurityCode, Type: CardType(c.Number),
		}
	}
	in.applyCredential(r, previousID)
	if b := in.BillTo; b != nil {
		r.OrderInformation.BillTo = &cybs.BillTo{
			FirstName: b.FirstName, LastName: b.LastName, Address1: b.Address1, Address2: b.Address2,
			Locality: b.Locality, AdministrativeArea: b.AdministrativeArea, PostalCode: b.PostalCode,
			Country: b.Country, Email: b.Email, PhoneNumber: b.PhoneNumber,
		}
	}
	return r
}

// String describes an intent without card data, for logs and errors.
func (in *Intent) String() string {
	card := "none"
	switch {
	case in.Card != nil:
		card = MaskPAN(in.Card.Number)
	case in.StoredCard != nil:
		card = "stored"
	}
	return fmt.Sprintf("intent{%s %s %s/%s %s %s capture:%v card:%s}", in.IntentID, in.Op(), in.Integrator, in.MerchantID, in.Amount, in.Currency, in.Captures(), card)
}

// GoString describes it the same way.
func (in *Intent) GoString() string { return in.String() }
