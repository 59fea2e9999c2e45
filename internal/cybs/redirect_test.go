package cybs_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ttcpay/payflow/internal/cybs"
)

// thief is where a redirect points: it counts every request it receives.
type thief struct {
	srv  *httptest.Server
	hits atomic.Int64
}

func newThief(t *testing.T, tlsServer bool) *thief {
	t.Helper()
	th := &thief{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		th.hits.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"id":"stolen","status":"AUTHORIZED"}`))
	})
	if tlsServer {
		th.srv = httptest.NewTLSServer(h)
	} else {
		th.srv = httptest.NewServer(h)
	}
	t.Cleanup(th.srv.Close)
	return th
}

// redirecting is a CyberSource stand-in that answers every call with status
// and a Location pointing at to; readBody says whether it reads the request
// body first.
func redirecting(t *testing.T, status int, to string, readBody bool) (*cybs.Client, cybs.Credentials) {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if readBody {
			_, _ = io.Copy(io.Discard, r.Body)
		}
		w.Header().Set("Location", to)
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate()) // httptest servers share one certificate: the thief is trusted too
	c, err := cybs.New(cybs.Config{BaseURL: srv.URL, RootCAs: pool, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	cert := tls.Certificate{}
	return c, cybs.Credentials{Key: "k", Generation: 1, AccessToken: "tok-secret", Certificate: &cert}
}

// TestRedirectRefused: a 3xx from the CyberSource host is an error, never
// followed: the card, CVV and Bearer token go nowhere else. The request body
// was written, so the outcome is unknown (the caller resolves it).
func TestRedirectRefused(t *testing.T) {
	for _, status := range []int{301, 302, 303, 307, 308} {
		for _, tlsThief := range []bool{true, false} {
			name := http.StatusText(status)
			if !tlsThief {
				name += "ToPlainHTTP"
			}
			t.Run(strings.ReplaceAll(name, " ", ""), func(t *testing.T) {
				th := newThief(t, tlsThief)
				c, cr := redirecting(t, status, th.srv.URL+"/pts/v2/payments", true)
				r := req()
				r.PaymentInformation.Card.SecurityCode = "737"
				resp, err := c.Authorize(context.Background(), cr, r)
				if n := th.hits.Load(); n != 0 {
					t.Fatalf("the redirect target received %d request(s)", n)
				}
				var e *cybs.Error
				if !errors.As(err, &e) || e.Outcome != cybs.OutcomeUnknown || e.HTTPStatus != status || !errors.Is(err, cybs.ErrRedirect) {
					t.Fatalf("got %v %v, want an unknown outcome carrying ErrRedirect and HTTP %d", resp, err, status)
				}
				if s := err.Error(); strings.Contains(s, "tok-secret") || strings.Contains(s, "4111111111111111") {
					t.Fatalf("error leaks: %s", s)
				}
				// Follow-ups (reversal, void) are refused the same way.
				if _, err := c.TimeoutReversal(context.Background(), cr, &cybs.ReversalRequest{}); cybs.OutcomeOf(err) != cybs.OutcomeUnknown || !errors.Is(err, cybs.ErrRedirect) {
					t.Fatalf("timeout reversal: %v", err)
				}
				if n := th.hits.Load(); n != 0 {
					t.Fatalf("the redirect target received %d request(s)", n)
				}
			})
		}
	}
}

// TestRedirectBeforeBodyIsNotSent: a redirect answered before the request
// body was written (the server replied to the headers alone) means nothing
// was processed: not sent, safe to retry. The body is larger than the socket
// buffers (12 MiB against a few MiB of send and receive buffers) so that the
// reply arrives while it is still being written.
func TestRedirectBeforeBodyIsNotSent(t *testing.T) {
	th := newThief(t, true)
	c, cr := redirecting(t, http.StatusTemporaryRedirect, th.srv.URL+"/pts/v2/payments", false)
	r := req()
	r.OrderInformation.BillTo = &cybs.BillTo{Address1: strings.Repeat("a", 12<<20)}
	_, err := c.Authorize(context.Background(), cr, r)
	if n := th.hits.Load(); n != 0 {
		t.Fatalf("the redirect target received %d request(s)", n)
	}
	if cybs.OutcomeOf(err) != cybs.OutcomeNotSent || !errors.Is(err, cybs.ErrRedirect) {
		t.Fatalf("got %v, want not-sent carrying ErrRedirect", err)
	}
}
