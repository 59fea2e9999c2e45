package deadletter_test

// Second adversarial review of c96a27f and be23948 (raw-text masking).
// Each TestReviewEsc2* subtest is a payload that is not a valid intent whose
// stored payload (NewScrubber(nil).Payload) or `dlq show` text
// (MaskedPayload) reveals a CVV or more than the last four digits of a
// card. They failed on be23948, and pass since the fixes that followed the
// review.

import (
	"strings"
	"testing"

	"github.com/ttcpay/payflow/internal/deadletter"
)

// reviewEsc2Check fails when the stored payload or the displayed one holds
// any of the secrets (as written, or with JSON escapes decoded).
func reviewEsc2Check(t *testing.T, payload string, secrets ...string) {
	t.Helper()
	stored, _ := deadletter.NewScrubber(nil).Payload([]byte(payload))
	for what, out := range map[string]string{"stored payload": string(stored), "dlq show": deadletter.MaskedPayload([]byte(payload))} {
		for _, s := range secrets {
			if strings.Contains(out, s) || strings.Contains(reviewEscDecode(out), s) {
				t.Errorf("%s reveals %q:\n in: %q\nout: %q", what, s, payload, out)
			}
		}
	}
}

// A CVV member whose value is an object or array, pretty-printed (a space
// after the colon): rawMember's bare value stops at the space, so the
// member's name and "{" are dropped and the CVV stays.
func TestReviewEsc2RawCVVCompositeValue(t *testing.T) {
	for name, payload := range map[string]string{
		"object": `{"a":1,,"cvv": {"value": "737"}}`,
		"array":  `{"a":1,,"csc": [ "737" ]}`,
		"nested": `{"a":1,,"card": {"securityCode": {"v": 737}}`,
	} {
		t.Run(name, func(t *testing.T) { reviewEsc2Check(t, payload, "737") })
	}
}

// A CVV inside JSON carried as a string (a wrapped request body): raw, the
// outer string swallows the member; valid, the string is only masked for
// digit runs. Either way the reader sees \"cvv\": \"737\".
func TestReviewEsc2CVVInEmbeddedJSON(t *testing.T) {
	for name, payload := range map[string]string{
		"raw truncated":   `{"body": "{\"cvv\": \"737\"}`,
		"raw after error": `{"a":1,,"body": "{\"card\":{\"securityCode\":\"737\"}}"}`,
		"valid json":      `{"body": "{\"cvv\": \"737\"}"}`,
	} {
		t.Run(name, func(t *testing.T) { reviewEsc2Check(t, payload, "737") })
	}
}

// rawMember reads a quoted name of at most 100 characters: a longer one
// containing cvv is not read as a member, and cvvWord needs the digits
// within three non-word characters of "cvv" (here `": "` is four).
func TestReviewEsc2RawCVVLongName(t *testing.T) {
	payload := `{"a":1,,"` + strings.Repeat("x", 101) + `_cvv": "737"}`
	reviewEsc2Check(t, payload, "737")
}

// isCVVName misses common spellings of a CVV member: cv2 (Worldpay, Opayo),
// card_csc and cardCid (csc and cid only match exactly), cardCode
// (Authorize.Net), card_verification_value. In valid JSON nothing else
// catches them.
func TestReviewEsc2CVVNames(t *testing.T) {
	for _, name := range []string{"cv2", "card_csc", "cardCid", "cardCode", "card_verification_value"} {
		t.Run(name, func(t *testing.T) {
			reviewEsc2Check(t, `{"a":1,"`+name+`":"737"}`, "737")
		})
	}
}

// A raw CVV member whose bare value is the first group of a card number
// (an Amex mis-mapped into the cvv field): the member is dropped up to the
// first space and the 11 digits after it are under MinRun, so they stay.
func TestReviewEsc2RawCVVSplitsCard(t *testing.T) {
	for name, payload := range map[string]string{
		"key=value": `{"a":1,,cvv=3782 822463 10005}`,
		"json":      `{"a":1,,"cvv": 3782 822463 10005}`,
		"diners":    `{"a":1,,cvv: 3056 930902 5904}`,
	} {
		t.Run(name, func(t *testing.T) { reviewEsc2Check(t, payload, "822463", "930902") })
	}
}

// Separators a reader reads as a gap but Separator refused or capped: more
// than 16 zero-width spaces, the Hangul filler (a letter
// that renders blank), an unassigned default-ignorable code point (U+2065,
// not rendered), four spaces (column alignment). And digits a reader reads
// as digits though they are not Nd: superscripts, circled digits.
func TestReviewEsc2CardReadAsNumber(t *testing.T) {
	zw := strings.Repeat("\u200b", 17)
	for name, pan := range map[string]string{
		"17 zero-width spaces": "4111" + zw + "1111" + zw + "1111" + zw + "1111",
		"hangul filler":        "4111\u31641111\u31641111\u31641111",
		"unassigned ignorable": "4111\u20651111\u20651111\u20651111",
		"escaped U+2065":       `4111\u20651111\u20651111\u20651111`,
		"four spaces":          "4111    1111    1111    1111",
		"superscript digits":   "⁴¹¹¹ ¹¹¹¹ ¹¹¹¹ ¹¹¹¹",
		"circled digits":       "④①①① ①①①① ①①①① ①①①①",
	} {
		t.Run(name, func(t *testing.T) {
			for _, payload := range []string{`{"a":"` + pan + `"}`, `{"a":1,,"n":"` + pan + `"}`, `{"n":"` + pan} {
				stored, _ := deadletter.NewScrubber(nil).Payload([]byte(payload))
				show := deadletter.MaskedPayload([]byte(payload))
				for what, out := range map[string]string{"stored payload": string(stored), "dlq show": show} {
					if strings.Contains(out, pan[:len(pan)/2]) || strings.Contains(reviewEscDecode(out), reviewEscDecode(pan)[:len(reviewEscDecode(pan))/2]) {
						t.Errorf("%s keeps the card:\n in: %q\nout: %q", what, payload, out)
					}
				}
			}
		})
	}
}
