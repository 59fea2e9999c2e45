package intent_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/ttcpay/payflow/internal/intent"
)

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
	r := in.PaymentRequest(1, "")
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

// TestCredentialRules: each rule refuses with a message naming it.
func TestCredentialRules(t *testing.T) {
	cases := []struct {
		name, card string
		cred       map[string]any
		field, msg string
	}{
		{"MITWithoutPreviousID", visa, map[string]any{"type": "mit", "reason": "recurring"}, "credential.previousTransactionId", "network transaction id"},
		{"MITWithoutReason", visa, map[string]any{"type": "mit", "previousTransactionId": "1"}, "credential.reason", "must state its scenario"},
		{"DiscoverMITWithoutOriginalAmount", discover, map[string]any{"type": "mit", "reason": "recurring", "previousTransactionId": "1"}, "credential.originalAuthorizedAmount", "Discover requires"},
		{"DiscoverCITStoredWithoutOriginalAmount", discover, map[string]any{"type": "cit_stored"}, "credential.originalAuthorizedAmount", "Discover requires"},
		{"MastercardRecurring", mastercard, map[string]any{"type": "mit", "reason": "recurring", "previousTransactionId": "1"}, "credential.reason", "Mastercard uses subscription or standing_order"},
		{"VisaSubscription", visa, map[string]any{"type": "mit", "reason": "subscription", "previousTransactionId": "1"}, "credential.reason", "Mastercard transaction type"},
		{"VisaStandingOrder", visa, map[string]any{"type": "cit_store", "reason": "standing_order"}, "credential.reason", "Mastercard transaction type"},
		{"MastercardReauthorization", mastercard, map[string]any{"type": "mit", "reason": "reauthorization", "previousTransactionId": "1"}, "credential.reason", "reason 3"},
		{"MastercardIncremental", mastercard, map[string]any{"type": "mit", "reason": "incremental", "previousTransactionId": "1"}, "credential.reason", "reason 5"},
		{"VisaPartialShipment", visa, map[string]any{"type": "mit", "reason": "partial_shipment", "previousTransactionId": "1"}, "credential.reason", "reason 6"},
		{"NoShowOnCIT", visa, map[string]any{"type": "cit_store", "reason": "no_show"}, "credential.reason", "merchant-initiated scenario"},
		{"ReasonOnStoredCIT", visa, map[string]any{"type": "cit_stored", "reason": "recurring"}, "credential.reason", "takes no reason"},
		{"PreviousIDOnStoringCIT", visa, map[string]any{"type": "cit_store", "previousTransactionId": "1"}, "credential.previousTransactionId", "no previous transaction"},
		{"UnknownType", visa, map[string]any{"type": "moto"}, "credential.type", "not cit_store"},
		{"UnknownReason", visa, map[string]any{"type": "mit", "reason": "whenever", "previousTransactionId": "1"}, "credential.reason", "not a scenario"},
		{"BadOriginalAmount", discover, map[string]any{"type": "mit", "reason": "recurring", "previousTransactionId": "1", "originalAuthorizedAmount": "1.234"}, "credential.originalAuthorizedAmount", "decimals"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := intent.Decode(withCredential(t, tc.card, tc.cred, ""), now)
			var ve *intent.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("accepted: %v", err)
			}
			for _, p := range ve.Problems {
				if p.Field == tc.field && strings.Contains(p.Message, tc.msg) {
					t.Logf("%s: %s", p.Field, p.Message)
					return
				}
			}
			t.Fatalf("no %s problem with %q: %v", tc.field, tc.msg, err)
		})
	}
	t.Run("UnknownCommerceIndicator", func(t *testing.T) {
		_, err := intent.Decode(withCredential(t, visa, nil, "web"), now)
		if err == nil || !strings.Contains(err.Error(), "commerceIndicator") {
			t.Fatal(err)
		}
	})
}

func TestStoredCardAndOperations(t *testing.T) {
	stored := edit(t, func(m map[string]any) {
		delete(m, "card")
		m["storedCard"] = map[string]any{"paymentInstrumentId": "ABC123", "brand": "visa"}
		m["credential"] = map[string]any{"type": "mit", "reason": "no_show", "previousTransactionId": "123"}
	})
	in, err := intent.Decode(stored, now)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(in.PaymentRequest(1, ""))
	if !strings.Contains(string(b), `"paymentInstrument":{"id":"ABC123"}`) || strings.Contains(string(b), `"card"`) {
		t.Fatalf("%s", b)
	}
	noBrand := edit(t, func(m map[string]any) {
		delete(m, "card")
		m["storedCard"] = map[string]any{"customerId": "C1"}
		m["credential"] = map[string]any{"type": "cit_stored"}
	})
	if _, err := intent.Decode(noBrand, now); err == nil || !strings.Contains(err.Error(), "storedCard.brand") {
		t.Fatalf("stored card without brand: %v", err)
	}
	op := func(fields string) error {
		_, err := intent.Decode([]byte(`{"version":1,"intentId":"op-1","integrator":"costco","merchantId":"m"`+fields+`}`), now)
		return err
	}
	for fields, wantErr := range map[string]string{
		`,"operation":"capture","paymentIntentId":"pay-1"`:                                            "",
		`,"operation":"refund","paymentId":"1795255747264000000002","amount":"5.00","currency":"USD"`: "",
		`,"operation":"void","paymentIntentId":"pay-1"`:                                               "",
		`,"operation":"capture"`: "paymentIntentId",
		`,"operation":"capture","paymentIntentId":"a","paymentId":"1"`:               "paymentId",
		`,"operation":"void","paymentIntentId":"a","amount":"1.00","currency":"USD"`: "amount",
		`,"operation":"refund","paymentIntentId":"a","amount":"1.00"`:                "currency",
		`,"operation":"capture","paymentIntentId":"a","capture":true`:                "capture",
		`,"operation":"settle","paymentIntentId":"a"`:                                "operation",
	} {
		err := op(fields)
		if (wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), wantErr)) {
			t.Errorf("%s: %v (want %q)", fields, err, wantErr)
		}
	}
}
