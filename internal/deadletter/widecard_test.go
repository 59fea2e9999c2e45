package deadletter_test

import (
	"strings"
	"testing"

	"github.com/ttcpay/payflow/internal/deadletter"
)

// TestScrubMasksWideDigitCards: a card written in fullwidth or
// Arabic-Indic digits (the intent is invalid for it) is not kept in the
// stored dead letter nor shown by dlq show.
func TestScrubMasksWideDigitCards(t *testing.T) {
	for _, pan := range []string{"４１１１１１１１１１１１１１１１", "４１１１ １１１１ １１１１ １１１１", "٤١١١١١١١١١١١١١١١"} {
		payload := `{"version":1,"intentId":"s-9","integrator":"costco","merchantId":"m1","bookingId":"B-1","reference":"` + pan + `",
 "amount":"10.00","currency":"USD","capture":true}`
		out, _ := deadletter.NewScrubber(nil).Payload([]byte(payload))
		if strings.Contains(string(out), pan) {
			t.Errorf("the dead letter's stored payload keeps the card number %q: %s", pan, out)
		}
		if shown := deadletter.MaskedPayload([]byte(payload)); strings.Contains(shown, pan) {
			t.Errorf("dlq show prints the card number %q", pan)
		}
	}
}
