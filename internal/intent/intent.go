// Package intent is the payment intent that upstream systems publish, version
// 1: its JSON shape, its decoding and validation (one message per broken
// field), and the CyberSource request the worker builds from it. The worker
// and the publisher share it.
package intent

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/ttcpay/payflow/internal/redact"
)

// MaxSize is the largest intent accepted, in bytes.
const MaxSize = 16 << 10

// Version is the only intent version this code reads.
const Version = 1

// Intent is a payment intent, version 1.
type Intent struct {
	Version    int    `json:"version"`
	IntentID   string `json:"intentId"`
	Integrator string `json:"integrator"`
	MerchantID string `json:"merchantId"`
	BookingID  string `json:"bookingId"`
	Reference  string `json:"reference"`
	Amount     string `json:"amount"`
	Currency   string `json:"currency"`
	Capture    *bool  `json:"capture,omitempty"`
	Tokenize   bool   `json:"tokenize,omitempty"`
	Card       *Card  `json:"card,omitempty"`
	// EncryptedCard is the card as a compact JWE (RSA-OAEP-256, A256GCM,
	// with a kid), decrypted by the worker only for the charge.
	EncryptedCard string  `json:"encryptedCard,omitempty"`
	BillTo        *BillTo `json:"billTo,omitempty"`

	// Card on file (optional): see Credential and StoredCard.
	CommerceIndicator string      `json:"commerceIndicator,omitempty"`
	Credential        *Credential `json:"credential,omitempty"`
	StoredCard        *StoredCard `json:"storedCard,omitempty"`

	// Settlement: Operation is "authorize" (the default) or one of capture,
	// reverse, void, refund on an earlier payment named by its intentId
	// (PaymentIntentID) or its CyberSource id (PaymentID). Amount is then
	// optional (default: all that is left) and Currency, when given, must
	// be the payment's.
	Operation       string `json:"operation,omitempty"`
	PaymentIntentID string `json:"paymentIntentId,omitempty"`
	PaymentID       string `json:"paymentId,omitempty"`
}

// Operations.
const (
	OpAuthorize = "authorize"
	OpCapture   = "capture"
	OpReverse   = "reverse"
	OpVoid      = "void"
	OpRefund    = "refund"
)

// Op is the intent's operation ("authorize" when none is given).
func (in *Intent) Op() string {
	if in.Operation == "" {
		return OpAuthorize
	}
	return in.Operation
}

// Captures reports whether the intent is a sale (true) or an authorization
// only (false).
func (in *Intent) Captures() bool { return in.Capture != nil && *in.Capture }

// Card is the card to charge. String and GoString mask the number and hide
// the security code.
type Card struct {
	Number          string `json:"number"`
	ExpirationMonth string `json:"expirationMonth"`
	ExpirationYear  string `json:"expirationYear"`
	SecurityCode    string `json:"securityCode,omitempty"`
}

func (c Card) String() string {
	return fmt.Sprintf("card{%s %s/%s}", MaskPAN(c.Number), c.ExpirationMonth, c.ExpirationYear)
}

// GoString masks too.
func (c Card) GoString() string { return c.String() }

// MaskPAN keeps the last four digits of a card number.
func MaskPAN(n string) string {
	if len(n) <= 4 {
		return "****"
	}
	return "****" + n[len(n)-4:]
}

// BillTo is the billing contact.
type BillTo struct {
	FirstName          string `json:"firstName"`
	LastName           string `json:"lastName"`
	Address1           string `json:"address1"`
	Address2           string `json:"address2,omitempty"`
	Locality           string `json:"locality"`
	AdministrativeArea string `json:"administrativeArea"`
	PostalCode         string `json:"postalCode"`
	Country            string `json:"country"`
	Email              string `json:"email"`
	PhoneNumber        string `json:"phoneNumber,omitempty"`
}

// Problem is one broken field.
type Problem struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ValidationError lists every broken field of an intent. Its text names
// fields, never card data.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Field + ": " + p.Message
	}
	return "invalid intent: " + strings.Join(parts, "; ")
}

// Decode reads and validates one intent. Any error is a *ValidationError:
// the intent is bad and will stay bad.
//
// Decoding is strict, so that every reader of the bytes, whatever its
// language or JSON library, sees the same intent: member names must be
// spelled exactly as in the schema (no case folding), may appear once
// (duplicate names are refused, not "last one wins"), and must be known;
// the text must be valid UTF-8 and hold one JSON object and nothing after it.
func Decode(data []byte, now time.Time) (*Intent, error) {
	in, err := Parse(data)
	if err != nil {
		return nil, err
	}
	if err := in.Validate(now); err != nil {
		return nil, err
	}
	return in, nil
}

// Parse reads one intent as strictly as Decode, without validating it: for
// a reader that must know which intent a refused message names (its
// record may hold an earlier, accepted delivery of it). Any error is a
// *ValidationError on field "intent".
func Parse(data []byte) (*Intent, error) {
	if len(data) > MaxSize {
		return nil, &ValidationError{[]Problem{{"intent", fmt.Sprintf("is %d bytes, more than the limit of %d", len(data), MaxSize)}}}
	}
	var in Intent
	if msg := unmarshalStrict(data, &in, "the intent"); msg != "" {
		return nil, &ValidationError{[]Problem{{"intent", "is not valid JSON for intent version 1: " + msg}}}
	}
	return &in, nil
}

// MaxCardSize is the largest card DecodeCard reads, in bytes.
const MaxCardSize = 1024

// DecodeCard reads a card on its own (the plaintext of an encryptedCard)
// as strictly as Decode reads an intent; it does not validate the card
// (see CheckCard). Any error is a *ValidationError on field "card".
func DecodeCard(data []byte) (*Card, error) {
	if len(data) > MaxCardSize {
		return nil, &ValidationError{[]Problem{{"card", fmt.Sprintf("is longer than %d bytes", MaxCardSize)}}}
	}
	var c Card
	if msg := unmarshalStrict(data, &c, "the card"); msg != "" {
		return nil, &ValidationError{[]Problem{{"card", "is not valid JSON: " + msg}}}
	}
	return &c, nil
}

// strictOptions: the decoder's defaults already refuse duplicate names,
// invalid UTF-8 and case-insensitive matches; they are spelled out so that
// a change of defaults cannot loosen them.
var strictOptions = json.JoinOptions(
	json.RejectUnknownMembers(true),
	json.MatchCaseInsensitiveNames(false),
	jsontext.AllowDuplicateNames(false),
	jsontext.AllowInvalidUTF8(false),
)

// unmarshalStrict decodes one JSON value (and nothing after it) into v, and
// describes what is wrong ("" when nothing is) without quoting the input:
// names it repeats are outside text (see outside), values are never shown.
// what names the top-level value ("the intent").
func unmarshalStrict(data []byte, v any, what string) string {
	if !utf8.Valid(data) {
		return fmt.Sprintf("the text is not valid UTF-8 (byte %d)", invalidUTF8At(data))
	}
	dec := jsontext.NewDecoder(bytes.NewReader(data), strictOptions)
	if err := json.UnmarshalDecode(dec, v, strictOptions); err != nil {
		return jsonProblem(err, what)
	}
	if _, err := dec.ReadToken(); !errors.Is(err, io.EOF) {
		return "data follows the JSON object"
	}
	return ""
}

// invalidUTF8At is the offset of the first byte that is not valid UTF-8.
func invalidUTF8At(data []byte) int {
	for i := 0; i < len(data); {
		r, n := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return len(data)
}

// jsonProblem describes a decoding error from its parts, never from its
// text (which quotes the input).
func jsonProblem(err error, what string) string {
	var syn *jsontext.SyntacticError
	var sem *json.SemanticError
	switch {
	case errors.As(err, &syn) && errors.Is(syn.Err, jsontext.ErrDuplicateName):
		return "duplicate field " + fieldPath(syn.JSONPointer) + " (each field may appear once)"
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "unexpected end of input"
	case errors.As(err, &syn):
		// Includes escapes that are not valid UTF-16 (a lone surrogate).
		msg := fmt.Sprintf("syntax error at byte %d", syn.ByteOffset)
		if syn.JSONPointer != "" {
			msg += " in " + fieldPath(syn.JSONPointer)
		}
		return msg
	case errors.As(err, &sem) && errors.Is(sem.Err, json.ErrUnknownName):
		return "unknown field " + fieldPath(sem.JSONPointer) + " (names are case-sensitive and spelled as in the schema)"
	case errors.As(err, &sem) && sem.JSONPointer == "":
		return what + " must be a JSON object, not " + jsonKind(sem.JSONKind)
	case errors.As(err, &sem):
		want := goKind(sem.GoType)
		if got := jsonKind(sem.JSONKind); got != want {
			return fmt.Sprintf("field %s must be %s, not %s", fieldPath(sem.JSONPointer), want, got)
		}
		return fmt.Sprintf("field %s has a value out of range", fieldPath(sem.JSONPointer))
	}
	return "malformed"
}

func jsonKind(k jsontext.Kind) string {
	switch k {
	case 'n':
		return "null"
	case 't', 'f':
		return "a boolean"
	case '"':
		return "a string"
	case '0':
		return "a number"
	case '{':
		return "an object"
	case '[':
		return "an array"
	}
	return "another kind of value"
}

// goKind names, as a JSON kind, what a Go type is decoded from.
func goKind(t reflect.Type) string {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return "another kind of value"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return "another kind of value"
}

// fieldPath writes a JSON pointer as a dotted field path, each name as
// outside text.
func fieldPath(p jsontext.Pointer) string {
	var names []string
	for name := range p.Tokens() {
		names = append(names, name)
	}
	return outside(strings.Join(names, "."))
}

// outside quotes text that came from the input for an error message: every
// digit is masked (a card number may hide in any field, in any spelling:
// with spaces, dashes, split by escapes), anything but printable ASCII is
// escaped (so a Kelvin sign shows as \u212a), and the result goes through
// redact.Digits, which caps its length. Known field names are kept as they
// are ("address1").
func outside(s string) string {
	if !isKnownName(s) {
		s = strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return '#'
			}
			return r
		}, s)
	}
	return redact.Digits(strconv.QuoteToASCII(s))
}

// isKnownName reports whether s is a field name or dotted path of the
// schema, such as "billTo.address1".
func isKnownName(s string) bool {
	for name := range strings.SplitSeq(s, ".") {
		if !knownNames()[name] {
			return false
		}
	}
	return true
}

// knownNames are the JSON names of the intent's fields, read from the
// struct tags once.
var knownNames = sync.OnceValue(func() map[string]bool {
	names := map[string]bool{}
	for _, v := range []any{Intent{}, Card{}, BillTo{}, Credential{}, StoredCard{}} {
		t := reflect.TypeOf(v)
		for i := range t.NumField() {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
			names[name] = true
		}
	}
	return names
})

// Validate checks every field and returns a *ValidationError listing each
// problem, or nil.
func (in *Intent) Validate(now time.Time) error {
	var ps []Problem
	bad := func(field, msg string) { ps = append(ps, Problem{field, msg}) }

	if in.Version != Version {
		// The value is not quoted: it is outside text (a card number, once).
		bad("version", fmt.Sprintf("must be %d", Version))
	}
	checkID(bad, "intentId", in.IntentID, 64, true)
	checkID(bad, "integrator", in.Integrator, 64, false)
	checkID(bad, "merchantId", in.MerchantID, 64, false)
	switch in.Op() {
	case OpAuthorize:
		in.validateAuthorize(bad, now)
	case OpCapture, OpReverse, OpVoid, OpRefund:
		in.validateOperation(bad)
	default:
		bad("operation", outside(in.Operation)+" is not authorize, capture, reverse, void or refund")
	}
	if len(ps) > 0 {
		return &ValidationError{ps}
	}
	return nil
}

func (in *Intent) validateAuthorize(bad func(string, string), now time.Time) {
	checkText(bad, "bookingId", in.BookingID, 64)
	checkText(bad, "reference", in.Reference, 50)
	decimals, knownCurrency := MinorUnits(in.Currency)
	switch {
	case in.Currency == "":
		bad("currency", "is required")
	case !knownCurrency:
		bad("currency", "is not an ISO 4217 currency code")
	}
	if msg := checkAmount(in.Amount, decimals, knownCurrency); msg != "" {
		bad("amount", msg)
	}
	if in.Capture == nil {
		bad("capture", "is required (true: sale, false: authorize only)")
	}
	given := 0
	for _, set := range []bool{in.Card != nil, in.StoredCard != nil, in.EncryptedCard != ""} {
		if set {
			given++
		}
	}
	switch {
	case given == 0:
		bad("card", "is required (or encryptedCard, or storedCard to pay with TMS tokens)")
	case given > 1:
		bad("card", "give exactly one of card, encryptedCard, storedCard")
	case in.Card != nil:
		checkCard(bad, in.Card, now)
	case in.EncryptedCard != "":
		if len(in.EncryptedCard) > 8192 || !isCompactJWE(in.EncryptedCard) {
			bad("encryptedCard", "must be a compact JWE (five base64url parts separated by dots), at most 8192 characters")
		}
	}
	if in.BillTo == nil {
		bad("billTo", "is required")
	} else {
		checkBillTo(bad, in.BillTo)
	}
	if in.PaymentIntentID != "" || in.PaymentID != "" {
		bad("paymentIntentId", "only settlement operations name an earlier payment")
	}
	in.checkCredential(bad)
}

// MaxSettlementCode is CyberSource's limit on clientReferenceInformation.code,
// which a settlement operation fills with its reference, or its intentId
// when it has none.
const MaxSettlementCode = 50

func (in *Intent) validateOperation(bad func(string, string)) {
	op := in.Op()
	switch {
	case in.PaymentIntentID == "" && in.PaymentID == "":
		bad("paymentIntentId", op+" must name the payment: paymentIntentId or paymentId")
	case in.PaymentIntentID != "" && in.PaymentID != "":
		bad("paymentId", "give paymentIntentId or paymentId, not both")
	case in.PaymentIntentID != "":
		checkID(bad, "paymentIntentId", in.PaymentIntentID, 64, true)
		if in.PaymentIntentID == in.IntentID {
			bad("paymentIntentId", "names this intent itself: a "+op+" acts on an earlier payment, under an intentId of its own")
		}
	default:
		switch {
		case len(in.PaymentID) > 32 || !allDigits(in.PaymentID):
			bad("paymentId", "must be a CyberSource payment id (digits)")
		case len(in.PaymentID) <= 19 && redact.LooksLikeCard(in.PaymentID):
			// CyberSource's ids have 22 digits; 12 to 19 that pass the
			// Luhn check are a card number, which must reach no log.
			bad("paymentId", "looks like a card number, not a CyberSource payment id (22 digits)")
		}
	}
	if in.BookingID != "" {
		checkText(bad, "bookingId", in.BookingID, 64)
	}
	if in.Reference != "" {
		checkText(bad, "reference", in.Reference, 50)
	} else if len(in.IntentID) > MaxSettlementCode {
		bad("intentId", fmt.Sprintf("is longer than %d characters: a %s without a reference sends its intentId as clientReferenceInformation.code, which CyberSource limits to %d; give a reference or a shorter intentId", MaxSettlementCode, op, MaxSettlementCode))
	}
	if in.Currency != "" {
		if _, ok := MinorUnits(in.Currency); !ok {
			bad("currency", "is not an ISO 4217 currency code")
		}
	}
	if in.Amount != "" {
		if op == OpVoid {
			bad("amount", "a void cancels the whole transaction: give no amount")
		} else {
			decimals, known := MinorUnits(in.Currency)
			if in.Currency == "" {
				bad("currency", "is required with an amount (the payment's currency)")
			} else if msg := checkAmount(in.Amount, decimals, known); msg != "" {
				bad("amount", msg)
			}
		}
	}
	for field, set := range map[string]bool{
		"card": in.Card != nil, "storedCard": in.StoredCard != nil, "billTo": in.BillTo != nil, "encryptedCard": in.EncryptedCard != "",
		"capture": in.Capture != nil, "tokenize": in.Tokenize, "credential": in.Credential != nil,
		"commerceIndicator": in.CommerceIndicator != "",
	} {
		if set {
			bad(field, "does not belong on a "+op+" (it acts on an existing payment)")
		}
	}
}

// ValidMerchantID reports whether s is a merchantId an intent may carry:
// 1 to 64 letters, digits, '-' or '_' (so never a NATS wildcard).
func ValidMerchantID(s string) bool {
	ok := true
	checkID(func(string, string) { ok = false }, "merchantId", s, 64, false)
	return ok
}

func checkID(bad func(string, string), field, v string, max int, dots bool) {
	if v == "" {
		bad(field, "is required")
		return
	}
	if len(v) > max {
		bad(field, fmt.Sprintf("is longer than %d characters", max))
		return
	}
	for _, r := range v {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || (dots && r == '.')
		if !ok {
			allowed := "letters, digits, '-' and '_'"
			if dots {
				allowed = "letters, digits, '-', '_' and '.'"
			}
			bad(field, "may contain only "+allowed)
			return
		}
	}
	if redact.LooksLikeCard(v) {
		// Ids go to logs, traces, record keys and headers: never card data.
		bad(field, "looks like a card number (12 to 19 digits that pass the Luhn check): ids must never carry card data")
	}
}

func checkText(bad func(string, string), field, v string, max int) {
	switch {
	case strings.TrimSpace(v) == "":
		bad(field, "is required")
	case len(v) > max:
		bad(field, fmt.Sprintf("is longer than %d characters", max))
	default:
		for _, r := range v {
			if r < 0x20 || r > 0x7e {
				bad(field, "may contain only printable ASCII")
				return
			}
		}
		if redact.LooksLikeCard(v) {
			// Booking ids and references go to CyberSource, TTC's
			// callback, results and logs: never card data.
			bad(field, cardLikeMessage)
		}
	}
}

// checkAmount: a plain decimal string, > 0, with no more decimals than the
// currency's minor unit.
func checkAmount(s string, decimals int, knownCurrency bool) string {
	if s == "" {
		return "is required"
	}
	whole, frac, dot := strings.Cut(s, ".")
	if whole == "" || (dot && frac == "") || !allDigits(whole) || !allDigits(frac) {
		return "must be a decimal string such as \"102.21\" (digits, one optional '.', no sign)"
	}
	if len(whole) > 1 && whole[0] == '0' {
		return "must not have leading zeros"
	}
	if len(whole) > 12 {
		return "is too large"
	}
	if knownCurrency && len(frac) > decimals {
		return fmt.Sprintf("has %d decimals; the currency allows %d", len(frac), decimals)
	}
	if strings.Trim(whole+frac, "0") == "" {
		return "must be greater than zero"
	}
	return ""
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// CheckCard validates a card on its own (a decrypted encryptedCard).
func CheckCard(c *Card, now time.Time) error {
	var ps []Problem
	checkCard(func(f, m string) { ps = append(ps, Problem{f, m}) }, c, now)
	if len(ps) > 0 {
		return &ValidationError{ps}
	}
	return nil
}

func checkCard(bad func(string, string), c *Card, now time.Time) {
	switch {
	case c.Number == "":
		bad("card.number", "is required")
	case !allDigits(c.Number):
		bad("card.number", "must be digits only")
	case len(c.Number) < 12 || len(c.Number) > 19:
		bad("card.number", "must have 12 to 19 digits")
	case !Luhn(c.Number):
		bad("card.number", "fails the Luhn check")
	case CardType(c.Number) == "":
		bad("card.number", "is of a card brand that is not supported")
	}
	month, merr := strconv.Atoi(c.ExpirationMonth)
	monthOK := len(c.ExpirationMonth) == 2 && allDigits(c.ExpirationMonth) && merr == nil && month >= 1 && month <= 12
	if !monthOK {
		bad("card.expirationMonth", "must be two digits, 01 to 12")
	}
	year, yerr := strconv.Atoi(c.ExpirationYear)
	yearOK := len(c.ExpirationYear) == 4 && yerr == nil && allDigits(c.ExpirationYear)
	if !yearOK {
		bad("card.expirationYear", "must be four digits")
	}
	if monthOK && yearOK {
		// A card is valid through the last day of its expiry month.
		end := time.Date(year, time.Month(month)+1, 1, 0, 0, 0, 0, time.UTC)
		if !now.Before(end) {
			bad("card", "has expired")
		} else if year > now.Year()+20 {
			bad("card.expirationYear", "is too far in the future")
		}
	}
	if c.SecurityCode != "" {
		want := 3
		if CardType(c.Number) == CardTypeAmex {
			want = 4
		}
		if len(c.SecurityCode) != want || !allDigits(c.SecurityCode) {
			bad("card.securityCode", fmt.Sprintf("must be %d digits for this card", want))
		}
	}
}

func checkBillTo(bad func(string, string), b *BillTo) {
	req := func(field, v string, max int) {
		checkTextUTF8(bad, "billTo."+field, v, max)
	}
	req("firstName", b.FirstName, 60)
	req("lastName", b.LastName, 60)
	req("address1", b.Address1, 60)
	req("locality", b.Locality, 50)
	req("administrativeArea", b.AdministrativeArea, 20)
	req("postalCode", b.PostalCode, 10)
	if len(b.Country) != 2 || strings.ToUpper(b.Country) != b.Country || !isLetters(b.Country) {
		bad("billTo.country", "must be an ISO 3166 two-letter country code such as US")
	}
	at := strings.LastIndexByte(b.Email, '@')
	if at < 1 || !strings.Contains(b.Email[at+1:], ".") || utf8.RuneCountInString(b.Email) > 255 ||
		!utf8.ValidString(b.Email) || strings.ContainsFunc(b.Email, func(r rune) bool { return invisible(r) || unicode.IsSpace(r) }) {
		bad("billTo.email", "must be an email address")
	}
	if b.PhoneNumber != "" {
		digits := strings.TrimPrefix(b.PhoneNumber, "+")
		if len(b.PhoneNumber) > 15 || digits == "" || !allDigits(digits) {
			bad("billTo.phoneNumber", "must be up to 15 characters: digits, after an optional '+'")
		}
	}
	switch {
	case utf8.RuneCountInString(b.Address2) > 60:
		bad("billTo.address2", "is longer than 60 characters")
	case !utf8.ValidString(b.Address2) || strings.ContainsFunc(b.Address2, invisible):
		bad("billTo.address2", invisibleMessage)
	case redact.LooksLikeCard(b.Address2):
		bad("billTo.address2", cardLikeMessage)
	}
}

// invisible reports the characters a text field may not hold: control
// characters (C0, DEL, C1), zero-width characters (U+200B..U+200D, U+2060,
// U+FEFF), the line and paragraph separators and the bidirectional
// embeddings, overrides and isolates (U+2028..U+202E, U+2066..U+2069). They
// hide what a person reads, or break the logs and headers that carry the
// text. docs/intent.schema.json refuses the same set.
func invisible(r rune) bool {
	switch {
	case r < 0x20, r >= 0x7f && r <= 0x9f:
		return true
	case r >= 0x200b && r <= 0x200d, r == 0x2060, r == 0xfeff:
		return true
	case r >= 0x2028 && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}

const invisibleMessage = "contains control or invisible characters (or is not valid UTF-8)"

// checkTextUTF8: required, at most max characters, valid UTF-8, nothing
// invisible, not only white space.
func checkTextUTF8(bad func(string, string), field, v string, max int) {
	switch {
	case strings.TrimSpace(v) == "":
		bad(field, "is required")
	case utf8.RuneCountInString(v) > max:
		bad(field, fmt.Sprintf("is longer than %d characters", max))
	case !utf8.ValidString(v) || strings.ContainsFunc(v, invisible):
		bad(field, invisibleMessage)
	case redact.LooksLikeCard(v):
		bad(field, cardLikeMessage)
	}
}

// cardLikeMessage refuses a text field that holds what looks like a card
// number: text fields reach CyberSource, TTC, results, records and logs.
const cardLikeMessage = "looks like a card number (12 to 19 digits that pass the Luhn check): it must never carry card data"

// isCompactJWE: five base64url parts separated by dots, the protected header
// and the ciphertext not empty (what the schema's pattern says).
func isCompactJWE(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 5 || parts[0] == "" || parts[3] == "" {
		return false
	}
	for _, p := range parts {
		for i := 0; i < len(p); i++ {
			c := p[i]
			if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

func isLetters(s string) bool {
	for _, r := range s {
		if r < 'A' || r > 'Z' {
			return false
		}
	}
	return true
}

// Luhn reports whether a digit string passes the Luhn check.
func Luhn(n string) bool {
	sum, double := 0, false
	for i := len(n) - 1; i >= 0; i-- {
		d := int(n[i] - '0')
		if double {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return len(n) > 0 && sum%10 == 0
}

// CyberSource card type codes of the supported brands.
const (
	CardTypeVisa       = "001"
	CardTypeMastercard = "002"
	CardTypeAmex       = "003"
	CardTypeDiscover   = "004"
	CardTypeDiners     = "005"
	CardTypeJCB        = "007"
	CardTypeMaestro    = "042"
)

// CardType detects the brand of a card number and returns CyberSource's
// three-digit code, or "" when the brand is not supported.
func CardType(n string) string {
	prefix := func(k int) int {
		if len(n) < k {
			return -1
		}
		v, _ := strconv.Atoi(n[:k])
		return v
	}
	switch p2, p3, p4 := prefix(2), prefix(3), prefix(4); {
	case len(n) > 0 && n[0] == '4':
		return CardTypeVisa
	case p2 >= 51 && p2 <= 55, p4 >= 2221 && p4 <= 2720:
		return CardTypeMastercard
	case p2 == 34 || p2 == 37:
		return CardTypeAmex
	case p4 == 6011, p2 == 65, p3 >= 644 && p3 <= 649:
		return CardTypeDiscover
	case p2 == 36 || p2 == 38 || p2 == 39, p3 >= 300 && p3 <= 305:
		return CardTypeDiners
	case p4 >= 3528 && p4 <= 3589:
		return CardTypeJCB
	case p2 == 50, p2 >= 56 && p2 <= 69:
		return CardTypeMaestro
	}
	return ""
}

// TransactionID is clientReferenceInformation.transactionId of an attempt:
// unique per intent and attempt, short, and the same whoever computes it.
func TransactionID(intentID string, attempt int) string {
	h := sha256.Sum256([]byte(intentID))
	return hex.EncodeToString(h[:10]) + "-" + strconv.Itoa(attempt)
}

// AmountScale is how many units of AmountUnits make one currency unit: it
// holds every ISO 4217 minor unit (up to four decimals).
const AmountScale = 10000

// AmountUnits reads a validated decimal amount as ten-thousandths.
func AmountUnits(s string) (int64, error) {
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" || !allDigits(whole) || !allDigits(frac) || len(frac) > 4 || len(whole) > 13 {
		return 0, fmt.Errorf("amount %q is not a decimal with at most 4 decimals", redact.Digits(s))
	}
	w, _ := strconv.ParseInt(whole, 10, 64)
	for len(frac) < 4 {
		frac += "0"
	}
	f, _ := strconv.ParseInt(frac, 10, 64)
	return w*AmountScale + f, nil
}

// FormatAmount writes ten-thousandths with the currency's decimals.
func FormatAmount(units int64, currency string) string {
	d, ok := MinorUnits(currency)
	if !ok {
		d = 2
	}
	s := strconv.FormatInt(units/AmountScale, 10)
	if d == 0 {
		return s
	}
	frac := strconv.FormatInt(units%AmountScale+AmountScale, 10)[1:]
	return s + "." + frac[:d]
}

// String describes an intent without card data, for logs and errors.
func (in *Intent) String() string {
	card := "none"
	switch {
	case in.Card != nil:
		card = MaskPAN(in.Card.Number)
	case in.StoredCard != nil:
		card = "stored"
	}
	return fmt.Sprintf("intent{%s %s %s/%s %s %s capture:%v card:%s}", in.IntentID, in.Op(), in.Integrator, in.MerchantID, in.Amount, in.Currency, in.Captures(), card)
}

// GoString describes it the same way.
func (in *Intent) GoString() string { return in.String() }
