package cardcrypt_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/ttcpay/payflow/internal/cardcrypt"
	"github.com/ttcpay/payflow/internal/intent"
)

// KeyPEM makes a fresh RSA key as PEM with a kid header (keys are generated
// at run time, never committed).
func keyPEM(t *testing.T, kid string) (*rsa.PrivateKey, []byte) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	return k, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Headers: map[string]string{"kid": kid}, Bytes: der})
}

// sealRaw encrypts any plaintext as upstream would (kid "" leaves the
// header out).
func sealRaw(t testing.TB, pub *rsa.PublicKey, kid, plain string) string {
	t.Helper()
	enc, err := jose.NewEncrypter(jose.A256GCM, jose.Recipient{Algorithm: jose.RSA_OAEP_256, Key: pub, KeyID: kid}, nil)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := enc.Encrypt([]byte(plain))
	if err != nil {
		t.Fatal(err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// badPayloads are decrypted card texts that must be refused: a JSON reader
// could take another card number, month or CVV from each (issue 12 break 2).
var badPayloads = map[string]string{
	"DuplicateNumber": `{"number":"4111111111111111","number":"5555555555554444","expirationMonth":"12","expirationYear":"2031"}`,
	"DuplicateMonth":  `{"number":"4111111111111111","expirationMonth":"12","expirationMonth":"01","expirationYear":"2031"}`,
	"CaseVariantName": `{"number":"4111111111111111","NUMBER":"5555555555554444","expirationMonth":"12","expirationYear":"2031"}`,
	"CaseVariantOnly": `{"Number":"4111111111111111","expirationMonth":"12","expirationYear":"2031"}`,
	// U+017F LATIN SMALL LETTER LONG S folds to "s" in encoding/json.
	"LongSName":       "{\"number\":\"4111111111111111\",\"expirationMonth\":\"12\",\"expirationYear\":\"2031\",\"securityCode\":\"123\",\"ſecurityCode\":\"999\"}",
	"TrailingData":    `{"number":"4111111111111111","expirationMonth":"12","expirationYear":"2031"} {"number":"5555555555554444"}`,
	"TrailingGarbage": `{"number":"4111111111111111","expirationMonth":"12","expirationYear":"2031"}x`,
	"UnknownField":    `{"number":"4111111111111111","expirationMonth":"12","expirationYear":"2031","cvv":"123"}`,
	"InvalidUTF8":     "{\"number\":\"4111111111111111\",\"expirationMonth\":\"12\",\"expirationYear\":\"2031\xff\"}",
	"NumberAsNumber":  `{"number":4111111111111111,"expirationMonth":"12","expirationYear":"2031"}`,
	"NotAnObject":     `"4111111111111111"`,
	"NoNumber":        `{"expirationMonth":"12","expirationYear":"2031"}`,
}

var card = intent.Card{Number: "4111111111111111", ExpirationMonth: "12", ExpirationYear: "2031", SecurityCode: "737"}

func TestJWE(t *testing.T) {
	k1, p1 := keyPEM(t, "2026-10")
	k2, p2 := keyPEM(t, "2026-11")
	other, _ := keyPEM(t, "2026-11")
	ring, err := cardcrypt.ParseKeyring(append(p1, p2...)) // two keys during a rotation
	if err != nil {
		t.Fatal(err)
	}
	t.Run("RoundTripBothKeys", func(t *testing.T) {
		for kid, k := range map[string]*rsa.PrivateKey{"2026-10": k1, "2026-11": k2} {
			jwe, err := cardcrypt.Encrypt(&k.PublicKey, kid, card)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(jwe, "4111") {
				t.Fatal("card visible in the JWE")
			}
			got, err := ring.Decrypt(jwe)
			if err != nil || *got != card {
				t.Fatalf("%s: %v %+v", kid, err, got)
			}
		}
	})
	t.Run("WrongKey", func(t *testing.T) {
		jwe, _ := cardcrypt.Encrypt(&other.PublicKey, "2026-11", card)
		if _, err := ring.Decrypt(jwe); !errors.Is(err, cardcrypt.ErrDecrypt) {
			t.Fatal(err)
		}
	})
	t.Run("Tampered", func(t *testing.T) {
		jwe, _ := cardcrypt.Encrypt(&k1.PublicKey, "2026-10", card)
		parts := strings.Split(jwe, ".")
		ct, _ := base64.RawURLEncoding.DecodeString(parts[3])
		ct[0] ^= 1
		parts[3] = base64.RawURLEncoding.EncodeToString(ct)
		if _, err := ring.Decrypt(strings.Join(parts, ".")); !errors.Is(err, cardcrypt.ErrDecrypt) {
			t.Fatal(err)
		}
	})
	t.Run("UnknownKid", func(t *testing.T) {
		jwe, _ := cardcrypt.Encrypt(&k1.PublicKey, "2025-01", card)
		if _, err := ring.Decrypt(jwe); !errors.Is(err, cardcrypt.ErrUnknownKid) {
			t.Fatal(err)
		}
	})
	t.Run("Malformed", func(t *testing.T) {
		for _, s := range []string{"", "a.b.c", "a.b.c.d.e", "eyJhbGciOiJub25lIn0.e30."} {
			if _, err := ring.Decrypt(s); !errors.Is(err, cardcrypt.ErrMalformed) {
				t.Fatalf("%q: %v", s, err)
			}
		}
	})
	t.Run("MissingKidIsMalformedNotConfig", func(t *testing.T) {
		// A JWE without kid is a broken card (invalid), never a key this
		// worker lacks (config, replayable): issue 14 item 10.
		jwe := sealRaw(t, &k1.PublicKey, "", `{"number":"4111111111111111","expirationMonth":"12","expirationYear":"2031"}`)
		for name, r := range map[string]*cardcrypt.Keyring{"Ring": ring, "NoKeys": nil} {
			_, err := r.Decrypt(jwe)
			if err == nil || errors.Is(err, cardcrypt.ErrUnknownKid) || errors.Is(err, cardcrypt.ErrNoKeys) || !errors.Is(err, cardcrypt.ErrMalformed) {
				t.Errorf("%s: %v", name, err)
			}
		}
	})
	t.Run("StrictPayload", func(t *testing.T) {
		for name, plain := range badPayloads {
			t.Run(name, func(t *testing.T) {
				c, err := ring.Decrypt(sealRaw(t, &k1.PublicKey, "2026-10", plain))
				if !errors.Is(err, cardcrypt.ErrPayload) {
					t.Fatalf("accepted or wrong error: %v %v", err, c)
				}
				if regexp.MustCompile(`\d{6,}`).MatchString(err.Error()) {
					t.Fatalf("error carries digits: %v", err)
				}
			})
		}
	})
	t.Run("NoKeys", func(t *testing.T) {
		jwe, _ := cardcrypt.Encrypt(&k1.PublicKey, "2026-10", card)
		var none *cardcrypt.Keyring
		if _, err := none.Decrypt(jwe); !errors.Is(err, cardcrypt.ErrNoKeys) {
			t.Fatal(err)
		}
	})
	t.Run("ErrorsNeverCarryCardData", func(t *testing.T) {
		for _, err := range []error{cardcrypt.ErrMalformed, cardcrypt.ErrUnknownKid, cardcrypt.ErrDecrypt, cardcrypt.ErrPayload, cardcrypt.ErrNoKeys} {
			if regexp.MustCompile(`\d{6,}`).MatchString(err.Error()) {
				t.Fatalf("%v", err)
			}
		}
	})
	t.Run("KeyringErrors", func(t *testing.T) {
		_, noKid := keyPEM(t, "")
		if _, err := cardcrypt.ParseKeyring(noKid); err == nil {
			t.Fatal("key without kid accepted")
		}
		if _, err := cardcrypt.ParseKeyring(append(p1, p1...)); err == nil {
			t.Fatal("duplicate kid accepted")
		}
		if _, err := cardcrypt.ParseKeyring([]byte("nothing")); err == nil {
			t.Fatal("no key accepted")
		}
	})
	t.Run("PublicKeyFromPrivatePEM", func(t *testing.T) {
		pub, kid, err := cardcrypt.ParsePublicKey(p1)
		if err != nil || kid != "2026-10" || pub.N.Cmp(k1.N) != 0 {
			t.Fatal(err)
		}
	})
}

// FuzzDecrypt: outside input never panics the decrypter.
func FuzzDecrypt(f *testing.F) {
	k, p := keyPEM(&testing.T{}, "k")
	ring, _ := cardcrypt.ParseKeyring(p)
	jwe, _ := cardcrypt.Encrypt(&k.PublicKey, "k", card)
	f.Add(jwe)
	f.Add("a.b.c.d.e")
	f.Add(sealRaw(f, &k.PublicKey, "", `{"number":"4111111111111111","expirationMonth":"12","expirationYear":"2031"}`))
	for _, plain := range badPayloads {
		f.Add(sealRaw(f, &k.PublicKey, "k", plain))
	}
	digits := regexp.MustCompile(`\d{6,}`)
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ring.Decrypt(s)
		if err == nil && c.Number == "" {
			t.Fatal("empty card accepted")
		}
		if err != nil && digits.MatchString(err.Error()) {
			t.Fatalf("error carries digits: %v", err)
		}
	})
}

// TestRecipient: the dead-letter key is a public key with a kid, sealing
// what the keyring that holds its private half opens; a keyring holding
// another key under that kid is an error, not a silent mismatch.
func TestRecipient(t *testing.T) {
	k, priv := keyPEM(t, "dlq-1")
	_, otherPriv := keyPEM(t, "dlq-1")
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	pub := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Headers: map[string]string{"kid": "dlq-1"}, Bytes: der})
	r, err := cardcrypt.ParseRecipient(pub)
	if err != nil || r.Kid != "dlq-1" {
		t.Fatalf("%v %v", r, err)
	}
	if _, err := cardcrypt.ParseRecipient(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})); err == nil {
		t.Fatal("a key without kid was accepted")
	}
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	sder, _ := x509.MarshalPKIXPublicKey(&small.PublicKey)
	if _, err := cardcrypt.ParseRecipient(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Headers: map[string]string{"kid": "s"}, Bytes: sder})); err == nil {
		t.Fatal("a 1024-bit key was accepted")
	}
	ring, _ := cardcrypt.ParseKeyring(priv)
	jwe, err := r.Encrypt(intent.Card{Number: "4111111111111111", ExpirationMonth: "12", ExpirationYear: "2031"})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := ring.Decrypt(jwe); err != nil || c.Number != "4111111111111111" {
		t.Fatalf("%v %v", c, err)
	}
	if held, err := ring.Holds(r); !held || err != nil {
		t.Fatalf("held %v %v", held, err)
	}
	wrong, _ := cardcrypt.ParseKeyring(otherPriv)
	if _, err := wrong.Holds(r); err == nil {
		t.Fatal("another key pair under the same kid was not an error")
	}
	var none *cardcrypt.Keyring
	if held, err := none.Holds(r); held || err != nil {
		t.Fatalf("nil keyring: %v %v", held, err)
	}
}
