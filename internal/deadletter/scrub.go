package deadletter

import (
	"bytes"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/ttcpay/payflow/internal/intent"
	"github.com/ttcpay/payflow/internal/redact"
)

// Why a scrubbed letter cannot be replayed (HeaderCardRemoved).
const (
	// CardRemovedReason: no dead-letter card key was configured, so only
	// the card's brand and last four digits were kept.
	CardRemovedReason = "card removed: republish from upstream"
	// MaskedReason: the payload was not a valid intent and held a card,
	// something like a card number or a CVV, which was sealed or masked:
	// the payload is no longer what upstream sent, and a replay could read
	// what changed as valid.
	MaskedReason = "card data masked (not a valid intent): republish from upstream"
)

// ErrCardRemoved is Replay's refusal of a letter marked HeaderCardRemoved;
// the error's text is the header's.
var ErrCardRemoved = errors.New(CardRemovedReason)

type removedError struct{ msg string }

func (e removedError) Error() string        { return e.msg }
func (e removedError) Is(target error) bool { return target == ErrCardRemoved }

// Sealer encrypts a card to the dead-letter card key
// (*cardcrypt.Recipient), as an encryptedCard the workers' card keys open.
type Sealer interface {
	Encrypt(c intent.Card) (string, error)
}

// Scrubber makes an intent's payload fit to be kept in the dead-letter
// stream: a dead letter never holds a plaintext card number or a CVV.
//
//   - A payload the intent decoder reads (valid or not) keeps every field as
//     it is, except its plaintext card: sealed to the dead-letter key as an
//     encryptedCard without the CVV (a replay is charged with the workers'
//     CARD_DECRYPTION_KEYS), or, without a key, reduced to
//     {"number":"****<last four>"} with the letter marked
//     HeaderCardRemoved (brand and last four), which Replay refuses.
//   - In a payload that is not a valid intent, every run of 12 or more
//     digits (see maskRuns) in any name or value is reduced to its last four
//     digits, and members named like a CVV (securityCode, cvv, cvc, cvn,
//     csc, in any case or spelling) are dropped; what cannot be parsed (a
//     truncated payload, text after a syntax error) is masked as raw text
//     by the same rules. A payload changed so is marked HeaderCardRemoved
//     (MaskedReason): it is not what upstream sent, and a replay could
//     read a masked field as valid.
//
// A valid intent's other fields are kept byte for byte, so that a replay
// reads the same intent (same fingerprint). A nil *Scrubber has no key.
type Scrubber struct {
	seal Sealer
	now  func() time.Time
}

// NewScrubber returns a scrubber that seals cards with seal (nil: no
// dead-letter key; cards are removed).
func NewScrubber(seal Sealer) *Scrubber { return &Scrubber{seal: seal, now: time.Now} }

// Letter returns l with its payload scrubbed (letters of intents; a
// callback job carries no card) and, when its card was removed, marked so.
func (s *Scrubber) Letter(l Letter) Letter {
	if l.Kind != KindIntents {
		return l
	}
	data, removed := s.Payload(l.Data)
	l.Data = data
	if removed != "" {
		l.CardRemoved = removed
	}
	return l
}

// Payload scrubs an intent payload. removed, when not empty, is the
// HeaderCardRemoved value: the card was removed, not sealed.
func (s *Scrubber) Payload(data []byte) (out []byte, removed string) {
	var seal Sealer
	now := time.Now
	if s != nil {
		seal, now = s.seal, s.now
	}
	w := &walker{data: data, seal: seal}
	_, err := intent.Decode(data, now())
	var ve *intent.ValidationError
	switch {
	case err == nil:
		w.cardOnly = true // a valid intent: only its card changes
	case errors.As(err, &ve) && !readable(ve):
		w.noCard = true // not read as an intent: nothing is "the card"
	}
	out = w.run()
	if w.removed == "" && w.masked {
		return out, MaskedReason
	}
	return out, w.removed
}

// readable: the intent decoder read the JSON; only validation failed.
func readable(ve *intent.ValidationError) bool {
	for _, p := range ve.Problems {
		if p.Field == "intent" { // size, syntax, names, UTF-8
			return false
		}
	}
	return true
}

// MaskedPayload returns a stored payload for display (`dlq show`): every
// name and value masked as Scrubber masks a payload that is not a valid
// intent, except that a CVV shows as "***" and a card number field
// (number, cardNumber, pan) keeps only its last four digits whatever its
// length; an encryptedCard stays as it is. Valid JSON is indented.
func MaskedPayload(data []byte) string {
	w := &walker{data: data, noCard: true, display: true}
	out := w.run()
	v := jsontext.Value(bytes.Clone(out))
	if err := v.Indent(jsontext.AllowDuplicateNames(true), jsontext.WithIndent("  ")); err == nil {
		return string(v)
	}
	return string(out)
}

// walker rewrites a JSON payload token by token, copying what it does not
// change byte for byte.
type walker struct {
	data []byte
	seal Sealer
	// cardOnly: change nothing but the top-level card. noCard: no
	// top-level card handling (the payload is not an intent). display:
	// mask a CVV as "***" instead of dropping it.
	cardOnly, noCard, display bool

	out     []byte
	last    int // data[:last] is in out
	removed string
	masked  bool // a name or value was masked, or a CVV dropped
	// leaf is the last name or value read (its input span, and w.last and
	// len(w.out) before it was masked): a raw tail may go on with its
	// digits.
	leaf struct{ start, end, last, out int }
}

type frame struct {
	obj  bool
	name string // the current member's name (objects), the array's own name (arrays)
	n    int    // names and values read (objects), values (arrays)
}

func (w *walker) run() []byte {
	dec := jsontext.NewDecoder(bytes.NewReader(w.data), jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	var stack []frame
	good := 0          // data[:good] was read as JSON
	dropComma := false // the next member's leading comma goes (its predecessor was dropped)
	if k := dec.PeekKind(); k != '{' && k != '[' {
		// Not JSON, or a bare value: raw text. ("4111 1111 1111 1111" would
		// read as four numbers.)
		return w.finish(0)
	}
loop:
	for {
		before := int(dec.InputOffset())
		kind := dec.PeekKind()
		if kind == 0 {
			break // an error: the rest is raw text
		}
		var top *frame
		if len(stack) > 0 {
			top = &stack[len(stack)-1]
		}
		isName := top != nil && top.obj && top.n%2 == 0 && kind == '"'
		start := before + skipSeparators(w.data[before:])
		if dropComma {
			if kind != '}' {
				w.copyTo(before)
				if i := bytes.IndexByte(w.data[before:start], ','); i >= 0 {
					w.last = before + i + 1
				}
			}
			dropComma = false
		}

		if isName {
			tok, err := dec.ReadToken()
			if err != nil {
				break loop
			}
			name := tok.String()
			nameEnd := int(dec.InputOffset())
			top.name = name
			switch {
			case !w.noCard && len(stack) == 1 && name == "card" && dec.PeekKind() == '{':
				val, err := dec.ReadValue()
				if err != nil {
					break loop
				}
				if member, ok := w.card(val); ok {
					w.copyTo(start)
					w.out = append(w.out, member...)
					w.last = int(dec.InputOffset())
				} else if !w.cardOnly {
					w.copyTo(start)
					w.out = append(w.out, w.data[start:int(dec.InputOffset())-len(val)]...)
					w.out = append(w.out, (&walker{data: val, noCard: true, display: w.display}).run()...)
					w.last = int(dec.InputOffset())
				}
				top.n += 2
				good = int(dec.InputOffset())
				continue
			case !w.cardOnly && isCVVName(name):
				if _, err := dec.ReadValue(); err != nil {
					break loop
				}
				end := int(dec.InputOffset())
				if w.display {
					w.copyTo(nameEnd + skipSeparators(w.data[nameEnd:end]))
					w.out = append(w.out, `"***"`...)
				} else if top.n > 0 {
					// Drop ,"name":value after the previous member.
					w.copyTo(before)
					if i := bytes.IndexByte(w.data[before:start], ','); i >= 0 {
						w.out = append(w.out, w.data[before:before+i]...)
					}
				} else {
					w.copyTo(before)
					dropComma = true
				}
				w.last = end
				w.masked = true
				top.n += 2
				good = end
				continue
			case !w.cardOnly:
				w.markLeaf(start, nameEnd)
				if masked, changed := maskRuns(name, false, false); changed || hasRun(w.data[start:nameEnd]) {
					w.replace(start, nameEnd, quote(masked))
				}
			}
			top.n++
			good = int(dec.InputOffset())
			continue
		}

		tok, err := dec.ReadToken()
		if err != nil {
			break loop
		}
		end := int(dec.InputOffset())
		switch kind {
		case '{', '[':
			name := ""
			if top != nil {
				name = top.name
			}
			stack = append(stack, frame{obj: kind == '{', name: name})
		case '}', ']':
			stack = stack[:len(stack)-1]
			if len(stack) > 0 {
				stack[len(stack)-1].n++
			} else {
				good = end
				break loop // one value; anything after it is raw text
			}
		default:
			name := ""
			if top != nil {
				name = top.name
				top.n++
			}
			if !w.cardOnly {
				w.markLeaf(start, end)
				w.maskLeaf(name, kind, tok, start, end)
			}
		}
		good = end
	}
	return w.finish(good)
}

func (w *walker) markLeaf(start, end int) {
	w.leaf.start, w.leaf.end, w.leaf.last, w.leaf.out = start, end, w.last, len(w.out)
}

// finish copies what is left up to good and masks data[good:] as raw text.
func (w *walker) finish(good int) []byte {
	if !w.cardOnly && good < len(w.data) && good > 0 && w.leaf.end == good && w.last == w.leaf.last && len(w.out) == w.leaf.out {
		// The last name or value read, left as it was, may be the start of
		// a number the tail goes on with ("4111" then " 1111 1111 1111",
		// "4111111" then "\u00201111..."): judge it with the tail.
		good = w.leaf.start
	}
	w.copyTo(good)
	if good < len(w.data) {
		tail := w.data[good:]
		if w.cardOnly {
			w.out = append(w.out, tail...) // a valid intent has no tail
		} else {
			masked := maskRaw(tail, w.display)
			w.masked = w.masked || !bytes.Equal(masked, tail)
			w.out = append(w.out, masked...)
			// A run can straddle what was read and the tail (a masked
			// value, "****1111", then " 1111111"): mask the whole text once
			// more, counting masked digits as digits.
			if out := maskDigitTextStars(w.out); !bytes.Equal(out, w.out) {
				w.out, w.masked = out, true
			}
		}
	}
	return w.out
}

// maskLeaf masks a string or number value under name.
func (w *walker) maskLeaf(name string, kind jsontext.Kind, tok jsontext.Token, start, end int) {
	var s string
	switch kind {
	case '"':
		s = tok.String()
	case '0':
		s = string(w.data[start:end])
	default:
		return
	}
	if isPANName(name) {
		if d := digitsOf(s); len(d) > 4 {
			w.replace(start, end, quote("****"+d[len(d)-4:]))
			return
		}
	}
	masked, changed := maskRuns(s, false, false)
	if kind == '"' && strings.ContainsAny(masked, ":=") {
		// A string may carry JSON, or key = value text, of its own.
		if m := maskMembers([]byte(masked), w.display, maxEmbedded); !bytes.Equal(m, []byte(masked)) {
			masked, changed = string(m), true
		}
	}
	if changed || hasRun(w.data[start:end]) {
		w.replace(start, end, quote(masked))
	}
}

// hasRun: raw text that reads as a run of digits (escapes spelled out, as
// a person reads the stored text: "\u003000000000" shows 12 digits).
func hasRun(raw []byte) bool {
	_, changed := maskRuns(string(raw), true, false)
	if !changed {
		_, changed = maskRuns(string(raw), false, false)
	}
	return changed
}

// card rewrites the top-level card member of an intent: sealed (with no
// CVV) or reduced to its last four digits. ok is false when val is not a
// card the decoder reads.
func (w *walker) card(val []byte) (member []byte, ok bool) {
	c, err := intent.DecodeCard(val)
	if err != nil {
		return nil, false
	}
	if c.Number == "" {
		return nil, false // nothing to seal; a CVV goes as any other
	}
	c.SecurityCode = "" // never kept, sealed or not
	if !w.cardOnly {
		// Not a valid intent: sealing the card (without its CVV) could
		// make one of it, which a replay would charge.
		w.masked = true
	}
	if w.seal != nil {
		if jwe, err := w.seal.Encrypt(*c); err == nil {
			return append([]byte(`"encryptedCard":`), quote(jwe)...), true
		}
	}
	d := digitsOf(c.Number)
	last4 := d
	if len(d) > 4 {
		last4 = d[len(d)-4:]
	}
	brand := brandNames[intent.CardType(d)]
	if brand == "" {
		brand = "unknown brand"
	}
	w.removed = CardRemovedReason + " (" + brand + " ****" + last4 + ")"
	return append(append([]byte(`"card":{"number":`), quote("****"+last4)...), '}'), true
}

var brandNames = map[string]string{
	intent.CardTypeVisa: "visa", intent.CardTypeMastercard: "mastercard", intent.CardTypeAmex: "amex",
	intent.CardTypeDiscover: "discover", intent.CardTypeDiners: "diners", intent.CardTypeJCB: "jcb", intent.CardTypeMaestro: "maestro",
}

func (w *walker) copyTo(i int) {
	if i > w.last {
		w.out = append(w.out, w.data[w.last:i]...)
		w.last = i
	}
}

func (w *walker) replace(start, end int, with []byte) {
	w.masked = true
	w.copyTo(start)
	w.out = append(w.out, with...)
	w.last = end
}

func skipSeparators(b []byte) int {
	i := 0
	for i < len(b) && strings.IndexByte(" \t\r\n,:", b[i]) >= 0 {
		i++
	}
	return i
}

func quote(s string) []byte {
	b, _ := jsontext.AppendQuote(nil, s) // invalid UTF-8 becomes U+FFFD
	return b
}

func digitsOf(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// MinRun is the shortest run of digits masked: card numbers have 12 to 19
// digits, and a longer run may hold one (a number with its CVV or expiry
// run on).
const MinRun = 12

// maskRuns replaces every run of MinRun or more digits with "****" and the
// run's last four digits. A run may be broken by single spaces or dashes
// ("4111 1111 1111 1111"); with escapes (raw JSON text), a JSON escape of a
// digit (\u0034) counts as a digit and one of a separator (\u0020, \/, \t)
// as a separator.
func maskRuns(s string, escapes, stars bool) (string, bool) {
	var b strings.Builder
	changed := false
	for i := 0; i < len(s); {
		d, n := digitAt(s, i, escapes, stars)
		if n == 0 {
			b.WriteByte(s[i])
			i++
			continue
		}
		digits := []byte{d}
		j := i + n
		end := j
		for j < len(s) {
			if d, n := digitAt(s, j, escapes, stars); n > 0 {
				digits = append(digits, d)
				j += n
				end = j
				continue
			}
			if n := separatorAt(s, j, escapes); n > 0 {
				if _, m := digitAt(s, j+n, escapes, stars); m > 0 {
					j += n
					continue
				}
			}
			break
		}
		if len(digits) >= MinRun {
			b.WriteString("****")
			b.Write(digits[len(digits)-4:])
			changed = true
		} else {
			b.WriteString(s[i:end])
		}
		i = end
	}
	return b.String(), changed
}

// separatorAt returns the length in bytes of the separator between two
// groups of digits that starts at s[i], or 0: redact.SeparatorRun's, and
// with escapes (the text read as its JSON escapes decode), one whose
// characters may be written as JSON escapes ("4111\u00201111",
// "4111\/1111", "4111 \u002d 1111").
func separatorAt(s string, i int, escapes bool) int {
	if !escapes {
		return redact.SeparatorRun(s, i)
	}
	k := i
	var visible, spaces int
	for k < len(s) {
		r, size := escapedRune(s, k)
		if size == 0 {
			r, size = utf8.DecodeRuneInString(s[k:])
		}
		ok, invisible := redact.Separator(r)
		switch {
		case !ok:
			return k - i
		case invisible:
		case unicode.IsSpace(r):
			if spaces++; spaces > redact.MaxSeparatorSpaces {
				return k - i
			}
		default:
			if visible++; visible > redact.MaxSeparatorRunes {
				return k - i
			}
		}
		k += size
	}
	return k - i
}

// escapedRune decodes the JSON escape at s[i] (\uXXXX, also spelled \U, a
// surrogate pair of two such, or \t, \n, \r, \f, \b, \/, \", \\): the rune and the
// escape's length, or 0 when s[i] starts none.
func escapedRune(s string, i int) (rune, int) {
	if i+1 >= len(s) || s[i] != '\\' {
		return 0, 0
	}
	switch c := s[i+1]; c {
	case 'u', 'U':
		if i+6 > len(s) {
			return 0, 0
		}
		v, err := strconv.ParseUint(s[i+2:i+6], 16, 32)
		if err != nil {
			return 0, 0
		}
		r := rune(v)
		if utf16.IsSurrogate(r) && i+12 <= len(s) && s[i+6] == '\\' && (s[i+7] == 'u' || s[i+7] == 'U') {
			if v2, err := strconv.ParseUint(s[i+8:i+12], 16, 32); err == nil {
				if d := utf16.DecodeRune(r, rune(v2)); d != utf8.RuneError {
					return d, 12
				}
			}
		}
		if utf16.IsSurrogate(r) {
			return utf8.RuneError, 6 // a lone surrogate decodes to U+FFFD
		}
		return r, 6
	case 't':
		return '\t', 2
	case 'n':
		return '\n', 2
	case 'r':
		return '\r', 2
	case 'f':
		return '\f', 2
	case 'b':
		return '\b', 2
	case '/', '"', '\\':
		return rune(c), 2
	}
	return 0, 0
}

func digitAt(s string, i int, escapes, stars bool) (byte, int) {
	if i >= len(s) {
		return 0, 0
	}
	if stars && s[i] == '*' {
		return '*', 1 // a digit masked already
	}
	if c := s[i]; c >= '0' && c <= '9' {
		return c, 1
	}
	if escapes {
		// A JSON escape of a digit of any script (\u0034, \uff14, or a
		// surrogate pair for one beyond the BMP).
		if r, n := escapedRune(s, i); n > 0 {
			if d, ok := redact.Digit(r); ok {
				return d, n
			}
		}
	}
	if s[i] >= utf8.RuneSelf {
		// A digit of another script (fullwidth, Arabic-Indic) reads as one.
		r, size := utf8.DecodeRuneInString(s[i:])
		if d, ok := redact.Digit(r); ok {
			return d, size
		}
	}
	return 0, 0
}

// rawMember matches, in raw text, a member: a name (quoted with " or ',
// escapes allowed, or a bare word), a delimiter (":", "=>" or "=": JSON,
// Ruby's inspect, key = value) and the start of its value: a quoted string
// (possibly cut short), an opening bracket (an object or array value, which
// maskMembers follows to its end) or a bare token.
var rawMember = regexp.MustCompile(`("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[A-Za-z_][A-Za-z0-9_.-]*)(\s*(?::|=>|=)\s*)("(?:[^"\\]|\\.)*"?|'(?:[^'\\]|\\.)*'?|[{\[]|[^,}\]\s]*)`)

// maxEmbedded bounds how deep maskMembers looks into JSON carried in a
// string ("{\"body\": \"{\\\"cvv\\\": ...").
const maxEmbedded = 3

// maskRaw masks text that is not (or no longer) JSON: digit runs masked,
// then members named like a CVV dropped (display: their values shown as
// "***"), in this order so that a CVV member whose value runs on into a
// card number does not leave the rest of the number.
func maskRaw(b []byte, display bool) []byte {
	b = maskMembers(maskDigitText(b), display, maxEmbedded)
	// A CVV after a word rather than a member name ("cvv 737"): hide short
	// digit runs that follow one.
	return cvvWord.ReplaceAll(b, []byte("${1}***"))
}

// maskMembers drops the members of b named like a CVV (isCVVName), values
// that are objects or arrays included (display: the value is shown as
// "***"), and looks into quoted strings that carry JSON themselves (an
// escaped quote in them), depth levels down.
func maskMembers(b []byte, display bool, depth int) []byte {
	var out []byte
	last := 0
	for _, m := range rawMember.FindAllSubmatchIndex(b, -1) {
		if m[0] < last {
			continue // inside a value already dropped
		}
		name, value := b[m[2]:m[3]], b[m[6]:m[7]]
		if !isCVVName(rawName(string(name))) {
			if depth > 0 && len(value) > 1 && value[0] == '"' && bytes.Contains(value, []byte(`\"`)) {
				inner := rawName(string(value))
				if masked := maskMembers([]byte(inner), display, depth-1); !bytes.Equal(masked, []byte(inner)) {
					out = append(out, b[last:m[6]]...)
					out = append(out, quote(string(masked))...)
					last = m[7]
				}
			}
			continue
		}
		end := m[7]
		if len(value) == 1 && (value[0] == '{' || value[0] == '[') {
			end = m[6] + closingBracket(b[m[6]:])
		}
		out = append(out, b[last:m[0]]...)
		if display {
			out = append(out, b[m[2]:m[5]]...)
			out = append(out, `"***"`...)
		}
		last = end
	}
	if out == nil {
		return b
	}
	return append(out, b[last:]...)
}

// closingBracket returns the length of the object or array that b starts
// with, up to its closing bracket (quoted strings skipped), or len(b) when
// it is cut short.
func closingBracket(b []byte) int {
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1
			}
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
		}
	}
	return len(b)
}

// rawName is a member name of raw text as a reader sees it: quotes
// removed, JSON escapes decoded.
func rawName(s string) string {
	if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') {
		s = s[1 : len(s)-1]
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if r, n := escapedRune(s, i); n > 0 {
			b.WriteRune(r)
			i += n
			continue
		}
		b.WriteByte(s[i])
		i++
	}
	return b.String()
}

// maskDigitText masks digit runs in raw text, reading JSON escapes of
// digits as digits, and then their spelled-out digits too
// ("\u003000000000" shows a reader twelve).
func maskDigitText(b []byte) []byte {
	s, _ := maskRuns(string(b), true, false)
	s, _ = maskRuns(s, false, false)
	return []byte(s)
}

// maskDigitTextStars is maskDigitText with '*' counted as a digit, so that
// a masked number and digits next to it are judged as one run.
func maskDigitTextStars(b []byte) []byte {
	s, _ := maskRuns(string(b), true, true)
	s, _ = maskRuns(s, false, true)
	return []byte(s)
}

var cvvWord = regexp.MustCompile(`(?i)((?:security.?code|cvv2?|cvc2?|cvn|csc)\W{0,3})\d{3,4}\b`)

// isCVVName: a member name that holds a card security code, whatever its
// case or spelling (securityCode, SECURITY_CODE, ſecurityCode, cvv, CVV2,
// cvc, cvn, card_verification_value, cardCode; csc, cid, cvd, cav2 and cv2
// at the end: card_csc, cardCid).
func isCVVName(name string) bool {
	f := fold(name)
	for _, part := range []string{"securitycode", "cvv", "cvc", "cvn", "verificationvalue", "verificationcode", "cardcode"} {
		if strings.Contains(f, part) {
			return true
		}
	}
	for _, end := range []string{"csc", "cid", "cvd", "cav2", "cv2"} {
		if strings.HasSuffix(f, end) {
			return true
		}
	}
	return false
}

// isPANName: a member name that holds a card number.
func isPANName(name string) bool {
	switch f := fold(name); f {
	case "number", "pan", "cardnumber", "accountnumber", "primaryaccountnumber":
		return true
	default:
		return strings.HasSuffix(f, "cardnumber")
	}
}

// fold lowercases name to ASCII letters and digits: other characters are
// dropped, and a letter that case-folds to an ASCII letter (the Kelvin
// sign, the long s) becomes it.
func fold(name string) string {
	var b strings.Builder
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case r >= 'A' && r <= 'Z':
			b.WriteRune(r + 'a' - 'A')
		case r > unicode.MaxASCII:
			for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
				if f >= 'a' && f <= 'z' {
					b.WriteRune(f)
					break
				}
			}
		}
	}
	return b.String()
}
