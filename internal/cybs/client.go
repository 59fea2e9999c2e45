// Package cybs is the CyberSource REST client for the OAuth flavour of the
// API: Bearer token plus mutual TLS with the certificate TTC hands out, both
// held in memory only.
//
// Every call returns either a parsed 201 or an *Error whose Outcome tells the
// caller what is safe next (see Outcome).
package cybs

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/ttcpay/payflow/internal/redact"
)

// Base URLs of the OAuth (mTLS) hosts.
const (
	TestBaseURL       = "https://api-matest.cybersource.com"
	ProductionBaseURL = "https://api-ma.cybersource.com"
)

// ErrRedirect is carried by the *Error of a call answered with a 3xx: the
// client never follows a redirect, since that would send the card, the CVV
// and the Bearer token to wherever the Location points.
var ErrRedirect = errors.New("redirect refused")

// TimeoutDefault bounds one call. A payment that outlives it has an unknown
// outcome.
const TimeoutDefault = 30 * time.Second

// IdleConnsDefault is the idle connection pool's size when Config.IdleConns
// is 0.
const IdleConnsDefault = 256

// Config configures a Client.
type Config struct {
	BaseURL string
	// SolutionID is sent as clientReferenceInformation.partner.solutionId on
	// payments when set.
	SolutionID string
	// Timeout bounds one call. Defaults to TimeoutDefault.
	Timeout time.Duration
	// RootCAs, when set, replaces the system roots (only by configuration: a
	// sandbox CA). Verification is never turned off.
	RootCAs *x509.CertPool
	// MaxConnsPerHost caps connections per credential generation (0: no cap).
	MaxConnsPerHost int
	// IdleConns is how many connections per credential generation are kept
	// open between calls: the payments in flight at once
	// (PAYMENTS_CONCURRENCY), so that every slot reuses its connection
	// instead of a TLS handshake per call. Defaults to IdleConnsDefault.
	IdleConns int
	// Trace, when set, writes the trace context (traceparent) into each
	// request's headers.
	Trace HeaderInjector
}

// HeaderInjector writes trace context into outgoing headers
// (*tracing.Tracing).
type HeaderInjector interface {
	Inject(ctx context.Context, h http.Header)
}

// Credentials are what one call authenticates with. Key names the
// integrator and merchant; Generation changes whenever the token or the
// certificate does.
type Credentials struct {
	Key         string
	Generation  int64
	AccessToken string
	Certificate *tls.Certificate
}

// Client is safe for concurrent use. It keeps one HTTP transport per
// credential key and generation and reuses its connections.
type Client struct {
	base       string
	solutionID string
	timeout    time.Duration
	rootCAs    *x509.CertPool
	maxConns   int
	idleConns  int
	trace      HeaderInjector

	mu         sync.Mutex
	transports map[string]*generation

	// Handshakes counts TLS handshakes this client started (metrics).
	Handshakes atomic.Int64
}

type generation struct {
	gen    int64
	client *http.Client
	tr     *http.Transport
}

// New validates the configuration and builds a client.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("cybs: base URL %s is not an https URL", redact.URL(cfg.BaseURL))
	}
	return &Client{
		base:       strings.TrimRight(cfg.BaseURL, "/"),
		solutionID: cfg.SolutionID,
		timeout:    cmp.Or(cfg.Timeout, TimeoutDefault),
		rootCAs:    cfg.RootCAs,
		maxConns:   cfg.MaxConnsPerHost,
		idleConns:  cmp.Or(cfg.IdleConns, IdleConnsDefault),
		trace:      cfg.Trace,
		transports: map[string]*generation{},
	}, nil
}

// httpClient returns the client of a credential generation, building it on
// first use and retiring the previous generation's idle connections.
func (c *Client) httpClient(cr Credentials) (*http.Client, error) {
	if cr.Certificate == nil {
		return nil, errors.New("no client certificate")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if g := c.transports[cr.Key]; g != nil {
		if g.gen == cr.Generation {
			return g.client, nil
		}
		if g.gen > cr.Generation {
			// A caller still holding an older generation: serve it with a
			// one-off client rather than thrash the shared one.
			return c.build(cr).client, nil
		}
		g.tr.CloseIdleConnections()
	}
	g := c.build(cr)
	c.transports[cr.Key] = g
	return g.client, nil
}

func (c *Client) build(cr Credentials) *generation {
	cert := cr.Certificate
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		MaxIdleConns:          c.idleConns,
		MaxIdleConnsPerHost:   c.idleConns,
		MaxConnsPerHost:       c.maxConns,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		TLSClientConfig: &tls.Config{
			MinVersion: tls.VersionTLS12,
			RootCAs:    c.rootCAs,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				c.Handshakes.Add(1)
				return cert, nil
			},
		},
	}
	return &generation{gen: cr.Generation, tr: tr, client: &http.Client{Transport: tr, CheckRedirect: refuseRedirect}}
}

// refuseRedirect makes the HTTP client hand back a 3xx as it is, which do
// turns into an error: a redirect is never followed.
func refuseRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// Authorize sends POST /pts/v2/payments (an authorization; a sale when
// req.ProcessingInformation.Capture). The solution id is added when
// configured. A 201 returns the parsed response whatever its status; use
// PaymentOutcome(resp.Status).
func (c *Client) Authorize(ctx context.Context, cr Credentials, req *PaymentRequest) (*PaymentResponse, error) {
	if c.solutionID != "" && req.ClientReferenceInformation.Partner == nil {
		r := *req
		r.ClientReferenceInformation.Partner = &Partner{SolutionID: c.solutionID}
		req = &r
	}
	var resp PaymentResponse
	if err := c.do(ctx, "authorize", cr, "/pts/v2/payments", req, &resp); err != nil {
		return nil, err
	}
	if PaymentOutcome(resp.Status) == OutcomeUnknown || resp.ID == "" {
		return &resp, &Error{Op: "authorize", Outcome: OutcomeUnknown, HTTPStatus: 201, Status: code(resp.Status),
			Message: "201 with an unknown status or no id: treated as an unknown outcome"}
	}
	return &resp, nil
}

// Capture sends POST /pts/v2/payments/{id}/captures.
func (c *Client) Capture(ctx context.Context, cr Credentials, paymentID string, req *CaptureRequest) (*FollowUpResponse, error) {
	return c.followUp(ctx, "capture", cr, "/pts/v2/payments/"+url.PathEscape(paymentID)+"/captures", req)
}

// Reverse sends an authorization reversal, POST /pts/v2/payments/{id}/reversals.
func (c *Client) Reverse(ctx context.Context, cr Credentials, paymentID string, req *ReversalRequest) (*FollowUpResponse, error) {
	return c.followUp(ctx, "reversal", cr, "/pts/v2/payments/"+url.PathEscape(paymentID)+"/reversals", req)
}

// Void sends POST /pts/v2/payments/{id}/voids (a sale or capture).
func (c *Client) Void(ctx context.Context, cr Credentials, paymentID string, req *VoidRequest) (*FollowUpResponse, error) {
	return c.followUp(ctx, "void", cr, "/pts/v2/payments/"+url.PathEscape(paymentID)+"/voids", req)
}

// Refund sends POST /pts/v2/payments/{id}/refunds. CyberSource does not
// deduplicate refunds: exactly-once is the caller's job.
func (c *Client) Refund(ctx context.Context, cr Credentials, paymentID string, req *RefundRequest) (*FollowUpResponse, error) {
	return c.followUp(ctx, "refund", cr, "/pts/v2/payments/"+url.PathEscape(paymentID)+"/refunds", req)
}

// TimeoutReversal sends POST /pts/v2/reversals for an authorization whose
// answer was lost, keyed on req.ClientReferenceInformation.TransactionID.
// CyberSource asks for it no sooner than 60 s after the lost request.
func (c *Client) TimeoutReversal(ctx context.Context, cr Credentials, req *ReversalRequest) (*FollowUpResponse, error) {
	return c.followUp(ctx, "timeout-reversal", cr, "/pts/v2/reversals", req)
}

// TimeoutVoid sends POST /pts/v2/voids for a sale whose answer was lost.
func (c *Client) TimeoutVoid(ctx context.Context, cr Credentials, req *VoidRequest) (*FollowUpResponse, error) {
	return c.followUp(ctx, "timeout-void", cr, "/pts/v2/voids", req)
}

func (c *Client) followUp(ctx context.Context, op string, cr Credentials, path string, body any) (*FollowUpResponse, error) {
	var resp FollowUpResponse
	if err := c.do(ctx, op, cr, path, body, &resp); err != nil {
		return nil, err
	}
	switch FollowUpOutcome(resp.Status) {
	case OutcomeApproved:
		return &resp, nil
	case OutcomeDeclined:
		e := &Error{Op: op, Outcome: OutcomeDeclined, HTTPStatus: 201, Status: code(resp.Status)}
		if resp.ErrorInformation != nil {
			e.Reason, e.Message = code(resp.ErrorInformation.Reason), message(resp.ErrorInformation.Message)
		}
		return &resp, e
	}
	return &resp, &Error{Op: op, Outcome: OutcomeUnknown, HTTPStatus: 201, Status: code(resp.Status), Message: "unknown status"}
}

// do POSTs body and decodes a 201 into out; any other result is an *Error.
func (c *Client) do(ctx context.Context, op string, cr Credentials, path string, body, out any) error {
	hc, err := c.httpClient(cr)
	if err != nil {
		return &Error{Op: op, Outcome: OutcomeNotSent, Err: err}
	}
	b, err := json.Marshal(body)
	if err != nil {
		return &Error{Op: op, Outcome: OutcomeNotSent, Err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var written atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(i httptrace.WroteRequestInfo) {
			if i.Err == nil {
				written.Store(true)
			}
		},
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(b))
	if err != nil {
		return &Error{Op: op, Outcome: OutcomeNotSent, Err: err}
	}
	req.Header.Set("Content-Type", "application/json;charset=utf-8")
	req.Header.Set("Accept", "application/hal+json;charset=utf-8")
	req.Header.Set("Authorization", "Bearer "+cr.AccessToken)
	if c.trace != nil {
		c.trace.Inject(ctx, req.Header)
	}
	resp, err := hc.Do(req)
	if err != nil {
		o := OutcomeNotSent
		if written.Load() {
			o = OutcomeUnknown
		}
		return &Error{Op: op, Outcome: o, Err: scrub(err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		return redirectError(op, resp.StatusCode, resp.Header.Get("Location"), written.Load())
	}
	rb, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		if resp.StatusCode == http.StatusCreated || classifyStatus(resp.StatusCode) == OutcomeUnknown {
			return &Error{Op: op, Outcome: OutcomeUnknown, HTTPStatus: resp.StatusCode, Err: scrub(err)}
		}
		// A definite status whose body was cut: the status still decides.
	}
	if resp.StatusCode == http.StatusCreated {
		if err := json.Unmarshal(rb, out); err != nil {
			return &Error{Op: op, Outcome: OutcomeUnknown, HTTPStatus: 201, Message: "201 body is not valid JSON"}
		}
		return nil
	}
	return errorFromBody(op, resp.StatusCode, rb)
}

// redirectError is the *Error of a 3xx answer, which is never followed. A
// reply that came before the request body was written was given to the
// headers alone, so nothing was processed (not sent: safe to retry); once
// the body was written the request may have been acted on (unknown: the
// caller resolves it). WroteRequest fires before the transport's last flush,
// so "written" is set before the server can hold the whole body.
func redirectError(op string, status int, location string, written bool) *Error {
	o := OutcomeNotSent
	if written {
		o = OutcomeUnknown
	}
	msg := "answered with a redirect, which is never followed"
	if u, err := url.Parse(location); err == nil && u.Host != "" {
		msg += " (to " + redact.DigitsN(u.Host, 100) + ")"
	}
	return &Error{Op: op, Outcome: o, HTTPStatus: status, Message: msg, Err: ErrRedirect}
}

// errorFromBody builds the *Error of a non-201 answer from the documented
// body shapes: the flat 400/502 body, and the 401 {"response":{"rmsg":…}}
// whose rmsg is an object or a string.
func errorFromBody(op string, status int, body []byte) *Error {
	e := &Error{Op: op, Outcome: classifyStatus(status), HTTPStatus: status}
	var flat struct {
		Status   string          `json:"status"`
		Reason   string          `json:"reason"`
		Message  string          `json:"message"`
		Details  []FieldDetail   `json:"details"`
		Response json.RawMessage `json:"response"`
	}
	if json.Unmarshal(body, &flat) != nil {
		return e
	}
	e.Status, e.Reason, e.Message, e.Details = code(flat.Status), code(flat.Reason), message(flat.Message), details(flat.Details)
	if len(flat.Response) > 0 {
		var r struct {
			RMsg json.RawMessage `json:"rmsg"`
		}
		if json.Unmarshal(flat.Response, &r) == nil && len(r.RMsg) > 0 {
			var obj struct {
				Error       string `json:"error"`
				Description string `json:"error_description"`
			}
			var s string
			switch {
			case json.Unmarshal(r.RMsg, &obj) == nil && obj.Error != "":
				e.Reason, e.Message = code(obj.Error), message(obj.Description)
			case json.Unmarshal(r.RMsg, &s) == nil:
				e.Message = message(s)
			}
		}
	}
	return e
}

// Text that CyberSource sent back reaches an *Error (and so logs, results
// and dead letters) only through these: digit runs that could be part of a
// card number hidden (card numbers however grouped, then runs of six or
// more digits), control characters turned into spaces, length capped.

// MessageMax caps a message taken from an answer (then "…").
const MessageMax = 200

func message(s string) string { return redact.UntrustedN(printable(s), MessageMax) }

// code is a status, a reason or a field name: short by nature.
func code(s string) string { return redact.Untrusted(printable(s)) }

// detailsMax caps the field details kept from one answer.
const detailsMax = 20

func details(ds []FieldDetail) []FieldDetail {
	if len(ds) == 0 {
		return nil
	}
	out := make([]FieldDetail, 0, min(len(ds), detailsMax))
	for _, d := range ds[:min(len(ds), detailsMax)] {
		out = append(out, FieldDetail{Field: code(d.Field), Reason: code(d.Reason)})
	}
	return out
}

func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

// scrub drops the request URL from a transport error (it carries no secret,
// but the cause is what matters) and keeps the chain for errors.Is.
func scrub(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
