// Package inspect is the read side operators use (publisher status,
// publisher intent show, and later a web console): given JetStream and the
// idempotency records, it returns plain structs that say what is waiting
// and what became of one intent. It never writes, and its structs name no
// Redis field and carry no card data: every text it copies from the
// system (history details, reasons) is built by the worker from statuses,
// ids and amounts, and is passed through redact.CardNumbers again.
//
// The structs are a stable contract: their JSON names are what
// `publisher status --json` and `publisher intent show --json` print.
package inspect

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ttcpay/payflow/internal/idempotency"
)

// Records reads intents' records and histories (*idempotency.Store).
type Records interface {
	Inspect(ctx context.Context, intentID string) (*idempotency.Record, error)
	History(ctx context.Context, intentID string) ([]idempotency.Event, error)
	ScanStates(ctx context.Context, limit int, states ...string) ([]idempotency.Waiting, bool, error)
}

var _ Records = (*idempotency.Store)(nil)

// Options tune an Inspector. Zero values mean defaults.
type Options struct {
	// ResolveDelay is the workers' RESOLVE_DELAY: an unknown outcome is
	// resolved this long after it became unknown. Defaults to 60 s.
	ResolveDelay time.Duration
	// ScanLimit bounds how many intent records Status reads to find the
	// unknown outcomes, and how many waiting callback jobs IntentStory
	// reads. Defaults to 200000; reports say when they were cut short.
	ScanLimit int
	// ResultsScanLimit bounds how many results of the intent's merchant
	// are read to find the intent's published results. Defaults to 20000.
	ResultsScanLimit int
	// Now is the clock; defaults to time.Now.
	Now func() time.Time
}

// Defaults of Options.
const (
	ResolveDelayDefault     = 60 * time.Second
	ScanLimitDefault        = 200000
	ResultsScanLimitDefault = 20000
)

func (o Options) withDefaults() Options {
	o.ResolveDelay = cmp.Or(o.ResolveDelay, ResolveDelayDefault)
	o.ScanLimit = cmp.Or(o.ScanLimit, ScanLimitDefault)
	o.ResultsScanLimit = cmp.Or(o.ResultsScanLimit, ResultsScanLimitDefault)
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Inspector reads the system's state. Records may be nil: reports then
// say that Redis was not consulted (Problems) and leave out what needs it.
type Inspector struct {
	js  jetstream.JetStream
	rec Records
	opt Options
}

// New returns an Inspector.
func New(js jetstream.JetStream, rec Records, opt Options) *Inspector {
	return &Inspector{js: js, rec: rec, opt: opt.withDefaults()}
}

// ErrNoRecords: the part asked for needs Redis and the Inspector has none.
var ErrNoRecords = errors.New("no Redis given (set REDIS_URL): intent records not read")

// Age is a duration in JSON as seconds (float), in text as a Go duration
// rounded to the second.
type Age time.Duration

// MarshalJSON writes seconds.
func (a Age) MarshalJSON() ([]byte, error) {
	return fmt.Appendf(nil, "%.3f", time.Duration(a).Seconds()), nil
}

func (a Age) String() string { return time.Duration(a).Round(time.Second).String() }

func ageOf(now, t time.Time) Age {
	if t.IsZero() {
		return 0
	}
	return Age(max(0, now.Sub(t)))
}
