package ttc_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ttcpay/payflow/internal/ttc"
)

// FuzzTokenResponse: whatever TTC answers, the client returns a validated
// token or a typed error, never a panic, and never a token without a
// usable certificate and key.
func FuzzTokenResponse(f *testing.F) {
	f.Add(200, `{"access_token":"x","token_type":"Bearer","expires_in":899,"mTls_cert":"c","mTls_key":"k"}`)
	f.Add(200, `{"access_token":"x","token_type":"bearer","expires_in":-1}`)
	f.Add(403, `{"message":"Forbidden"}`)
	f.Add(500, `{"message":"`+strings.Repeat("x", 500)+`"}`)
	f.Add(404, `{"message":"no refresh token for card 4111111111111111"}`)
	f.Fuzz(func(t *testing.T, status int, body string) {
		if status < 100 || status > 599 {
			return
		}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(status)
			_, _ = w.Write([]byte(body))
		}))
		defer srv.Close()
		c, _ := ttc.New(ttc.Config{BaseURL: srv.URL, APIKeys: map[string]string{"i": "secret-key"}})
		tok, err := c.Token(context.Background(), "i", "m")
		if err == nil {
			if tok.AccessToken == "" || len(tok.CertPEM) == 0 || len(tok.KeyPEM) == 0 || tok.Lifetime <= 0 {
				t.Fatalf("accepted an unusable token: %v", tok)
			}
			return
		}
		var e *ttc.Error
		if !errors.As(err, &e) || e.Kind == 0 {
			t.Fatalf("untyped error: %v", err)
		}
		if strings.Contains(err.Error(), "secret-key") || len(e.Message) > ttc.MessageMax+len("…") || strings.Contains(e.Message, "123456") {
			t.Fatalf("error leaks or is unbounded: %v", err)
		}
	})
}
