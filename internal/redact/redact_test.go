package redact

import "testing"

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
