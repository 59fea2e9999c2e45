package intent_test

// Tests for the gremlins survivors of internal/intent (docs/mutation.md,
// "internal/intent (gremlins)"): limits at exactly their value, the first
// and last character of each allowed class, and date edges. Each test says
// which mutants it kills. Card numbers are the sandbox's test cards only.

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ttcpay/payflow/internal/intent"
)

// problems decodes data and returns its problems' fields (nil: accepted).
func problems(t *testing.T, data []byte, now time.Time) []string {
	t.Helper()
	_, err := intent.Decode(data, now)
	return problemFields(t, err)
}

func problemFields(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var ve *intent.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("not a *ValidationError: %v", err)
	}
	fields := []string{}
	for _, p := range ve.Problems {
		fields = append(fields, p.Field)
	}
	return fields
}

// expect checks that data is accepted (field "") or refused naming field.
func expect(t *testing.T, data []byte, now time.Time, field string) {
	t.Helper()
	got := problems(t, data, now)
	switch {
	case field == "" && got != nil:
		t.Fatalf("refused (%v), want accepted", got)
	case field != "" && got == nil:
		t.Fatalf("accepted, want refused on %s", field)
	case field != "":
		for _, f := range got {
			if f == field {
				return
			}
		}
		t.Fatalf("refused on %v, want %s", got, field)
	}
}

// TestIDCharacterClassEdges: ids take a-z, A-Z, 0-9, '-', '_' (and '.' in
// intentId); the first and last character of each range is allowed and
// its neighbours are not. Kills intent.go:513:23, 513:35, 513:47, 513:59,
// 513:71 (CONDITIONALS_BOUNDARY).
func TestIDCharacterClassEdges(t *testing.T) {
	for _, tc := range []struct {
		field, v, want string
	}{
		{"intentId", "order-a", ""},
		{"intentId", "order-z", ""},
		{"intentId", "order-A", ""},
		{"intentId", "order-Z", ""},
		{"intentId", "order-0", ""},
		{"intentId", "order-9", ""},
		{"merchantId", "z", ""},
		{"merchantId", "Z", ""},
		{"merchantId", "0", ""},
		{"merchantId", "9", ""},
		{"integrator", "A_z", ""},
		{"intentId", "order-`", "intentId"}, // 'a'-1
		{"intentId", "order-{", "intentId"}, // 'z'+1
		{"intentId", "order-@", "intentId"}, // 'A'-1
		{"intentId", "order-[", "intentId"}, // 'Z'+1
		{"intentId", "order-/", "intentId"}, // '0'-1
		{"intentId", "order-:", "intentId"}, // '9'+1
	} {
		t.Run(fmt.Sprintf("%s=%s", tc.field, tc.v), func(t *testing.T) {
			expect(t, edit(t, func(m map[string]any) { m[tc.field] = tc.v }), now, tc.want)
		})
	}
}

// TestTextPrintableASCIIEdges: bookingId and reference take printable
// ASCII, space (0x20) to '~' (0x7e) inclusive. Kills intent.go:537:9 and
// 537:21 (CONDITIONALS_BOUNDARY).
func TestTextPrintableASCIIEdges(t *testing.T) {
	for _, tc := range []struct {
		name, field, v, want string
	}{
		{"Space", "bookingId", "C253535 B", ""},
		{"Tilde", "reference", "TTUSAS~123456", ""},
		{"UnitSeparator", "bookingId", "C253535\x1fB", "bookingId"},
		{"Delete", "reference", "TTUSAS\x7f123456", "reference"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expect(t, edit(t, func(m map[string]any) { m[tc.field] = tc.v }), now, tc.want)
		})
	}
}

// padTo pads a JSON document with trailing white space to n bytes.
func padTo(t *testing.T, data []byte, n int) []byte {
	t.Helper()
	if len(data) > n {
		t.Fatalf("document is %d bytes, more than %d", len(data), n)
	}
	return append(data, strings.Repeat(" ", n-len(data))...)
}

// TestSizeLimitsAreInclusive: every size limit accepts exactly its value
// and refuses one more. Kills intent.go:170:15, 187:15, 417:28, 651:89,
// 657:25 (CONDITIONALS_BOUNDARY).
func TestSizeLimitsAreInclusive(t *testing.T) {
	t.Run("Intent", func(t *testing.T) {
		if _, err := intent.Parse(padTo(t, seed(t), intent.MaxSize)); err != nil {
			t.Fatalf("intent of exactly MaxSize bytes: %v", err)
		}
		if _, err := intent.Parse(padTo(t, seed(t), intent.MaxSize+1)); err == nil {
			t.Fatal("intent of MaxSize+1 bytes accepted")
		}
	})
	t.Run("Card", func(t *testing.T) {
		c := []byte(`{"number":"4242424242424242","expirationMonth":"12","expirationYear":"2031"}`)
		if got, err := intent.DecodeCard(padTo(t, c, intent.MaxCardSize)); err != nil || got.Number != "4242424242424242" {
			t.Fatalf("card of exactly MaxCardSize bytes: %v", err)
		}
		if _, err := intent.DecodeCard(padTo(t, c, intent.MaxCardSize+1)); err == nil {
			t.Fatal("card of MaxCardSize+1 bytes accepted")
		}
	})
	for _, tc := range []struct {
		name  string
		n     int
		field string
		set   func(m map[string]any, n int)
	}{
		{"EncryptedCard8192", 8192, "", setEncryptedCardOfLength},
		{"EncryptedCard8193", 8193, "encryptedCard", setEncryptedCardOfLength},
		{"Email255", 255, "", setEmailOfLength},
		{"Email256", 256, "billTo.email", setEmailOfLength},
		{"Phone15", 15, "", setPhoneOfLength},
		{"Phone16", 16, "billTo.phoneNumber", setPhoneOfLength},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expect(t, edit(t, func(m map[string]any) { tc.set(m, tc.n) }), now, tc.field)
		})
	}
}

func setEncryptedCardOfLength(m map[string]any, n int) {
	jwe := "eyJraWQiOiJrMSJ9.key.iv..tag"
	jwe = strings.Replace(jwe, "..", "."+strings.Repeat("c", n-len(jwe))+".", 1)
	delete(m, "card")
	m["encryptedCard"] = jwe
}

func setEmailOfLength(m map[string]any, n int) {
	billTo(m)["email"] = strings.Repeat("a", n-len("@cybs.com")) + "@cybs.com"
}

func setPhoneOfLength(m map[string]any, n int) {
	billTo(m)["phoneNumber"] = "+" + strings.Repeat("1", n-1)
}

// TestCardDateEdges (now is 2026-11-21): a card is good through the last
// day of its expiry month; month 01 is a month; the expiry year may be up
// to 20 years ahead. Kills intent.go:608:97, 622:18 (CONDITIONALS_BOUNDARY)
// and 619:43 (ARITHMETIC_BASE: the month after expiry becomes the month
// before).
func TestCardDateEdges(t *testing.T) {
	for _, tc := range []struct {
		name, month, year string
		now               time.Time
		field             string
	}{
		{"ExpiresThisMonth", "11", "2026", now, ""},
		{"ExpiresThisMonthLastSecond", "11", "2026", time.Date(2026, 11, 30, 23, 59, 59, 0, time.UTC), ""},
		{"ExpiredAtMonthEnd", "11", "2026", time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), "card"},
		{"ExpiredLastMonth", "10", "2026", now, "card"},
		{"DecemberExpiry", "12", "2026", time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC), ""},
		{"January", "01", "2027", now, ""},
		{"MonthZero", "00", "2027", now, "card.expirationMonth"},
		{"Month13", "13", "2027", now, "card.expirationMonth"},
		{"TwentyYearsAhead", "01", "2046", now, ""},
		{"TwentyOneYearsAhead", "01", "2047", now, "card.expirationYear"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := edit(t, func(m map[string]any) {
				card(m)["number"] = "5555555555554444"
				card(m)["expirationMonth"] = tc.month
				card(m)["expirationYear"] = tc.year
			})
			expect(t, data, tc.now, tc.field)
		})
	}
}

// TestEmailShape: one character before the '@' is enough; the domain
// after the '@' must have a dot (a dot before the '@' does not count).
// Kills intent.go:651:8 (CONDITIONALS_BOUNDARY) and 651:43
// (ARITHMETIC_BASE: at+1 becomes at-1).
func TestEmailShape(t *testing.T) {
	for _, tc := range []struct{ email, field string }{
		{"a@cybs.com", ""},
		{"@cybs.com", "billTo.email"},
		{"john.@localhost", "billTo.email"},
		{"john.doe@localhost", "billTo.email"},
	} {
		t.Run(tc.email, func(t *testing.T) {
			expect(t, edit(t, func(m map[string]any) { billTo(m)["email"] = tc.email }), now, tc.field)
		})
	}
}

// TestCountryLetterEdges: billTo.country is two letters A to Z. Kills
// intent.go:730:8 and 730:19 (CONDITIONALS_BOUNDARY).
func TestCountryLetterEdges(t *testing.T) {
	for _, tc := range []struct{ country, field string }{
		{"AZ", ""},
		{"ZA", ""},
		{"A@", "billTo.country"}, // 'A'-1
		{"Z[", "billTo.country"}, // 'Z'+1
	} {
		t.Run(tc.country, func(t *testing.T) {
			expect(t, edit(t, func(m map[string]any) { billTo(m)["country"] = tc.country }), now, tc.field)
		})
	}
}

// TestEncryptedCardShape: encryptedCard is a compact JWE: five base64url
// parts (A-Z, a-z, 0-9, '-', '_'), the protected header and the
// ciphertext not empty. Kills intent.go:714:33, 714:51
// (CONDITIONALS_NEGATION), 718:17 (CONDITIONALS_BOUNDARY: reads past the
// part), 720:11, 720:23, 720:35, 720:47, 720:59, 720:71 (both mutators)
// and 417:28 (CONDITIONALS_NEGATION: every short JWE refused).
func TestEncryptedCardShape(t *testing.T) {
	for _, tc := range []struct {
		name, jwe, field string
	}{
		{"Typical", "eyJhbGciOiJSU0EtT0FFUC0yNTYiLCJlbmMiOiJBMjU2R0NNIiwia2lkIjoiazEifQ.a2V5.aXY.Y2lwaGVy.dGFn", ""},
		{"EmptyKeyIVAndTag", "eyJraWQiOiJrMSJ9...Y2lwaGVy.", ""},
		{"UpperA", "A.k.iv.ct.tag", ""},
		{"UpperZ", "Z.k.iv.ct.tag", ""},
		{"LowerA", "h.k.iv.a.tag", ""},
		{"LowerZ", "h.k.iv.z.tag", ""},
		{"Digit0", "h.k.iv.0.tag", ""},
		{"Digit9", "h.k.iv.9.tag", ""},
		{"DashAndUnderscore", "h.k-_.iv.ct.tag", ""},
		{"FourParts", "h.k.iv.ct", "encryptedCard"},
		{"SixParts", "h.k.iv.ct.tag.x", "encryptedCard"},
		{"EmptyHeader", ".k.iv.ct.tag", "encryptedCard"},
		{"EmptyCiphertext", "h.k.iv..tag", "encryptedCard"},
		{"StandardBase64Plus", "h.k.iv.c+t.tag", "encryptedCard"},
		{"StandardBase64Slash", "h.k.iv.c/t.tag", "encryptedCard"},
		{"Padding", "h.k.iv.ct==.tag", "encryptedCard"},
		{"At", "h.k.iv.c@t.tag", "encryptedCard"},        // 'A'-1
		{"Bracket", "h.k.iv.c[t.tag", "encryptedCard"},   // 'Z'+1
		{"Backquote", "h.k.iv.c`t.tag", "encryptedCard"}, // 'a'-1
		{"Brace", "h.k.iv.c{t.tag", "encryptedCard"},     // 'z'+1
		{"Colon", "h.k.iv.c:t.tag", "encryptedCard"},     // '9'+1
		{"Space", "h.k.iv.c t.tag", "encryptedCard"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := edit(t, func(m map[string]any) {
				delete(m, "card")
				m["encryptedCard"] = tc.jwe
			})
			expect(t, data, now, tc.field)
		})
	}
}

// storedCard is the seed paying with TMS tokens, with a credential.
func storedCard(t *testing.T, sc, cred map[string]any) []byte {
	return edit(t, func(m map[string]any) {
		delete(m, "card")
		m["storedCard"] = sc
		if cred != nil {
			m["credential"] = cred
		}
	})
}

// TestTokenIDCharacters: storedCard ids and credential.previousTransactionId
// are letters and digits only, every one of them. Kills credential.go:231:16
// (CONDITIONALS_NEGATION: no character is looked at), 233:46, 233:58,
// 233:70 (CONDITIONALS_BOUNDARY) and 233:58, 233:70 (CONDITIONALS_NEGATION).
func TestTokenIDCharacters(t *testing.T) {
	for _, tc := range []struct {
		id, field string
	}{
		{"A1", ""},
		{"Z1", ""},
		{"a1", ""},
		{"z1", ""},
		{"Mm5", ""},
		{"09", ""},
		{"c-1", "storedCard"},
		{"c_1", "storedCard"},
		{"c 1", "storedCard"},
		{"c@1", "storedCard"}, // 'A'-1
		{"c[1", "storedCard"}, // 'Z'+1
		{"c`1", "storedCard"}, // 'a'-1
		{"c{1", "storedCard"}, // 'z'+1
		{"c/1", "storedCard"}, // '0'-1
		{"c:1", "storedCard"}, // '9'+1
	} {
		t.Run("customerId="+tc.id, func(t *testing.T) {
			expect(t, storedCard(t, map[string]any{"customerId": tc.id, "brand": "visa"}, nil), now, tc.field)
		})
	}
	for _, tc := range []struct {
		id, field string
	}{
		{"AZaz09", ""},
		{"MCC0123456789Z", ""},
		{"mcc-0123", "credential.previousTransactionId"},
		{"mcc_0123", "credential.previousTransactionId"},
		{"mcc[0123", "credential.previousTransactionId"},
		{"mcc`0123", "credential.previousTransactionId"},
	} {
		t.Run("previousTransactionId="+tc.id, func(t *testing.T) {
			data := withCredential(t, "4242424242424242", map[string]any{"type": "mit", "reason": "unscheduled", "previousTransactionId": tc.id}, "")
			expect(t, data, now, tc.field)
		})
	}
}

// TestCredentialRulesOnStoredCards: a stored card's credential goes
// through the brand rules (the brand comes from storedCard.brand).
// Kills credential.go:162:22 (CONDITIONALS_NEGATION: every intent
// without card or encryptedCard skips the rules).
func TestCredentialRulesOnStoredCards(t *testing.T) {
	for _, tc := range []struct {
		name  string
		brand string
		cred  map[string]any
		field string
	}{
		{"VisaMIT", "visa", map[string]any{"type": "mit", "reason": "recurring", "previousTransactionId": "123"}, ""},
		{"MITWithoutPreviousID", "visa", map[string]any{"type": "mit", "reason": "recurring"}, "credential.previousTransactionId"},
		{"UnknownType", "visa", map[string]any{"type": "moto"}, "credential.type"},
		{"MastercardRecurring", "mastercard", map[string]any{"type": "mit", "reason": "recurring", "previousTransactionId": "123"}, "credential.reason"},
		{"DiscoverWithoutOriginalAmount", "discover", map[string]any{"type": "cit_stored"}, "credential.originalAuthorizedAmount"},
		{"StoringCITWithStoredCard", "visa", map[string]any{"type": "cit_store", "reason": "unscheduled"}, "credential.type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expect(t, storedCard(t, map[string]any{"paymentInstrumentId": "ABC123", "brand": tc.brand}, tc.cred), now, tc.field)
		})
	}
}

// TestCredentialRulesWaitForTheDecryptedCard: with an encryptedCard the
// brand is unknown until the worker decrypts it, so Decode leaves the
// credential alone; the worker's intake then puts the card in and
// validates again (internal/payment/intake.go), and the rules apply.
// Kills credential.go:162:39 (CONDITIONALS_NEGATION: the rules run on the
// still encrypted card, with no brand).
func TestCredentialRulesWaitForTheDecryptedCard(t *testing.T) {
	data := edit(t, func(m map[string]any) {
		delete(m, "card")
		m["encryptedCard"] = "eyJraWQiOiJrMSJ9.a2V5.aXY.Y2lwaGVy.dGFn"
		m["credential"] = map[string]any{"type": "mit", "reason": "recurring"}
	})
	in, err := intent.Decode(data, now)
	if err != nil {
		t.Fatalf("encryptedCard with a credential refused before decryption: %v", err)
	}
	in.Card = &intent.Card{Number: "4111111111111111", ExpirationMonth: "12", ExpirationYear: "2031"}
	in.EncryptedCard = ""
	got := problemFields(t, in.Validate(now))
	if len(got) != 1 || got[0] != "credential.previousTransactionId" {
		t.Fatalf("after decryption: %v, want credential.previousTransactionId", got)
	}
}

// TestInitiationOriginalAmountOnlyForDiscover: the original authorized
// amount is sent for Discover, on an MIT and on a CIT with a stored card,
// never on the CIT that stores the card and never for other brands.
// Kills credential.go:284:11 and 284:41 (CONDITIONALS_NEGATION).
func TestInitiationOriginalAmountOnlyForDiscover(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   intent.Intent
		want string
	}{
		{"DiscoverMIT", intent.Intent{StoredCard: &intent.StoredCard{CustomerID: "C1", Brand: "discover"},
			Credential: &intent.Credential{Type: intent.CredentialMIT, Reason: "recurring", PreviousTransactionID: "123", OriginalAuthorizedAmount: "102.21"}}, "102.21"},
		{"DiscoverCITStored", intent.Intent{StoredCard: &intent.StoredCard{CustomerID: "C1", Brand: "discover"},
			Credential: &intent.Credential{Type: intent.CredentialCITStored, OriginalAuthorizedAmount: "102.21"}}, "102.21"},
		{"DiscoverCITStore", intent.Intent{StoredCard: &intent.StoredCard{CustomerID: "C1", Brand: "discover"},
			Credential: &intent.Credential{Type: intent.CredentialCITStore, Reason: "unscheduled", OriginalAuthorizedAmount: "102.21"}}, ""},
		{"VisaMIT", intent.Intent{Card: &intent.Card{Number: "4111111111111111"},
			Credential: &intent.Credential{Type: intent.CredentialMIT, Reason: "recurring", PreviousTransactionID: "123", OriginalAuthorizedAmount: "102.21"}}, ""},
		{"AmexCITStored", intent.Intent{Card: &intent.Card{Number: "378282246310005"},
			Credential: &intent.Credential{Type: intent.CredentialCITStored, OriginalAuthorizedAmount: "102.21"}}, ""},
		{"MastercardStoredMIT", intent.Intent{StoredCard: &intent.StoredCard{CustomerID: "C1", Brand: "mastercard"},
			Credential: &intent.Credential{Type: intent.CredentialMIT, Reason: "subscription", PreviousTransactionID: "123", OriginalAuthorizedAmount: "102.21"}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.in.Initiation("").OriginalAuthorizedAmount; got != tc.want {
				t.Fatalf("OriginalAuthorizedAmount %q, want %q", got, tc.want)
			}
		})
	}
}

// TestInvalidUTF8NamesItsByte: the message names the offset of the first
// byte that is not UTF-8, so that upstream can find it. Kills
// intent.go:227:16, 229:8 and 229:31 (CONDITIONALS_NEGATION).
func TestInvalidUTF8NamesItsByte(t *testing.T) {
	for _, tc := range []struct {
		name, old, new string
	}{
		{"LoneByte", `"John"`, "\"Jo\xffhn\""},
		{"TruncatedSequence", `"Doe"`, "\"D\xc3e\""},
		{"AfterValidMultibyte", `"John"`, "\"J\u00f6\xfehn\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := replace(t, tc.old, tc.new)
			at := strings.IndexFunc(string(data), func(r rune) bool { return r == '\uFFFD' })
			want := fmt.Sprintf("not valid UTF-8 (byte %d)", at)
			if _, err := intent.Parse(data); err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("%v, want %q", err, want)
			}
		})
	}
}

// TestTypeMismatchNamesTheWantedKind: a field of pointer type (capture,
// credential) is named by the kind it is decoded from. It does not kill
// intent.go:288:8 (goKind no longer follows pointers): the decoder reports
// the element type (bool, intent.Credential), never the pointer, so that
// mutant is equivalent; this pins the messages it would otherwise guard.
func TestTypeMismatchNamesTheWantedKind(t *testing.T) {
	for _, tc := range []struct {
		old, new, want string
	}{
		{`"capture":true`, `"capture":"yes"`, `field "capture" must be a boolean, not a string`},
		{`"tokenize":true`, `"tokenize":"yes"`, `field "tokenize" must be a boolean, not a string`},
		{`"billTo":{`, `"credential":"mit","billTo":{`, `field "credential" must be an object, not a string`},
		{`"version":1`, `"version":true`, `field "version" must be an integer, not a boolean`},
	} {
		t.Run(tc.new, func(t *testing.T) {
			_, err := intent.Parse(replace(t, tc.old, tc.new))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%v, want %q", err, tc.want)
			}
		})
	}
}

// TestOutsideTextMasksEveryDigit: text quoted from the input shows no
// digit, 0 and 9 included. Kills intent.go:326:9 and 326:21
// (CONDITIONALS_BOUNDARY).
func TestOutsideTextMasksEveryDigit(t *testing.T) {
	for _, tc := range []struct{ typ, want string }{
		{"x0y9", `"x#y#"`},
		{"90", `"##"`},
		{"a5", `"a#"`},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			_, err := intent.Decode(withCredential(t, "4111111111111111", map[string]any{"type": tc.typ}, ""), now)
			if err == nil || !strings.Contains(err.Error(), tc.want+" is not cit_store") {
				t.Fatalf("%v, want %s quoted", err, tc.want)
			}
		})
	}
}

// TestLuhnOfNothing: the empty string is not a card number. Kills
// intent.go:750:16 (CONDITIONALS_BOUNDARY).
func TestLuhnOfNothing(t *testing.T) {
	for _, tc := range []struct {
		n    string
		want bool
	}{
		{"", false},
		{"0", true},
		{"4111111111111111", true},
		{"4242424242424242", true},
		{"5555555555554444", true},
		{"378282246310005", true},
		{"4111111111111112", false},
	} {
		if got := intent.Luhn(tc.n); got != tc.want {
			t.Errorf("Luhn(%q) = %v, want %v", tc.n, got, tc.want)
		}
	}
}
