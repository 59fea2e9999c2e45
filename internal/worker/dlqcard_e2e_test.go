package worker_test

import (
	"bytes"
	"context"
	"crypto/x509"
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

// dlqKeys writes a card key pair for dead letters: the private key (kid
// dlq-1) into a CARD_DECRYPTION_KEYS file next to upstream's key, and its
// public half into a DLQ_CARD_PUBLIC_KEY file. It returns the worker
// variables and the keyring that opens what is sealed.
func dlqKeys(t *testing.T) (map[string]string, *cardcrypt.Keyring) {
	t.Helper()
	_, upstream := rsaKey(t, "upstream-1")
	dk, dlqPriv := rsaKey(t, "dlq-1")
	der, err := x509.MarshalPKIXPublicKey(&dk.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keys, pub := filepath.Join(dir, "card-keys.pem"), filepath.Join(dir, "dlq-public.pem")
	if err := os.WriteFile(keys, append(upstream, dlqPriv...), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Headers: map[string]string{"kid": "dlq-1"}, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	ring, err := cardcrypt.ParseKeyring(append(upstream, dlqPriv...))
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{"CARD_DECRYPTION_KEYS_FILE": keys, "DLQ_CARD_PUBLIC_KEY_FILE": pub}, ring
}

// TestDeadLetterCards: a dead letter never holds a plaintext card number or
// a CVV. With production settings (REQUIRE_ENCRYPTED_CARD=true) a
// plaintext intent is refused; its dead letter carries the card sealed to
// the dead-letter key (no CVV), and a replay is charged with the worker's
// own keys. Without a dead-letter key only the brand and last four digits
// are kept, the letter says "card removed: republish from upstream", and
// replay refuses it.
func TestDeadLetterCards(t *testing.T) {
	const card, cvv = "4111111111111111", "737"
	plain := func(id string) *intent.Intent {
		in := systemtest.NewIntent(id, card, "21.00", true)
		in.Card.SecurityCode = cvv
		return in
	}
	t.Run("SealedToTheDeadLetterKey", func(t *testing.T) {
		e := systemtest.New(t, sandbox.Config{}, false)
		vars, ring := dlqKeys(t)
		vars["REQUIRE_ENCRYPTED_CARD"] = "true"
		e.Start(e.Vars(vars), worker.TestConfig{})
		e.Publish(plain("dlq-sealed"))
		e.WaitFor("the dead letter", 20*time.Second, func() bool { return len(e.DeadLetters()) == 1 })
		m := e.DeadLetters()[0]
		data := m.Data()
		if bytes.Contains(data, []byte(card)) || bytes.Contains(data, []byte(`"`+cvv+`"`)) || bytes.Contains(data, []byte("securityCode")) {
			t.Fatalf("the dead letter holds card data: %s", data)
		}
		var in intent.Intent
		if err := json.Unmarshal(data, &in); err != nil || in.Card != nil || in.EncryptedCard == "" {
			t.Fatalf("dead letter payload %s (%v): want the card as encryptedCard", data, err)
		}
		if _, err := intent.Decode(data, time.Now()); err != nil {
			t.Fatalf("the scrubbed payload is not a valid intent: %v", err)
		}
		c, err := ring.Decrypt(in.EncryptedCard)
		if err != nil || c.Number != card || c.SecurityCode != "" || c.ExpirationYear != "2031" {
			t.Fatalf("sealed card: %v, %v (want the number and expiry, never the CVV)", c, err)
		}
		sum, err := deadletter.Replay(context.Background(), e.JS, deadletter.Filter{}, false, nil)
		if err != nil || sum.Replayed != 1 {
			t.Fatalf("replay: %+v %v", sum, err)
		}
		e.WaitFor("the replay charged", 20*time.Second, func() bool { return e.Results()["dlq-sealed"].Authorized() })
		if n := len(e.SB.Ledger().Charges); n != 1 {
			t.Fatalf("%d charges, want 1", n)
		}
	})
	t.Run("RemovedWithoutAKey", func(t *testing.T) {
		e := systemtest.New(t, sandbox.Config{}, false)
		vars, _ := dlqKeys(t)
		delete(vars, "DLQ_CARD_PUBLIC_KEY_FILE")
		vars["REQUIRE_ENCRYPTED_CARD"] = "true"
		e.Start(e.Vars(vars), worker.TestConfig{})
		e.Publish(plain("dlq-removed"))
		e.WaitFor("the dead letter", 20*time.Second, func() bool { return len(e.DeadLetters()) == 1 })
		m := e.DeadLetters()[0]
		data := m.Data()
		if bytes.Contains(data, []byte(card)) || bytes.Contains(data, []byte(cvv)) || bytes.Contains(data, []byte("securityCode")) {
			t.Fatalf("the dead letter holds card data: %s", data)
		}
		if !json.Valid(data) {
			t.Fatalf("the scrubbed payload is not JSON: %s", data)
		}
		h := m.Headers().Get(deadletter.HeaderCardRemoved)
		if !strings.Contains(h, "card removed: republish from upstream") || !strings.Contains(h, "visa") || !strings.Contains(h, "1111") {
			t.Fatalf("%s: %q; want the reason with brand and last four", deadletter.HeaderCardRemoved, h)
		}
		var errs []error
		sum, err := deadletter.Replay(context.Background(), e.JS, deadletter.Filter{}, false, func(_, _ int, _ deadletter.Letter, err error) {
			errs = append(errs, err)
		})
		if err != nil || sum.Replayed != 0 || sum.Failed != 1 || len(errs) != 1 || errs[0] == nil ||
			!strings.Contains(errs[0].Error(), "card removed: republish from upstream") {
			t.Fatalf("replay %+v %v %v: want it refused, card removed", sum, err, errs)
		}
		if len(e.DeadLetters()) != 1 {
			t.Fatal("the refused letter was removed")
		}
	})
}
