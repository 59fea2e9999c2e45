// Package dlq writes dead letters: the original payload (still encrypted
// where it was) with headers that say why, on payments.dlq.<kind>.<merchant>.
// Both consumers share it; the publisher CLI reads the same headers.
package dlq

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ttcpay/payflow/internal/streams"
)

// Class says why a message was dead-lettered.
type Class string

// The classes of the design brief.
const (
	ClassInvalid        Class = "invalid"         // the intent is malformed; never charged
	ClassRejected       Class = "rejected"        // CyberSource (400) or TTC (400) refused it
	ClassExhausted      Class = "exhausted"       // the retry budget is spent
	ClassConfig         Class = "config"          // a configuration problem outlived its budget (TTC 403/404, no API key)
	ClassUnknownOutcome Class = "unknown-outcome" // a charge whose outcome could not be settled: needs a person
)

// Kind is what was dead-lettered.
type Kind string

// Kinds.
const (
	KindIntents   Kind = "intents"
	KindCallbacks Kind = "callbacks"
)

// Publisher is the part of JetStream a dead-letter writer needs.
type Publisher interface {
	PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
}

// Letter is one dead letter.
type Letter struct {
	Kind            Kind
	Class           Class
	Reason          string
	OriginalSubject string
	MerchantID      string
	IntentID        string // may be empty (bad JSON)
	Attempts        uint64
	Data            []byte
	// DedupID makes a re-sent dead letter (after a crash) a duplicate:
	// the original stream and sequence.
	DedupID string
}

// Subject is where a letter goes.
func (l *Letter) Subject() string {
	return "payments.dlq." + string(l.Kind) + "." + l.MerchantID
}

// Publish writes the letter and waits for the stream's ack.
func Publish(ctx context.Context, js Publisher, l Letter, now time.Time) error {
	reason := l.Reason
	if len(reason) > 1000 {
		reason = reason[:1000]
	}
	m := nats.NewMsg(l.Subject())
	m.Data = l.Data
	m.Header.Set(streams.HeaderDLQKind, string(l.Kind))
	m.Header.Set(streams.HeaderDLQClass, string(l.Class))
	m.Header.Set(streams.HeaderDLQReason, reason)
	m.Header.Set(streams.HeaderDLQSubject, l.OriginalSubject)
	m.Header.Set(streams.HeaderDLQAttempts, strconv.FormatUint(l.Attempts, 10))
	m.Header.Set(streams.HeaderDLQTime, now.UTC().Format(time.RFC3339Nano))
	m.Header.Set(streams.HeaderMerchantID, l.MerchantID)
	if l.IntentID != "" {
		m.Header.Set(streams.HeaderIntentID, l.IntentID)
	}
	if l.DedupID != "" {
		m.Header.Set(nats.MsgIdHdr, "dlq:"+l.DedupID)
	}
	if _, err := js.PublishMsg(ctx, m); err != nil {
		return fmt.Errorf("dead letter to %s: %w", l.Subject(), err)
	}
	return nil
}
