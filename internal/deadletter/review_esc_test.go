package deadletter_test

// Adversarial review of c96a27f (escaped separators in raw text). Every
// TestReviewEsc* test below failed on a5ee95a, except
// TestReviewEscHeldRandomEscapedSeparators, which passed: each subtest is a
// payload that is not a valid intent whose scrubbed payload
// (NewScrubber(nil).Payload) or `dlq show` text (MaskedPayload) revealed
// more than the last four digits of a card, or a CVV. They pass since the
// fixes that followed the review.

import (
	"fmt"
	"math/rand"
	"regexp"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/ttcpay/payflow/internal/deadletter"
	"github.com/ttcpay/payflow/internal/redact"
)

// reviewEscDecode reads text as a person reading the stored JSON does:
// JSON escapes (\uXXXX, surrogate pairs, \b, \t, ...) decoded.
func reviewEscDecode(s string) string {
	var b strings.Builder
	hex := func(h string) (rune, bool) {
		var v rune
		for _, c := range h {
			switch {
			case c >= '0' && c <= '9':
				v = v*16 + c - '0'
			case c >= 'a' && c <= 'f':
				v = v*16 + c - 'a' + 10
			case c >= 'A' && c <= 'F':
				v = v*16 + c - 'A' + 10
			default:
				return 0, false
			}
		}
		return v, true
	}
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch c := s[i+1]; c {
		case 'u', 'U':
			if i+6 <= len(s) {
				if r, ok := hex(s[i+2 : i+6]); ok {
					i += 5
					if utf16.IsSurrogate(r) && i+7 <= len(s) && s[i+1] == '\\' && (s[i+2] == 'u' || s[i+2] == 'U') {
						if r2, ok := hex(s[i+3 : i+7]); ok {
							if d := utf16.DecodeRune(r, r2); d != 0xFFFD {
								r = d
								i += 6
							}
						}
					}
					b.WriteRune(r)
					continue
				}
			}
		case 'b', 't', 'n', 'r', 'f', '/', '"', '\\':
			b.WriteByte(map[byte]byte{'b': '\b', 't': '\t', 'n': '\n', 'r': '\r', 'f': '\f', '/': '/', '"': '"', '\\': '\\'}[c])
			i++
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// reviewEscDigits: the digits (of any script, ASCII) a reader sees in out,
// escapes decoded.
func reviewEscDigits(out string) string {
	var b strings.Builder
	for _, r := range reviewEscDecode(out) {
		if d, ok := redact.Digit(r); ok {
			b.WriteByte(d)
		}
	}
	return b.String()
}

// reviewEscCheck fails when the scrubbed payload or `dlq show` of payload
// shows more than four digits. Every payload here holds no digit but the
// card's (its own text is digit-free), so more than four is more than the
// card's last four.
func reviewEscCheck(t *testing.T, payload string) {
	t.Helper()
	stored, _ := deadletter.NewScrubber(nil).Payload([]byte(payload))
	shown := deadletter.MaskedPayload([]byte(payload))
	for what, out := range map[string]string{"stored payload": string(stored), "dlq show": shown} {
		if d := reviewEscDigits(out); len(d) > 4 {
			t.Errorf("%s reveals %d card digits (%s):\n in: %q\nout: %q", what, len(d), d, payload, out)
		}
	}
}

// TestReviewEscEscapedOtherScriptDigits: digitAt reads an escape as a digit
// only when it is \u0030-\u0039. A digit of another script written as a JSON
// escape (fullwidth \uff14, Arabic-Indic \u0664, Devanagari \u096a, or a
// mathematical digit as a surrogate pair \ud835\udfd2) is, in raw text,
// neither a digit nor a separator: a truncated intent's card is kept whole.
// The same card parsed as JSON is masked (tok.String() decodes it and
// redact.Digit reads it), so only the raw-text path misses it.
func TestReviewEscEscapedOtherScriptDigits(t *testing.T) {
	spell := func(four, one string) string {
		return four + strings.Repeat(one, 3) + " " + strings.Repeat(one, 4) + " " + strings.Repeat(one, 4) + " " + strings.Repeat(one, 4)
	}
	for name, pan := range map[string]string{
		"Fullwidth":    spell(`\uff14`, `\uff11`),
		"ArabicIndic":  spell(`\u0664`, `\u0661`),
		"Devanagari":   spell(`\u096a`, `\u0967`),
		"MathBoldSurr": spell(`\ud835\udfd2`, `\ud835\udfcf`),
		"UpperHex":     spell(`\uFF14`, `\uFF11`),
		"Unspaced":     strings.ReplaceAll(spell(`\uff14`, `\uff11`), " ", ""),
		"EscSeparator": strings.ReplaceAll(spell(`\uff14`, `\uff11`), " ", `\u0020`),
	} {
		t.Run(name, func(t *testing.T) {
			reviewEscCheck(t, `{"card":{"number":"`+pan) // truncated mid-string
			reviewEscCheck(t, `card `+pan+` end`)        // not JSON
		})
	}
}

// TestReviewEscStraddlesParsedAndRaw: when a syntax error falls inside a
// card number, the part read as a JSON token is judged alone (kept when it
// has under 12 digits and a non-PAN name or at most 4 digits, else reduced
// to its own last four), the raw tail is masked alone, and finish's second
// pass over the whole text cannot join them again because the tail's run is
// already "****NNNN" (4 stars: longer than MaxSeparatorRunes). An unquoted
// card number ("number":4111 1111 1111 1111) keeps its first group and
// last four; up to 11 of 19 digits can be shown.
func TestReviewEscStraddlesParsedAndRaw(t *testing.T) {
	for name, payload := range map[string]string{
		"UnquotedSpaced":    `{"card":{"number":4111 1111 1111 1111}}`,
		"UnquotedDashed":    `{"card":{"number":4111-1111-1111-1111}}`,
		"Array":             `[4111 1111 1111 1111]`,
		"SevenThenTwelve":   `{"n":4111111 1111 1111 1111}`,
		"TwelveThenSeven":   `{"n":411111111111 1111111}`,
		"PANNameThenSeven":  `{"number":411111111111 1111111}`,
		"EscapedSeparators": `{"n":4111111\u00201111\u00201111\u00201111}`,
	} {
		t.Run(name, func(t *testing.T) { reviewEscCheck(t, payload) })
	}
}

// TestReviewEscInvisibleJoiners: a separator is at most MaxSeparatorRunes
// (3) characters, each of which must be a space, punctuation, a symbol or
// Cf. Characters a reader does not see between digits still break the run:
// four invisible Cf characters (soft hyphens, zero-width spaces, escaped or
// not), a variation selector or combining grapheme joiner (Mn, not Cf) after
// each digit, a keycap (4️⃣), a control character (NUL, or \b). The
// rendered text reads as the whole number.
func TestReviewEscInvisibleJoiners(t *testing.T) {
	join := func(sep string) string {
		return strings.Join([]string{"4111", "1111", "1111", "1111"}, sep)
	}
	each := func(after string) string {
		var b strings.Builder
		for _, c := range "4111111111111111" {
			b.WriteRune(c)
			b.WriteString(after)
		}
		return b.String()
	}
	for name, pan := range map[string]string{
		"FourSoftHyphensEscaped": join(`\u00ad\u00ad\u00ad\u00ad`),
		"FourSoftHyphensRaw":     join("\u00ad\u00ad\u00ad\u00ad"),
		"FourZWSPEscaped":        join(`\u200b\u200b\u200b\u200b`),
		"VS16Raw":                each("\ufe0f"),
		"VS16Escaped":            each(`\ufe0f`),
		"CGJEscaped":             each(`\u034f`),
		"KeycapRaw":              each("\ufe0f\u20e3"),
		"NULRaw":                 join("\x00"),
		"NULEscaped":             join(`\u0000`),
		"BackspaceEscaped":       join(`\b`),
	} {
		t.Run(name, func(t *testing.T) {
			reviewEscCheck(t, `{"card":{"number":"`+pan)
		})
	}
}

// TestReviewEscRawCVV: in raw text a CVV is hidden only by cvvMember (a
// double-quoted name without escapes, of at most 40 characters either side
// of security.?code|cvv|cvc|cvn|csc, then ':') or cvvWord (the word, at most
// 3 non-word characters, 3-4 digits). isCVVName, used on parsed JSON, also
// knows cid, cvd, cav2, decodes escapes and folds "security__code". Each
// payload below has a syntax error before the CVV, so it is raw text, and
// its CVV (737, or an Amex CID 1234) is stored and shown as it was.
func TestReviewEscRawCVV(t *testing.T) {
	for name, payload := range map[string]string{
		"EscapedName":      `{"card":{"number":"4111111111111111" "\u0063vv":"737"}}`,
		"EscapedName2":     `{"card":{"number":"4111111111111111" "c\u0076v":"737"}}`,
		"AmexCID":          `{"card":{"number":"378282246310005" "cid":"1234"}}`,
		"CVD":              `{"card":{"number":"4111111111111111" "cvd":"737"}}`,
		"CAV2":             `{"card":{"number":"4111111111111111" "cav2":"737"}}`,
		"DoubleUnderscore": `{"card":{"number":"4111111111111111" "security__code":"737"}}`,
		"LongName":         `{"a" 1, "payment_method_details_card_checks_extended_cvv": "737"}`,
		"PythonRepr":       `{'number': '4111 1111 1111 1111', 'cvv': '737'}`,
		"RubyInspect":      `{"number"=>"4111111111111111", "cvv"=>"737"}`,
		"KeyEqualsQuoted":  `number = "4111111111111111", cvv = "737"`,
	} {
		t.Run(name, func(t *testing.T) {
			stored, _ := deadletter.NewScrubber(nil).Payload([]byte(payload))
			shown := deadletter.MaskedPayload([]byte(payload))
			for what, out := range map[string]string{"stored payload": string(stored), "dlq show": shown} {
				if strings.Contains(out, "737") || strings.Contains(out, "1234") {
					t.Errorf("%s shows the CVV:\n in: %s\nout: %s", what, payload, out)
				}
			}
		})
	}
}

// The following test PASSES on a5ee95a: what the change claims holds. A
// random 12-19 digit card, split by 1-3 separators the change accepts (plain,
// escaped, \/, \t, \", \\, \u00a0, \u2013, \u200b, a lone surrogate escape)
// with digits randomly spelled \u003N, inside a truncated string, after a
// syntax error, or in text that is not JSON, never shows a 5-digit window of
// its first len-4 digits (escapes of digits decoded, other escapes dropped).
var reviewEscDigitRe = regexp.MustCompile(`\\[uU]003([0-9])`)
var reviewEscAnyRe = regexp.MustCompile(`\\[uU][0-9a-fA-F]{4}`)

func reviewEscProject(s string) string {
	s = reviewEscDigitRe.ReplaceAllString(s, "$1")
	s = reviewEscAnyRe.ReplaceAllString(s, "")
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('.')
		}
	}
	return b.String()
}

func TestReviewEscHeldRandomEscapedSeparators(t *testing.T) {
	seps := []string{" ", "-", `\u0020`, `\U0020`, `\/`, `\t`, `\n`, `\r`, `\f`, `\"`, `\\`, `\u00a0`, `\u00A0`, `\u002d`, `\u002D`, `\u2013`, "\u00a0", `\u200b`, "/", ".", "_", `\ud83d`}
	prefixes := []string{`{"card":{"number":"`, `{"x" 1, "number":"`, `card `, `{"a":"b" "n":"`, `["`}
	r := rand.New(rand.NewSource(1))
	fails := 0
	for it := 0; it < 30000 && fails < 15; it++ {
		n := 12 + r.Intn(8)
		card := make([]byte, n)
		for i := range card {
			card[i] = byte('0' + r.Intn(10))
		}
		var b strings.Builder
		b.WriteString(prefixes[r.Intn(len(prefixes))])
		for i, c := range card {
			if i > 0 && r.Intn(4) == 0 {
				k := 1 + r.Intn(3)
				for j := 0; j < k; j++ {
					b.WriteString(seps[r.Intn(len(seps))])
				}
			}
			if r.Intn(5) == 0 {
				b.WriteString(fmt.Sprintf(`\u003%c`, c))
			} else {
				b.WriteByte(c)
			}
		}
		if r.Intn(2) == 0 {
			b.WriteString([]string{`"`, `", "cvv":"737"}`, ` x`, `}`, `"}}`, ` "a"`}[r.Intn(6)])
		}
		in := b.String()
		outP, _ := deadletter.NewScrubber(nil).Payload([]byte(in))
		outS := deadletter.MaskedPayload([]byte(in))
		for _, out := range []string{string(outP), outS} {
			p := reviewEscProject(out)
			leak := false
			for i := 0; i+5 <= n-4; i++ {
				if strings.Contains(p, string(card[i:i+5])) {
					leak = true
				}
			}
			if leak {
				fails++
				t.Errorf("card %s\nin  %s\nout %s", card, in, out)
				break
			}
		}
	}
}
