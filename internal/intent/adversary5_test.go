package intent_test

import (
	"testing"

	"github.com/ttcpay/payflow/internal/intent"
)

// TestAdversary5CardInIDsAndTextPassesValidation: the validator refuses
// ids and text fields that "look like a card number" through
// redact.LooksLikeCard, which only knows single ' ', '-', '_', '.'
// separators. A card written with two dashes in the intentId (which goes
// to every log line, trace, record key and header), with two spaces in the
// reference, or with non-breaking spaces in billTo.address2 (which go to
// CyberSource, TTC, results and logs) is accepted as a valid intent.
func TestAdversary5CardInIDsAndTextPassesValidation(t *testing.T) {
	for _, tc := range []struct{ field, v string }{
		{"intentId", "4111--1111--1111--1111"},
		{"bookingId", "4242  4242  4242  4242"},
		{"reference", "5555/5555/5555/4444"},
		{"billTo.address2", "4111\u00a01111\u00a01111\u00a01111"},
	} {
		data := edit(t, func(m map[string]any) {
			if tc.field == "billTo.address2" {
				billTo(m)["address2"] = tc.v
			} else {
				m[tc.field] = tc.v
			}
		})
		if _, err := intent.Decode(data, now); err == nil {
			t.Errorf("%s %q: accepted as a valid intent, a card number now travels in it", tc.field, tc.v)
		}
	}
}
