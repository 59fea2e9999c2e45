package intent_test

// Adversarial review, sixth round (branch adversary6). Expected to FAIL on
// a948a12.

import (
	"testing"

	"github.com/ttcpay/payflow/internal/intent"
)

// TestAdversary6InvisibleOrWideCardInBillTo: billTo text fields refuse the
// zero-width characters U+200B..U+200D, U+2060 and U+FEFF, but not the soft
// hyphen U+00AD or U+2063 (invisible separator), and LooksLikeCard joins
// groups only across spaces, punctuation and symbols and reads only ASCII
// digits. A card between soft hyphens (renders as "4111111111111111") or in
// fullwidth digits is accepted in billTo.address2/address1 as a valid
// intent, and billTo goes to CyberSource, results and logs.
func TestAdversary6InvisibleOrWideCardInBillTo(t *testing.T) {
	for _, tc := range []struct{ field, v string }{
		{"address2", "4111\u00ad1111\u00ad1111\u00ad1111"},
		{"address2", "4111\u20631111\u20631111\u20631111"},
		{"address1", "４１１１ １１１１ １１１１ １１１１"},
	} {
		data := edit(t, func(m map[string]any) { billTo(m)[tc.field] = tc.v })
		if _, err := intent.Decode(data, now); err == nil {
			t.Errorf("billTo.%s %q: accepted as a valid intent, a card number now travels in it", tc.field, tc.v)
		}
	}
}

// TestAdversary6OrdinaryListsRefusedAsCards: since 318f5fb any one to three
// spaces/punctuation join digit groups, and three groups of four (12
// digits) already make a card grouping. About one list in ten of 4-digit
// numbers (invoice numbers, room numbers, years) is Luhn-valid somewhere
// and is refused: an honest merchant's intent is dead-lettered.
func TestAdversary6OrdinaryListsRefusedAsCards(t *testing.T) {
	for _, tc := range []struct{ field, v string }{
		{"reference", "Invoices 1004, 1005, 1006, 1007"},
		{"reference", "Rooms 1205/1206/1207"},
		{"bookingId", "Seasons 2023, 2024, 2025, 2026"},
		{"bookingId", "Stay 2026-2027, 2027-2028"},
	} {
		data := edit(t, func(m map[string]any) { m[tc.field] = tc.v })
		if _, err := intent.Decode(data, now); err != nil {
			t.Errorf("%s %q: refused: %v", tc.field, tc.v, err)
		}
	}
}
