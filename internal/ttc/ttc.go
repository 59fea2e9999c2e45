// Package ttc is the client for TTC's Payment Gateway: the CyberSource token
// endpoint (access token plus mTLS certificate and key) and the callback
// endpoint that tells TTC about a charge.
//
// Errors are *Error values with a Kind; no error string ever carries an
// access token, a private key or an API key.
package ttc

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/ttcpay/payflow/internal/redact"
)

// Base URLs of the two environments the integration guide names.
const (
	UATBaseURL        = "https://paymentgateway.uat.travcorpservices.com"
	ProductionBaseURL = "https://paymentgateway.travcorpservices.com"
)

// TimeoutDefault bounds one HTTP call to TTC.
const TimeoutDefault = 10 * time.Second

// BaseURLFor returns the base URL of a named environment ("uat" or
// "production").
func BaseURLFor(env string) (string, error) {
	switch env {
	case "uat":
		return UATBaseURL, nil
	case "production":
		return ProductionBaseURL, nil
	}
	return "", fmt.Errorf("unknown TTC environment %q (want uat or production)", env)
}

// Config configures a Client.
type Config struct {
	// BaseURL of the gateway, e.g. UATBaseURL or a sandbox.
	BaseURL string
	// APIKeys maps each integrator this deployment serves to its x-api-key.
	APIKeys map[string]string
	// Timeout bounds one call. Defaults to TimeoutDefault.
	Timeout time.Duration
	// HTTPClient overrides the transport (tests). Its Timeout is not used,
	// and its CheckRedirect is replaced: a redirect is never followed.
	HTTPClient *http.Client
	// Trace, when set, writes the trace context (traceparent) into each
	// request's headers.
	Trace interface {
		Inject(ctx context.Context, h http.Header)
	}
}

// Client talks to TTC's Payment Gateway. It is safe for concurrent use.
type Client struct {
	base    string
	keys    map[string]string
	timeout time.Duration
	http    *http.Client
	trace   interface {
		Inject(ctx context.Context, h http.Header)
	}
}

// New validates the configuration and builds a client.
func New(cfg Config) (*Client, error) {
	if err := CheckBaseURL(cfg.BaseURL); err != nil {
		return nil, fmt.Errorf("ttc: %w", err)
	}
	if len(cfg.APIKeys) == 0 {
		return nil, errors.New("ttc: no API key configured for any integrator")
	}
	for name, k := range cfg.APIKeys {
		if name == "" || k == "" {
			return nil, fmt.Errorf("ttc: integrator %q has an empty name or API key", name)
		}
		if strings.IndexFunc(name+k, unicode.IsControl) >= 0 {
			return nil, fmt.Errorf("ttc: the name or API key of integrator %q holds a control character", name)
		}
	}
	var hc http.Client
	if cfg.HTTPClient != nil {
		hc = *cfg.HTTPClient // a copy: the caller's client keeps its own redirect policy
	} else {
		hc.Transport = &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     90 * time.Second,
			TLSHandshakeTimeout: 10 * time.Second,
			TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS12},
		}
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Client{
		base:    strings.TrimRight(cfg.BaseURL, "/"),
		keys:    cfg.APIKeys,
		timeout: cmp.Or(cfg.Timeout, TimeoutDefault),
		http:    &hc,
		trace:   cfg.Trace,
	}, nil
}

// CheckBaseURL accepts an https URL, or a plain http one on a loopback host
// (127.0.0.0/8, ::1, localhost: a local sandbox). Anywhere else plain http
// would send the API key and receive the mTLS private key in clear.
func CheckBaseURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		return fmt.Errorf("base URL %s is not an https URL", redact.URL(raw))
	case u.Scheme == "http" && !isLoopback(u.Hostname()):
		return fmt.Errorf("base URL %s is plain http on a host that is not loopback: use https (http only for a sandbox on 127.0.0.1, ::1 or localhost)", redact.URL(raw))
	}
	return nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Integrators lists the integrators that have an API key.
func (c *Client) Integrators() []string {
	out := make([]string, 0, len(c.keys))
	for n := range c.keys {
		out = append(out, n)
	}
	return out
}

// Token is what the token endpoint hands out. String() never shows the
// secrets.
type Token struct {
	AccessToken string
	TokenType   string
	// ExpiresAt is conservative: the time the request was sent plus
	// expires_in, so clock time spent in flight counts against it.
	ExpiresAt time.Time
	Lifetime  time.Duration
	CertPEM   []byte
	KeyPEM    []byte
}

// String redacts everything secret.
func (t *Token) String() string {
	return fmt.Sprintf("ttc.Token{type:%s expires:%s cert:%dB key:redacted token:redacted}",
		t.TokenType, t.ExpiresAt.UTC().Format(time.RFC3339), len(t.CertPEM))
}

// GoString redacts too, for %#v.
func (t *Token) GoString() string { return t.String() }

type tokenResponse struct {
	Message     string `json:"message"`
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	MTLSKey     string `json:"mTls_key"`
	MTLSCert    string `json:"mTls_cert"`
}

// Token requests an access token and the mTLS pair for a merchant. The
// response is validated: a Bearer token, expires_in > 0, and a certificate
// and key that parse and belong together.
func (c *Client) Token(ctx context.Context, integrator, merchantID string) (*Token, error) {
	const op = "token"
	key, ok := c.keys[integrator]
	if !ok {
		return nil, &Error{Op: op, Kind: KindNoAPIKey, Message: "no API key configured for integrator " + integrator}
	}
	body, _ := json.Marshal(map[string]string{"merchantId": merchantID})
	sent := time.Now()
	status, b, err := c.post(ctx, op, "/cybersource/token/"+url.PathEscape(integrator), key, body)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, statusError(op, status, b)
	}
	var tr tokenResponse
	if err := json.Unmarshal(b, &tr); err != nil {
		return nil, &Error{Op: op, Kind: KindBadResponse, Status: status, Message: "token response is not JSON"}
	}
	switch {
	case tr.AccessToken == "":
		return nil, &Error{Op: op, Kind: KindBadResponse, Status: status, Message: "token response has no access_token"}
	case !strings.EqualFold(tr.TokenType, "Bearer"):
		return nil, &Error{Op: op, Kind: KindBadResponse, Status: status, Message: fmt.Sprintf("token_type %q is not Bearer", redact.DigitsN(tr.TokenType, 20))}
	case tr.ExpiresIn <= 0:
		return nil, &Error{Op: op, Kind: KindBadResponse, Status: status, Message: "expires_in " + redact.Digits(strconv.FormatInt(tr.ExpiresIn, 10)) + " is not positive"}
	}
	if _, err := tls.X509KeyPair([]byte(tr.MTLSCert), []byte(tr.MTLSKey)); err != nil {
		// err from crypto/tls names the problem, never the key material.
		return nil, &Error{Op: op, Kind: KindBadResponse, Status: status, Message: "mTls_cert and mTls_key do not form a valid pair", Err: err}
	}
	life := time.Duration(tr.ExpiresIn) * time.Second
	return &Token{
		AccessToken: tr.AccessToken,
		TokenType:   "Bearer",
		ExpiresAt:   sent.Add(life),
		Lifetime:    life,
		CertPEM:     []byte(tr.MTLSCert),
		KeyPEM:      []byte(tr.MTLSKey),
	}, nil
}

// Callback is the body of POST /cybersource/oauth/callback.
type Callback struct {
	MerchantID    string `json:"merchantId"`
	TransactionID string `json:"transactionId"`
	BookingID     string `json:"bookingId"`
	Currency      string `json:"currency"`
	Amount        string `json:"amount"`
}

// Callback tells TTC about a charge. nil means TTC answered 2xx.
func (c *Client) Callback(ctx context.Context, integrator string, cb Callback) error {
	const op = "callback"
	key, ok := c.keys[integrator]
	if !ok {
		return &Error{Op: op, Kind: KindNoAPIKey, Message: "no API key configured for integrator " + integrator}
	}
	body, _ := json.Marshal(cb)
	status, b, err := c.post(ctx, op, "/cybersource/oauth/callback", key, body)
	if err != nil {
		return err
	}
	if status/100 == 2 {
		return nil
	}
	return statusError(op, status, b)
}

// post sends body and returns the status and body of any answer but a 3xx.
// Its error is an *Error: transient when there was no answer, bad-response
// for a redirect (never followed).
func (c *Client) post(ctx context.Context, op, path, apiKey string, body []byte) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, &Error{Op: op, Kind: KindTransient, Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-api-key", apiKey)
	if c.trace != nil {
		c.trace.Inject(ctx, req.Header)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, &Error{Op: op, Kind: KindTransient, Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		return 0, nil, redirectError(op, resp.StatusCode, resp.Header.Get("Location"))
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, nil, &Error{Op: op, Kind: KindTransient, Err: fmt.Errorf("read response: %w", err)}
	}
	return resp.StatusCode, b, nil
}

// redirectError: TTC's guide documents no redirect, so a 3xx is a
// misbehaving or misconfigured endpoint, not a network failure: an answer
// that is not usable, like a 200 without a usable token. Bad-response is
// temporary: the same call is retried with backoff (payments: budgeted;
// callbacks: until CALLBACK_BUDGET) and never sent anywhere else.
func redirectError(op string, status int, location string) *Error {
	msg := "answered with a redirect, which is never followed"
	if u, err := url.Parse(location); err == nil && u.Host != "" {
		msg += " (to " + redact.DigitsN(u.Host, 100) + ")"
	}
	return &Error{Op: op, Kind: KindBadResponse, Status: status, Message: msg, Err: ErrRedirect}
}

// statusError maps a non-success status to a Kind, per the guide's tables.
func statusError(op string, status int, body []byte) *Error {
	e := &Error{Op: op, Status: status, Message: serverMessage(body)}
	switch {
	case status == http.StatusBadRequest:
		e.Kind = KindInvalidRequest
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		e.Kind = KindBadAPIKey
	case status == http.StatusNotFound && op == "token":
		e.Kind = KindNoRefreshToken
	case status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500:
		e.Kind = KindTransient
	default:
		e.Kind = KindUnexpected
	}
	return e
}

// MessageMax caps the message taken from TTC's answer (then "…").
const MessageMax = 160

// serverMessage takes the "message" of a JSON error body: control
// characters turned into spaces, digit runs that could be part of a card
// number hidden, length capped.
func serverMessage(body []byte) string {
	var m struct {
		Message string `json:"message"`
	}
	_ = json.Unmarshal(body, &m)
	return redact.UntrustedN(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, m.Message), MessageMax)
}
