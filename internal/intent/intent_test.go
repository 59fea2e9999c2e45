package intent_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"regexp"
	"slices"
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

// replace edits the seed's text: old must occur exactly once (for what a
// map cannot hold: duplicate or case-variant names, raw bytes).
func replace(t testing.TB, old, new string) []byte {
	s := string(seed(t))
	if strings.Count(s, old) != 1 {
		t.Fatalf("seed has %d occurrences of %q", strings.Count(s, old), old)
	}
	return []byte(strings.Replace(s, old, new, 1))
}

// operation is a settlement intent with extra fields.
func operation(fields string) []byte {
	return []byte(`{"version":1,"intentId":"op-1","integrator":"costco","merchantId":"m"` + fields + `}`)
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
		{"ReferenceHoldsCard", "reference", edit(t, func(m map[string]any) { m["reference"] = "REF 4111 1111 1111 1111" })},
		{"BookingHoldsCard", "bookingId", edit(t, func(m map[string]any) { m["bookingId"] = "4111111111111111" })},
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

		// Strict decoding: one reading of the bytes, whatever the decoder
		// (issue 12 break 2).
		{"DuplicateAmount", "intent", replace(t, `"amount":"102.21"`, `"amount":"10.00","amount":"1999.00"`)},
		{"DuplicateNestedKey", "intent", replace(t, `"expirationYear":"2031"`, `"expirationYear":"2031","expirationYear":"2032"`)},
		{"CaseVariantKeyNextToKey", "intent", replace(t, `"amount":"102.21"`, `"amount":"102.21","AMOUNT":"1998.00"`)},
		{"CaseVariantKey", "intent", replace(t, `"amount":`, `"Amount":`)},
		{"CaseVariantNestedKey", "intent", replace(t, `"postalCode":`, `"postalcode":`)},
		{"KelvinSignKey", "intent", replace(t, `"bookingId":"C253535"`, "\"boo\u212aingId\":\"C253535\"")}, // U+212A KELVIN SIGN folds to k
		{"KelvinSignKeyNextToKey", "intent", replace(t, `"bookingId":"C253535"`, "\"bookingId\":\"C253535\",\"boo\u212aingId\":\"EVIL\"")},
		{"TrailingGarbage", "intent", append(seed(t), 'x')},
		{"TrailingCardNumber", "intent", append(seed(t), []byte(` 4111111111111111`)...)},
		{"TrailingObjectNoSpace", "intent", append(bytes.TrimSpace(seed(t)), []byte(`{"amount":"1999.00"}`)...)},
		// Digits of the input are never echoed (issue 14 item 6).
		{"CardNumberAsVersion", "version", replace(t, `"version":1`, `"version":4111111111111111`)},
		{"CardNumberAsVersionString", "intent", replace(t, `"version":1`, `"version":"4111111111111111"`)},
		{"CardNumberAsVersionFloat", "intent", replace(t, `"version":1`, `"version":4111111111111111.5`)},
		{"CardNumberAsCredentialType", "credential.type", edit(t, func(m map[string]any) { m["credential"] = map[string]any{"type": "4111111111111111"} })},
		// Input gaps (issue 14 item 10).
		{"MonthWithPlus", "card.expirationMonth", edit(t, func(m map[string]any) { card(m)["expirationMonth"] = "+9" })},
		{"PhoneOnlyPlus", "billTo.phoneNumber", edit(t, func(m map[string]any) { billTo(m)["phoneNumber"] = "+" })},
		{"PhonePlusInside", "billTo.phoneNumber", edit(t, func(m map[string]any) { billTo(m)["phoneNumber"] = "1+2" })},
		{"NULInAddress2", "billTo.address2", edit(t, func(m map[string]any) { billTo(m)["address2"] = "Apt\x004" })},
		{"NULInEmail", "billTo.email", edit(t, func(m map[string]any) { billTo(m)["email"] = "te\x00st@cybs.com" })},
		{"NULInFirstName", "billTo.firstName", edit(t, func(m map[string]any) { billTo(m)["firstName"] = "Jo\x00hn" })},
		{"ZeroWidthSpaceInFirstName", "billTo.firstName", edit(t, func(m map[string]any) { billTo(m)["firstName"] = "Jo\u200bhn" })},
		{"ZeroWidthJoinerInAddress1", "billTo.address1", edit(t, func(m map[string]any) { billTo(m)["address1"] = "1 Market\u200dSt" })},
		{"WordJoinerInLocality", "billTo.locality", edit(t, func(m map[string]any) { billTo(m)["locality"] = "san\u2060francisco" })},
		{"ByteOrderMarkInLastName", "billTo.lastName", edit(t, func(m map[string]any) { billTo(m)["lastName"] = "\ufeffDoe" })},
		{"ZeroWidthOnlyPostalCode", "billTo.postalCode", edit(t, func(m map[string]any) { billTo(m)["postalCode"] = "\u200c" })},
		{"ZeroWidthInEmail", "billTo.email", edit(t, func(m map[string]any) { billTo(m)["email"] = "test@cybs\u200b.com" })},
		{"ZeroWidthInAddress2", "billTo.address2", edit(t, func(m map[string]any) { billTo(m)["address2"] = "\u200b" })},
		{"InvalidUTF8InFirstName", "intent", replace(t, `"John"`, "\"Jo\xffhn\"")},
		{"LoneSurrogateInFirstName", "intent", replace(t, `"John"`, `"Jo\ud800hn"`)},
		{"NULInEncryptedCard", "encryptedCard", edit(t, func(m map[string]any) { delete(m, "card"); m["encryptedCard"] = "a\x00.b.c.d.e" })},
		// Lengths CyberSource's OpenAPI spec refuses (issue 12).
		{"PreviousTransactionIDTooLong", "credential.previousTransactionId", edit(t, func(m map[string]any) {
			m["credential"] = map[string]any{"type": "mit", "reason": "no_show", "previousTransactionId": strings.Repeat("1", 16)}
		})},
		{"CustomerIDTooLong", "storedCard", edit(t, func(m map[string]any) {
			delete(m, "card")
			m["storedCard"] = map[string]any{"customerId": strings.Repeat("C", 33)}
		})},
		{"PaymentInstrumentIDTooLong", "storedCard", edit(t, func(m map[string]any) {
			delete(m, "card")
			m["storedCard"] = map[string]any{"paymentInstrumentId": strings.Repeat("P", 33)}
		})},
		{"InstrumentIdentifierIDTooShort", "storedCard", edit(t, func(m map[string]any) {
			delete(m, "card")
			m["storedCard"] = map[string]any{"instrumentIdentifierId": strings.Repeat("7", 11)}
		})},
		{"InstrumentIdentifierIDTooLong", "storedCard", edit(t, func(m map[string]any) {
			delete(m, "card")
			m["storedCard"] = map[string]any{"instrumentIdentifierId": strings.Repeat("7", 33)}
		})},
		{"SettlementIntentIDTooLongForCode", "intentId", []byte(`{"version":1,"intentId":"` + strings.Repeat("c", 51) + `","integrator":"costco","merchantId":"m","operation":"capture","paymentIntentId":"p1"}`)},
		// Ids that carry a card number (they reach logs, traces, keys).
		{"CardNumberAsIntentID", "intentId", edit(t, func(m map[string]any) { m["intentId"] = "4111111111111111" })},
		{"GroupedCardNumberInIntentID", "intentId", edit(t, func(m map[string]any) { m["intentId"] = "pay-4111-1111-1111-1111" })},
		{"CardNumberAsMerchantID", "merchantId", edit(t, func(m map[string]any) { m["merchantId"] = "5555555555554444" })},
		{"CardNumberAsIntegrator", "integrator", edit(t, func(m map[string]any) { m["integrator"] = "378282246310005" })},
		// A settlement operation on itself (issue 12).
		{"SelfTargetingCapture", "paymentIntentId", operation(`,"operation":"capture","paymentIntentId":"op-1"`)},
		{"SelfTargetingRefund", "paymentIntentId", operation(`,"operation":"refund","paymentIntentId":"op-1","amount":"1.00","currency":"USD"`)},
		{"SelfTargetingReverse", "paymentIntentId", operation(`,"operation":"reverse","paymentIntentId":"op-1"`)},
		{"SelfTargetingVoid", "paymentIntentId", operation(`,"operation":"void","paymentIntentId":"op-1"`)},
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

// FuzzDecode: decoding never panics; whatever it accepts re-encodes and
// decodes to the same intent, and means the same to a lenient decoder
// (encoding/json: case-insensitive names, last duplicate wins), so no two
// readers of an accepted intent disagree on it; its errors never quote a
// card number.
func FuzzDecode(f *testing.F) {
	f.Add(seed(f))
	for _, tc := range invalidCases(f) {
		f.Add(tc.data)
	}
	f.Add([]byte(`{"version":4111111111111111}`)) // issue 14 item 6
	f.Add([]byte(`{"version":1,"version":1}`))
	digits := regexp.MustCompile(`\d{12,}`)
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := intent.Decode(data, now)
		if err != nil {
			if digits.MatchString(err.Error()) {
				t.Fatalf("error quotes digits: %v", err)
			}
			return
		}
		var lenient intent.Intent
		if err := json.Unmarshal(data, &lenient); err != nil || !reflect.DeepEqual(*in, lenient) {
			t.Fatalf("encoding/json reads the accepted intent otherwise (%v):\n%+v\n%+v", err, *in, lenient)
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

// TestErrorsNeverEchoInputDigits: wherever outside text is quoted in an
// error (a name, an operation, a credential type, a version), a card number
// in it does not come back, in any spelling (issue 14 item 6, issue 19 gap 6).
func TestErrorsNeverEchoInputDigits(t *testing.T) {
	for _, pan := range []string{"4111111111111111", "4111 1111 1111 1111", "4111-1111-1111-1111"} {
		q, _ := json.Marshal(pan)
		cases := []struct {
			name, field string
			data        []byte
		}{
			{"CredentialType", "credential.type", edit(t, func(m map[string]any) { m["credential"] = map[string]any{"type": pan} })},
			{"CredentialReason", "credential.reason", edit(t, func(m map[string]any) {
				m["credential"] = map[string]any{"type": "mit", "reason": pan, "previousTransactionId": "1"}
			})},
			{"Operation", "operation", edit(t, func(m map[string]any) { m["operation"] = pan })},
			{"CommerceIndicator", "commerceIndicator", edit(t, func(m map[string]any) { m["commerceIndicator"] = pan })},
			{"VersionString", "intent", replace(t, `"version":1`, `"version":`+string(q))},
			{"FieldName", "intent", replace(t, `"version":1`, `"version":1,`+string(q)+`:1`)},
			{"NestedFieldName", "intent", replace(t, `"securityCode"`, string(q))},
			{"DuplicateFieldName", "intent", replace(t, `"version":1`, `"version":1,`+string(q)+`:1,`+string(q)+`:2`)},
		}
		if !strings.Contains(pan, " ") && !strings.Contains(pan, "-") {
			cases = append(cases, struct {
				name, field string
				data        []byte
			}{"VersionNumber", "version", replace(t, `"version":1`, `"version":`+pan)})
		}
		for _, tc := range cases {
			t.Run(tc.name+"/"+pan, func(t *testing.T) {
				_, err := intent.Decode(tc.data, now)
				var ve *intent.ValidationError
				if !errors.As(err, &ve) {
					t.Fatalf("accepted or wrong error type: %v", err)
				}
				if !slices.ContainsFunc(ve.Problems, func(p intent.Problem) bool { return p.Field == tc.field }) {
					t.Fatalf("problems %v do not name %s", ve.Problems, tc.field)
				}
				if strings.Contains(err.Error(), "1111") {
					t.Fatalf("error echoes the card number: %v", err)
				}
			})
		}
	}
}

// TestDecodeProblemMessages: a refused document is refused with a message
// that names what is wrong (and the member, escaped), for upstream to fix.
func TestDecodeProblemMessages(t *testing.T) {
	byName := map[string][]byte{}
	for _, tc := range invalidCases(t) {
		byName[tc.name] = tc.data
	}
	for name, want := range map[string]string{
		"DuplicateAmount":           `duplicate field "amount"`,
		"DuplicateNestedKey":        `duplicate field "card.expirationYear"`,
		"CaseVariantKeyNextToKey":   `unknown field "AMOUNT"`,
		"CaseVariantNestedKey":      `unknown field "billTo.postalcode"`,
		"KelvinSignKey":             `unknown field "boo\u212aingId"`,
		"TrailingGarbage":           "data follows the JSON object",
		"InvalidUTF8InFirstName":    "not valid UTF-8",
		"LoneSurrogateInFirstName":  `syntax error at byte 340 in "billTo.firstName"`,
		"CardNumberAsVersionString": `field "version" must be an integer, not a string`,
		"NotAnObject":               "the intent must be a JSON object, not an array",
		"BadJSON":                   "unexpected end of input",
	} {
		_, err := intent.Decode(byName[name], now)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", name, err, want)
		}
	}
}

// FuzzDecodeCard: the decrypted card is read as strictly as an intent;
// what is accepted reads the same through encoding/json, and errors carry
// no digit run that could be part of the card.
func FuzzDecodeCard(f *testing.F) {
	f.Add([]byte(`{"number":"4111111111111111","expirationMonth":"12","expirationYear":"2031","securityCode":"123"}`))
	f.Add([]byte(`{"number":"4111111111111111","number":"5555555555554444"}`))
	f.Add([]byte(`{"NUMBER":"4111111111111111"}`))
	f.Add([]byte(`{"number":"4111111111111111"} {"number":"5555555555554444"}`))
	f.Add([]byte(`{"number":4111111111111111}`))
	f.Add([]byte(`{"4111111111111111":"1"}`))
	digits := regexp.MustCompile(`\d{6,}`)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := intent.DecodeCard(data)
		if err != nil {
			if digits.MatchString(err.Error()) {
				t.Fatalf("error carries digits: %v", err)
			}
			return
		}
		var lenient intent.Card
		if err := json.Unmarshal(data, &lenient); err != nil || lenient != *c {
			t.Fatalf("encoding/json reads the accepted card otherwise (%v)", err)
		}
	})
}

func TestDecodeCardSizeLimit(t *testing.T) {
	pad := strings.Repeat(" ", intent.MaxCardSize)
	if _, err := intent.DecodeCard([]byte(`{"number":"4111111111111111"}` + pad)); err == nil {
		t.Fatal("oversize card accepted")
	}
	if c, err := intent.DecodeCard([]byte(`{"number":"4111111111111111"}`)); err != nil || c.Number != "4111111111111111" {
		t.Fatal(err)
	}
}
