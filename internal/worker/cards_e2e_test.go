package worker_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ttcpay/payflow/internal/cardcrypt"
	"github.com/ttcpay/payflow/internal/deadletter"
	"github.com/ttcpay/payflow/internal/intent"
	"github.com/ttcpay/payflow/internal/sandbox"
	"github.com/ttcpay/payflow/internal/systemtest"
	"github.com/ttcpay/payflow/internal/worker"
)

func rsaKey(t *testing.T, kid string) (*rsa.PrivateKey, []byte) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	return k, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Headers: map[string]string{"kid": kid}, Bytes: der})
}

// TestEncryptedCards: the worker decrypts encryptedCard only for the charge;
// each failure is a clear dead-letter reason; plaintext is refused when
// required; dead letters keep the ciphertext.
func TestEncryptedCards(t *testing.T) {
	e := systemtest.New(t, sandbox.Config{}, false)
	k1, p1 := rsaKey(t, "k-old")
	k2, p2 := rsaKey(t, "k-new")
	stranger, _ := rsaKey(t, "k-new")
	keys := filepath.Join(t.TempDir(), "card-keys.pem")
	if err := os.WriteFile(keys, append(p1, p2...), 0o600); err != nil {
		t.Fatal(err)
	}
	e.Start(e.Vars(map[string]string{"CARD_DECRYPTION_KEYS_FILE": keys, "REQUIRE_ENCRYPTED_CARD": "true"}), worker.TestConfig{})

	encrypted := func(id string, pub *rsa.PublicKey, kid string) (*intent.Intent, string) {
		in := systemtest.NewIntent(id, "4111111111111111", "15.00", true)
		jwe, err := cardcrypt.Encrypt(pub, kid, *in.Card)
		if err != nil {
			t.Fatal(err)
		}
		in.Card, in.EncryptedCard = nil, jwe
		return in, jwe
	}
	ok1, _ := encrypted("jwe-old-key", &k1.PublicKey, "k-old")
	ok2, _ := encrypted("jwe-new-key", &k2.PublicKey, "k-new")
	wrong, wrongJWE := encrypted("jwe-wrong-key", &stranger.PublicKey, "k-new")
	unknown, _ := encrypted("jwe-unknown-kid", &k1.PublicKey, "k-2019")
	tampered, tj := encrypted("jwe-tampered", &k2.PublicKey, "k-new")
	parts := strings.Split(tj, ".")
	ct, _ := base64.RawURLEncoding.DecodeString(parts[3])
	ct[len(ct)/2] ^= 0x40
	parts[3] = base64.RawURLEncoding.EncodeToString(ct)
	tampered.EncryptedCard = strings.Join(parts, ".")
	for _, in := range []*intent.Intent{ok1, ok2, wrong, unknown, tampered} {
		e.Publish(in)
	}
	e.Publish(systemtest.NewIntent("plain-refused", "4111111111111111", "15.00", true))

	want := map[string]struct{ status, class, reason string }{
		"jwe-old-key":     {"AUTHORIZED", "", ""},
		"jwe-new-key":     {"AUTHORIZED", "", ""},
		"jwe-wrong-key":   {intent.StatusInvalid, "invalid", "wrong key or tampered"},
		"jwe-tampered":    {intent.StatusInvalid, "invalid", "wrong key or tampered"},
		"jwe-unknown-kid": {intent.StatusFailed, "config", "key id (kid)"},
		"plain-refused":   {intent.StatusInvalid, "invalid", "plaintext card refused"},
	}
	e.WaitFor("all outcomes", 20*time.Second, func() bool { return len(e.Results()) == len(want) })
	res := e.Results()
	dl := map[string][]byte{}
	for _, m := range e.DeadLetters() {
		id := m.Headers().Get(deadletter.HeaderIntentID)
		dl[id] = m.Data()
		w := want[id]
		if m.Headers().Get(deadletter.HeaderClass) != w.class || !strings.Contains(m.Headers().Get(deadletter.HeaderReason), w.reason) {
			t.Errorf("%s: dead letter %s %q", id, m.Headers().Get(deadletter.HeaderClass), m.Headers().Get(deadletter.HeaderReason))
		}
	}
	for id, w := range want {
		if res[id].Status != w.status {
			t.Errorf("%s: %s, want %s (%s)", id, res[id].Status, w.status, res[id].Reason)
		}
	}
	// The dead letter keeps the ciphertext, not a card number.
	var dead intent.Intent
	_ = json.Unmarshal(dl["jwe-wrong-key"], &dead)
	if dead.EncryptedCard != wrongJWE || dead.Card != nil || bytes.Contains(dl["jwe-wrong-key"], []byte("4111111111111111")) {
		t.Fatalf("dead letter payload: %s", dl["jwe-wrong-key"])
	}
	// The charges carry the decrypted card; results only its last four.
	if r := res["jwe-new-key"]; r.CardLast4 != "1111" || r.CardType != "001" {
		t.Fatalf("result %+v", r)
	}
	if n := len(e.SB.Ledger().Charges); n != 2 {
		t.Fatalf("%d charges, want 2", n)
	}
}
