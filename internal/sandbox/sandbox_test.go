package sandbox_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ttcpay/payflow/internal/sandbox"
)

const apiKey = "test-key-costco"

func start(t *testing.T, cfg sandbox.Config) *sandbox.Server {
	t.Helper()
	if cfg.Integrators == nil {
		cfg.Integrators = map[string]sandbox.Integrator{
			"costco": {APIKey: apiKey},
			"acme":   {APIKey: "test-key-acme", Merchants: []string{"acme_m"}},
		}
	}
	srv, err := sandbox.Listen(cfg, "127.0.0.1:0", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

type tokenResp struct {
	Message     string `json:"message"`
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
	Key         string `json:"mTls_key"`
	Cert        string `json:"mTls_cert"`
}

func post(t *testing.T, c *http.Client, url string, hdr map[string]string, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func token(t *testing.T, srv *sandbox.Server, integrator, key, merchant string) tokenResp {
	t.Helper()
	st, b := post(t, http.DefaultClient, srv.TTCURL+"/cybersource/token/"+integrator,
		map[string]string{"x-api-key": key}, `{"merchantId":"`+merchant+`"}`)
	if st != 200 {
		t.Fatalf("token: %d %s", st, b)
	}
	var tr tokenResp
	if err := json.Unmarshal(b, &tr); err != nil {
		t.Fatal(err)
	}
	return tr
}

// mtlsClient builds an HTTP client that trusts the sandbox CA and presents
// the given client certificate (nil: none).
func mtlsClient(t *testing.T, srv *sandbox.Server, cert *tls.Certificate) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(srv.CACertPEM())
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
}

func pair(t *testing.T, tr tokenResp) *tls.Certificate {
	t.Helper()
	c, err := tls.X509KeyPair([]byte(tr.Cert), []byte(tr.Key))
	if err != nil {
		t.Fatal(err)
	}
	return &c
}

func payment(card, amount, txn string, capture bool) string {
	return `{"clientReferenceInformation":{"code":"REF-` + txn + `","transactionId":"` + txn + `"},
	"processingInformation":{"capture":` + map[bool]string{true: "true", false: "false"}[capture] + `,"actionList":["TOKEN_CREATE"]},
	"paymentInformation":{"card":{"number":"` + card + `","expirationMonth":"12","expirationYear":"2031"}},
	"orderInformation":{"amountDetails":{"totalAmount":"` + amount + `","currency":"USD"},
	"billTo":{"firstName":"John","lastName":"Doe","address1":"1 Market St","locality":"san francisco",
	"administrativeArea":"CA","postalCode":"94105","country":"US","email":"test@cybs.com","phoneNumber":"4158880000"}}}`
}

type session struct {
	srv    *sandbox.Server
	client *http.Client
	bearer map[string]string
}

func newSession(t *testing.T, srv *sandbox.Server) *session {
	tr := token(t, srv, "costco", apiKey, "ttc_ttusas_m")
	return &session{srv: srv, client: mtlsClient(t, srv, pair(t, tr)), bearer: map[string]string{"Authorization": "Bearer " + tr.AccessToken}}
}

func (s *session) pay(t *testing.T, body string) (int, map[string]any) {
	t.Helper()
	return s.call(t, "/pts/v2/payments", body)
}

func (s *session) call(t *testing.T, path, body string) (int, map[string]any) {
	t.Helper()
	st, b := post(t, s.client, s.srv.CybsURL+path, s.bearer, body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return st, m
}

func TestTokenEndpointStatuses(t *testing.T) {
	srv := start(t, sandbox.Config{})
	cases := []struct {
		name, integrator, key, body string
		want                        int
	}{
		{"Success", "costco", apiKey, `{"merchantId":"ttc_ttusas_m"}`, 200},
		{"MissingKey", "costco", "", `{"merchantId":"ttc_ttusas_m"}`, 403},
		{"WrongKey", "costco", "nope", `{"merchantId":"ttc_ttusas_m"}`, 403},
		{"KeyOfOtherIntegrator", "costco", "test-key-acme", `{"merchantId":"ttc_ttusas_m"}`, 403},
		{"UnknownIntegrator", "nobody", apiKey, `{"merchantId":"ttc_ttusas_m"}`, 403},
		{"BadJSON", "costco", apiKey, `{"merchantId":`, 400},
		{"MissingMerchant", "costco", apiKey, `{}`, 400},
		{"EmptyMerchant", "costco", apiKey, `{"merchantId":" "}`, 400},
		{"NoRefreshToken", "acme", "test-key-acme", `{"merchantId":"other_m"}`, 404},
		{"KnownMerchant", "acme", "test-key-acme", `{"merchantId":"acme_m"}`, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tc.key != "" {
				hdr["x-api-key"] = tc.key
			}
			st, b := post(t, http.DefaultClient, srv.TTCURL+"/cybersource/token/"+tc.integrator, hdr, tc.body)
			if st != tc.want {
				t.Fatalf("status %d, want %d: %s", st, tc.want, b)
			}
			if st != 200 {
				return
			}
			// Exactly the seed's fields.
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			want := []string{"access_token", "expires_in", "mTls_cert", "mTls_key", "message", "token_type"}
			if len(m) != len(want) {
				t.Fatalf("fields %v, want %v", m, want)
			}
			for _, k := range want {
				if _, ok := m[k]; !ok {
					t.Fatalf("missing %s", k)
				}
			}
			if m["token_type"] != "Bearer" || m["expires_in"].(float64) != 899 {
				t.Fatalf("token_type %v expires_in %v", m["token_type"], m["expires_in"])
			}
			if !strings.HasPrefix(m["mTls_key"].(string), "-----BEGIN PRIVATE KEY-----") ||
				!strings.HasPrefix(m["mTls_cert"].(string), "-----BEGIN CERTIFICATE-----") {
				t.Fatal("PEM blocks are not the seed's types")
			}
		})
	}
	t.Run("Token500Fault", func(t *testing.T) {
		if err := srv.SetFaults(sandbox.Faults{Errors: map[string]sandbox.ErrorFault{"token": {Rate: 1, Status: 500}}}); err != nil {
			t.Fatal(err)
		}
		defer srv.SetFaults(sandbox.Faults{})
		st, _ := post(t, http.DefaultClient, srv.TTCURL+"/cybersource/token/costco", map[string]string{"x-api-key": apiKey}, `{"merchantId":"m"}`)
		if st != 500 {
			t.Fatalf("status %d, want 500", st)
		}
	})
}

func TestClientCertificateRequired(t *testing.T) {
	srv := start(t, sandbox.Config{})
	body := payment("4111111111111111", "10.00", "t1", true)
	tr := token(t, srv, "costco", apiKey, "ttc_ttusas_m")
	hdr := map[string]string{"Authorization": "Bearer " + tr.AccessToken}

	t.Run("NoCertificate", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, srv.CybsURL+"/pts/v2/payments", strings.NewReader(body))
		req.Header.Set("Authorization", hdr["Authorization"])
		_, err := mtlsClient(t, srv, nil).Do(req)
		if err == nil {
			t.Fatal("payment without a client certificate was accepted")
		}
		if !isTLSRefusal(err) {
			t.Fatalf("want a TLS-layer refusal, got %v", err)
		}
		t.Logf("refused: %v", err)
	})
	t.Run("CertificateFromAnotherCA", func(t *testing.T) {
		other := start(t, sandbox.Config{Integrators: map[string]sandbox.Integrator{"costco": {APIKey: apiKey}}})
		foreign := pair(t, token(t, other, "costco", apiKey, "ttc_ttusas_m"))
		req, _ := http.NewRequest(http.MethodPost, srv.CybsURL+"/pts/v2/payments", strings.NewReader(body))
		req.Header.Set("Authorization", hdr["Authorization"])
		_, err := mtlsClient(t, srv, foreign).Do(req)
		if err == nil || !isTLSRefusal(err) {
			t.Fatalf("want a TLS-layer refusal, got %v", err)
		}
		t.Logf("refused: %v", err)
	})
	t.Run("CertificateOfAnotherMerchant", func(t *testing.T) {
		otherCert := pair(t, token(t, srv, "costco", apiKey, "other_m"))
		st, b := post(t, mtlsClient(t, srv, otherCert), srv.CybsURL+"/pts/v2/payments", hdr, body)
		if st != 401 || !strings.Contains(string(b), "UNAUTHORIZED_PARTNER") {
			t.Fatalf("got %d %s", st, b)
		}
	})
	if n := len(srv.Ledger().Charges); n != 0 {
		t.Fatalf("%d charges recorded from refused requests", n)
	}
}

func isTLSRefusal(err error) bool {
	var alert tls.AlertError
	if errors.As(err, &alert) {
		return true
	}
	s := err.Error()
	return strings.Contains(s, "tls:") || strings.Contains(s, "certificate")
}

func TestBearerChecks(t *testing.T) {
	srv := start(t, sandbox.Config{TokenLifetime: time.Second})
	s := newSession(t, srv)
	if st, m := s.pay(t, payment("4111111111111111", "10.00", "b1", true)); st != 201 {
		t.Fatalf("fresh token: %d %v", st, m)
	}
	time.Sleep(1100 * time.Millisecond)
	st, m := s.pay(t, payment("4111111111111111", "10.00", "b2", true))
	if st != 401 {
		t.Fatalf("expired token: %d %v", st, m)
	}
	rmsg := m["response"].(map[string]any)["rmsg"].(map[string]any)
	if rmsg["error"] != "ACCESS_TOKEN_EXPIRED" {
		t.Fatalf("401 body %v", m)
	}

	s2 := newSession(t, srv)
	srv.RevokeTokens("costco", "ttc_ttusas_m")
	st, m = s2.pay(t, payment("4111111111111111", "10.00", "b3", true))
	if st != 401 || m["response"].(map[string]any)["rmsg"] != "Authentication Failed" {
		t.Fatalf("revoked token: %d %v", st, m)
	}
}

func TestPaymentValidation(t *testing.T) {
	srv := start(t, sandbox.Config{})
	s := newSession(t, srv)
	good := payment("4111111111111111", "10.00", "v0", true)
	cases := []struct {
		name, from, to, field, reason string
	}{
		{"MissingCountry", `"country":"US",`, ``, "orderInformation.billTo.country", "MISSING_FIELD"},
		{"MissingCode", `"code":"REF-v0",`, ``, "clientReferenceInformation.code", "MISSING_FIELD"},
		{"MissingCurrency", `,"currency":"USD"`, ``, "orderInformation.amountDetails.currency", "MISSING_FIELD"},
		{"MissingAmount", `"totalAmount":"10.00",`, ``, "orderInformation.amountDetails.totalAmount", "MISSING_FIELD"},
		{"MissingCard", `"number":"4111111111111111",`, ``, "paymentInformation.card.number", "MISSING_FIELD"},
		{"MissingEmail", `"email":"test@cybs.com",`, ``, "orderInformation.billTo.email", "MISSING_FIELD"},
		{"BadLuhn", `4111111111111111`, `4111111111111112`, "paymentInformation.card.number", "INVALID_DATA"},
		{"BadMonth", `"expirationMonth":"12"`, `"expirationMonth":"13"`, "paymentInformation.card.expirationMonth", "INVALID_DATA"},
		{"NegativeAmount", `"10.00"`, `"-1.00"`, "orderInformation.amountDetails.totalAmount", "INVALID_DATA"},
		{"LowercaseCurrency", `"USD"`, `"usd"`, "orderInformation.amountDetails.currency", "INVALID_DATA"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := strings.Replace(good, tc.from, tc.to, 1)
			if body == good {
				t.Fatalf("case did not change the body")
			}
			st, m := s.pay(t, body)
			if st != 400 || m["status"] != "INVALID_REQUEST" || m["reason"] != tc.reason {
				t.Fatalf("got %d %v", st, m)
			}
			details, _ := json.Marshal(m["details"])
			if !strings.Contains(string(details), `"field":"`+tc.field+`"`) {
				t.Fatalf("details %s do not name %s", details, tc.field)
			}
		})
	}
	if n := len(srv.Ledger().Charges); n != 0 {
		t.Fatalf("%d charges from invalid requests", n)
	}
	t.Run("ReusedTransactionID", func(t *testing.T) {
		if st, m := s.pay(t, payment("4111111111111111", "10.00", "dup", true)); st != 201 {
			t.Fatalf("%d %v", st, m)
		}
		st, m := s.pay(t, payment("4111111111111111", "10.00", "dup", true))
		if st != 400 || m["reason"] != "DUPLICATE_REQUEST" {
			t.Fatalf("reused transactionId: %d %v", st, m)
		}
		if n := len(srv.Ledger().Charges); n != 1 {
			t.Fatalf("%d charges, want 1", n)
		}
	})
}

func TestPaymentOutcomes(t *testing.T) {
	srv := start(t, sandbox.Config{})
	s := newSession(t, srv)
	cases := []struct {
		name, card, amount       string
		status, reason, authAmnt string
		httpStatus               int
		live                     bool
	}{
		{"Approved", "4111111111111111", "102.21", "AUTHORIZED", "", "102.21", 201, true},
		{"Mastercard", "5555555555554444", "10.00", "AUTHORIZED", "", "10.00", 201, true},
		{"GeneralDecline", "4000000000000002", "10.00", "DECLINED", "PROCESSOR_DECLINED", "", 201, false},
		{"InsufficientFunds", "4000000000009995", "10.00", "DECLINED", "INSUFFICIENT_FUND", "", 201, false},
		{"ExpiredCard", "4000000000000069", "10.00", "DECLINED", "EXPIRED_CARD", "", 201, false},
		{"StolenCard", "4000000000009987", "10.00", "DECLINED", "STOLEN_LOST_CARD", "", 201, false},
		{"InvalidAccount", "42423482938483873", "10.00", "DECLINED", "INVALID_ACCOUNT", "", 201, false},
		{"PendingReviewCard", "4000000000000101", "10.00", "AUTHORIZED_PENDING_REVIEW", "AVS_FAILED", "10.00", 201, true},
		{"PartialByAmount", "4111111111111111", "3000.00", "PARTIAL_AUTHORIZED", "", "1500.00", 201, true},
		{"PendingReviewByAmount", "4111111111111111", "3001.00", "AUTHORIZED_PENDING_REVIEW", "AVS_FAILED", "3001.00", 201, true},
		{"SystemErrorNotCharged", "4111111111111111", "2000.00", "", "", "", 502, false},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			txn := "o" + string(rune('a'+i))
			st, m := s.pay(t, payment(tc.card, tc.amount, txn, false))
			if st != tc.httpStatus {
				t.Fatalf("http %d, want %d: %v", st, tc.httpStatus, m)
			}
			if st == 502 {
				if m["status"] != "SERVER_ERROR" || m["reason"] != "SYSTEM_ERROR" {
					t.Fatalf("502 body %v", m)
				}
				return
			}
			if m["status"] != tc.status {
				t.Fatalf("status %v, want %s", m["status"], tc.status)
			}
			if tc.reason != "" {
				if ei, _ := m["errorInformation"].(map[string]any); ei["reason"] != tc.reason {
					t.Fatalf("reason %v, want %s", m["errorInformation"], tc.reason)
				}
			}
			if tc.authAmnt != "" {
				ad := m["orderInformation"].(map[string]any)["amountDetails"].(map[string]any)
				if ad["authorizedAmount"] != tc.authAmnt {
					t.Fatalf("authorizedAmount %v, want %s", ad["authorizedAmount"], tc.authAmnt)
				}
				pi := m["processorInformation"].(map[string]any)
				if pi["approvalCode"] == "" || len(pi["networkTransactionId"].(string)) != 15 {
					t.Fatalf("processorInformation %v", pi)
				}
				if _, ok := m["_links"].(map[string]any)["capture"]; !ok {
					t.Fatalf("auth-only _links without capture: %v", m["_links"])
				}
				ti := m["tokenInformation"].(map[string]any)
				for _, k := range []string{"customer", "paymentInstrument", "instrumentIdentifier"} {
					if ti[k].(map[string]any)["id"] == "" {
						t.Fatalf("tokenInformation.%s.id empty", k)
					}
				}
			}
			id, _ := m["id"].(string)
			var found bool
			for _, c := range srv.Ledger().Charges {
				if c.ID == id {
					found = true
					if c.Live != tc.live {
						t.Fatalf("ledger live=%v, want %v", c.Live, tc.live)
					}
				}
			}
			if !found {
				t.Fatalf("charge %s not in ledger", id)
			}
		})
	}
}

func TestCutAfterChargeThenTimeoutReversal(t *testing.T) {
	srv := start(t, sandbox.Config{Faults: sandbox.Faults{CutAfterChargeRate: 1}})
	s := newSession(t, srv)
	req, _ := http.NewRequest(http.MethodPost, srv.CybsURL+"/pts/v2/payments",
		strings.NewReader(payment("4111111111111111", "55.00", "cut-1", false)))
	req.Header.Set("Authorization", s.bearer["Authorization"])
	req.Header.Set("Content-Type", "application/json")
	_, err := s.client.Do(req)
	if err == nil {
		t.Fatal("want a connection error")
	}
	l := srv.Ledger()
	if len(l.Charges) != 1 || !l.Charges[0].Live || l.Charges[0].Answered != "cut" {
		t.Fatalf("ledger %+v", l.Charges)
	}
	if err := srv.SetFaults(sandbox.Faults{}); err != nil {
		t.Fatal(err)
	}
	st, m := s.call(t, "/pts/v2/reversals", `{"clientReferenceInformation":{"transactionId":"cut-1"},
		"reversalInformation":{"amountDetails":{"totalAmount":"55.00","currency":"USD"},"reason":"timeout"}}`)
	if st != 201 || m["status"] != "REVERSED" {
		t.Fatalf("timeout reversal: %d %v", st, m)
	}
	l = srv.Ledger()
	if c := l.Charges[0]; c.Live || !c.Reversed {
		t.Fatalf("after reversal: %+v", c)
	}
	// The spent transactionId cannot charge again.
	if st, m := s.pay(t, payment("4111111111111111", "55.00", "cut-1", false)); st != 400 {
		t.Fatalf("reuse after reversal: %d %v", st, m)
	}
	// A timeout reversal for an attempt that never arrived says so.
	st, m = s.call(t, "/pts/v2/reversals", `{"clientReferenceInformation":{"transactionId":"never"},
		"reversalInformation":{"amountDetails":{"totalAmount":"5.00","currency":"USD"}}}`)
	if st != 201 || m["reversalAmountDetails"] == nil {
		t.Fatalf("reversal of unknown attempt: %d %v", st, m)
	}
	if l := srv.Ledger(); len(l.TimeoutReversals) != 2 || l.TimeoutReversals[1].Found {
		t.Fatalf("timeout reversals %+v", l.TimeoutReversals)
	}
}

func TestTimeoutVoidAndFollowUps(t *testing.T) {
	srv := start(t, sandbox.Config{Faults: sandbox.Faults{TimeoutAfterChargeRate: 1}})
	s := newSession(t, srv)
	st, m := s.pay(t, payment("4111111111111111", "20.00", "sale-1", true))
	if st != 502 || m["reason"] != "SERVER_TIMEOUT" {
		t.Fatalf("502 after charge: %d %v", st, m)
	}
	if l := srv.Ledger(); !l.Charges[0].Live {
		t.Fatal("charge behind the 502 is not live")
	}
	_ = srv.SetFaults(sandbox.Faults{})
	st, m = s.call(t, "/pts/v2/voids", `{"clientReferenceInformation":{"transactionId":"sale-1"}}`)
	if st != 201 || m["status"] != "VOIDED" {
		t.Fatalf("timeout void: %d %v", st, m)
	}
	if c := srv.Ledger().Charges[0]; c.Live || !c.Voided {
		t.Fatalf("after void %+v", c)
	}

	// Auth, partial capture, reverse the rest.
	st, m = s.pay(t, payment("4111111111111111", "100.00", "auth-2", false))
	if st != 201 {
		t.Fatal(st, m)
	}
	id := m["id"].(string)
	if st, m := s.call(t, "/pts/v2/payments/"+id+"/captures", `{"orderInformation":{"amountDetails":{"totalAmount":"60.00","currency":"USD"}}}`); st != 201 || m["status"] != "PENDING" {
		t.Fatalf("capture %d %v", st, m)
	}
	if st, m := s.call(t, "/pts/v2/payments/"+id+"/captures", `{"orderInformation":{"amountDetails":{"totalAmount":"60.00","currency":"USD"}}}`); st != 400 || m["reason"] != "EXCEEDS_AUTH_AMOUNT" {
		t.Fatalf("over-capture %d %v", st, m)
	}
	if st, m := s.call(t, "/pts/v2/payments/"+id+"/reversals", `{"reversalInformation":{"amountDetails":{"totalAmount":"40.00"},"reason":"rest"}}`); st != 201 || m["status"] != "REVERSED" {
		t.Fatalf("reversal %d %v", st, m)
	}
	// Refund twice: CyberSource does not deduplicate refunds.
	if st, m := s.call(t, "/pts/v2/payments/"+id+"/refunds", `{"orderInformation":{"amountDetails":{"totalAmount":"30.00","currency":"USD"}}}`); st != 201 {
		t.Fatalf("refund %d %v", st, m)
	}
	if st, m := s.call(t, "/pts/v2/payments/"+id+"/refunds", `{"orderInformation":{"amountDetails":{"totalAmount":"30.00","currency":"USD"}}}`); st != 201 {
		t.Fatalf("refund %d %v", st, m)
	}
	if st, m := s.call(t, "/pts/v2/payments/"+id+"/refunds", `{"orderInformation":{"amountDetails":{"totalAmount":"0.01","currency":"USD"}}}`); st != 400 {
		t.Fatalf("over-refund %d %v", st, m)
	}
	c := srv.Ledger().Charges[1]
	if c.CapturedAmount != "60.00" || c.ReversedAmount != "40.00" || c.RefundedAmount != "60.00" || len(c.Refunds) != 2 {
		t.Fatalf("bookkeeping %+v", c)
	}
}

func TestTokenRequestOverlap(t *testing.T) {
	srv := start(t, sandbox.Config{Faults: sandbox.Faults{Latency: map[string]sandbox.Latency{
		"token": {Fixed: sandbox.Duration(150 * time.Millisecond)},
	}}})
	// Sequential: no overlap.
	token(t, srv, "costco", apiKey, "m1")
	token(t, srv, "costco", apiKey, "m1")
	if n := srv.Ledger().OverlappingTokenRequests(); n != 0 {
		t.Fatalf("sequential requests flagged: %d", n)
	}
	// Concurrent for two different merchants: no overlap either.
	var wg sync.WaitGroup
	for _, m := range []string{"m2", "m3"} {
		wg.Go(func() { token(t, srv, "costco", apiKey, m) })
	}
	wg.Wait()
	if n := srv.Ledger().OverlappingTokenRequests(); n != 0 {
		t.Fatalf("requests for different merchants flagged: %d", n)
	}
	// Concurrent for one merchant: both flagged.
	for range 2 {
		wg.Go(func() { token(t, srv, "costco", apiKey, "m1") })
	}
	wg.Wait()
	l := srv.Ledger()
	if n := l.OverlappingTokenRequests(); n != 2 {
		t.Fatalf("overlapping requests flagged: %d, want 2 (%+v)", n, l.TokenRequests)
	}
}

func TestCallbackChecksLedger(t *testing.T) {
	srv := start(t, sandbox.Config{})
	s := newSession(t, srv)
	_, m := s.pay(t, payment("4111111111111111", "3000.00", "cb-1", true)) // partial: 1500.00
	id := m["id"].(string)
	_, dm := s.pay(t, payment("4000000000000002", "10.00", "cb-2", true))
	declined := dm["id"].(string)
	cb := func(txn, amount, currency, merchant string) string {
		return `{"merchantId":"` + merchant + `","transactionId":"` + txn + `","bookingId":"C253535","currency":"` + currency + `","amount":"` + amount + `"}`
	}
	key := map[string]string{"x-api-key": apiKey}
	cases := []struct {
		name string
		hdr  map[string]string
		body string
		want int
	}{
		{"NoKey", nil, cb(id, "1500.00", "USD", "ttc_ttusas_m"), 403},
		{"MissingBooking", key, `{"merchantId":"ttc_ttusas_m","transactionId":"` + id + `","currency":"USD","amount":"1500.00"}`, 400},
		{"UnknownTransaction", key, cb("123", "1500.00", "USD", "ttc_ttusas_m"), 400},
		{"RequestedNotAuthorizedAmount", key, cb(id, "3000.00", "USD", "ttc_ttusas_m"), 400},
		{"WrongCurrency", key, cb(id, "1500.00", "EUR", "ttc_ttusas_m"), 400},
		{"WrongMerchant", key, cb(id, "1500.00", "USD", "other"), 400},
		{"Declined", key, cb(declined, "10.00", "USD", "ttc_ttusas_m"), 400},
		{"OK", key, cb(id, "1500.00", "USD", "ttc_ttusas_m"), 200},
		{"OKAgain", key, cb(id, "1500.0", "USD", "ttc_ttusas_m"), 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, b := post(t, http.DefaultClient, srv.TTCURL+"/cybersource/oauth/callback", tc.hdr, tc.body)
			if st != tc.want {
				t.Fatalf("%d %s, want %d", st, b, tc.want)
			}
			if st == 200 && !bytes.Contains(b, []byte(`"message":"ok"`)) {
				t.Fatalf("body %s", b)
			}
		})
	}
	l := srv.Ledger()
	if l.CallbackCount(id) != 2 || l.CallbacksRejected != 7 {
		t.Fatalf("callbacks %+v rejected %d", l.Callbacks, l.CallbacksRejected)
	}
	// The callback naming another merchant is flagged.
	if len(l.CrossMerchant) != 1 || l.CrossMerchant[0].Endpoint != "callback" || l.CrossMerchant[0].MerchantID != "other" ||
		l.CrossMerchant[0].OwnerMerchantID != "ttc_ttusas_m" || l.CrossMerchant[0].PaymentID != id {
		t.Fatalf("cross-merchant %+v", l.CrossMerchant)
	}
}

func TestFaultsAdmin(t *testing.T) {
	srv := start(t, sandbox.Config{})
	st, b := post(t, http.DefaultClient, srv.TTCURL+"/sandbox/faults", nil,
		`{"errors":{"callback":{"rate":1,"status":500}},"outages":[{"endpoint":"payments","for":"1h"}],"latency":{"token":{"fixed":"1ms"}}}`)
	if st != 200 {
		t.Fatalf("%d %s", st, b)
	}
	s := newSession(t, srv)
	if st, m := s.pay(t, payment("4111111111111111", "1.00", "f1", true)); st != 503 {
		t.Fatalf("payment in outage: %d %v", st, m)
	}
	if st, _ := post(t, http.DefaultClient, srv.TTCURL+"/cybersource/oauth/callback", map[string]string{"x-api-key": apiKey}, `{}`); st != 500 {
		t.Fatalf("callback with error fault: %d", st)
	}
	if st, b := post(t, http.DefaultClient, srv.TTCURL+"/sandbox/faults", nil, `{"errors":{"nowhere":{"rate":1,"status":500}}}`); st != 400 {
		t.Fatalf("bad faults accepted: %d %s", st, b)
	}
	if st, _ := post(t, http.DefaultClient, srv.TTCURL+"/sandbox/reset", nil, ``); st != 200 {
		t.Fatal("reset")
	}
	resp, err := http.Get(srv.TTCURL + "/sandbox/ledger")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var l sandbox.Ledger
	if err := json.NewDecoder(resp.Body).Decode(&l); err != nil || len(l.TokenRequests) != 0 {
		t.Fatalf("ledger after reset: %v %+v", err, l)
	}
}

func TestMITRules(t *testing.T) {
	srv := start(t, sandbox.Config{})
	s := newSession(t, srv)
	n := 0
	mit := func(card, extra string) string {
		n++
		body := payment(card, "10.00", fmt.Sprintf("mit-%d", n), false)
		return strings.Replace(body, `"processingInformation":{`, `"processingInformation":{"commerceIndicator":"recurring","authorizationOptions":{"initiator":{"type":"merchant","storedCredentialUsed":true`+extra+`}},`, 1)
	}
	cases := []struct {
		name, body, field string
	}{
		{"NoPreviousTransactionID", mit("4111111111111111", ""), "previousTransactionId"},
		{"DiscoverWithoutOriginalAmount", mit("6011111111111117", `,"merchantInitiatedTransaction":{"reason":"7","previousTransactionId":"123"}`), "originalAuthorizedAmount"},
	}
	for _, tc := range cases {
		st, m := s.pay(t, tc.body)
		d, _ := json.Marshal(m["details"])
		if st != 400 || m["reason"] != "MISSING_FIELD" || !strings.Contains(string(d), tc.field) {
			t.Errorf("%s: %d %v", tc.name, st, m)
		}
	}
	st, m := s.pay(t, mit("6011111111111117", `,"merchantInitiatedTransaction":{"previousTransactionId":"123","originalAuthorizedAmount":"10.00"}`))
	if st != 201 {
		t.Fatalf("valid Discover MIT: %d %v", st, m)
	}
	c := srv.Ledger().Charges[0]
	if c.Credential.InitiatorType != "merchant" || c.Credential.PreviousTransactionID != "123" || c.Credential.OriginalAmount != "10.00" || c.CommerceIndic != "recurring" {
		t.Fatalf("ledger credential %+v", c.Credential)
	}
}

// TestAdminMatchesTheServer: Admin (the client of the admin routes, for a
// sandbox in another process) reads the same counts and ledger as the
// server itself, after a charge, a decline and a callback.
func TestAdminMatchesTheServer(t *testing.T) {
	srv := start(t, sandbox.Config{})
	a := sandbox.Admin{URL: srv.TTCURL}
	ctx := context.Background()
	s := newSession(t, srv)
	_, m := s.pay(t, payment("4111111111111111", "12.00", "adm-1", true))
	id := m["id"].(string)
	_, _ = s.pay(t, payment("4000000000000002", "10.00", "adm-2", true))
	if st, b := post(t, http.DefaultClient, srv.TTCURL+"/cybersource/oauth/callback", map[string]string{"x-api-key": apiKey},
		`{"merchantId":"ttc_ttusas_m","transactionId":"`+id+`","bookingId":"C1","currency":"USD","amount":"12.00"}`); st != 200 {
		t.Fatalf("callback %d %s", st, b)
	}
	charges, callbacks, err := a.Counts(ctx)
	wc, wcb := srv.Counts()
	if err != nil || charges != wc || callbacks != wcb || charges != 2 || callbacks != 1 {
		t.Fatalf("admin counts %d, %d (%v); server %d, %d", charges, callbacks, err, wc, wcb)
	}
	l, err := a.Ledger(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := srv.Ledger(); len(l.Charges) != len(want.Charges) || l.Charges[0].ID != want.Charges[0].ID ||
		len(l.Callbacks) != 1 || l.Callbacks[0].BookingID != "C1" || l.TLSHandshakes != want.TLSHandshakes || len(l.TokenRequests) != 1 {
		t.Fatalf("admin ledger %+v\nserver ledger %+v", l, want)
	}
	if err := (sandbox.Admin{URL: srv.TTCURL + "/nowhere"}).SetFaults(ctx, sandbox.Faults{}); err == nil {
		t.Fatal("an answer other than 200 read as success")
	}
}
