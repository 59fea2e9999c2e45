package redact

// Adversarial review, sixth round (branch adversary6). Expected to FAIL on
// a948a12; each failure is a break of invariant 3 (no card number in a log
// line, an error string, a dead-letter header).

import (
	"strings"
	"testing"
)

// TestAdversary6InvisibleSeparators: SeparatorRun joins groups only across
// spaces, punctuation and symbols. A format character (soft hyphen U+00AD,
// zero-width space U+200B, word joiner U+2060, BOM U+FEFF, U+2063 invisible
// separator) or U+FFFD (a symbol, but refused because DecodeRune reports it
// as RuneError) between the groups is not one: every group stays four
// digits, under the six-digit mask, and the card is shown whole. On a
// terminal or in a log viewer the invisible ones render as
// "4111111111111111".
func TestAdversary6InvisibleSeparators(t *testing.T) {
	for _, sep := range []string{"\u00ad", "\u200b", "\u2060", "\ufeff", "\u2063", "\ufffd"} {
		in := strings.Join([]string{"4111", "1111", "1111", "1111"}, sep)
		if got := Untrusted(in); got == in {
			t.Errorf("Untrusted(%q) = %q: the card is left whole", in, got)
		}
		if !LooksLikeCard(in) {
			t.Errorf("LooksLikeCard(%q) = false", in)
		}
	}
}

// TestAdversary6CutRevealsCard: Untrusted/UntrustedN judge the text before
// the length cap, then DigitsN cuts it and masks only runs of six or more
// digits. "4111 1111 1111 1111123" (a card with its CVV run on, groups
// 4-4-4-7, fails Luhn) is not a card; the 7-digit group would be masked
// whole, but the cut lands after its first four digits, leaving
// "4111 1111 1111 1111…": a Luhn-valid card grouped in fours, which
// CardNumbers itself masks (the result is not idempotent). cybs message()
// (UntrustedN, 200) and ttc serverMessage take the same path.
func TestAdversary6CutRevealsCard(t *testing.T) {
	in := strings.Repeat("x", MaxLen-19) + "4111 1111 1111 1111123 declined"
	got := Untrusted(in)
	if strings.Contains(got, "4111 1111 1111 1111") || LooksLikeCard(got) {
		t.Errorf("Untrusted(%q) = %q: the cut leaves a whole card (LooksLikeCard=%v)", in, got, LooksLikeCard(got))
	}
	in = strings.Repeat("x", 200-19) + "4111 1111 1111 1111123 declined"
	got = UntrustedN(in, 200)
	if LooksLikeCard(got) {
		t.Errorf("UntrustedN(.., 200) = %q: the cut leaves a whole card", got[180:])
	}
}

// TestAdversary6NonASCIIDigits: isDigit and Digits know only ASCII digits.
// A card in fullwidth digits (what an IME or a Japanese form produces) or
// Arabic-Indic digits is read as a card by any person and by strconv-free
// normalizers (NFKC maps fullwidth to ASCII), yet survives Untrusted and
// LooksLikeCard, whether grouped or as one run; billTo text fields (UTF-8)
// accept it.
func TestAdversary6NonASCIIDigits(t *testing.T) {
	for _, in := range []string{
		"４１１１１１１１１１１１１１１１",
		"４１１１ １１１１ １１１１ １１１１",
		"٤١١١١١١١١١١١١١١١",
	} {
		if got := Untrusted(in); got == in {
			t.Errorf("Untrusted(%q) = %q: the card is left whole", in, got)
		}
	}
}
