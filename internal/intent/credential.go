package intent

import (
	"fmt"
	"slices"
)

// Credential says what an intent means for stored credentials (card on
// file), per the CyberSource credentialed-transactions guide. Upstream
// states the business meaning; the worker applies the brand rules.
type Credential struct {
	// Type: "cit_store" (a customer-initiated transaction that stores the
	// card for later), "cit_stored" (a customer-initiated transaction with a
	// stored card), "mit" (a merchant-initiated transaction).
	Type string `json:"type"`
	// Reason: the scenario (see Reasons).
	Reason string `json:"reason,omitempty"`
	// PreviousTransactionID: for an MIT, the network transaction id of the
	// transaction that stored the card (the first result's
	// networkTransactionId). The worker sends it as is to American Express
	// and Discover (they want the original) and sends Visa the last
	// successful id of the series, which it keeps.
	PreviousTransactionID string `json:"previousTransactionId,omitempty"`
	// OriginalAuthorizedAmount: the amount of the original transaction;
	// Discover requires it on MITs and on CITs with a stored card.
	OriginalAuthorizedAmount string `json:"originalAuthorizedAmount,omitempty"`
}

// MaxPreviousTransactionID is CyberSource's limit on
// merchantInitiatedTransaction.previousTransactionId.
const MaxPreviousTransactionID = 15

// StoredCard pays with TMS tokens that an earlier TOKEN_CREATE returned.
// Brand is needed when a credential is stated (brand rules apply), since
// there is no card number to read it from.
type StoredCard struct {
	CustomerID             string `json:"customerId,omitempty"`
	PaymentInstrumentID    string `json:"paymentInstrumentId,omitempty"`
	InstrumentIdentifierID string `json:"instrumentIdentifierId,omitempty"`
	Brand                  string `json:"brand,omitempty"` // visa, mastercard, amex, discover, diners, jcb, maestro
}

// Credential types.
const (
	CredentialCITStore  = "cit_store"
	CredentialCITStored = "cit_stored"
	CredentialMIT       = "mit"
)

// brandCodes maps StoredCard.Brand to card type codes.
var brandCodes = map[string]string{
	"visa": CardTypeVisa, "mastercard": CardTypeMastercard, "amex": CardTypeAmex, "discover": CardTypeDiscover,
	"diners": CardTypeDiners, "jcb": CardTypeJCB, "maestro": CardTypeMaestro,
}

var brandNames = map[string]string{
	CardTypeVisa: "Visa", CardTypeMastercard: "Mastercard", CardTypeAmex: "American Express", CardTypeDiscover: "Discover",
	CardTypeDiners: "Diners", CardTypeJCB: "JCB", CardTypeMaestro: "Maestro",
}

// reasonRule is one scenario of the guide.
type reasonRule struct {
	// code is merchantInitiatedTransaction.reason (§4.2 of the reference).
	code string
	// codeBrands take the code; other brands get the scenario without it.
	codeBrands []string
	// onlyBrands, when set, are the only brands the scenario exists for.
	onlyBrands []string
	// refusedBrands do not support the scenario, with the guide's word why.
	refusedBrands map[string]string
	// indicator is the commerce indicator when the intent gives none.
	citIndicator, mitIndicator string
	// cit: the reason may be stated on a CIT that stores the card (it names
	// the series the card is stored for); mit: on an MIT.
	cit, mit bool
}

var (
	dmv = []string{CardTypeDiscover, CardTypeMastercard, CardTypeVisa}
	dv  = []string{CardTypeDiscover, CardTypeVisa}
	dm  = []string{CardTypeDiscover, CardTypeMastercard}
	adm = []string{CardTypeAmex, CardTypeDiscover, CardTypeMastercard}
	mc  = []string{CardTypeMastercard}
)

const mcNotRecurring = "Mastercard uses subscription or standing_order instead of recurring"

// Reasons are the scenarios an intent may state, with their rules.
var Reasons = map[string]reasonRule{
	"resubmission":     {code: "1", codeBrands: dmv, mitIndicator: "internet", mit: true},
	"delayed_charge":   {code: "2", codeBrands: dmv, mitIndicator: "internet", mit: true},
	"reauthorization":  {code: "3", codeBrands: dv, mitIndicator: "internet", mit: true, refusedBrands: map[string]string{CardTypeMastercard: "Mastercard does not take reason 3 (reauthorization)"}},
	"no_show":          {code: "4", codeBrands: dmv, mitIndicator: "internet", mit: true},
	"incremental":      {code: "5", codeBrands: dv, mitIndicator: "internet", mit: true, refusedBrands: map[string]string{CardTypeMastercard: "Mastercard does not take reason 5 (incremental)"}},
	"partial_shipment": {code: "6", codeBrands: dm, mitIndicator: "internet", mit: true, refusedBrands: map[string]string{CardTypeVisa: "Visa does not take reason 6 (partial shipment)"}},
	"recurring":        {codeBrands: nil, citIndicator: "internet", mitIndicator: "recurring", cit: true, mit: true, refusedBrands: map[string]string{CardTypeMastercard: mcNotRecurring}},
	"subscription":     {code: "7", codeBrands: mc, onlyBrands: mc, citIndicator: "recurring", mitIndicator: "recurring", cit: true, mit: true},
	"standing_order":   {code: "8", codeBrands: mc, onlyBrands: mc, citIndicator: "internet", mitIndicator: "recurring", cit: true, mit: true},
	"installment":      {code: "9", codeBrands: mc, citIndicator: "internet", mitIndicator: "install", cit: true, mit: true},
	"unscheduled":      {code: "10", codeBrands: adm, citIndicator: "internet", mitIndicator: "internet", cit: true, mit: true},
}

// CommerceIndicators the intent may give: the guide's values, including the
// payer-authentication values of its ECI tables.
var CommerceIndicators = []string{
	"internet", "moto", "recurring", "recurring_internet", "install", "install_internet", "retail",
	"vbv", "vbv_attempted", "vbv_failure", "spa", "spa_failure", "aesk", "aesk_attempted", "js", "js_attempted",
	"pb", "pb_attempted", "dipb", "up3ds", "up3ds_attempted", "up3ds_failure",
}

// CardTypeCode is the card type of the intent: from the card number, or
// from storedCard.brand ("" when unknown).
func (in *Intent) CardTypeCode() string {
	if in.Card != nil {
		return CardType(in.Card.Number)
	}
	if in.StoredCard != nil {
		return brandCodes[in.StoredCard.Brand]
	}
	return ""
}

// checkCredential applies the guide's rules before any call; each refusal
// names the rule.
func (in *Intent) checkCredential(bad func(string, string)) {
	if in.CommerceIndicator != "" && !slices.Contains(CommerceIndicators, in.CommerceIndicator) {
		bad("commerceIndicator", fmt.Sprintf("%s is not one of %v", outside(in.CommerceIndicator), CommerceIndicators))
	}
	if sc := in.StoredCard; sc != nil {
		n := 0
		for _, id := range []struct {
			field, v string
			min, max int
		}{
			{"customerId", sc.CustomerID, 1, 32},
			{"paymentInstrumentId", sc.PaymentInstrumentID, 1, 32},
			{"instrumentIdentifierId", sc.InstrumentIdentifierID, 12, 32},
		} {
			if id.v != "" {
				n++
				if len(id.v) < id.min || len(id.v) > id.max || !isTokenID(id.v) {
					bad("storedCard", fmt.Sprintf("%s must be letters and digits, %d to %d characters (CyberSource's limits)", id.field, id.min, id.max))
				}
			}
		}
		if n != 1 {
			bad("storedCard", "must name exactly one of customerId, paymentInstrumentId, instrumentIdentifierId")
		}
		if sc.Brand != "" && brandCodes[sc.Brand] == "" {
			bad("storedCard.brand", "must be one of visa, mastercard, amex, discover, diners, jcb, maestro")
		}
	}
	c := in.Credential
	if c == nil {
		return
	}
	brand := in.CardTypeCode()
	if in.StoredCard != nil && in.StoredCard.Brand == "" {
		bad("storedCard.brand", "is required with a credential: the brand decides which fields CyberSource needs")
		return
	}
	if in.EncryptedCard != "" && in.Card == nil {
		// The brand rules are applied once the card is decrypted.
		return
	}
	brandName := brandNames[brand]
	switch c.Type {
	case CredentialCITStore, CredentialCITStored, CredentialMIT:
	case "":
		bad("credential.type", "is required: cit_store, cit_stored or mit")
		return
	default:
		bad("credential.type", outside(c.Type)+" is not cit_store, cit_stored or mit")
		return
	}
	rule, known := Reasons[c.Reason]
	if c.Reason != "" && !known {
		bad("credential.reason", outside(c.Reason)+" is not a scenario of the guide")
		return
	}
	if c.Reason != "" && brand != "" {
		if why, refused := rule.refusedBrands[brand]; refused {
			bad("credential.reason", why)
		} else if len(rule.onlyBrands) > 0 && !slices.Contains(rule.onlyBrands, brand) {
			bad("credential.reason", fmt.Sprintf("%s is a Mastercard transaction type; %s cards use recurring", c.Reason, brandName))
		}
	}
	discover := brand == CardTypeDiscover
	switch c.Type {
	case CredentialCITStore:
		if c.Reason != "" && !rule.cit {
			bad("credential.reason", fmt.Sprintf("%s is a merchant-initiated scenario; a CIT that stores the card names the series it is for (recurring, subscription, standing_order, installment, unscheduled)", c.Reason))
		}
		if c.PreviousTransactionID != "" {
			bad("credential.previousTransactionId", "a CIT that stores the card starts the series: it has no previous transaction")
		}
		if in.StoredCard != nil {
			bad("credential.type", "cit_store stores a card: pay with card, not storedCard (use cit_stored)")
		}
	case CredentialCITStored:
		if c.Reason != "" {
			bad("credential.reason", "a customer-initiated transaction with a stored card takes no reason")
		}
		if discover && c.OriginalAuthorizedAmount == "" {
			bad("credential.originalAuthorizedAmount", "Discover requires the authorization amount of the original transaction when stored credentials are used")
		}
	case CredentialMIT:
		if c.Reason == "" {
			bad("credential.reason", "an MIT must state its scenario (resubmission, delayed_charge, reauthorization, no_show, incremental, partial_shipment, recurring, subscription, standing_order, installment, unscheduled)")
		} else if !rule.mit {
			bad("credential.reason", c.Reason+" is not a merchant-initiated scenario")
		}
		if c.PreviousTransactionID == "" {
			bad("credential.previousTransactionId", "an MIT must carry the network transaction id of the transaction that stored the card")
		} else if len(c.PreviousTransactionID) > MaxPreviousTransactionID || !allDigitsOrLetters(c.PreviousTransactionID) {
			bad("credential.previousTransactionId", fmt.Sprintf("must be the network transaction id (letters and digits, at most %d: CyberSource's limit)", MaxPreviousTransactionID))
		}
		if discover && c.OriginalAuthorizedAmount == "" {
			bad("credential.originalAuthorizedAmount", "Discover requires the authorization amount of the original transaction on an MIT")
		}
	}
	if c.OriginalAuthorizedAmount != "" {
		decimals, ok := MinorUnits(in.Currency)
		if msg := checkAmount(c.OriginalAuthorizedAmount, decimals, ok); msg != "" {
			bad("credential.originalAuthorizedAmount", msg)
		}
	}
}

func isTokenID(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}

func allDigitsOrLetters(s string) bool { return isTokenID(s) }

// Initiation is what an intent's card-on-file statement means for its
// authorization, by the credentialed-transactions guide's brand rules: who
// initiates it, whether it stores or uses a stored credential, the commerce
// indicator, the reason code (only for the brands that take it) and the ids
// and amounts the brand needs. It says nothing about any wire format.
type Initiation struct {
	CommerceIndicator string
	// InitiatorType is "customer", "merchant" or "" (no credential stated).
	InitiatorType            string
	CredentialStoredOnFile   bool
	StoredCredentialUsed     bool
	ReasonCode               string
	PreviousTransactionID    string
	OriginalAuthorizedAmount string
}

// Initiation applies the brand rules to the intent's credential.
// previousID is the previous transaction id to name on an MIT ("" for the
// intent's own; the worker passes Visa's last successful id of the series).
func (in *Intent) Initiation(previousID string) Initiation {
	ini := Initiation{CommerceIndicator: in.CommerceIndicator}
	c := in.Credential
	if c == nil {
		return ini
	}
	brand := in.CardTypeCode()
	rule := Reasons[c.Reason]
	switch c.Type {
	case CredentialCITStore:
		ini.InitiatorType, ini.CredentialStoredOnFile = "customer", true
		ini.CommerceIndicator = firstNonEmpty(ini.CommerceIndicator, firstNonEmpty(rule.citIndicator, "internet"))
	case CredentialCITStored:
		ini.InitiatorType, ini.StoredCredentialUsed = "customer", true
		ini.CommerceIndicator = firstNonEmpty(ini.CommerceIndicator, "internet")
	case CredentialMIT:
		ini.InitiatorType, ini.StoredCredentialUsed = "merchant", true
		ini.CommerceIndicator = firstNonEmpty(ini.CommerceIndicator, firstNonEmpty(rule.mitIndicator, "internet"))
		ini.PreviousTransactionID = firstNonEmpty(previousID, c.PreviousTransactionID)
	}
	if rule.code != "" && slices.Contains(rule.codeBrands, brand) {
		ini.ReasonCode = rule.code
	}
	if brand == CardTypeDiscover && c.Type != CredentialCITStore {
		ini.OriginalAuthorizedAmount = c.OriginalAuthorizedAmount
	}
	return ini
}

// UsesLastSuccessfulID reports whether the brand wants the last successful
// transaction id of the series (Visa) rather than the original.
func (in *Intent) UsesLastSuccessfulID() bool {
	return in.Credential != nil && in.Credential.Type == CredentialMIT && in.CardTypeCode() == CardTypeVisa
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
