package intent_test

import (
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ttcpay/payflow/internal/intent"
)

var now = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

func seed(t testing.TB) []byte {
	b, err := os.ReadFile("testdata/seed.json")
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

func card(m map[string]any) map[string]any   { return m["card"].(map[string]any) }
func billTo(m map[string]any) map[string]any { return m["billTo"].(map[string]any) }

func TestSeedIsValid(t *testing.T) {
	in, err := intent.Decode(seed(t), now)
	if err != nil {
		t.Fatal(err)
	}
	if in.IntentID != "C253535-1" || !in.Captures() || !in.Tokenize || intent.CardType(in.Card.Number) != "001" {
		t.Fatalf("%v", in)
	}
}

// InvalidCases are the kinds of bad intent the worker must dead-letter,
// each with the field its message names. Shared with the worker's tests.
func invalidCases(t testing.TB) []struct {
	name, field string
	data        []byte
} {
	type c = struct {
		name, field string
		data        []byte
	}
	return []c{
		{"BadJSON", "intent", []byte(`{"version":1,`)},
		{"NotAnObject", "intent", []byte(`[1,2]`)},
		{"TrailingData", "intent", append(seed(t), []byte(` {}`)...)},
		{"UnknownField", "intent", edit(t, func(m map[string]any) { m["captrue"] = true })},
		{"CardNumberAsFieldName", "intent", edit(t, func(m map[string]any) { m["4111111111111111"] = 1 })},
		{"CardNumberAsNestedFieldName", "intent", edit(t, func(m map[string]any) { card(m)["4111111111111111"] = "x" })},
		{"CardNumberAsOperation", "operation", edit(t, func(m map[string]any) { m["operation"] = "4111111111111111" })},
		{"CardNumberAsCommerceIndicator", "commerceIndicator", edit(t, func(m map[string]any) { m["commerceIndicator"] = "4111111111111111" })},
		{"CardNumberAsReason", "credential.reason", edit(t, func(m map[string]any) {
			m["credential"] = map[string]any{"type": "mit", "reason": "4111111111111111", "previousTransactionId": "1"}
		})},
		{"WrongVersion", "version", edit(t, func(m map[string]any) { m["version"] = 2 })},
		{"MissingVersion", "version", edit(t, func(m map[string]any) { delete(m, "version") })},
		{"MissingIntentID", "intentId", edit(t, func(m map[string]any) { delete(m, "intentId") })},
		{"IntentIDWithSpace", "intentId", edit(t, func(m map[string]any) { m["intentId"] = "a b" })},
		{"IntentIDTooLong", "intentId", edit(t, func(m map[string]any) { m["intentId"] = strings.Repeat("a", 65) })},
		{"MissingIntegrator", "integrator", edit(t, func(m map[string]any) { delete(m, "integrator") })},
		{"MissingMerchant", "merchantId", edit(t, func(m map[string]any) { delete(m, "merchantId") })},
		{"MerchantWithDot", "merchantId", edit(t, func(m map[string]any) { m["merchantId"] = "a.b" })},
		{"MissingBooking", "bookingId", edit(t, func(m map[string]any) { delete(m, "bookingId") })},
		{"MissingReference", "reference", edit(t, func(m map[string]any) { delete(m, "reference") })},
		{"ReferenceTooLong", "reference", edit(t, func(m map[string]any) { m["reference"] = strings.Repeat("R", 51) })},
		{"MissingAmount", "amount", edit(t, func(m map[string]any) { delete(m, "amount") })},
		{"NegativeAmount", "amount", edit(t, func(m map[string]any) { m["amount"] = "-1.00" })},
		{"ZeroAmount", "amount", edit(t, func(m map[string]any) { m["amount"] = "0.00" })},
		{"AmountNotString", "intent", edit(t, func(m map[string]any) { m["amount"] = 10.5 })},
		{"AmountExponent", "amount", edit(t, func(m map[string]any) { m["amount"] = "1e3" })},
		{"TooManyDecimalsUSD", "amount", edit(t, func(m map[string]any) { m["amount"] = "1.001" })},
		{"DecimalsJPY", "amount", edit(t, func(m map[string]any) { m["currency"] = "JPY"; m["amount"] = "100.5" })},
		{"TooManyDecimalsKWD", "amount", edit(t, func(m map[string]any) { m["currency"] = "KWD"; m["amount"] = "1.0001" })},
		{"UnknownCurrency", "currency", edit(t, func(m map[string]any) { m["currency"] = "ABC" })},
		{"LowercaseCurrency", "currency", edit(t, func(m map[string]any) { m["currency"] = "usd" })},
		{"MissingCapture", "capture", edit(t, func(m map[string]any) { delete(m, "capture") })},
		{"MissingCard", "card", edit(t, func(m map[string]any) { delete(m, "card") })},
		{"BadLuhn", "card.number", edit(t, func(m map[string]any) { card(m)["number"] = "4111111111111112" })},
		{"CardWithSpaces", "card.number", edit(t, func(m map[string]any) { card(m)["number"] = "4111 1111 1111 1111" })},
		{"CardTooShort", "card.number", edit(t, func(m map[string]any) { card(m)["number"] = "42424242" })},
		{"UnsupportedBrand", "card.number", edit(t, func(m map[string]any) { card(m)["number"] = "9999999999999995" })},
		{"ExpiredCard", "card", edit(t, func(m map[string]any) { card(m)["expirationYear"] = "2026"; card(m)["expirationMonth"] = "10" })},
		{"BadMonth", "card.expirationMonth", edit(t, func(m map[string]any) { card(m)["expirationMonth"] = "13" })},
		{"OneDigitMonth", "card.expirationMonth", edit(t, func(m map[string]any) { card(m)["expirationMonth"] = "7" })},
		{"TwoDigitYear", "card.expirationYear", edit(t, func(m map[string]any) { card(m)["expirationYear"] = "31" })},
		{"BadCVV", "card.securityCode", edit(t, func(m map[string]any) { card(m)["securityCode"] = "12a" })},
		{"MissingBillTo", "billTo", edit(t, func(m map[string]any) { delete(m, "billTo") })},
		{"MissingFirstName", "billTo.firstName", edit(t, func(m map[string]any) { delete(billTo(m), "firstName") })},
		{"MissingCountry", "billTo.country", edit(t, func(m map[string]any) { delete(billTo(m), "country") })},
		{"BadEmail", "billTo.email", edit(t, func(m map[string]any) { billTo(m)["email"] = "nobody" })},
		{"MissingPostalCode", "billTo.postalCode", edit(t, func(m map[string]any) { delete(billTo(m), "postalCode") })},
		{"Oversize", "intent", edit(t, func(m map[string]any) { billTo(m)["address2"] = strings.Repeat("x", intent.MaxSize) })},
	}
}

func TestInvalidIntents(t *testing.T) {
	for _, tc := range invalidCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			_, err := intent.Decode(tc.data, now)
			var ve *intent.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("accepted or wrong error type: %v", err)
			}
			found := false
			for _, p := range ve.Problems {
				if p.Field == tc.field {
					found = true
				}
			}
			if !found {
				t.Fatalf("problems %v do not name %s", ve.Problems, tc.field)
			}
			if regexp.MustCompile(`\d{12,}`).MatchString(err.Error()) {
				t.Fatalf("error quotes a card number: %v", err)
			}
		})
	}
}

func TestOneMessagePerBrokenField(t *testing.T) {
	data := edit(t, func(m map[string]any) {
		m["amount"] = "abc"
		m["currency"] = "XXX"
		delete(billTo(m), "email")
		card(m)["number"] = "4111111111111112"
	})
	_, err := intent.Decode(data, now)
	var ve *intent.ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 4 {
		t.Fatalf("%v", err)
	}
	t.Log(err)
}

func TestAmountsPerCurrency(t *testing.T) {
	cases := []struct {
		amount, currency string
		ok               bool
	}{
		{"102.21", "USD", true}, {"102.2", "USD", true}, {"102", "USD", true}, {"0.01", "USD", true},
		{"1000", "JPY", true}, {"1000.0", "JPY", false},
		{"1.234", "KWD", true}, {"1.2345", "KWD", false},
		{"01.00", "USD", false}, {".5", "USD", false}, {"5.", "USD", false}, {"+5", "USD", false},
		{"0", "USD", false}, {"1234567890123", "USD", false}, {"999999999999.99", "USD", true},
	}
	for _, tc := range cases {
		data := edit(t, func(m map[string]any) { m["amount"] = tc.amount; m["currency"] = tc.currency })
		_, err := intent.Decode(data, now)
		if (err == nil) != tc.ok {
			t.Errorf("%s %s: %v", tc.amount, tc.currency, err)
		}
	}
}

func TestCardTypes(t *testing.T) {
	cases := map[string]string{
		"4111111111111111": "001", "5555555555554444": "002", "2222420000001113": "002",
		"378282246310005": "003", "6011111111111117": "004", "3566111111111113": "007",
		"36227206271667": "005", "6759411100000008": "042", "9999999999999995": "",
	}
	for n, want := range cases {
		if got := intent.CardType(n); got != want {
			t.Errorf("%s: %q, want %q", n, got, want)
		}
	}
}

func TestTransactionIDUniquePerAttempt(t *testing.T) {
	seen := map[string]bool{}
	for _, id := range []string{"a", "b", "C253535-1"} {
		for a := 1; a <= 3; a++ {
			x := intent.TransactionID(id, a)
			if seen[x] || x != intent.TransactionID(id, a) {
				t.Fatalf("%s/%d", id, a)
			}
			seen[x] = true
		}
	}
}

func TestRenderCarriesSeedFields(t *testing.T) {
	in, err := intent.Decode(seed(t), now)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(in.PaymentRequest(1, "ttctestpartner"))
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

// FuzzDecode: decoding never panics; whatever it accepts re-encodes and
// decodes to the same intent; its errors never quote a card number.
func FuzzDecode(f *testing.F) {
	f.Add(seed(f))
	for _, tc := range invalidCases(f) {
		f.Add(tc.data)
	}
	digits := regexp.MustCompile(`\d{12,}`)
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := intent.Decode(data, now)
		if err != nil {
			if digits.MatchString(err.Error()) {
				t.Fatalf("error quotes digits: %v", err)
			}
			return
		}
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		again, err := intent.Decode(b, now)
		if err != nil {
			t.Fatalf("re-encoded intent rejected: %v", err)
		}
		b2, _ := json.Marshal(again)
		if string(b) != string(b2) {
			t.Fatalf("not stable:\n%s\n%s", b, b2)
		}
	})
}
