package sandbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Endpoint groups that faults apply to.
const (
	EndpointToken     = "token"     // TTC POST /cybersource/token/{integrator}
	EndpointCallback  = "callback"  // TTC POST /cybersource/oauth/callback
	EndpointPayments  = "payments"  // CyberSource POST /pts/v2/payments
	EndpointFollowUps = "followups" // captures, reversals, voids, refunds, timeout reversal/void
)

var endpoints = []string{EndpointToken, EndpointCallback, EndpointPayments, EndpointFollowUps}

// Duration is a time.Duration that reads and writes JSON as "300ms".
type Duration time.Duration

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON accepts a Go duration string ("1.5s") or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		*d = Duration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("duration: want a string like \"300ms\" or nanoseconds")
	}
	*d = Duration(n)
	return nil
}

// Latency delays an endpoint by Fixed plus a uniform random part up to Jitter.
type Latency struct {
	Fixed  Duration `json:"fixed"`
	Jitter Duration `json:"jitter"`
}

// ErrorFault answers a fraction Rate (0..1) of requests with Status before
// doing anything.
type ErrorFault struct {
	Rate   float64 `json:"rate"`
	Status int     `json:"status"`
}

// Outage makes an endpoint unavailable (503, or for CyberSource a cut
// connection) between From and Until. When For is set and From is zero, the
// outage starts when the faults are applied.
type Outage struct {
	Endpoint string    `json:"endpoint"`
	From     time.Time `json:"from,omitzero"`
	Until    time.Time `json:"until,omitzero"`
	For      Duration  `json:"for,omitempty"`
}

// Faults is the complete fault configuration. Setting it replaces the previous
// one; the zero value means a well-behaved sandbox.
type Faults struct {
	Latency map[string]Latency    `json:"latency,omitempty"`
	Errors  map[string]ErrorFault `json:"errors,omitempty"`
	// CutAfterChargeRate: the payment is recorded, then the connection is
	// closed without a response.
	CutAfterChargeRate float64 `json:"cutAfterChargeRate,omitempty"`
	// TimeoutAfterChargeRate: the payment is recorded, then the answer is
	// 502 SERVER_ERROR / SERVER_TIMEOUT.
	TimeoutAfterChargeRate float64 `json:"timeoutAfterChargeRate,omitempty"`
	// CutAfterFollowUpRate: a capture, reversal, void or refund is recorded,
	// then the connection is closed without a response.
	CutAfterFollowUpRate float64  `json:"cutAfterFollowUpRate,omitempty"`
	Outages              []Outage `json:"outages,omitempty"`
	// SettleAfter: a captured sale or a capture older than this is settled.
	// A void of a settled transaction answers NOT_VOIDABLE and a timeout
	// reversal of a settled authorization TRANSACTION_ALREADY_SETTLED;
	// refunds still work. 0 means nothing ever settles.
	SettleAfter Duration `json:"settleAfter,omitempty"`
	// SettledVoidReason is the 400 reason of a void (by id or timeout void)
	// of a settled transaction: NOT_VOIDABLE (the default, the void
	// endpoint's documented reason) or TRANSACTION_ALREADY_REVERSED_OR_SETTLED
	// (what the reversal and capture endpoints answer for the same
	// condition). Either means the transaction exists; a worker must not
	// read it as "cancelled".
	SettledVoidReason string `json:"settledVoidReason,omitempty"`
	// HoldInFlight keeps matching payments "received but not processed".
	HoldInFlight *Hold `json:"holdInFlight,omitempty"`
}

// Hold keeps a payment "received but not processed" for For before it is
// charged and answered (or its answer lost, with the other faults). Its
// transactionId is taken when the request arrives: a timeout reversal or void
// sent during the hold finds nothing, and the held payment is then charged
// anyway. It applies to a fraction Rate (0..1) of payments, and to every
// payment whose totalAmount has the numeric value Amount.
type Hold struct {
	For    Duration `json:"for"`
	Rate   float64  `json:"rate,omitempty"`
	Amount string   `json:"amount,omitempty"`
}

// ParseFaults reads a fault configuration strictly: an unknown or misspelt
// knob is an error, not a silently well-behaved sandbox.
func ParseFaults(b []byte) (Faults, error) {
	var f Faults
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return Faults{}, err
	}
	if dec.More() {
		return Faults{}, errors.New("trailing data after the faults object")
	}
	if err := f.validate(); err != nil {
		return Faults{}, err
	}
	return f, nil
}

func (f *Faults) validate() error {
	known := func(e string) bool {
		for _, k := range endpoints {
			if k == e {
				return true
			}
		}
		return false
	}
	for e, l := range f.Latency {
		if !known(e) {
			return fmt.Errorf("latency: unknown endpoint %q (want one of %v)", e, endpoints)
		}
		if l.Fixed < 0 || l.Jitter < 0 {
			return fmt.Errorf("latency %s: negative duration", e)
		}
	}
	for e, ef := range f.Errors {
		if !known(e) {
			return fmt.Errorf("errors: unknown endpoint %q (want one of %v)", e, endpoints)
		}
		if ef.Rate < 0 || ef.Rate > 1 {
			return fmt.Errorf("errors %s: rate %v not in 0..1", e, ef.Rate)
		}
		if ef.Status < 400 || ef.Status > 599 {
			return fmt.Errorf("errors %s: status %d is not an error status", e, ef.Status)
		}
	}
	for _, r := range []float64{f.CutAfterChargeRate, f.TimeoutAfterChargeRate, f.CutAfterFollowUpRate} {
		if r < 0 || r > 1 {
			return fmt.Errorf("rate %v not in 0..1", r)
		}
	}
	for i, o := range f.Outages {
		if !known(o.Endpoint) {
			return fmt.Errorf("outages[%d]: unknown endpoint %q", i, o.Endpoint)
		}
	}
	switch f.SettledVoidReason {
	case "", "NOT_VOIDABLE", "TRANSACTION_ALREADY_REVERSED_OR_SETTLED":
	default:
		return fmt.Errorf("settledVoidReason %q: want NOT_VOIDABLE or TRANSACTION_ALREADY_REVERSED_OR_SETTLED", f.SettledVoidReason)
	}
	if f.SettleAfter < 0 {
		return fmt.Errorf("settleAfter: negative duration")
	}
	if h := f.HoldInFlight; h != nil {
		if h.For <= 0 {
			return fmt.Errorf("holdInFlight: want a positive \"for\"")
		}
		if h.Rate < 0 || h.Rate > 1 {
			return fmt.Errorf("holdInFlight: rate %v not in 0..1", h.Rate)
		}
		if _, ok := parseMilli(h.Amount); h.Amount != "" && !ok {
			return fmt.Errorf("holdInFlight: amount %q is not a positive decimal", h.Amount)
		}
		if h.Rate == 0 && h.Amount == "" {
			return fmt.Errorf("holdInFlight: want a rate or an amount")
		}
	}
	return nil
}

func (h *Hold) clone() *Hold {
	if h == nil {
		return nil
	}
	c := *h
	return &c
}

// holds reports whether a payment of this amount is held. Caller holds s.mu
// (the dice are shared).
func (h *Hold) holds(amount int64, dice func() float64) bool {
	if h == nil {
		return false
	}
	if a, ok := parseMilli(h.Amount); ok && a == amount {
		return true
	}
	return h.Rate > 0 && dice() < h.Rate
}

// anchor fixes relative outages ("for": "60s") to absolute times.
func (f *Faults) anchor(now time.Time) {
	for i := range f.Outages {
		o := &f.Outages[i]
		if o.From.IsZero() {
			o.From = now
		}
		if o.Until.IsZero() && o.For > 0 {
			o.Until = o.From.Add(time.Duration(o.For))
		}
	}
}

func (f *Faults) inOutage(endpoint string, now time.Time) bool {
	for _, o := range f.Outages {
		if o.Endpoint == endpoint && !now.Before(o.From) && (o.Until.IsZero() || now.Before(o.Until)) {
			return true
		}
	}
	return false
}
