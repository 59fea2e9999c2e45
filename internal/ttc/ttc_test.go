package ttc_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ttcpay/payflow/internal/sandbox"
	"github.com/ttcpay/payflow/internal/ttc"
)

const key = "secret-api-key-123"

func sandboxClient(t *testing.T, cfg sandbox.Config) (*ttc.Client, *sandbox.Server) {
	t.Helper()
	cfg.Integrators = map[string]sandbox.Integrator{"costco": {APIKey: key, Merchants: []string{"ttc_ttusas_m"}}}
	srv, err := sandbox.Listen(cfg, "127.0.0.1:0", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	c, err := ttc.New(ttc.Config{BaseURL: srv.TTCURL, APIKeys: map[string]string{"costco": key, "acme": "wrong-key"}})
	if err != nil {
		t.Fatal(err)
	}
	return c, srv
}

func TestTokenAgainstSandbox(t *testing.T) {
	c, _ := sandboxClient(t, sandbox.Config{TokenLifetime: 5 * time.Second})
	before := time.Now()
	tok, err := c.Token(context.Background(), "costco", "ttc_ttusas_m")
	if err != nil {
		t.Fatal(err)
	}
	if tok.Lifetime != 5*time.Second || tok.ExpiresAt.Before(before.Add(5*time.Second)) || tok.ExpiresAt.After(time.Now().Add(5*time.Second)) {
		t.Fatalf("lifetime %v expires %v", tok.Lifetime, tok.ExpiresAt)
	}
	if s := tok.String(); strings.Contains(s, tok.AccessToken) || strings.Contains(s, "PRIVATE") {
		t.Fatalf("String leaks: %s", s)
	}

	_, err = c.Token(context.Background(), "costco", "unknown_m")
	if ttc.KindOf(err) != ttc.KindNoRefreshToken {
		t.Fatalf("404: %v", err)
	}
	_, err = c.Token(context.Background(), "acme", "m")
	if ttc.KindOf(err) != ttc.KindBadAPIKey {
		t.Fatalf("403: %v", err)
	}
	_, err = c.Token(context.Background(), "nobody", "m")
	if ttc.KindOf(err) != ttc.KindNoAPIKey {
		t.Fatalf("no key: %v", err)
	}
}

func TestStatusKinds(t *testing.T) {
	cases := []struct {
		name   string
		status int
		body   string
		op     string
		want   ttc.Kind
		temp   bool
	}{
		{"Token400", 400, `{"message":"Invalid JSON body or missing/invalid merchantId"}`, "token", ttc.KindInvalidRequest, false},
		{"Token403", 403, `{"message":"Forbidden"}`, "token", ttc.KindBadAPIKey, false},
		{"Token404", 404, `{"message":"No stored refresh token"}`, "token", ttc.KindNoRefreshToken, false},
		{"Token500", 500, `{"message":"Internal server error"}`, "token", ttc.KindTransient, true},
		{"Token502NoBody", 502, ``, "token", ttc.KindTransient, true},
		{"Token429", 429, ``, "token", ttc.KindTransient, true},
		{"Token418", 418, ``, "token", ttc.KindUnexpected, false},
		{"TokenNotJSON", 200, `<html>`, "token", ttc.KindBadResponse, true},
		{"TokenNoAccessToken", 200, `{"token_type":"Bearer","expires_in":899}`, "token", ttc.KindBadResponse, true},
		{"TokenNotBearer", 200, `{"access_token":"x","token_type":"MAC","expires_in":899}`, "token", ttc.KindBadResponse, true},
		{"TokenZeroExpiry", 200, `{"access_token":"x","token_type":"Bearer","expires_in":0}`, "token", ttc.KindBadResponse, true},
		{"TokenBadPEM", 200, `{"access_token":"x","token_type":"Bearer","expires_in":899,"mTls_cert":"nope","mTls_key":"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"}`, "token", ttc.KindBadResponse, true},
		{"Callback400", 400, `{"message":"Missing or invalid payload fields"}`, "callback", ttc.KindInvalidRequest, false},
		{"Callback401", 401, ``, "callback", ttc.KindBadAPIKey, false},
		{"Callback403", 403, ``, "callback", ttc.KindBadAPIKey, false},
		{"Callback500", 500, `{"message":"Internal error enqueuing the callback payload"}`, "callback", ttc.KindTransient, true},
		{"Callback503", 503, ``, "callback", ttc.KindTransient, true},
		{"Callback408", 408, ``, "callback", ttc.KindTransient, true},
		{"Callback404", 404, ``, "callback", ttc.KindUnexpected, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("x-api-key") != key {
					t.Errorf("x-api-key not sent")
				}
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			c, _ := ttc.New(ttc.Config{BaseURL: srv.URL, APIKeys: map[string]string{"costco": key}})
			var err error
			if tc.op == "token" {
				_, err = c.Token(context.Background(), "costco", "m")
			} else {
				err = c.Callback(context.Background(), "costco", ttc.Callback{MerchantID: "m", TransactionID: "1", BookingID: "b", Currency: "USD", Amount: "1.00"})
			}
			var e *ttc.Error
			if !errors.As(err, &e) || e.Kind != tc.want || e.Temporary() != tc.temp {
				t.Fatalf("got %v (kind %v), want %v temporary=%v", err, ttc.KindOf(err), tc.want, tc.temp)
			}
			if strings.Contains(err.Error(), key) || strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Fatalf("error string leaks a secret: %v", err)
			}
		})
	}
}

func TestNetworkErrorIsTransient(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c, _ := ttc.New(ttc.Config{BaseURL: url, APIKeys: map[string]string{"costco": key}, Timeout: time.Second})
	_, err := c.Token(context.Background(), "costco", "m")
	if ttc.KindOf(err) != ttc.KindTransient {
		t.Fatalf("got %v", err)
	}
	err = c.Callback(context.Background(), "costco", ttc.Callback{})
	if ttc.KindOf(err) != ttc.KindTransient {
		t.Fatalf("got %v", err)
	}
}

func TestCallbackAgainstSandbox(t *testing.T) {
	c, _ := sandboxClient(t, sandbox.Config{})
	err := c.Callback(context.Background(), "costco", ttc.Callback{MerchantID: "ttc_ttusas_m", TransactionID: "404", BookingID: "C1", Currency: "USD", Amount: "1.00"})
	if ttc.KindOf(err) != ttc.KindInvalidRequest {
		t.Fatalf("unknown transaction: %v", err)
	}
}

func TestConfigValidation(t *testing.T) {
	for _, cfg := range []ttc.Config{
		{BaseURL: "ftp://x", APIKeys: map[string]string{"a": "k"}},
		{BaseURL: "https://x"},
		{BaseURL: "https://x", APIKeys: map[string]string{"a": ""}},
	} {
		if _, err := ttc.New(cfg); err == nil {
			t.Errorf("accepted %+v", cfg)
		}
	}
	keys := map[string]string{"costco": key}
	// Plain http sends the API key and receives the private key in clear:
	// only a loopback host (a local sandbox) may use it.
	for _, u := range []string{
		"http://ttc.example.com", "http://paymentgateway.travcorpservices.com", "http://10.0.0.1:8081",
		"http://0.0.0.0:8081", "http://localhost.example.com", "http://127.0.0.1.nip.io", "http://[::2]:1",
		"http://user:" + key + "@ttc.example.com",
	} {
		_, err := ttc.New(ttc.Config{BaseURL: u, APIKeys: keys})
		if err == nil {
			t.Errorf("accepted %s", u)
		} else if strings.Contains(err.Error(), key) {
			t.Errorf("%s: the error quotes the credentials: %v", u, err)
		}
	}
	for _, u := range []string{
		"https://ttc.example.com", ttc.UATBaseURL, "http://127.0.0.1:8081", "http://127.3.4.5", "http://localhost:8081",
		"http://LOCALHOST", "http://[::1]:8081",
	} {
		if _, err := ttc.New(ttc.Config{BaseURL: u, APIKeys: keys}); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	// A key or integrator name with a control character (a newline that
	// joined two lines of a key file) is refused without quoting the key.
	for _, k := range []map[string]string{
		{"costco": key + "\nacme=" + key}, {"costco": key + "\r"}, {"costco": "\x7f" + key}, {"cost\tco": key},
	} {
		_, err := ttc.New(ttc.Config{BaseURL: "https://x", APIKeys: k})
		if err == nil {
			t.Errorf("accepted %q", k)
		} else if strings.Contains(err.Error(), key) {
			t.Errorf("the error quotes the key: %v", err)
		}
	}
	for env, want := range map[string]string{"uat": ttc.UATBaseURL, "production": ttc.ProductionBaseURL} {
		if got, err := ttc.BaseURLFor(env); err != nil || got != want {
			t.Errorf("%s: %s %v", env, got, err)
		}
	}
	if _, err := ttc.BaseURLFor("prod"); err == nil {
		t.Error("accepted prod")
	}
}

// TestServerMessageRedacted: TTC's message reaches the error with digit
// runs hidden, control characters dropped and a useful length kept.
func TestServerMessageRedacted(t *testing.T) {
	const pan = "4111111111111111"
	for _, msg := range []string{
		"No stored refresh token for " + pan,
		"Bad\nrequest " + pan + strings.Repeat(" x", 200),
		strings.Repeat("y", 120) + " " + pan,
	} {
		body, _ := json.Marshal(map[string]string{"message": msg})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write(body)
		}))
		c, _ := ttc.New(ttc.Config{BaseURL: srv.URL, APIKeys: map[string]string{"costco": key}})
		_, err := c.Token(context.Background(), "costco", "m")
		srv.Close()
		var e *ttc.Error
		if !errors.As(err, &e) {
			t.Fatalf("got %v", err)
		}
		if strings.Contains(err.Error(), "111111") || strings.ContainsAny(e.Message, "\n\r") {
			t.Errorf("echoed: %q", e.Message)
		}
		if len(e.Message) < min(len(msg), 120) || len(e.Message) > 170 {
			t.Errorf("message of %d bytes: %q", len(e.Message), e.Message)
		}
	}
}
