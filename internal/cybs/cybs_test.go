package cybs_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ttcpay/payflow/internal/cybs"
	"github.com/ttcpay/payflow/internal/sandbox"
	"github.com/ttcpay/payflow/internal/ttc"
)

// fakeServer answers every request with status and body (or runs fn).
func fakeServer(t *testing.T, fn http.HandlerFunc) (*cybs.Client, cybs.Credentials) {
	t.Helper()
	srv := httptest.NewTLSServer(fn)
	t.Cleanup(srv.Close)
	c, cr := clientFor(t, srv, cybs.Config{Timeout: 500 * time.Millisecond})
	cr.AccessToken = "tok-secret"
	return c, cr
}

// clientFor builds a client of cfg for the started TLS test server srv
// (its URL and its certificate as the only root), and credentials of
// generation 1 with an empty certificate (the test servers ask for none).
func clientFor(t *testing.T, srv *httptest.Server, cfg cybs.Config) (*cybs.Client, cybs.Credentials) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	cfg.BaseURL, cfg.RootCAs = srv.URL, pool
	c, err := cybs.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, cybs.Credentials{Key: "k", Generation: 1, AccessToken: "tok", Certificate: &tls.Certificate{}}
}

func req() *cybs.PaymentRequest {
	return &cybs.PaymentRequest{
		ClientReferenceInformation: cybs.ClientReference{Code: "R1", TransactionID: "T1"},
		PaymentInformation:         cybs.PaymentInformation{Card: &cybs.Card{Number: "4111111111111111", ExpirationMonth: "12", ExpirationYear: "2031"}},
		OrderInformation:           cybs.OrderInformation{AmountDetails: cybs.AmountDetails{TotalAmount: "1.00", Currency: "USD"}},
	}
}

func TestAuthorizeOutcomes(t *testing.T) {
	cases := []struct {
		name         string
		status       int
		body         string
		want         cybs.Outcome
		reason       string
		holdsAuth    bool
		wantResponse bool
	}{
		{"Authorized", 201, `{"id":"1","status":"AUTHORIZED"}`, cybs.OutcomeApproved, "", false, true},
		{"PartialAuthorized", 201, `{"id":"1","status":"PARTIAL_AUTHORIZED","orderInformation":{"amountDetails":{"authorizedAmount":"0.50"}}}`, cybs.OutcomeApproved, "", false, true},
		{"PendingReviewAuth", 201, `{"id":"1","status":"AUTHORIZED_PENDING_REVIEW","errorInformation":{"reason":"AVS_FAILED"}}`, cybs.OutcomeApproved, "", false, true},
		{"Declined", 201, `{"id":"1","status":"DECLINED","errorInformation":{"reason":"INSUFFICIENT_FUND","message":"Decline"}}`, cybs.OutcomeDeclined, "", false, true},
		{"InvalidRequest201", 201, `{"id":"1","status":"INVALID_REQUEST"}`, cybs.OutcomeDeclined, "", false, true},
		{"RiskDeclined", 201, `{"id":"1","status":"AUTHORIZED_RISK_DECLINED"}`, cybs.OutcomeDeclined, "", true, true},
		{"PendingReview", 201, `{"id":"1","status":"PENDING_REVIEW"}`, cybs.OutcomeDeclined, "", true, true},
		{"PendingAuthentication", 201, `{"id":"1","status":"PENDING_AUTHENTICATION"}`, cybs.OutcomeDeclined, "", false, true},
		{"PendingAPM", 201, `{"id":"1","status":"PENDING"}`, cybs.OutcomeUnknown, "", false, true},
		{"NewStatus", 201, `{"id":"1","status":"SOMETHING_NEW"}`, cybs.OutcomeUnknown, "", false, true},
		{"NoID", 201, `{"status":"AUTHORIZED"}`, cybs.OutcomeUnknown, "", false, true},
		{"UnreadableCreated", 201, `{"id":`, cybs.OutcomeUnknown, "", false, false},
		{"MissingField", 400, `{"submitTimeUtc":"x","status":"INVALID_REQUEST","reason":"MISSING_FIELD","message":"Declined - The request is missing one or more fields","details":[{"field":"orderInformation.billTo.country","reason":"MISSING_FIELD"}]}`, cybs.OutcomeInvalid, "MISSING_FIELD", false, false},
		{"InvalidData", 400, `{"status":"INVALID_REQUEST","reason":"INVALID_DATA","message":"Declined - One or more fields in the request contains invalid data"}`, cybs.OutcomeInvalid, "INVALID_DATA", false, false},
		{"DuplicateRequest", 400, `{"status":"INVALID_REQUEST","reason":"DUPLICATE_REQUEST"}`, cybs.OutcomeInvalid, "DUPLICATE_REQUEST", false, false},
		{"CardTypeNotAccepted", 400, `{"status":"INVALID_REQUEST","reason":"CARD_TYPE_NOT_ACCEPTED"}`, cybs.OutcomeInvalid, "CARD_TYPE_NOT_ACCEPTED", false, false},
		{"BadRequestNoBody", 400, ``, cybs.OutcomeInvalid, "", false, false},
		{"TokenExpired", 401, `{"response":{"rmsg":{"error":"ACCESS_TOKEN_EXPIRED","error_description":"ACCESS_TOKEN_EXPIRED"}}}`, cybs.OutcomeCredentialsRejected, "ACCESS_TOKEN_EXPIRED", false, false},
		{"UnauthorizedPartner", 401, `{"response":{"rmsg":{"error":"UNAUTHORIZED_PARTNER","error_description":"UNAUTHORIZED_PARTNER"}}}`, cybs.OutcomeCredentialsRejected, "UNAUTHORIZED_PARTNER", false, false},
		{"AuthenticationFailed", 401, `{"response":{"rmsg":"Authentication Failed"}}`, cybs.OutcomeCredentialsRejected, "", false, false},
		{"Unauthorized401EmptyDuringOutage", 401, ``, cybs.OutcomeCredentialsRejected, "", false, false},
		{"Forbidden", 403, `{}`, cybs.OutcomeInvalid, "", false, false},
		{"NotFound", 404, ``, cybs.OutcomeInvalid, "", false, false},
		{"RequestTimeout", 408, ``, cybs.OutcomeUnknown, "", false, false},
		{"TooManyRequests", 429, ``, cybs.OutcomeUnknown, "", false, false},
		{"InternalError", 500, ``, cybs.OutcomeUnknown, "", false, false},
		{"SystemError", 502, `{"submitTimeUtc":"x","status":"SERVER_ERROR","reason":"SYSTEM_ERROR","message":"Error - General system failure."}`, cybs.OutcomeUnknown, "SYSTEM_ERROR", false, false},
		{"ServerTimeout", 502, `{"status":"SERVER_ERROR","reason":"SERVER_TIMEOUT"}`, cybs.OutcomeUnknown, "SERVER_TIMEOUT", false, false},
		{"ServiceTimeout", 502, `{"status":"SERVER_ERROR","reason":"SERVICE_TIMEOUT"}`, cybs.OutcomeUnknown, "SERVICE_TIMEOUT", false, false},
		{"Unavailable", 503, `<html>`, cybs.OutcomeUnknown, "", false, false},
		{"GatewayTimeout", 504, ``, cybs.OutcomeUnknown, "", false, false},
		{"OK200", 200, `{"id":"1","status":"AUTHORIZED"}`, cybs.OutcomeUnknown, "", false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, cr := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Authorization") != "Bearer tok-secret" {
					t.Errorf("Authorization header %q", r.Header.Get("Authorization"))
				}
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			})
			resp, err := c.Authorize(context.Background(), cr, req())
			got := cybs.OutcomeOf(err)
			if err == nil {
				got = cybs.PaymentOutcome(resp.Status)
			}
			if got != tc.want {
				t.Fatalf("outcome %v, want %v (err %v)", got, tc.want, err)
			}
			if tc.reason != "" {
				var e *cybs.Error
				if !errors.As(err, &e) || e.Reason != tc.reason {
					t.Fatalf("reason: %v", err)
				}
			}
			if (resp != nil) != tc.wantResponse {
				t.Fatalf("response %v, want one: %v", resp, tc.wantResponse)
			}
			if resp != nil && resp.HoldsAuthorization() != tc.holdsAuth {
				t.Fatalf("HoldsAuthorization %v", resp.HoldsAuthorization())
			}
			if err != nil && strings.Contains(err.Error(), "tok-secret") {
				t.Fatalf("error leaks the token: %v", err)
			}
		})
	}
}

func TestMissingFieldNamed(t *testing.T) {
	c, cr := fakeServer(t, func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(400)
		_, _ = w.Write([]byte(`{"status":"INVALID_REQUEST","reason":"MISSING_FIELD","message":"m","details":[{"field":"orderInformation.billTo.country","reason":"MISSING_FIELD"}]}`))
	})
	_, err := c.Authorize(context.Background(), cr, req())
	if !strings.Contains(err.Error(), "orderInformation.billTo.country MISSING_FIELD") {
		t.Fatalf("error does not name the field: %v", err)
	}
}

func TestTransportOutcomes(t *testing.T) {
	t.Run("CutAfterRequestIsUnknown", func(t *testing.T) {
		c, cr := fakeServer(t, func(w http.ResponseWriter, _ *http.Request) {
			conn, _, _ := w.(http.Hijacker).Hijack()
			_ = conn.Close()
		})
		_, err := c.Authorize(context.Background(), cr, req())
		if cybs.OutcomeOf(err) != cybs.OutcomeUnknown {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("TimeoutIsUnknown", func(t *testing.T) {
		c, cr := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(2 * time.Second):
			}
		})
		_, err := c.Authorize(context.Background(), cr, req())
		if cybs.OutcomeOf(err) != cybs.OutcomeUnknown || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("RefusedConnectionIsNotSent", func(t *testing.T) {
		srv := httptest.NewTLSServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		c, _ := cybs.New(cybs.Config{BaseURL: url})
		cert := tls.Certificate{}
		_, err := c.Authorize(context.Background(), cybs.Credentials{Key: "k", Certificate: &cert}, req())
		if cybs.OutcomeOf(err) != cybs.OutcomeNotSent {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("CancelledBeforeSendIsNotSent", func(t *testing.T) {
		c, cr := fakeServer(t, func(http.ResponseWriter, *http.Request) {})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := c.Authorize(ctx, cr, req())
		if cybs.OutcomeOf(err) != cybs.OutcomeNotSent {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("UntrustedServerIsNotSent", func(t *testing.T) {
		srv := httptest.NewTLSServer(http.NotFoundHandler())
		defer srv.Close()
		c, _ := cybs.New(cybs.Config{BaseURL: srv.URL}) // system roots only
		cert := tls.Certificate{}
		_, err := c.Authorize(context.Background(), cybs.Credentials{Key: "k", Certificate: &cert}, req())
		if cybs.OutcomeOf(err) != cybs.OutcomeNotSent {
			t.Fatalf("got %v", err)
		}
	})
}

func TestFollowUpOutcomes(t *testing.T) {
	cases := []struct {
		status int
		body   string
		want   cybs.Outcome
	}{
		{201, `{"id":"1","status":"REVERSED"}`, cybs.OutcomeApproved},
		{201, `{"id":"1","status":"VOIDED"}`, cybs.OutcomeApproved},
		{201, `{"id":"1","status":"PENDING"}`, cybs.OutcomeApproved},
		{201, `{"id":"1","status":"TRANSMITTED"}`, cybs.OutcomeApproved},
		{201, `{"id":"1","status":"CANCELLED"}`, cybs.OutcomeApproved},
		{201, `{"id":"1","status":"FAILED"}`, cybs.OutcomeDeclined},
		{201, `{"id":"1","status":"DECLINED"}`, cybs.OutcomeDeclined},
		{201, `{"id":"1","status":"WHAT"}`, cybs.OutcomeUnknown},
		{400, `{"status":"INVALID_REQUEST","reason":"AUTH_ALREADY_REVERSED"}`, cybs.OutcomeInvalid},
		{400, `{"status":"INVALID_REQUEST","reason":"EXCEEDS_AUTH_AMOUNT"}`, cybs.OutcomeInvalid},
		{502, `{"status":"SERVER_ERROR","reason":"SYSTEM_ERROR"}`, cybs.OutcomeUnknown},
	}
	for _, tc := range cases {
		c, cr := fakeServer(t, func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(tc.status)
			_, _ = w.Write([]byte(tc.body))
		})
		_, err := c.TimeoutReversal(context.Background(), cr, &cybs.ReversalRequest{})
		if got := cybs.OutcomeOf(err); got != tc.want {
			t.Errorf("%d %s: %v, want %v (%v)", tc.status, tc.body, got, tc.want, err)
		}
	}
}

// Against the sandbox: real mTLS, every operation.
func sandboxClient(t *testing.T, faults sandbox.Faults) (*cybs.Client, cybs.Credentials, *sandbox.Server) {
	t.Helper()
	srv, err := sandbox.Listen(sandbox.Config{Integrators: map[string]sandbox.Integrator{"costco": {APIKey: "k"}}, Faults: faults}, "127.0.0.1:0", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	tc, _ := ttc.New(ttc.Config{BaseURL: srv.TTCURL, APIKeys: map[string]string{"costco": "k"}})
	tok, err := tc.Token(context.Background(), "costco", "ttc_ttusas_m")
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(tok.CertPEM, tok.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(srv.CACertPEM())
	c, err := cybs.New(cybs.Config{BaseURL: srv.CybsURL, RootCAs: pool, SolutionID: "ttctestpartner"})
	if err != nil {
		t.Fatal(err)
	}
	return c, cybs.Credentials{Key: "costco/ttc_ttusas_m", Generation: 1, AccessToken: tok.AccessToken, Certificate: &pair}, srv
}

func sandboxReq(txn, amount string, capture bool) *cybs.PaymentRequest {
	r := req()
	r.ClientReferenceInformation = cybs.ClientReference{Code: "REF-" + txn, TransactionID: txn}
	r.ProcessingInformation = cybs.ProcessingInformation{Capture: capture, ActionList: []string{cybs.ActionTokenCreate}}
	r.OrderInformation.AmountDetails.TotalAmount = amount
	r.OrderInformation.BillTo = &cybs.BillTo{FirstName: "John", LastName: "Doe", Address1: "1 Market St", Locality: "san francisco",
		AdministrativeArea: "CA", PostalCode: "94105", Country: "US", Email: "test@cybs.com", PhoneNumber: "4158880000"}
	return r
}

func TestSandboxOperations(t *testing.T) {
	c, cr, srv := sandboxClient(t, sandbox.Faults{})
	ctx := context.Background()
	resp, err := c.Authorize(ctx, cr, sandboxReq("A1", "100.00", false))
	if err != nil || resp.Status != "AUTHORIZED" || resp.NetworkTransactionID() == "" || resp.CardType() != "001" ||
		resp.TokenInformation == nil || resp.TokenInformation.PaymentInstrument.ID == "" {
		t.Fatalf("authorize: %+v %v", resp, err)
	}
	if _, err := c.Capture(ctx, cr, resp.ID, &cybs.CaptureRequest{OrderInformation: cybs.OrderInformation{AmountDetails: cybs.AmountDetails{TotalAmount: "60.00", Currency: "USD"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Reverse(ctx, cr, resp.ID, &cybs.ReversalRequest{ReversalInformation: cybs.ReversalInformation{AmountDetails: cybs.AmountDetails{TotalAmount: "40.00", Currency: "USD"}}}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Reverse(ctx, cr, resp.ID, &cybs.ReversalRequest{ReversalInformation: cybs.ReversalInformation{AmountDetails: cybs.AmountDetails{TotalAmount: "1.00", Currency: "USD"}}})
	var e *cybs.Error
	if !errors.As(err, &e) || e.Outcome != cybs.OutcomeInvalid || e.Reason != "AUTH_ALREADY_REVERSED" {
		t.Fatalf("second reversal: %v", err)
	}
	if _, err := c.Refund(ctx, cr, resp.ID, &cybs.RefundRequest{OrderInformation: cybs.OrderInformation{AmountDetails: cybs.AmountDetails{TotalAmount: "60.00", Currency: "USD"}}}); err != nil {
		t.Fatal(err)
	}
	sale, err := c.Authorize(ctx, cr, sandboxReq("S1", "10.00", true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Void(ctx, cr, sale.ID, &cybs.VoidRequest{}); err != nil {
		t.Fatal(err)
	}
	// A card paid with the TMS payment instrument created above.
	tr := sandboxReq("P1", "5.00", true)
	tr.PaymentInformation = cybs.PaymentInformation{PaymentInstrument: &cybs.IDRef{ID: resp.TokenInformation.PaymentInstrument.ID}}
	if r, err := c.Authorize(ctx, cr, tr); err != nil || r.Status != "AUTHORIZED" {
		t.Fatalf("TMS payment: %v", err)
	}
	l := srv.Ledger()
	if l.Charges[0].CapturedAmount != "60.00" || !l.Charges[0].Reversed || !l.Charges[1].Voided || l.TLSHandshakes != 1 || c.Handshakes.Load() != 1 {
		t.Fatalf("ledger %+v handshakes %d/%d", l.Charges[:2], l.TLSHandshakes, c.Handshakes.Load())
	}
}

func TestSandboxCutThenTimeoutReversal(t *testing.T) {
	c, cr, srv := sandboxClient(t, sandbox.Faults{CutAfterChargeRate: 1})
	ctx := context.Background()
	_, err := c.Authorize(ctx, cr, sandboxReq("CUT-1", "25.00", false))
	if cybs.OutcomeOf(err) != cybs.OutcomeUnknown {
		t.Fatalf("cut: %v", err)
	}
	_ = srv.SetFaults(sandbox.Faults{})
	r, err := c.TimeoutReversal(ctx, cr, &cybs.ReversalRequest{
		ClientReferenceInformation: cybs.ClientReference{TransactionID: "CUT-1"},
		ReversalInformation:        cybs.ReversalInformation{AmountDetails: cybs.AmountDetails{TotalAmount: "25.00", Currency: "USD"}, Reason: "timeout"},
	})
	if err != nil || r.Status != "REVERSED" || r.OriginalFailed() {
		t.Fatalf("timeout reversal: %+v %v", r, err)
	}
	r, err = c.TimeoutVoid(ctx, cr, &cybs.VoidRequest{ClientReferenceInformation: cybs.ClientReference{TransactionID: "NEVER-SENT"}})
	if err != nil || !r.OriginalFailed() {
		t.Fatalf("timeout void of a lost original: %+v %v", r, err)
	}
	if l := srv.Ledger(); l.Charges[0].Live {
		t.Fatal("charge still live")
	}
}

func TestSandboxExpiredToken(t *testing.T) {
	c, cr, _ := sandboxClient(t, sandbox.Faults{})
	cr.AccessToken = "sbx.unknown"
	_, err := c.Authorize(context.Background(), cr, sandboxReq("X", "1.00", true))
	if cybs.OutcomeOf(err) != cybs.OutcomeCredentialsRejected {
		t.Fatalf("got %v", err)
	}
}

func TestCardMasked(t *testing.T) {
	card := cybs.Card{Number: "4111111111111111", ExpirationMonth: "12", ExpirationYear: "2031", SecurityCode: "123"}
	for _, s := range []string{card.String(), card.GoString()} {
		if strings.Contains(s, "4111111111111111") || strings.Contains(s, "123}") || !strings.Contains(s, "****1111") {
			t.Fatalf("not masked: %s", s)
		}
	}
}

func TestNewRefusesPlainHTTP(t *testing.T) {
	for _, u := range []string{"http://127.0.0.1:8443", "http://user:pw-s3cret@api-ma.cybersource.com", "api-ma.cybersource.com", "https://"} {
		_, err := cybs.New(cybs.Config{BaseURL: u})
		if err == nil {
			t.Errorf("accepted %s", u)
		} else if strings.Contains(err.Error(), "pw-s3cret") {
			t.Errorf("the error quotes the password: %v", err)
		}
	}
}

// TestOutsideTextRedacted: whatever CyberSource echoes (a card number in a
// message, a reason, a field name) reaches the error only with its digit
// runs hidden, and a long message keeps a useful length.
func TestOutsideTextRedacted(t *testing.T) {
	const pan = "4111111111111111"
	long := "Declined - " + strings.Repeat("x", 150) + " card " + pan + " " + strings.Repeat("y", 300)
	cases := []struct {
		name   string
		status int
		body   string
		follow bool
	}{
		{"Message400", 400, `{"status":"INVALID_REQUEST","reason":"INVALID_DATA","message":"Invalid card ` + pan + `"}`, false},
		{"Reason400", 400, `{"status":"INVALID_REQUEST","reason":"BAD_` + pan + `","message":"m"}`, false},
		{"Status400", 400, `{"status":"` + pan + `","reason":"INVALID_DATA"}`, false},
		{"Details400", 400, `{"status":"INVALID_REQUEST","reason":"INVALID_DATA","details":[{"field":"card.` + pan + `","reason":"` + pan + `"}]}`, false},
		{"Rmsg401", 401, `{"response":{"rmsg":"Authentication Failed for ` + pan + `"}}`, false},
		{"RmsgObject401", 401, `{"response":{"rmsg":{"error":"E` + pan + `","error_description":"token for ` + pan + `"}}}`, false},
		{"Long502", 502, `{"status":"SERVER_ERROR","reason":"SYSTEM_ERROR","message":"` + long + `"}`, false},
		{"FollowUpDeclined", 201, `{"id":"1","status":"DECLINED","errorInformation":{"reason":"R` + pan + `","message":"card ` + pan + `"}}`, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, cr := fakeServer(t, func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			})
			var err error
			if tc.follow {
				_, err = c.Void(context.Background(), cr, "1", &cybs.VoidRequest{})
			} else {
				_, err = c.Authorize(context.Background(), cr, req())
			}
			var e *cybs.Error
			if !errors.As(err, &e) {
				t.Fatalf("got %v", err)
			}
			if strings.Contains(err.Error(), "111111") || strings.Contains(e.Status, "111111") {
				t.Fatalf("a card number is echoed: %v (status %q)", err, e.Status)
			}
			if tc.name == "Long502" && (len(e.Message) < 150 || len(e.Message) > 210) {
				t.Fatalf("message of %d bytes: %q", len(e.Message), e.Message)
			}
		})
	}
}
