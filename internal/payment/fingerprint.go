package payment

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/ttcpay/payflow/internal/intent"
)

// Fingerprint is what an intent asks for, as the record keeps it: the same
// intentId asking for something else is a conflict, never a replay of
// another intent's result. It covers merchant, integrator, operation,
// target, amount, currency, capture, the card or the stored-card tokens,
// and the card-on-file statement. The reference, booking and billing
// contact are not in it: a corrected address is the same payment.
//
// It has two parts, "F|G" (idempotency.FingerprintsConflict): F over the
// whole intent, G over everything but the card, so that a pod that cannot
// read the card (a key it lacks) still tells another intent apart. F
// names its scheme: "u1" here, where the card is its brand, first six and
// last four digits and expiry (what PCI DSS allows to be shown), so two
// cards that share all of them are the same card to it;
// FingerprintWithKey covers the whole number.
func Fingerprint(in *intent.Intent) string {
	sum := sha256.Sum256([]byte(canonical(in, cardTruncated)))
	return "u1:" + hex.EncodeToString(sum[:16]) + "|" + cardless(in)
}

// FingerprintWithKey is the fingerprint whose F is keyed with HMAC-SHA256
// and covers the whole card number: without the key it cannot be reversed
// to a number, however small the space of numbers that share a BIN and last
// four digits. Its scheme names the key (the first bytes of its hash), so
// F parts under different keys are never compared: a key rotation, or a
// pod that has no key yet, is not a conflict (G still is).
func FingerprintWithKey(in *intent.Intent, key []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(canonical(in, cardWhole)))
	id := sha256.Sum256(key)
	return "k" + hex.EncodeToString(id[:4]) + ":" + hex.EncodeToString(m.Sum(nil)[:16]) + "|" + cardless(in)
}

// CardlessFingerprint is the fingerprint a pod that cannot read the card
// claims with: its G part alone.
func CardlessFingerprint(in *intent.Intent) string { return "|" + cardless(in) }

func cardless(in *intent.Intent) string {
	sum := sha256.Sum256([]byte(canonical(in, cardNone)))
	return hex.EncodeToString(sum[:16])
}

// fingerprint is the fingerprint this processor claims with (Fingerprints
// under its FINGERPRINT_KEYS).
func (p *Processor) fingerprint(in *intent.Intent) string {
	return Fingerprints(in, p.cfg.FingerprintKeys)
}

// Fingerprints is the fingerprint a pod claims with: the card's part under
// every configured key and unkeyed, then the cardless part. A record
// written by a pod with other keys (a rotation, keys being added) shares
// at least the unkeyed scheme with it, so another card under the same
// intentId is a conflict whatever the pods' keys
// (idempotency.FingerprintsConflict).
func Fingerprints(in *intent.Intent, keys [][]byte) string {
	fs := make([]string, 0, len(keys)+1)
	for _, k := range keys {
		f, _, _ := strings.Cut(FingerprintWithKey(in, k), "|")
		fs = append(fs, f)
	}
	f, g, _ := strings.Cut(Fingerprint(in), "|")
	return strings.Join(append(fs, f), ",") + "|" + g
}

// How canonical writes the card.
const (
	cardNone = iota
	cardTruncated
	cardWhole
)

func canonical(in *intent.Intent, card int) string {
	var b strings.Builder
	field := func(name, v string) {
		b.WriteString(name)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(v))
		b.WriteByte(';')
	}
	field("merchant", in.MerchantID)
	field("integrator", in.Integrator)
	field("op", in.Op())
	field("paymentIntentId", in.PaymentIntentID)
	field("paymentId", in.PaymentID)
	field("amount", in.Amount)
	field("currency", in.Currency)
	field("capture", strconv.FormatBool(in.Captures()))
	field("tokenize", strconv.FormatBool(in.Tokenize))
	if c := in.Card; c != nil && card != cardNone {
		number := c.Number
		if card == cardTruncated && len(number) >= 10 {
			number = number[:6] + "/" + number[len(number)-4:]
		}
		field("card", intent.CardType(c.Number)+"/"+number+"/"+c.ExpirationMonth+"/"+c.ExpirationYear)
	}
	if sc := in.StoredCard; sc != nil {
		field("storedCard", sc.CustomerID+"/"+sc.PaymentInstrumentID+"/"+sc.InstrumentIdentifierID+"/"+sc.Brand)
	}
	if cr := in.Credential; cr != nil {
		field("credential", cr.Type+"/"+cr.Reason+"/"+cr.PreviousTransactionID+"/"+cr.OriginalAuthorizedAmount)
	}
	field("commerceIndicator", in.CommerceIndicator)
	return b.String()
}
