package deadletter_test

// Adversarial review, sixth round (branch adversary6). Expected to FAIL on
// a948a12.

import (
	"strings"
	"testing"

	"github.com/ttcpay/payflow/internal/deadletter"
)

// TestAdversary6ScrubKeepsInvisiblySeparatedCard: maskRuns joins digit runs
// only across redact.SeparatorRun (spaces, punctuation, symbols). A card
// whose groups are separated by a soft hyphen or a zero-width space (the
// reference must be printable ASCII, so the intent is invalid and the
// scrubber masks all runs) is four runs of four digits, under MinRun: the
// dead letter is stored, and `dlq show` prints it, with the whole number,
// which renders as "4111111111111111".
func TestAdversary6ScrubKeepsInvisiblySeparatedCard(t *testing.T) {
	for _, sep := range []string{"\u00ad", "\u200b"} {
		pan := strings.Join([]string{"4111", "1111", "1111", "1111"}, sep)
		payload := `{"version":1,"intentId":"s-9","integrator":"costco","merchantId":"m1","bookingId":"B-1","reference":"` + pan + `",
 "amount":"10.00","currency":"USD","capture":true}`
		out, _ := deadletter.NewScrubber(nil).Payload([]byte(payload))
		shown := deadletter.MaskedPayload([]byte(payload))
		if strings.Contains(string(out), pan) {
			t.Errorf("the dead letter's stored payload keeps the card number %q", pan)
		}
		if strings.Contains(shown, pan) {
			t.Errorf("dlq show prints the card number %q", pan)
		}
	}
}
