package deadletter_test

// Adversarial review, third round (branch adversary3). Expected to FAIL
// on 8f9dbef; each failure is a break.

import (
	"strings"
	"testing"

	"github.com/ttcpay/payflow/internal/deadletter"
)

// TestAdversary3ScrubMissesUnderscoreAndDotGroups: 8f9dbef taught
// redact.CardNumbers that '_' and '.' join the groups of a card number
// ("4111_1111_1111_1111"), but the dead-letter scrubber's own digit-run
// masking (maskRuns) still joins runs only across ' ' and '-'. A payload
// that is not a valid intent (here: no billTo) with the card number in a
// free-text field, grouped with '_' or '.', is written to the dead-letter
// stream with the whole number, and `dlq show` (MaskedPayload) prints it
// to the operator's terminal. The Scrubber's promise ("a dead letter never
// holds a plaintext card number") and invariant 3 (no card number in
// plaintext where it can leak) are broken.
func TestAdversary3ScrubMissesUnderscoreAndDotGroups(t *testing.T) {
	for _, pan := range []string{"4111_1111_1111_1111", "4111.1111.1111.1111"} {
		payload := `{"version":1,"intentId":"s-9","integrator":"costco","merchantId":"m1","bookingId":"B-1","reference":"` + pan + `",
 "amount":"10.00","currency":"USD","capture":true,"card":{"number":"4111111111111111","expirationMonth":"12","expirationYear":"2031"}}`
		out, removed := deadletter.NewScrubber(nil).Payload([]byte(payload))
		shown := deadletter.MaskedPayload([]byte(payload))
		t.Logf("%s: removed %q\n stored: %s\n shown: %s", pan, removed, out, shown)
		if strings.Contains(string(out), pan) {
			t.Errorf("the dead letter's stored payload keeps the card number %q", pan)
		}
		if strings.Contains(shown, pan) {
			t.Errorf("dlq show prints the card number %q", pan)
		}
	}
}

// TestAdversary3ScrubKeepsCardNumberOfValidIntent: a VALID intent's
// payload is kept byte for byte except its card (cardOnly), so a card
// number in a free-text field the intent validation accepts (reference,
// bookingId, billTo.address1: printable ASCII) goes to the dead-letter
// stream unmasked: "a dead letter never holds a plaintext card number"
// does not hold (invariant 3; see also payment's
// TestAdversary3CardNumberInReferenceReachesRedis).
func TestAdversary3ScrubKeepsCardNumberOfValidIntent(t *testing.T) {
	payload := strings.Replace(validIntent, `"reference":"REF-1"`, `"reference":"4111111111111111"`, 1)
	key, _ := dlqKey(t)
	out, removed := deadletter.NewScrubber(key).Payload([]byte(payload))
	t.Logf("removed %q, stored: %s", removed, out)
	if strings.Contains(string(out), "4111111111111111") {
		t.Errorf("the dead letter of a valid intent keeps the card number given as its reference")
	}
}
