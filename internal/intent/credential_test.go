package intent_test

import (
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
	if ini := in.Initiation(""); ini.InitiatorType != "merchant" || ini.ReasonCode != "4" || ini.PreviousTransactionID != "123" {
		t.Fatalf("%+v", ini)
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
