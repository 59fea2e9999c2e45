package payment_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ttcpay/payflow/internal/intent"
	"github.com/ttcpay/payflow/internal/payment"
)

var now = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

// seed is the TTC guide's example intent (the intent package's testdata).
func seed(t testing.TB) []byte {
	b, err := os.ReadFile("../intent/testdata/seed.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// edit decodes the seed into a generic map, applies fn, and re-encodes.
func edit(t testing.TB, fn func(m map[string]any)) []byte {
	var m map[string]any
	if err := json.Unmarshal(seed(t), &m); err != nil {
		t.Fatal(err)
	}
	fn(m)
	b, _ := json.Marshal(m)
	return b
}

const (
	visa       = "4111111111111111"
	mastercard = "5555555555554444"
	amex       = "378282246310005"
	discover   = "6011111111111117"
)

// withCredential builds an intent on card with a credential and indicator.
func withCredential(t *testing.T, card string, cred map[string]any, indicator string) []byte {
	return edit(t, func(m map[string]any) {
		c := m["card"].(map[string]any)
		c["number"] = card
		if card == amex {
			c["securityCode"] = "1234"
		}
		if cred != nil {
			m["credential"] = cred
		}
		if indicator != "" {
			m["commerceIndicator"] = indicator
		}
	})
}

func processing(t *testing.T, data []byte) string {
	t.Helper()
	in, err := intent.Decode(data, now)
	if err != nil {
		t.Fatalf("refused: %v", err)
	}
	r := payment.PaymentRequest(in, 1, "", "")
	r.ProcessingInformation.ActionList = nil
	r.ProcessingInformation.Capture = false
	b, _ := json.Marshal(r.ProcessingInformation)
	return string(b)
}

// TestGuideScenarios: every "Simple Order Example" of the credentialed
// transactions guide, for the brands it names, and the REST fields the
// worker sends (reference §4.5 maps subsequentAuth→initiator.type,
// subsequentAuthFirst→credentialStoredOnFile, subsequentAuthStoredCredential
// →storedCredentialUsed, subsequentAuthReason→…reason,
// subsequentAuthTransactionID→…previousTransactionId,
// subsequentAuthOriginalAmount→…originalAuthorizedAmount).
func TestGuideScenarios(t *testing.T) {
	prev := "123456789012345"
	mit := func(reason string, extra ...string) map[string]any {
		m := map[string]any{"type": "mit", "reason": reason, "previousTransactionId": prev}
		if len(extra) > 0 {
			m["originalAuthorizedAmount"] = extra[0]
		}
		return m
	}
	cit := func(typ, reason string) map[string]any {
		m := map[string]any{"type": typ}
		if reason != "" {
			m["reason"] = reason
		}
		return m
	}
	const (
		citStore  = `{"type":"customer","credentialStoredOnFile":true}`
		citStored = `{"type":"customer","storedCredentialUsed":true}`
	)
	mitInit := func(reason, extra string) string {
		mt := `"previousTransactionId":"` + prev + `"`
		if reason != "" {
			mt = `"reason":"` + reason + `",` + mt
		}
		return `{"type":"merchant","storedCredentialUsed":true,"merchantInitiatedTransaction":{` + mt + extra + `}}`
	}
	cases := []struct {
		name, card string
		cred       map[string]any
		indicator  string
		want       string // processingInformation
	}{
		{"StoringCredentialsDuringCIT/Visa", visa, cit("cit_store", ""), "", `{"capture":false,"commerceIndicator":"internet","authorizationOptions":{"initiator":` + citStore + `}}`},
		{"StoringCredentialsDuringCIT/MOTO", visa, cit("cit_store", ""), "moto", `{"capture":false,"commerceIndicator":"moto","authorizationOptions":{"initiator":` + citStore + `}}`},
		{"StoringCredentialsDuringCIT/PayerAuthVisa", visa, cit("cit_store", ""), "vbv", `{"capture":false,"commerceIndicator":"vbv","authorizationOptions":{"initiator":` + citStore + `}}`},
		{"StoringCredentialsDuringCIT/PayerAuthMastercard", mastercard, cit("cit_store", ""), "spa", `{"capture":false,"commerceIndicator":"spa","authorizationOptions":{"initiator":` + citStore + `}}`},
		{"UsingStoredCredentialsDuringCIT/Visa", visa, cit("cit_stored", ""), "", `{"capture":false,"commerceIndicator":"internet","authorizationOptions":{"initiator":` + citStored + `}}`},
		{"UsingStoredCredentialsDuringCIT/Discover", discover, map[string]any{"type": "cit_stored", "originalAuthorizedAmount": "100.00"}, "",
			`{"capture":false,"commerceIndicator":"internet","authorizationOptions":{"initiator":{"type":"customer","storedCredentialUsed":true,"merchantInitiatedTransaction":{"originalAuthorizedAmount":"100.00"}}}}`},
		// The guide's examples for delayed, reauthorization, resubmission and
		// no-show send ccAuthService_commerceIndicator=install; given
		// explicitly here to reproduce them (the worker's default is internet).
		{"MITDelayedCharge/Visa", visa, mit("delayed_charge"), "install", `{"capture":false,"commerceIndicator":"install","authorizationOptions":{"initiator":` + mitInit("2", "") + `}}`},
		{"MITDelayedCharge/Mastercard", mastercard, mit("delayed_charge"), "", `{"capture":false,"commerceIndicator":"internet","authorizationOptions":{"initiator":` + mitInit("2", "") + `}}`},
		{"MITDelayedCharge/Discover", discover, mit("delayed_charge", "100.00"), "", `{"capture":false,"commerceIndicator":"internet","authorizationOptions":{"initiator":` + mitInit("2", `,"originalAuthorizedAmount":"100.00"`) + `}}`},
		{"MITDelayedCharge/AmexNoReasonCode", amex, mit("delayed_charge"), "", `{"capture":false,"commerceIndicator":"internet","authorizationOptions":{"initiator":` + mitInit("", "") + `}}`},
		{"MITReauthorization/Visa", visa, mit("reauthorization"), "install", `{"capture":false,"commerceIndicator":"install","authorizationOptions":{"initiator":` + mitInit("3", "") + `}}`},
		{"MITReauthorization/Discover", discover, mit("reauthorization", "100.00"), "", `{"capture":false,"commerceIndicator":"internet","authorizationOptions":{"initiator":` + mitInit("3", `,"originalAuthorizedAmount":"100.00"`) + `}}`},
		{"MITResubmission/Visa", visa, mit("resubmission"), "install", `{"capture":false,"commerceIndicator":"install","authorizationOptions":{"initiator":` + mitInit("1", "") + `}}`},
		{"MITResubmission/Mastercard", mastercard, mit("resubmission"), "", `{"capture":false,"commerceIndicator":"internet","authorizationOptions":{"initiator":` + mitInit("1", "") + `}}`},
		{"MITNoShow/Visa", visa, mit("no_show"), "install", `{"capture":false,"commerceIndicator":"install","authorizationOptions":{"initiator":` + mitInit("4", "") + `}}`},
		{"MITNoShow/Mastercard", mastercard, mit("no_show"), "", `{"capture":false,"commerceIndicator":"internet","authorizationOptions":{"initiator":` + mitInit("4", "") + `}}`},
		{"MITIncremental/Visa", visa, mit("incremental"), "", `{"capture":false,"commerceIndicator":"internet","authorizationOptions":{"initiator":` + mitInit("5", "") + `}}`},
		{"MITPartialShipment/Mastercard", mastercard, mit("partial_shipment"), "", `{"capture":false,"commerceIndicator":"internet","authorizationOptions":{"initiator":` + mitInit("6", "") + `}}`},
		{"CITInitialInstallment/Visa", visa, cit("cit_store", "installment"), "", `{"capture":false,"commerceIndicator":"internet","authorizationOptions":{"initiator":` + citStore + `}}`},
		{"CITInitialInstallment/Mastercard", mastercard, cit("cit_store", "installment"), "",
			`{"capture":false,"commerceIndicator":"internet","authorizationOptions":{"initiator":{"type":"customer","credentialStoredOnFile":true,"merchantInitiatedTransaction":{"reason":"9"}}}}`},
		{"MITInstallment/Visa", visa, mit("installment"), "", `{"capture":false,"commerceIndicator":"install","authorizationOptions":{"initiator":` + mitInit("", "") + `}}`},
		{"MITInstallment/Mastercard", mastercard, mit("installment"), "", `{"capture":false,"commerceIndicator":"install","authorizationOptions":{"initiator":` + mitInit("9", "") + `}}`},
		{"MITInstallment/Discover", discover, mit("installment", "100.00"), "", `{"capture":false,"commerceIndicator":"install","authorizationOptions":{"initiator":` + mitInit("", `,"originalAuthorizedAmount":"100.00"`) + `}}`},
		{"CITRecurring/Visa", visa, cit("cit_store", "recurring"), "", `{"capture":false,"commerceIndicator":"internet","authorizationOptions":{"initiator":` + citStore + `}}`},
		{"MITRecurring/Visa", visa, mit("recurring"), "", `{"capture":false,"commerceIndicator":"recurring","authorizationOptions":{"initiator":` + mitInit("", "") + `}}`},
		{"MITRecurring/Discover", discover, mit("recurring", "100.00"), "", `{"capture":false,"commerceIndicator":"recurring","authorizationOptions":{"initiator":` + mitInit("", `,"originalAuthorizedAmount":"100.00"`) + `}}`},
		{"MastercardCITStandingOrder", mastercard, cit("cit_store", "standing_order"), "",
			`{"capture":false,"commerceIndicator":"internet","authorizationOptions":{"initiator":{"type":"customer","credentialStoredOnFile":true,"merchantInitiatedTransaction":{"reason":"8"}}}}`},
		{"MastercardMITStandingOrder", mastercard, mit("standing_order"), "", `{"capture":false,"commerceIndicator":"recurring","authorizationOptions":{"initiator":` + mitInit("8", "") + `}}`},
		{"MastercardCITSubscription", mastercard, cit("cit_store", "subscription"), "",
			`{"capture":false,"commerceIndicator":"recurring","authorizationOptions":{"initiator":{"type":"customer","credentialStoredOnFile":true,"merchantInitiatedTransaction":{"reason":"7"}}}}`},
		{"MastercardMITSubscription", mastercard, mit("subscription"), "", `{"capture":false,"commerceIndicator":"recurring","authorizationOptions":{"initiator":` + mitInit("7", "") + `}}`},
		{"CITUnscheduled/Visa", visa, cit("cit_store", "unscheduled"), "", `{"capture":false,"commerceIndicator":"internet","authorizationOptions":{"initiator":` + citStore + `}}`},
		{"MITUnscheduled/Visa", visa, mit("unscheduled"), "", `{"capture":false,"commerceIndicator":"internet","authorizationOptions":{"initiator":` + mitInit("", "") + `}}`},
		{"MITUnscheduled/Mastercard", mastercard, mit("unscheduled"), "", `{"capture":false,"commerceIndicator":"internet","authorizationOptions":{"initiator":` + mitInit("10", "") + `}}`},
		{"MITUnscheduled/Amex", amex, mit("unscheduled"), "", `{"capture":false,"commerceIndicator":"internet","authorizationOptions":{"initiator":` + mitInit("10", "") + `}}`},
		{"MITUnscheduled/Discover", discover, mit("unscheduled", "100.00"), "", `{"capture":false,"commerceIndicator":"internet","authorizationOptions":{"initiator":` + mitInit("10", `,"originalAuthorizedAmount":"100.00"`) + `}}`},
		{"NoCredential", visa, nil, "", `{"capture":false}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := processing(t, withCredential(t, tc.card, tc.cred, tc.indicator))
			if got != tc.want {
				t.Fatalf("processingInformation\n got  %s\n want %s", got, tc.want)
			}
		})
	}
}

func TestRenderCarriesSeedFields(t *testing.T) {
	in, err := intent.Decode(seed(t), now)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(payment.PaymentRequest(in, 1, "ttctestpartner", ""))
	for _, want := range []string{
		`"code":"TTUSAS_123456"`, `"transactionId":"` + intent.TransactionID("C253535-1", 1) + `"`,
		`"partner":{"solutionId":"ttctestpartner"}`, `"capture":true`, `"actionList":["TOKEN_CREATE"]`,
		`"number":"4111111111111111"`, `"expirationMonth":"12"`, `"expirationYear":"2031"`, `"type":"001"`,
		`"totalAmount":"102.21"`, `"currency":"USD"`, `"administrativeArea":"CA"`, `"phoneNumber":"4158880000"`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("missing %s in %s", want, b)
		}
	}
	if s := in.String(); strings.Contains(s, "4111111111111111") {
		t.Fatalf("String leaks the card: %s", s)
	}
}

func TestStoredCardRendersTheToken(t *testing.T) {
	stored := edit(t, func(m map[string]any) {
		delete(m, "card")
		m["storedCard"] = map[string]any{"paymentInstrumentId": "ABC123", "brand": "visa"}
		m["credential"] = map[string]any{"type": "mit", "reason": "no_show", "previousTransactionId": "123"}
	})
	in, err := intent.Decode(stored, now)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(payment.PaymentRequest(in, 1, "", ""))
	if !strings.Contains(string(b), `"paymentInstrument":{"id":"ABC123"}`) || strings.Contains(string(b), `"card"`) {
		t.Fatalf("%s", b)
	}
}
