package redact

import "testing"

// TestAdversary5CardWithCommonSeparators: a test card written with a
// separator people and upstream systems actually use (a non-breaking space
// copied from a web page or PDF, two spaces from fixed-width text, " - ",
// '/', '+' from form encoding, an en dash, a comma) comes out of Untrusted
// and CardNumbers with all sixteen digits readable: every group is four
// digits, so neither the card check nor the six-digit run mask fires.
func TestAdversary5CardWithCommonSeparators(t *testing.T) {
	for _, in := range []string{
		"4111\u00a01111\u00a01111\u00a01111",
		"4242  4242  4242  4242",
		"5555 - 5555 - 5555 - 4444",
		"4111/1111/1111/1111",
		"4111+1111+1111+1111",
		"4242\u20134242\u20134242\u20134242",
		"card:4111:1111:1111:1111",
		"4111--1111--1111--1111",
	} {
		if got := Untrusted(in); got == in {
			t.Errorf("Untrusted(%q) = %q: the card is left whole", in, got)
		}
	}
}
