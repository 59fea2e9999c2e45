// Package cardcrypt keeps card data unreadable outside the moment of the
// charge: upstream encrypts the card as a compact JWE (RSA-OAEP-256 key
// wrapping, A256GCM content encryption, a "kid" header naming the key), and
// the worker decrypts it only to build the CyberSource request. Two keys can
// be active during a rotation.
package cardcrypt

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/go-jose/go-jose/v4"

	"github.com/ttcpay/payflow/internal/intent"
)

// Errors of Decrypt. None of their texts carries card data or key material.
var (
	ErrMalformed  = errors.New("encryptedCard is not a compact JWE with RSA-OAEP-256 and A256GCM")
	ErrUnknownKid = errors.New("encryptedCard names a key id (kid) this worker does not hold")
	ErrDecrypt    = errors.New("encryptedCard does not decrypt: wrong key or tampered ciphertext")
	ErrPayload    = errors.New("encryptedCard decrypts to something that is not a card")
	ErrNoKeys     = errors.New("encryptedCard cannot be read: no card decryption keys are configured")

	// ErrMissingKid is a malformed card (it wraps ErrMalformed): the JWE
	// names no key, so no key deployment can ever open it. Unlike
	// ErrUnknownKid and ErrNoKeys, configuration problems that a new key
	// fixes, it is the sender's error.
	ErrMissingKid = fmt.Errorf("%w: its protected header has no kid", ErrMalformed)
)

// Keyring holds the private keys by kid.
type Keyring struct {
	keys map[string]*rsa.PrivateKey
}

// ParseKeyring reads PEM private keys (PKCS#8 or PKCS#1 RSA), each with a
// "kid" PEM header:
//
//	-----BEGIN PRIVATE KEY-----
//	kid: 2026-11
//
//	MIIEv...
//	-----END PRIVATE KEY-----
func ParseKeyring(data []byte) (*Keyring, error) {
	k := &Keyring{keys: map[string]*rsa.PrivateKey{}}
	for n := 1; ; n++ {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		kid := b.Headers["kid"]
		if kid == "" {
			return nil, fmt.Errorf("card key %d has no kid header", n)
		}
		key, err := parseRSA(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("card key %q: %w", kid, err)
		}
		if key.N.BitLen() < 2048 {
			return nil, fmt.Errorf("card key %q: %d bits, want at least 2048", kid, key.N.BitLen())
		}
		if _, dup := k.keys[kid]; dup {
			return nil, fmt.Errorf("card key %q appears twice", kid)
		}
		k.keys[kid] = key
	}
	if len(k.keys) == 0 {
		return nil, errors.New("no PEM private key found")
	}
	return k, nil
}

func parseRSA(der []byte) (*rsa.PrivateKey, error) {
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, errors.New("not an RSA private key")
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("not an RSA private key")
	}
	return rk, nil
}

// Kids lists the key ids held.
func (k *Keyring) Kids() []string {
	out := make([]string, 0, len(k.keys))
	for kid := range k.keys {
		out = append(out, kid)
	}
	return out
}

// Decrypt opens an encryptedCard. k may be nil (no keys configured).
func (k *Keyring) Decrypt(compact string) (*intent.Card, error) {
	if strings.Count(compact, ".") != 4 {
		return nil, ErrMalformed
	}
	obj, err := jose.ParseEncrypted(compact, []jose.KeyAlgorithm{jose.RSA_OAEP_256}, []jose.ContentEncryption{jose.A256GCM})
	if err != nil {
		return nil, ErrMalformed
	}
	if obj.Header.KeyID == "" {
		return nil, ErrMissingKid
	}
	if k == nil || len(k.keys) == 0 {
		return nil, ErrNoKeys
	}
	key, ok := k.keys[obj.Header.KeyID]
	if !ok {
		return nil, ErrUnknownKid
	}
	plain, err := obj.Decrypt(key)
	if err != nil {
		return nil, ErrDecrypt
	}
	// As strict as an intent: one reading of the card, whatever the reader
	// (no duplicate or case-variant names, no trailing data).
	c, err := intent.DecodeCard(plain)
	var ve *intent.ValidationError
	if errors.As(err, &ve) && len(ve.Problems) > 0 {
		return nil, fmt.Errorf("%w: the card %s", ErrPayload, ve.Problems[0].Message) // names fields, never values
	}
	if err != nil {
		return nil, ErrPayload
	}
	if c.Number == "" {
		return nil, fmt.Errorf("%w: it has no number", ErrPayload)
	}
	return c, nil
}

// Encrypt seals a card for a public key (what upstream does; the publisher's
// --encrypt-with).
func Encrypt(pub *rsa.PublicKey, kid string, c intent.Card) (string, error) {
	enc, err := jose.NewEncrypter(jose.A256GCM, jose.Recipient{Algorithm: jose.RSA_OAEP_256, Key: pub, KeyID: kid},
		(&jose.EncrypterOptions{}).WithContentType("application/json"))
	if err != nil {
		return "", err
	}
	plain, _ := json.Marshal(c)
	obj, err := enc.Encrypt(plain)
	if err != nil {
		return "", err
	}
	return obj.CompactSerialize()
}

// ParsePublicKey reads an RSA public key, a certificate, or a private key
// (its public half) from PEM; the kid is the block's "kid" header if any.
func ParsePublicKey(data []byte) (*rsa.PublicKey, string, error) {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, "", errors.New("no PEM block")
	}
	kid := b.Headers["kid"]
	switch b.Type {
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(b.Bytes)
		if rk, ok := k.(*rsa.PublicKey); err == nil && ok {
			return rk, kid, nil
		}
	case "RSA PUBLIC KEY":
		if k, err := x509.ParsePKCS1PublicKey(b.Bytes); err == nil {
			return k, kid, nil
		}
	case "CERTIFICATE":
		if c, err := x509.ParseCertificate(b.Bytes); err == nil {
			if rk, ok := c.PublicKey.(*rsa.PublicKey); ok {
				return rk, kid, nil
			}
		}
	case "PRIVATE KEY", "RSA PRIVATE KEY":
		if k, err := parseRSA(b.Bytes); err == nil {
			return &k.PublicKey, kid, nil
		}
	}
	return nil, "", fmt.Errorf("PEM block %q is not an RSA key", b.Type)
}

// Recipient is a public key that cards are sealed to, with its kid: what
// upstream encrypts with, and what the worker seals a plaintext card with
// before it goes to the dead-letter stream.
type Recipient struct {
	Key *rsa.PublicKey
	Kid string
}

// ParseRecipient reads a public key as ParsePublicKey does and requires
// what Decrypt will need to open what it seals: a kid header and at least
// 2048 bits.
func ParseRecipient(data []byte) (*Recipient, error) {
	pub, kid, err := ParsePublicKey(data)
	if err != nil {
		return nil, err
	}
	if kid == "" {
		return nil, errors.New("the PEM block has no kid header")
	}
	if pub.N.BitLen() < 2048 {
		return nil, fmt.Errorf("key %q: %d bits, want at least 2048", kid, pub.N.BitLen())
	}
	return &Recipient{Key: pub, Kid: kid}, nil
}

// Encrypt seals a card for the recipient, in the format Decrypt reads.
func (r *Recipient) Encrypt(c intent.Card) (string, error) { return Encrypt(r.Key, r.Kid, c) }

// Holds reports whether the keyring holds the private key of the
// recipient: the same kid with the same public key. A kid held with
// another key is an error: what is sealed to the recipient would not
// decrypt.
func (k *Keyring) Holds(r *Recipient) (bool, error) {
	if k == nil {
		return false, nil
	}
	priv, ok := k.keys[r.Kid]
	if !ok {
		return false, nil
	}
	if !priv.PublicKey.Equal(r.Key) {
		return false, fmt.Errorf("key %q is held with another key pair than the public key given", r.Kid)
	}
	return true, nil
}
