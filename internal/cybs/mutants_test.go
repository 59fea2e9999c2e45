package cybs_test

// Tests for the mutants gremlins left alive in internal/cybs (see
// docs/mutation.md, "internal/cybs (gremlins)"). Each one fails with its
// mutant applied and passes on the real code.

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ttcpay/payflow/internal/cybs"
)

// TestErrorText pins the text of an *Error, which is what logs, results and
// dead letters show: no "(HTTP 0)" without an answer, the reason and
// message only when present, the field details in one bracketed list.
func TestErrorText(t *testing.T) {
	cases := []struct {
		name string
		err  cybs.Error
		want string
	}{
		{"NoAnswer", cybs.Error{Op: "authorize", Outcome: cybs.OutcomeNotSent},
			"cybersource authorize: not-sent"},
		{"StatusOnly", cybs.Error{Op: "capture", Outcome: cybs.OutcomeUnknown, HTTPStatus: 502},
			"cybersource capture: unknown (HTTP 502)"},
		{"ReasonAndMessage", cybs.Error{Op: "authorize", Outcome: cybs.OutcomeCredentialsRejected, HTTPStatus: 401, Reason: "ACCESS_TOKEN_EXPIRED", Message: "expired"},
			"cybersource authorize: credentials-rejected (HTTP 401) ACCESS_TOKEN_EXPIRED: expired"},
		{"MessageOnly", cybs.Error{Op: "authorize", Outcome: cybs.OutcomeCredentialsRejected, HTTPStatus: 401, Message: "Authentication Failed"},
			"cybersource authorize: credentials-rejected (HTTP 401): Authentication Failed"},
		{"OneDetail", cybs.Error{Op: "authorize", Outcome: cybs.OutcomeInvalid, HTTPStatus: 400, Reason: "MISSING_FIELD",
			Details: []cybs.FieldDetail{{Field: "orderInformation.billTo.country", Reason: "MISSING_FIELD"}}},
			"cybersource authorize: invalid (HTTP 400) MISSING_FIELD [orderInformation.billTo.country MISSING_FIELD]"},
		{"ThreeDetails", cybs.Error{Op: "authorize", Outcome: cybs.OutcomeInvalid, HTTPStatus: 400, Reason: "INVALID_DATA", Message: "m",
			Details: []cybs.FieldDetail{{Field: "a", Reason: "INVALID_DATA"}, {Field: "b", Reason: "MISSING_FIELD"}, {Field: "c", Reason: "INVALID_DATA"}}},
			"cybersource authorize: invalid (HTTP 400) INVALID_DATA: m [a INVALID_DATA, b MISSING_FIELD, c INVALID_DATA]"},
		{"TransportCause", cybs.Error{Op: "void", Outcome: cybs.OutcomeUnknown, Err: context.DeadlineExceeded},
			"cybersource void: unknown: context deadline exceeded"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.err.Error(); got != tc.want {
				t.Fatalf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestMaskPANLengthEdge: a value of four characters or fewer is masked
// whole; from five characters on, the last four show.
func TestMaskPANLengthEdge(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", "****"},
		{"111", "****"},
		{"1111", "****"},
		{"11111", "****1111"},
		{"4111111111111111", "****1111"},
		{"4242424242424242", "****4242"},
		{"5555555555554444", "****4444"},
		{"378282246310005", "****0005"},
	}
	for _, tc := range cases {
		if got := cybs.MaskPAN(tc.in); got != tc.want {
			t.Errorf("MaskPAN(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestNetworkTransactionIDFallback: networkTransactionId wins; transactionId
// is used only when it is absent. This id is what a later merchant-initiated
// payment quotes as previousTransactionId.
func TestNetworkTransactionIDFallback(t *testing.T) {
	cases := []struct {
		name, body, want string
	}{
		{"Both", `{"processorInformation":{"networkTransactionId":"016153570198200","transactionId":"999999999999999"}}`, "016153570198200"},
		{"NetworkOnly", `{"processorInformation":{"networkTransactionId":"016153570198200"}}`, "016153570198200"},
		{"TransactionOnly", `{"processorInformation":{"transactionId":"999999999999999"}}`, "999999999999999"},
		{"Neither", `{}`, ""},
	}
	for _, tc := range cases {
		var r cybs.PaymentResponse
		if err := json.Unmarshal([]byte(tc.body), &r); err != nil {
			t.Fatal(err)
		}
		if got := r.NetworkTransactionID(); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestSolutionIDOnPayments: a configured solution id is sent as
// clientReferenceInformation.partner.solutionId when the request has no
// partner of its own; a request's own partner is kept; with no solution id
// configured no partner object is sent at all. The caller's request is never
// modified.
func TestSolutionIDOnPayments(t *testing.T) {
	cases := []struct {
		name       string
		solutionID string
		partner    *cybs.Partner
		want       string // partner.solutionId sent; "-" for no partner object
	}{
		{"ConfiguredAdded", "ttcpartner", nil, "ttcpartner"},
		{"RequestOwnKept", "ttcpartner", &cybs.Partner{SolutionID: "ownpartner"}, "ownpartner"},
		{"NoneConfiguredNoPartner", "", nil, "-"},
		{"NoneConfiguredOwnKept", "", &cybs.Partner{SolutionID: "ownpartner"}, "ownpartner"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var sent struct {
				ClientReferenceInformation map[string]json.RawMessage `json:"clientReferenceInformation"`
			}
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				if err := json.Unmarshal(b, &sent); err != nil {
					t.Errorf("body: %v", err)
				}
				w.WriteHeader(201)
				_, _ = w.Write([]byte(`{"id":"1","status":"AUTHORIZED"}`))
			}))
			t.Cleanup(srv.Close)
			c, cr := clientFor(t, srv, cybs.Config{Timeout: 5 * time.Second, SolutionID: tc.solutionID})
			r := req()
			r.ClientReferenceInformation.Partner = tc.partner
			if _, err := c.Authorize(context.Background(), cr, r); err != nil {
				t.Fatal(err)
			}
			raw, ok := sent.ClientReferenceInformation["partner"]
			got := "-"
			if ok {
				var p struct {
					SolutionID *string `json:"solutionId"`
				}
				if err := json.Unmarshal(raw, &p); err != nil {
					t.Fatal(err)
				}
				got = "(partner without solutionId)"
				if p.SolutionID != nil {
					got = *p.SolutionID
				}
			}
			if got != tc.want {
				t.Fatalf("partner.solutionId sent: %s, want %s", got, tc.want)
			}
			if r.ClientReferenceInformation.Partner != tc.partner {
				t.Fatalf("the caller's request was modified")
			}
		})
	}
}

// TestRedirectMessage: a refused redirect names the host it pointed at (so
// an operator sees where), and only an absolute Location has one; a relative
// or unparsable Location is reported without a host and never breaks the
// call's error.
func TestRedirectMessage(t *testing.T) {
	cases := []struct {
		name     string
		status   int
		location string
		want     string
	}{
		{"Absolute", http.StatusTemporaryRedirect, "https://elsewhere.example/pts/v2/payments", "(to elsewhere.example)"},
		{"Relative", http.StatusTemporaryRedirect, "/pts/v3/payments", ""},
		// 300 is not followed by net/http, so the Location reaches the
		// client unparsed (a 307's would fail in net/http first).
		{"Unparsable", http.StatusMultipleChoices, "https://[::1/pts", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, cr := redirecting(t, tc.status, tc.location, true)
			_, err := c.Authorize(context.Background(), cr, req())
			var e *cybs.Error
			if !errors.As(err, &e) || !errors.Is(err, cybs.ErrRedirect) {
				t.Fatalf("got %v", err)
			}
			if tc.want != "" && !strings.Contains(e.Message, tc.want) {
				t.Fatalf("message %q does not name the target %q", e.Message, tc.want)
			}
			if tc.want == "" && strings.Contains(e.Message, "(to") {
				t.Fatalf("message %q names a host that is not there", e.Message)
			}
		})
	}
}

// TestMultipleChoicesIsARedirect: 300 is the first status of the 3xx range
// and is refused like every redirect (ErrRedirect, unknown once the body was
// written), not read as an undocumented status.
func TestMultipleChoicesIsARedirect(t *testing.T) {
	for _, status := range []int{300, 399} {
		c, cr := redirecting(t, status, "https://elsewhere.example/", true)
		_, err := c.Authorize(context.Background(), cr, req())
		var e *cybs.Error
		if !errors.As(err, &e) || !errors.Is(err, cybs.ErrRedirect) || e.HTTPStatus != status || e.Outcome != cybs.OutcomeUnknown {
			t.Fatalf("%d: got %v, want an unknown outcome carrying ErrRedirect", status, err)
		}
	}
}

// TestCutBodyKeepsItsStatusOutcome: an answer whose body is cut short is
// classified by its status when the status is definite (400, 401: nothing was
// charged), and is unknown when the status is a 201 (the charge may exist
// and its body is lost) or itself unknown (502).
func TestCutBodyKeepsItsStatusOutcome(t *testing.T) {
	cases := []struct {
		status int
		want   cybs.Outcome
	}{
		{201, cybs.OutcomeUnknown},
		{400, cybs.OutcomeInvalid},
		{401, cybs.OutcomeCredentialsRejected},
		{404, cybs.OutcomeInvalid},
		{502, cybs.OutcomeUnknown},
	}
	for _, tc := range cases {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			c, cr := fakeServer(t, func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Length", "1000")
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(`{"id":"1","status":"AUTH`))
				w.(http.Flusher).Flush()
				panic(http.ErrAbortHandler) // the connection is cut mid-body
			})
			_, err := c.Authorize(context.Background(), cr, req())
			var e *cybs.Error
			if !errors.As(err, &e) || e.Outcome != tc.want || e.HTTPStatus != tc.status {
				t.Fatalf("got %v, want %v with HTTP %d", err, tc.want, tc.status)
			}
		})
	}
}

// TestCredentialGenerations: a new generation (token or certificate
// refreshed) replaces the shared transport; a caller still holding an older
// generation is served by a one-off client and does not displace the newer
// one, whose connection keeps being reused.
func TestCredentialGenerations(t *testing.T) {
	cases := []struct {
		name      string
		gens      []int64
		wantConns int64
	}{
		{"Rotation", []int64{1, 2, 2}, 2},        // gen 2 gets its own connection, then reuses it
		{"OlderAfterNewer", []int64{2, 1, 2}, 2}, // gen 1 one-off; gen 2 still reuses its connection
		{"SameGeneration", []int64{1, 1, 1}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var conns atomic.Int64
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(201)
				_, _ = w.Write([]byte(`{"id":"1","status":"AUTHORIZED"}`))
			}))
			srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					conns.Add(1)
				}
			}
			srv.StartTLS()
			t.Cleanup(srv.Close)
			c, cr := clientFor(t, srv, cybs.Config{Timeout: 5 * time.Second})
			for _, g := range tc.gens {
				cr.Generation = g
				if _, err := c.Authorize(context.Background(), cr, req()); err != nil {
					t.Fatalf("generation %d: %v", g, err)
				}
			}
			if got := conns.Load(); got != tc.wantConns {
				t.Fatalf("%d connections for generations %v, want %d", got, tc.gens, tc.wantConns)
			}
		})
	}
}

// TestUnauthorizedBodyShapes: the 401 body's rmsg is an object (its error is
// the reason, its error_description the message) or a plain string (the
// message); anything else is left out.
func TestUnauthorizedBodyShapes(t *testing.T) {
	cases := []struct {
		name, body, reason, message string
	}{
		{"Object", `{"response":{"rmsg":{"error":"ACCESS_TOKEN_EXPIRED","error_description":"Token expired"}}}`, "ACCESS_TOKEN_EXPIRED", "Token expired"},
		{"ObjectWithoutError", `{"response":{"rmsg":{"error_description":"Token expired"}}}`, "", ""},
		{"String", `{"response":{"rmsg":"Authentication Failed"}}`, "", "Authentication Failed"},
		{"Number", `{"response":{"rmsg":7}}`, "", ""},
		{"NoRmsg", `{"response":{}}`, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, cr := fakeServer(t, func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(401)
				_, _ = w.Write([]byte(tc.body))
			})
			_, err := c.Authorize(context.Background(), cr, req())
			var e *cybs.Error
			if !errors.As(err, &e) || e.Outcome != cybs.OutcomeCredentialsRejected {
				t.Fatalf("got %v", err)
			}
			if e.Reason != tc.reason || e.Message != tc.message {
				t.Fatalf("reason %q message %q, want %q %q", e.Reason, e.Message, tc.reason, tc.message)
			}
		})
	}
}

// TestZeroOutcomeIsNoClass: the zero Outcome is none of the classes, so an
// *Error whose Outcome was left unset can never read as a definite answer
// (declined: nothing charged); callers treat it as unknown.
func TestZeroOutcomeIsNoClass(t *testing.T) {
	var zero cybs.Outcome
	for _, o := range []cybs.Outcome{cybs.OutcomeApproved, cybs.OutcomeDeclined, cybs.OutcomeInvalid,
		cybs.OutcomeCredentialsRejected, cybs.OutcomeUnknown, cybs.OutcomeNotSent} {
		if o == zero {
			t.Fatalf("the zero Outcome is %v", o)
		}
	}
	if s := zero.String(); s != "Outcome(0)" {
		t.Fatalf("zero Outcome prints %q", s)
	}
}
