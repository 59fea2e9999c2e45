package redact

import (
	"strings"
	"testing"
)

func TestDigits(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"12345", "12345"},
		{"123456", "######"},
		{"card 4111111111111111 here", "card ################ here"},
		{"a1b22c333d4444e55555f", "a1b22c333d4444e55555f"},
		{"x4111111111111111", "x################"},
	} {
		if got := Digits(tc.in); got != tc.want {
			t.Errorf("Digits(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := DigitsN("abcdef", 3); got != "abc…" {
		t.Errorf("cap: %q", got)
	}
}

func TestCardNumbers(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"4111111111111111", "################"},
		{"pay-4111111111111111-x", "pay-################-x"},
		{"4111-1111-1111-1111", "####-####-####-####"},
		{"4111 1111 1111 1111", "#### #### #### ####"},
		{"4111_1111_1111_1111", "####_####_####_####"},
		{"pay_4111.1111.1111.1111", "pay_####.####.####.####"},
		{"v1.2.3", "v1.2.3"},
		{"378282246310005", "###############"},         // Amex, 15 digits
		{"4111111111111112", "4111111111111112"},       // fails Luhn
		{"order-20261122-0001", "order-20261122-0001"}, // not grouped as a card
		{"order-20261122-0007", "order-20261122-0007"}, // its 12 digits pass Luhn, but it is not grouped as a card
		{"b-2026-11-22-1234567", "b-2026-11-22-1234567"},
		{"3782-822463-10005", "####-######-#####"},
		{"booking-12345", "booking-12345"},
		{"123456789012345678901", "#####################"}, // longer than a card: may hold one
		{"m1", "m1"},
		{"", ""},
	} {
		if got := CardNumbers(tc.in); got != tc.want {
			t.Errorf("CardNumbers(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if LooksLikeCard(tc.in) != (tc.in != tc.want) {
			t.Errorf("LooksLikeCard(%q) = %v", tc.in, LooksLikeCard(tc.in))
		}
	}
}

func FuzzCardNumbers(f *testing.F) {
	f.Add("4111111111111111")
	f.Add("a-4111 1111 1111 1111-b")
	f.Add("４１１１ １１１１ １１１１ １１１１")
	f.Add("4111\u00ad1111\u200b1111 - 1111")
	f.Fuzz(func(t *testing.T, s string) {
		got := CardNumbers(s)
		if len(got) != len(s) {
			t.Fatalf("length changed: %q -> %q", s, got)
		}
		if CardNumbers(got) != got {
			t.Fatalf("not idempotent: %q -> %q -> %q", s, got, CardNumbers(got))
		}
	})
}

// TestCardAmongOtherGroups: a card written in groups stays masked whatever
// digit groups stand beside it with the same separators. Before, a run of
// groups that was not a card as a whole (too many digits, or a first group
// other than 4 long) was only checked group by group, so
// "ref 2026 4111 1111 1111 1111" came out unchanged (the fuzzer found the
// same gap as a failure of idempotence).
func TestCardAmongOtherGroups(t *testing.T) {
	cards := []string{"4111 1111 1111 1111", "4242-4242-4242-4242", "3782 822463 10005", "5555.5555.5555.4444"}
	sides := []string{"", "2026", "7", "12345678", "7070170007070", "1 2", "2026 11", "00000000000000000000000"}
	for _, card := range cards {
		sep := card[4:5]
		for _, before := range sides {
			for _, after := range sides {
				in := card
				if before != "" {
					in = strings.ReplaceAll(before, " ", sep) + sep + in
				}
				if after != "" {
					in += sep + strings.ReplaceAll(after, " ", sep)
				}
				in = "x " + in + " y"
				got := CardNumbers(in)
				at := strings.Index(in, card)
				for k := at; k < at+len(card); k++ {
					if isDigit(got[k]) {
						t.Errorf("CardNumbers(%q) = %q: the card is not masked", in, got)
						break
					}
				}
				if again := CardNumbers(got); again != got {
					t.Errorf("not idempotent: %q -> %q -> %q", in, got, again)
				}
			}
		}
	}
}

// FuzzCardNumbersEmbedded: a test card written in groups, set off by one
// separator on each side, is masked wherever it stands in any text.
func FuzzCardNumbersEmbedded(f *testing.F) {
	f.Add("ref 2026", uint(4), byte(' '))
	f.Add("0000 0000 0000 7070170007070", uint(14), byte('-'))
	f.Fuzz(func(t *testing.T, s string, at uint, sepPick byte) {
		sep := " -_."[sepPick%4 : sepPick%4+1]
		card := strings.Join([]string{"4111", "1111", "1111", "1111"}, sep)
		p := int(at % uint(len(s)+1))
		in := s[:p] + sep + card + sep + s[p:]
		got := CardNumbers(in)
		from := p + len(sep)
		for k := from; k < from+len(card); k++ {
			if isDigit(got[k]) {
				t.Fatalf("CardNumbers(%q) = %q: the card is not masked", in, got)
			}
		}
	})
}
