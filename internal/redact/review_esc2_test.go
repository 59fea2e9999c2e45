package redact_test

import (
	"strings"
	"testing"

	"github.com/ttcpay/payflow/internal/redact"
)

// Second adversarial review of c96a27f and be23948. CardNumbers capped
// invisible characters between groups (at 16) and refused blank-rendering
// letters and unassigned default-ignorables: a log line showing
// "4111 1111 1111 1111" to a reader kept the card. Failed on be23948; passes
// since the fix that followed the review.
func TestReviewEsc2CardNumbersInvisibleGaps(t *testing.T) {
	zw := strings.Repeat("\u200b", 17)
	for name, s := range map[string]string{
		"17 zero-width spaces": "pan 4111" + zw + "1111" + zw + "1111" + zw + "1111",
		"hangul filler":        "pan 4111\u31641111\u31641111\u31641111",
		"unassigned ignorable": "pan 4111\u20651111\u20651111\u20651111",
	} {
		t.Run(name, func(t *testing.T) {
			if got := redact.CardNumbers(s); strings.Contains(got, "4111") {
				t.Errorf("CardNumbers(%q) = %q keeps the card", s, got)
			}
		})
	}
}

// What held: the Separator change masks nothing new in ordinary ids and
// still masks what it masked (passes on be23948).
func TestReviewEsc2CardNumbersHeld(t *testing.T) {
	for s, want := range map[string]string{
		"ts 2026\x1b[0m1111":                    "ts 2026\x1b[0m1111",
		"2026-11-22 17:55:46.123456789":         "2026-11-22 17:55:46.123456789",
		"Invoices 1004, 1005, 1006, 1007":       "Invoices 1004, 1005, 1006, 1007",
		"order 4111 1111 1111 1111 ok":          "order #### #### #### #### ok",
		"4111-\u00ad1111-\u00ad1111-\u00ad1111": "####-\u00ad####-\u00ad####-\u00ad####",
		"id 4111\x001111\x001111\x001111":       "id ####\x00####\x00####\x00####",
	} {
		if got := redact.CardNumbers(s); got != want {
			t.Errorf("CardNumbers(%q) = %q, want %q", s, got, want)
		}
	}
}
