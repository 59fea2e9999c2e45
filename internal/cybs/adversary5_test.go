package cybs

import (
	"strings"
	"testing"
)

// TestAdversary5GroupedCardInAnswerMessage: text CyberSource sends back
// reaches *Error (logs, results, dead-letter headers) through message()
// and code(), which use redact.Digits: six-digit runs only. A card number
// the answer quotes in groups ("4111 1111 1111 1111", the way an error
// about a card field would print it) keeps every digit in the error string.
func TestAdversary5GroupedCardInAnswerMessage(t *testing.T) {
	body := `{"status":"INVALID_REQUEST","reason":"INVALID_DATA","message":"Declined - card 4111 1111 1111 1111 is not valid for this merchant"}`
	e := errorFromBody("authorize", 400, []byte(body))
	if s := e.Error(); strings.Contains(s, "4111 1111 1111 1111") {
		t.Errorf("the error string carries the card: %s", s)
	}
}
