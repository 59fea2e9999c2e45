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
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ring.Decrypt(s)
		if err == nil && c.Number == "" {
			t.Fatal("empty card accepted")
		}
	})
}
