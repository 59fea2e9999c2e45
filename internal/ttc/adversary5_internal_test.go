package ttc

import (
	"strings"
	"testing"
)

// TestAdversary5GroupedCardInServerMessage: TTC's error "message" reaches
// *Error through serverMessage, which masks only six-digit runs
// (redact.DigitsN). A callback refused with a message that quotes the
// card in groups keeps the card in the error string (logged, and written
// to the callback dead letter's reason).
func TestAdversary5GroupedCardInServerMessage(t *testing.T) {
	e := statusError("callback", 400, []byte(`{"message":"transaction for card 4242-4242-4242-4242 not found"}`))
	if s := e.Error(); strings.Contains(s, "4242-4242-4242-4242") {
		t.Errorf("the error string carries the card: %s", s)
	}
}
