// Package redact removes what must never reach a log line, an error string
// or a dead-letter header from text that came from outside: runs of digits
// long enough to be part of a card number.
package redact

import (
	"unicode"
	"unicode/utf8"
)

// MaxLen caps redacted text.
const MaxLen = 64

// Digits hides runs of six or more digits (anything that could be part of a
// card number) and caps the text at MaxLen bytes (then "…").
func Digits(s string) string { return DigitsN(s, MaxLen) }

// DigitsN is Digits with a cap of max bytes.
func DigitsN(s string, max int) string {
	if len(s) > max {
		s = s[:max] + "…"
	}
	return wide(s, digitRuns)
}

// digitRuns masks every run of six or more ASCII digits, keeping the length.
func digitRuns(s string) string {
	var out []byte
	run := 0
	flush := func(i int) {
		if run >= 6 {
			if out == nil {
				out = []byte(s)
			}
			for k := i - run; k < i; k++ {
				out[k] = '#'
			}
		}
		run = 0
	}
	for i := 0; i < len(s); i++ {
		if isDigit(s[i]) {
			run++
			continue
		}
		flush(i)
	}
	flush(len(s))
	if out == nil {
		return s
	}
	return string(out)
}

// wide applies mask to s with every decimal digit outside ASCII (fullwidth,
// Arabic-Indic, ...) read as its ASCII digit, and masks in s each rune whose
// digit mask masked: every byte of it becomes '#', so the length is kept.
func wide(s string, mask func(string) string) string {
	if !hasWideDigit(s) {
		return mask(s)
	}
	norm := make([]byte, 0, len(s))
	from := make([]int, 0, len(s)) // where in s each byte of norm starts its rune
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if d, ok := Digit(r); ok && r > utf8.RuneSelf {
			norm = append(norm, d)
			from = append(from, i)
		} else {
			for k := 0; k < size; k++ {
				norm = append(norm, s[i+k])
				from = append(from, i+k)
			}
		}
		i += size
	}
	masked := mask(string(norm))
	out := []byte(s)
	for j := range norm {
		if isDigit(norm[j]) && masked[j] == '#' {
			_, size := utf8.DecodeRuneInString(s[from[j]:])
			for k := from[j]; k < from[j]+size; k++ {
				out[k] = '#'
			}
		}
	}
	return string(out)
}

func hasWideDigit(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			for _, r := range s[i:] {
				if _, ok := Digit(r); ok && r > utf8.RuneSelf {
					return true
				}
			}
			return false
		}
	}
	return false
}

// Digit returns the ASCII digit of a decimal digit of any script
// ('４' and '٤' are '4'), or of another form people read as one
// (digitForms: '⁴', '④', '❹'); ok is false for anything else.
func Digit(r rune) (d byte, ok bool) {
	if unicode.IsDigit(r) {
		if r < utf8.RuneSelf {
			return byte(r), true
		}
		return byte('0' + digitValue(r)), true
	}
	if r < 0xb2 {
		return 0, false
	}
	for _, f := range digitForms {
		if r >= f.lo && r <= f.hi {
			return f.first + byte(r-f.lo), true
		}
	}
	return 0, false
}

// digitForms are runs of digit forms that Unicode files as other numbers
// (No), not as decimal digits: superscripts, subscripts, circled,
// parenthesized and dingbat digits. Each run holds consecutive digits from
// first.
var digitForms = []struct {
	lo, hi rune
	first  byte
}{
	{0x00b2, 0x00b3, '2'}, {0x00b9, 0x00b9, '1'}, {0x2070, 0x2070, '0'}, {0x2074, 0x2079, '4'}, // superscripts
	{0x2080, 0x2089, '0'},                                                                      // subscripts
	{0x2460, 0x2468, '1'}, {0x24ea, 0x24ea, '0'}, {0x24f5, 0x24fd, '1'}, {0x24ff, 0x24ff, '0'}, // circled
	{0x2474, 0x247c, '1'}, {0x2488, 0x2490, '1'}, // parenthesized, with a full stop
	{0x2776, 0x277e, '1'}, {0x2780, 0x2788, '1'}, {0x278a, 0x2792, '1'}, // dingbats
	{0x1f100, 0x1f100, '0'}, {0x1f101, 0x1f10a, '0'}, // with a full stop or comma
}

// digitValue is the value of a decimal digit rune: Unicode lays every
// script's digits out as runs of ten consecutive code points from zero.
func digitValue(r rune) int {
	start := r
	for start > 0 && unicode.IsDigit(start-1) && r-start < 60 {
		start--
	}
	return int(r-start) % 10
}

// CardNumbers masks what looks like a card number in an identifier: a run
// of 12 to 19 digits that passes the Luhn check, 13 to 19 digits that pass
// it written in groups of four (or 4-6-5, 4-6-4) joined by separators
// (SeparatorRun), and any run of more than 19 digits (which may hold one).
// Digits of any script count (wide). The rest is left as it is, so
// ordinary ids (dates, sequence numbers, lists) stay readable.
func CardNumbers(s string) string { return wide(s, cardNumbers) }

func cardNumbers(s string) string {
	var out []byte
	mask := func(from, to int) {
		if out == nil {
			out = []byte(s)
		}
		for k := from; k < to; k++ {
			if isDigit(s[k]) {
				out[k] = '#'
			}
		}
	}
	for i := 0; i < len(s); {
		if !isDigit(s[i]) {
			i++
			continue
		}
		// Groups of digits joined by separators (SeparatorRun).
		type group struct{ from, to int }
		var gs []group
		k := i
		for {
			from := k
			for k < len(s) && isDigit(s[k]) {
				k++
			}
			gs = append(gs, group{from, k})
			if n := SeparatorRun(s, k); n > 0 && k+n < len(s) && isDigit(s[k+n]) {
				k += n
				continue
			}
			break
		}
		// Every stretch of consecutive groups is a candidate, not only the
		// whole run: "ref 2026 4111 1111 1111 1111" holds a card although
		// its five groups together are not one. Masking the union of the
		// candidates keeps the function idempotent: what is left unmasked
		// is a stretch of the same groups, already judged not a card.
		lens := make([]int, len(gs))
		for n, g := range gs {
			lens[n] = g.to - g.from
		}
		for a := range gs {
			total := 0
			for b := a; b < len(gs); b++ {
				total += lens[b]
				if a == b && (total > 19 || total >= 12 && luhn(s[gs[a].from:gs[a].to])) {
					mask(gs[a].from, gs[a].to)
				}
				if total > 19 {
					break
				}
				if b > a && total >= 13 && cardGrouping(lens[a:b+1]) && luhn(s[gs[a].from:gs[b].to]) {
					mask(gs[a].from, gs[b].to)
				}
			}
		}
		i = k
	}
	if out == nil {
		return s
	}
	return string(out)
}

// cardGrouping: the group lengths of a card number as printed: fours (the
// last one shorter or up to seven for 19 digits), or Amex's 4-6-5 and
// Diners' 4-6-4.
func cardGrouping(lens []int) bool {
	if len(lens) == 3 && lens[0] == 4 && lens[1] == 6 && (lens[2] == 5 || lens[2] == 4) {
		return true
	}
	for n, l := range lens {
		if n < len(lens)-1 && l != 4 || n == len(lens)-1 && (l < 1 || l > 7) {
			return false
		}
	}
	return true
}

// LooksLikeCard reports whether CardNumbers would mask anything in s.
func LooksLikeCard(s string) bool { return CardNumbers(s) != s }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// MaxSeparatorRunes is the longest separator SeparatorRun accepts between
// two groups of a card number, in characters (" - " is three).
const MaxSeparatorRunes = 3

// MaxSeparatorSpaces is how many spaces a separator may hold besides its
// MaxSeparatorRunes other visible characters: numbers aligned in columns
// ("4111    1111").
const MaxSeparatorSpaces = 8

// SeparatorRun returns the length in bytes of the separator that starts at
// s[i], or 0: up to MaxSeparatorRunes visible characters other than spaces,
// up to MaxSeparatorSpaces spaces, and any number of invisible ones
// (Separator), in any order. This is what people and systems put between a
// card number's groups: "4111 1111", "4111-1111", "4111 - 1111",
// "4111\u00a01111", "4111/1111", "4111+1111", "4111\u200b1111".
func SeparatorRun(s string, i int) int {
	k := i
	var visible, spaces int
	for k < len(s) {
		r, size := utf8.DecodeRuneInString(s[k:])
		ok, invisible := Separator(r)
		switch {
		case !ok:
			return k - i
		case invisible:
		case unicode.IsSpace(r):
			if spaces++; spaces > MaxSeparatorSpaces {
				return k - i
			}
		default:
			if visible++; visible > MaxSeparatorRunes {
				return k - i
			}
		}
		k += size
	}
	return k - i
}

// Separator reports whether r may stand between two groups of a card
// number, and whether a reader sees it. Visible ones: a space (a
// non-breaking space too), punctuation (an en dash, '/', ':', '_'), a
// symbol ('+') or a byte that is not UTF-8; but not '#' (what masking
// writes, so that masking twice changes nothing), ',' or ';' (which
// separate the items of a list: "Invoices 1004, 1005, 1006, 1007" is no
// card), nor a letter or a digit. Invisible ones: format characters (soft
// hyphen, zero-width space, word joiner), controls that are not spaces
// (NUL, backspace), combining marks (a variation selector, the keycap mark)
// and the other default-ignorable code points (Hangul fillers, unassigned
// ones such as U+2065).
func Separator(r rune) (ok, invisible bool) {
	switch r {
	case '#', ',', ';':
		return false, false
	}
	switch {
	case r == utf8.RuneError || unicode.IsSpace(r) || unicode.IsPunct(r) || unicode.IsSymbol(r):
		return true, false
	case unicode.In(r, unicode.Cf, unicode.Cc, unicode.Mn, unicode.Me, unicode.Other_Default_Ignorable_Code_Point):
		return true, true
	}
	return false, false
}

// Untrusted masks an outside value (a message id, a subject) before it is
// quoted in a log line or an error: card numbers however grouped, then any
// run of six or more digits, capped at MaxLen.
func Untrusted(s string) string { return UntrustedN(s, MaxLen) }

// UntrustedN is Untrusted with the result cut to max bytes (and "…").
// Cards are looked for before the cut (a card that straddles it is judged
// whole) and after it (the cut can leave a card: "4111 1111 1111 1111123"
// is none, its first sixteen digits are one).
func UntrustedN(s string, max int) string {
	if limit := max + 64; len(s) > limit {
		s = s[:limit]
	}
	s = CardNumbers(s)
	if len(s) > max {
		s = s[:max] + "…"
	}
	return wide(CardNumbers(s), digitRuns)
}

// luhn checks the digits of s (other characters skipped).
func luhn(s string) bool {
	sum, double := 0, false
	for i := len(s) - 1; i >= 0; i-- {
		if !isDigit(s[i]) {
			continue
		}
		d := int(s[i] - '0')
		if double {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}
