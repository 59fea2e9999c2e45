package deadletter_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ttcpay/payflow/internal/cardcrypt"
	"github.com/ttcpay/payflow/internal/deadletter"
	"github.com/ttcpay/payflow/internal/intent"
)

// validIntent is a valid intent with a plaintext card and a CVV, written
// with spacing and member order of its own (a scrub keeps both).
const validIntent = `{"version":1, "intentId":"s-1","integrator":"costco","merchantId":"m1","bookingId":"B-1","reference":"REF-1",
 "amount":"10.00","currency":"USD","capture":true,
 "card": {"number":"4111111111111111","expirationMonth":"12","expirationYear":"2031","securityCode":"737"},
 "billTo":{"firstName":"John","lastName":"Doe","address1":"1 Market St","locality":"SF","administrativeArea":"CA","postalCode":"94105","country":"US","email":"a@b.co"}}`

func dlqKey(t testing.TB) (*cardcrypt.Recipient, *cardcrypt.Keyring) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	priv := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Headers: map[string]string{"kid": "dlq-1"}, Bytes: der})
	ring, err := cardcrypt.ParseKeyring(priv)
	if err != nil {
		t.Fatal(err)
	}
	r, err := cardcrypt.ParseRecipient(priv)
	if err != nil {
		t.Fatal(err)
	}
	return r, ring
}

// cardData finds what a dead letter must never hold.
var cardData = regexp.MustCompile(`4111111111111111|5555555555554444|"737"|737"|securityCode`)

func TestScrubValidIntentSealed(t *testing.T) {
	key, ring := dlqKey(t)
	out, removed := deadletter.NewScrubber(key).Payload([]byte(validIntent))
	if removed != "" || cardData.Match(out) {
		t.Fatalf("removed %q, payload %s", removed, out)
	}
	in, err := intent.Decode(out, time.Now())
	if err != nil {
		t.Fatalf("the sealed payload is not a valid intent: %v\n%s", err, out)
	}
	c, err := ring.Decrypt(in.EncryptedCard)
	if err != nil || c.Number != "4111111111111111" || c.ExpirationMonth != "12" || c.ExpirationYear != "2031" || c.SecurityCode != "" {
		t.Fatalf("sealed card %v %v", c, err)
	}
	// Everything but the card member is kept byte for byte.
	before, after, _ := strings.Cut(validIntent, `"card": {`)
	_, after, _ = strings.Cut(after, "},")
	if !bytes.HasPrefix(out, []byte(before+`"encryptedCard":"`)) || !bytes.HasSuffix(out, []byte(","+after)) {
		t.Fatalf("the rest of the payload changed:\n%s", out)
	}
}

func TestScrubValidIntentWithoutKey(t *testing.T) {
	for _, s := range []*deadletter.Scrubber{nil, deadletter.NewScrubber(nil)} {
		out, removed := s.Payload([]byte(validIntent))
		if removed != deadletter.CardRemovedReason+" (visa ****1111)" || cardData.Match(out) || !bytes.Contains(out, []byte(`"card":{"number":"****1111"}`)) {
			t.Fatalf("removed %q, payload %s", removed, out)
		}
		// Still JSON the decoder reads: refused by validation, not parsing.
		_, err := intent.Decode(out, time.Now())
		var ve *intent.ValidationError
		if !json.Valid(out) || !errors.As(err, &ve) || ve.Problems[0].Field == "intent" {
			t.Fatalf("decode: %v\n%s", err, out)
		}
	}
}

// TestScrubInvalidPayloads: what is not a valid intent has every card-like
// digit run masked, its card sealed or removed and every CVV dropped, stays
// JSON where it was JSON, and is marked so that replay refuses it (sealing
// a card without its CVV, or masking a long field, could turn it into a
// valid intent).
func TestScrubInvalidPayloads(t *testing.T) {
	key, _ := dlqKey(t)
	cases := []struct {
		name, payload string
		json          bool // the scrubbed payload is still JSON
	}{
		{"VersionHoldsCard", strings.Replace(validIntent, `"version":1`, `"version":4111111111111111`, 1), true},
		{"CaseVariants", strings.Replace(validIntent, `"card": {"number"`, `"Card": {"Number"`, 1), true},
		{"UnknownCVVField", strings.Replace(validIntent, `"capture":true`, `"capture":true,"cvv":"737"`, 1), true},
		{"DuplicateCVV", strings.Replace(validIntent, `"securityCode":"737"`, `"securityCode":"737","securityCode":"737"`, 1), true},
		{"DuplicateAmount", strings.Replace(validIntent, `"amount":"10.00"`, `"amount":"10.00","amount":"1999.00"`, 1), true},
		{"LongReferenceWithCard", strings.Replace(validIntent, `"reference":"REF-1"`, `"reference":"REF 4111111111111111 and more text to pass fifty chars"`, 1), true},
		{"Truncated", validIntent[:strings.Index(validIntent, `"737"`)+4], false},
		{"TruncatedInNumber", validIntent[:strings.Index(validIntent, `1111","exp`)], false},
		{"NotJSON", "number 4111 1111 1111 1111 cvv 737", false},
		{"InvalidUTF8", strings.Replace(validIntent, `"John"`, "\"J\xffohn\"", 1), true},
		{"BadCVVLength", strings.Replace(validIntent, `"securityCode":"737"`, `"securityCode":"73"`, 1), true},
		{"Expired", strings.Replace(validIntent, `"expirationYear":"2031"`, `"expirationYear":"2020"`, 1), true},
		{"TrailingData", validIntent + ` {"card":{"number":"4111111111111111","securityCode":"737"}}`, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, s := range []*deadletter.Scrubber{nil, deadletter.NewScrubber(key)} {
				out, removed := s.Payload([]byte(tc.payload))
				if cardData.Match(out) || regexp.MustCompile(`\d{12}`).Match(out) {
					t.Fatalf("card data kept:\n%s", out)
				}
				if removed == "" || !strings.Contains(removed, "republish from upstream") {
					t.Errorf("not marked: %q", removed)
				}
				if tc.json && !json.Valid(bytes.ToValidUTF8(out, []byte("?"))) {
					t.Errorf("no longer JSON:\n%s", out)
				}
				// Marked: whatever it reads as now, replay refuses it.
				if err := deadletter.CheckReplay(deadletter.Letter{Kind: deadletter.KindIntents, CardRemoved: removed,
					OriginalSubject: "payments.intents.m1", MerchantID: "m1"}); !errors.Is(err, deadletter.ErrCardRemoved) {
					t.Errorf("replayable: %v", err)
				}
			}
		})
	}
}

// TestScrubLeavesCardlessPayloadsAlone: an intent without a plaintext card
// (encrypted, stored card, a settlement) is kept as it is, and so is an
// invalid payload that holds nothing card-like.
func TestScrubLeavesCardlessPayloadsAlone(t *testing.T) {
	for _, p := range []string{
		`{"version":1,"intentId":"c-1","integrator":"costco","merchantId":"m1","operation":"capture","paymentId":"7012345678901234567890"}`,
		`{"version":2,"intentId":"x"}`,
		`not json at all`,
		`{"card":{"expirationMonth":"12"}}`,
	} {
		out, removed := deadletter.NewScrubber(nil).Payload([]byte(p))
		if string(out) != p || removed != "" {
			t.Errorf("%s became %s (%q)", p, out, removed)
		}
	}
}

func TestScrubLetterCallbacksUntouched(t *testing.T) {
	l := deadletter.Letter{Kind: deadletter.KindCallbacks, Data: []byte(`{"x":"4111111111111111"}`)}
	if got := deadletter.NewScrubber(nil).Letter(l); string(got.Data) != string(l.Data) || got.CardRemoved != "" {
		t.Fatalf("%+v", got)
	}
	l.Kind = deadletter.KindIntents
	if got := deadletter.NewScrubber(nil).Letter(l); cardData.Match(got.Data) || got.CardRemoved != deadletter.MaskedReason {
		t.Fatalf("%s %q", got.Data, got.CardRemoved)
	}
}

// FuzzScrub: whatever the payload, a scrubbed one that is not a valid
// intent holds no run of 12 or more digits (plain, spaced, dashed or
// escaped; read as written or with its escapes decoded), nor does `dlq show` of it; and a payload that was not a valid
// intent is either kept byte for byte or marked not replayable.
func FuzzScrub(f *testing.F) {
	for _, s := range []string{validIntent, `{"card":{"number":"4111111111111111","securityCode":"737"`, `"\u0034111111111111111"`,
		`{"version":4111111111111111}`, "4111 1111 1111 1111", `{"a":[1,{"cvv":737}],"b":"4111-1111-1111-1111"}`,
		`{"card":{"number":"4111\u00201111\/1111\t1111`} {
		f.Add([]byte(s))
	}
	// Two readings of the text: as written (an escape's hex digits are
	// digits), and with its JSON escapes decoded (reviewEscDecode).
	runs := regexp.MustCompile(`(?:\d|\\u003\d)(?:[ -]?(?:\d|\\u003\d)){11}`)
	decodedRuns := regexp.MustCompile(`\d(?:[ \t/-]?\d){11}`)
	f.Fuzz(func(t *testing.T, data []byte) {
		now := time.Now()
		out, removed := deadletter.NewScrubber(nil).Payload(data)
		_, err := intent.Decode(data, now)
		if err == nil {
			return // a valid intent keeps its ids; only its card changes
		}
		if removed == "" && !bytes.Equal(out, data) {
			t.Fatalf("%q changed to %q and left replayable", data, out)
		}
		if m := runs.Find(out); m != nil {
			t.Fatalf("digit run %q kept in %q (from %q)", m, out, data)
		}
		if m := decodedRuns.FindString(reviewEscDecode(string(out))); m != "" {
			t.Fatalf("digit run %q kept in %q, escapes decoded (from %q)", m, out, data)
		}
		masked := deadletter.MaskedPayload(data)
		if m := runs.FindString(masked); m != "" {
			t.Fatalf("dlq show shows digit run %q of %q", m, data)
		}
		if m := decodedRuns.FindString(reviewEscDecode(masked)); m != "" {
			t.Fatalf("dlq show shows digit run %q of %q, escapes decoded", m, data)
		}
	})
}
