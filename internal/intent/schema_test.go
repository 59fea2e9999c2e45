package intent_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/ttcpay/payflow/internal/intent"
)

func schema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	b, err := os.ReadFile("../../docs/intent.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("intent.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("intent.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// schemaAccepts parses one JSON document (no trailing data) and validates it.
func schemaAccepts(s *jsonschema.Schema, data []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return false
	}
	return s.Validate(v) == nil
}

// cannotExpress are the invalid cases a JSON Schema cannot refuse, each with
// the words the schema's description uses to name the check: semantic rules,
// and the decoder's own (a schema validates what a JSON parser made of the
// bytes, and parsers differ on duplicate names and bad UTF-8: many keep the
// last duplicate, or put U+FFFD in place of a bad byte).
var cannotExpress = map[string]string{
	"BadLuhn":                     "Luhn check",
	"UnsupportedBrand":            "supported brand",
	"ExpiredCard":                 "expiry that is not in the past",
	"MastercardRecurring":         "Mastercard uses subscription or standing_order instead of recurring",
	"DiscoverMIT":                 "Discover's originalAuthorizedAmount",
	"DuplicateAmount":             "duplicate member names",
	"DuplicateNestedKey":          "duplicate member names",
	"InvalidUTF8InFirstName":      "not valid UTF-8",
	"LoneSurrogateInFirstName":    "not valid UTF-8",
	"SelfTargetingCapture":        "paymentIntentId equal to its own intentId",
	"SelfTargetingRefund":         "paymentIntentId equal to its own intentId",
	"SelfTargetingReverse":        "paymentIntentId equal to its own intentId",
	"SelfTargetingVoid":           "paymentIntentId equal to its own intentId",
	"CardNumberAsIntentID":        "ids (intentId, integrator, merchantId, paymentIntentId) that never look like a card number",
	"GroupedCardNumberInIntentID": "ids (intentId, integrator, merchantId, paymentIntentId) that never look like a card number",
	"CardNumberAsMerchantID":      "ids (intentId, integrator, merchantId, paymentIntentId) that never look like a card number",
	"CardNumberAsIntegrator":      "ids (intentId, integrator, merchantId, paymentIntentId) that never look like a card number",
	"ReferenceHoldsCard":          "and the same of bookingId and reference",
	"BookingHoldsCard":            "and the same of bookingId and reference",
}

func schemaDescription(t *testing.T) string {
	b, err := os.ReadFile("../../docs/intent.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Description string `json:"description"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Description
}

// TestSchemaAgreesWithValidation runs the valid and invalid corpora through
// the JSON Schema and the Go validation.
func TestSchemaAgreesWithValidation(t *testing.T) {
	s := schema(t)
	valid := map[string][]byte{
		"Seed":          seed(t),
		"NoTokenize":    edit(t, func(m map[string]any) { delete(m, "tokenize") }),
		"AuthorizeOnly": edit(t, func(m map[string]any) { m["capture"] = false }),
		"NoPhone":       edit(t, func(m map[string]any) { delete(billTo(m), "phoneNumber") }),
		"NoCVV":         edit(t, func(m map[string]any) { delete(card(m), "securityCode") }),
		"Amex":          edit(t, func(m map[string]any) { card(m)["number"] = "378282246310005"; card(m)["securityCode"] = "1234" }),
		"SmallAmount":   edit(t, func(m map[string]any) { m["amount"] = "0.01" }),
		"Unicode":       edit(t, func(m map[string]any) { billTo(m)["firstName"] = "Zoë"; billTo(m)["locality"] = "Zürich" }),
		"CITStore": edit(t, func(m map[string]any) {
			m["credential"] = map[string]any{"type": "cit_store", "reason": "recurring"}
			m["commerceIndicator"] = "vbv"
		}),
		"MITStoredCard": edit(t, func(m map[string]any) {
			delete(m, "card")
			m["storedCard"] = map[string]any{"paymentInstrumentId": "ABC", "brand": "visa"}
			m["credential"] = map[string]any{"type": "mit", "reason": "no_show", "previousTransactionId": "123456789012345"}
		}),
		"Capture":       []byte(`{"version":1,"intentId":"c1","integrator":"costco","merchantId":"m","operation":"capture","paymentIntentId":"p1"}`),
		"PartialRefund": []byte(`{"version":1,"intentId":"r1","integrator":"costco","merchantId":"m","operation":"refund","paymentId":"123","amount":"5.00","currency":"USD"}`),
		"Void":          []byte(`{"version":1,"intentId":"v1","integrator":"costco","merchantId":"m","operation":"void","paymentIntentId":"p1"}`),
		// Boundaries of the limits CyberSource's spec sets.
		"PreviousTransactionID15": edit(t, func(m map[string]any) {
			m["credential"] = map[string]any{"type": "mit", "reason": "no_show", "previousTransactionId": strings.Repeat("A", 15)}
		}),
		"CustomerID32": edit(t, func(m map[string]any) {
			delete(m, "card")
			m["storedCard"] = map[string]any{"customerId": strings.Repeat("C", 32)}
		}),
		"PaymentInstrumentID1": edit(t, func(m map[string]any) {
			delete(m, "card")
			m["storedCard"] = map[string]any{"paymentInstrumentId": "P"}
		}),
		"InstrumentIdentifierID12": edit(t, func(m map[string]any) {
			delete(m, "card")
			m["storedCard"] = map[string]any{"instrumentIdentifierId": strings.Repeat("7", 12)}
		}),
		"InstrumentIdentifierID32": edit(t, func(m map[string]any) {
			delete(m, "card")
			m["storedCard"] = map[string]any{"instrumentIdentifierId": strings.Repeat("7", 32)}
		}),
		"SettlementIntentID50":              []byte(`{"version":1,"intentId":"` + strings.Repeat("c", 50) + `","integrator":"costco","merchantId":"m","operation":"capture","paymentIntentId":"p1"}`),
		"SettlementIntentID64WithReference": []byte(`{"version":1,"intentId":"` + strings.Repeat("c", 64) + `","integrator":"costco","merchantId":"m","operation":"refund","paymentIntentId":"p1","reference":"R-1"}`),
		"PhoneWithPlus":                     edit(t, func(m map[string]any) { billTo(m)["phoneNumber"] = "+14158880000" }),
		"EmptyPhone":                        edit(t, func(m map[string]any) { billTo(m)["phoneNumber"] = "" }),
		"Address2":                          edit(t, func(m map[string]any) { billTo(m)["address2"] = "Apt 4 – Bâtiment B" }),
		"NonLatinNames":                     edit(t, func(m map[string]any) { billTo(m)["firstName"] = "美咲"; billTo(m)["lastName"] = "Ørsted-Łukasz" }),
	}
	for name, data := range valid {
		_, goErr := intent.Decode(data, now)
		if goErr != nil || !schemaAccepts(s, data) {
			t.Errorf("valid %s: Go %v, schema accepts %v", name, goErr, schemaAccepts(s, data))
		}
	}
	more := []struct {
		name, field string
		data        []byte
	}{
		{"MITWithoutPreviousID", "", edit(t, func(m map[string]any) { m["credential"] = map[string]any{"type": "mit", "reason": "recurring"} })},
		{"MITWithoutReason", "", edit(t, func(m map[string]any) { m["credential"] = map[string]any{"type": "mit", "previousTransactionId": "1"} })},
		{"StoredCITWithReason", "", edit(t, func(m map[string]any) { m["credential"] = map[string]any{"type": "cit_stored", "reason": "recurring"} })},
		{"StoringCITWithPrevious", "", edit(t, func(m map[string]any) {
			m["credential"] = map[string]any{"type": "cit_store", "previousTransactionId": "1"}
		})},
		{"StoringCITWithMITReason", "", edit(t, func(m map[string]any) { m["credential"] = map[string]any{"type": "cit_store", "reason": "no_show"} })},
		{"UnknownIndicator", "", edit(t, func(m map[string]any) { m["commerceIndicator"] = "web" })},
		{"CardAndStoredCard", "", edit(t, func(m map[string]any) { m["storedCard"] = map[string]any{"customerId": "C1"} })},
		{"StoredCardTwoIDs", "", edit(t, func(m map[string]any) {
			delete(m, "card")
			m["storedCard"] = map[string]any{"customerId": "C1", "paymentInstrumentId": "P1"}
		})},
		{"StoredCardNoBrandWithCredential", "", edit(t, func(m map[string]any) {
			delete(m, "card")
			m["storedCard"] = map[string]any{"customerId": "C1"}
			m["credential"] = map[string]any{"type": "cit_stored"}
		})},
		{"MastercardRecurring", "", edit(t, func(m map[string]any) {
			card(m)["number"] = "5555555555554444"
			m["credential"] = map[string]any{"type": "mit", "reason": "recurring", "previousTransactionId": "1"}
		})},
		{"DiscoverMIT", "", edit(t, func(m map[string]any) {
			card(m)["number"] = "6011111111111117"
			m["credential"] = map[string]any{"type": "mit", "reason": "recurring", "previousTransactionId": "1"}
		})},
		{"CaptureWithoutPayment", "", []byte(`{"version":1,"intentId":"c1","integrator":"costco","merchantId":"m","operation":"capture"}`)},
		{"CaptureWithCard", "", []byte(`{"version":1,"intentId":"c1","integrator":"costco","merchantId":"m","operation":"capture","paymentIntentId":"p","card":{"number":"4111111111111111","expirationMonth":"12","expirationYear":"2031"}}`)},
		{"VoidWithAmount", "", []byte(`{"version":1,"intentId":"v1","integrator":"costco","merchantId":"m","operation":"void","paymentIntentId":"p","amount":"1.00","currency":"USD"}`)},
		{"RefundAmountNoCurrency", "", []byte(`{"version":1,"intentId":"r1","integrator":"costco","merchantId":"m","operation":"refund","paymentIntentId":"p","amount":"1.00"}`)},
		{"UnknownOperation", "", []byte(`{"version":1,"intentId":"r1","integrator":"costco","merchantId":"m","operation":"settle","paymentIntentId":"p"}`)},
		{"AuthorizeNamingPayment", "", edit(t, func(m map[string]any) { m["paymentIntentId"] = "p" })},
		{"CardAndEncryptedCard", "", edit(t, func(m map[string]any) { m["encryptedCard"] = "a.b.c.d.e" })},
		{"EncryptedCardNotJWE", "", edit(t, func(m map[string]any) { delete(m, "card"); m["encryptedCard"] = "not-a-jwe" })},
	}
	description := schemaDescription(t)
	for _, tc := range append(invalidCases(t), more...) {
		_, goErr := intent.Decode(tc.data, now)
		if goErr == nil {
			t.Fatalf("%s: Go accepted", tc.name)
		}
		accepted := schemaAccepts(s, tc.data)
		if words, ok := cannotExpress[tc.name]; ok {
			if !accepted {
				t.Errorf("%s: the schema refuses it, so it is not beyond the schema any more: update the list", tc.name)
			}
			if !strings.Contains(description, words) {
				t.Errorf("%s: the schema's description does not name the check (%q)", tc.name, words)
			}
			continue
		}
		if accepted {
			t.Errorf("invalid %s: the schema accepts what Go refuses", tc.name)
		}
	}
}

// TestSchemaCurrencies: every currency and its minor unit, both ways.
func TestSchemaCurrencies(t *testing.T) {
	s := schema(t)
	b, _ := os.ReadFile("../../docs/intent.schema.json")
	var doc struct {
		Properties struct {
			Currency struct {
				Enum []string `json:"enum"`
			} `json:"currency"`
		} `json:"properties"`
	}
	_ = json.Unmarshal(b, &doc)
	if len(doc.Properties.Currency.Enum) < 150 {
		t.Fatalf("schema lists %d currencies", len(doc.Properties.Currency.Enum))
	}
	for _, cur := range doc.Properties.Currency.Enum {
		d, ok := intent.MinorUnits(cur)
		if !ok {
			t.Fatalf("schema currency %s unknown to Go", cur)
		}
		amount := "12"
		if d > 0 {
			amount += "." + strings.Repeat("5", d)
		}
		for _, tc := range []struct {
			amount string
			ok     bool
		}{{amount, true}, {amount + map[bool]string{true: ".5", false: "5"}[d == 0], false}} {
			data := edit(t, func(m map[string]any) { m["currency"] = cur; m["amount"] = tc.amount })
			_, goErr := intent.Decode(data, now)
			if (goErr == nil) != tc.ok || schemaAccepts(s, data) != tc.ok {
				t.Errorf("%s %s: Go %v, schema %v, want ok=%v", cur, tc.amount, goErr, schemaAccepts(s, data), tc.ok)
			}
		}
	}
}

// TestTextFieldsRefuseInvisibleCharacters: control, zero-width, bidi and
// line-separator characters anywhere in a text field, and text fields that
// are blank in any Unicode sense, are refused by Go and the schema alike.
func TestTextFieldsRefuseInvisibleCharacters(t *testing.T) {
	s := schema(t)
	set := func(field, v string) []byte {
		return edit(t, func(m map[string]any) {
			if sub, ok := strings.CutPrefix(field, "billTo."); ok {
				billTo(m)[sub] = v
			} else {
				m[field] = v
			}
		})
	}
	fields := map[string]string{
		"bookingId": "C253535", "reference": "TTUSAS_1", "billTo.firstName": "John", "billTo.lastName": "Doe",
		"billTo.address1": "1 Market St", "billTo.address2": "Apt 4", "billTo.locality": "san francisco",
		"billTo.administrativeArea": "CA", "billTo.postalCode": "94105", "billTo.email": "test@cybs.com",
	}
	invisible := []rune{0x00, 0x09, 0x0a, 0x1f, 0x7f, 0x85, 0x9f, 0x200b, 0x200c, 0x200d, 0x2028, 0x2029,
		0x202a, 0x202e, 0x2060, 0x2066, 0x2069, 0xfeff}
	for field, v := range fields {
		for _, r := range invisible {
			bad := v[:1] + string(r) + v[1:]
			data := set(field, bad)
			_, goErr := intent.Decode(data, now)
			if goErr == nil || !strings.Contains(goErr.Error(), field+":") {
				t.Errorf("%s with U+%04X: Go %v", field, r, goErr)
			}
			if schemaAccepts(s, data) {
				t.Errorf("%s with U+%04X: the schema accepts it", field, r)
			}
		}
		if field == "billTo.address2" {
			continue // optional: blank is allowed
		}
		for _, blank := range []string{" ", "\u00a0", "\u3000", "\u2002 "} {
			b, _ := strconv.Unquote(`"` + blank + `"`)
			data := set(field, b)
			_, goErr := intent.Decode(data, now)
			if goErr == nil || schemaAccepts(s, data) {
				t.Errorf("%s blank %q: Go %v, schema accepts %v", field, blank, goErr, schemaAccepts(s, data))
			}
		}
	}
}
