package ttc_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ttcpay/payflow/internal/ttc"
)

// TestRedirectRefused: a 3xx from TTC is an error, never followed, so the
// x-api-key (and the merchant id, or the callback) go nowhere else; also
// when the caller brings its own *http.Client.
func TestRedirectRefused(t *testing.T) {
	var hits atomic.Int64
	thief := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = w.Write([]byte(`{}`))
	}))
	defer thief.Close()
	for _, status := range []int{301, 302, 303, 307, 308} {
		for _, own := range []bool{false, true} {
			name := strings.ReplaceAll(http.StatusText(status), " ", "")
			if own {
				name += "OwnHTTPClient"
			}
			t.Run(name, func(t *testing.T) {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					_, _ = io.Copy(io.Discard, r.Body)
					http.Redirect(w, r, thief.URL+r.URL.Path, status)
				}))
				defer srv.Close()
				cfg := ttc.Config{BaseURL: srv.URL, APIKeys: map[string]string{"costco": key}}
				if own {
					cfg.HTTPClient = &http.Client{}
				}
				c, err := ttc.New(cfg)
				if err != nil {
					t.Fatal(err)
				}
				_, tokErr := c.Token(context.Background(), "costco", "m")
				cbErr := c.Callback(context.Background(), "costco", ttc.Callback{MerchantID: "m", TransactionID: "1", BookingID: "b", Currency: "USD", Amount: "1.00"})
				if n := hits.Swap(0); n != 0 {
					t.Fatalf("the redirect target received %d request(s)", n)
				}
				for _, err := range []error{tokErr, cbErr} {
					var e *ttc.Error
					if !errors.As(err, &e) || e.Kind != ttc.KindBadResponse || e.Status != status || !e.Temporary() || !errors.Is(err, ttc.ErrRedirect) {
						t.Fatalf("got %v, want a temporary bad-response carrying ErrRedirect and HTTP %d", err, status)
					}
					if strings.Contains(err.Error(), key) {
						t.Fatalf("error leaks the API key: %v", err)
					}
				}
			})
		}
	}
}
