// Package streams holds the JetStream contract: subject and stream names,
// consumer names and header names, in one place, and creates or updates the
// streams at start-up.
package streams

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Subjects. <m> is the merchantId.
const (
	IntentsPrefix      = "payments.intents."       // payments.intents.<m>
	ResultsPrefix      = "payments.results."       // payments.results.<m>
	CallbacksPrefix    = "payments.callbacks."     // payments.callbacks.<m>
	DLQIntentsPrefix   = "payments.dlq.intents."   // payments.dlq.intents.<m>
	DLQCallbacksPrefix = "payments.dlq.callbacks." // payments.dlq.callbacks.<m>
)

// Stream names.
const (
	StreamIntents   = "PAYMENT_INTENTS"
	StreamResults   = "PAYMENT_RESULTS"
	StreamCallbacks = "PAYMENT_CALLBACKS"
	StreamDLQ       = "PAYMENT_DLQ"
)

// Durable consumer names (shared by every pod of a role).
const (
	ConsumerPayments  = "payments"
	ConsumerCallbacks = "callbacks"
)

// Header names on dead letters (besides the standard Nats-Msg-Id).
const (
	HeaderDLQClass    = "Payflow-Dlq-Class"
	HeaderDLQReason   = "Payflow-Dlq-Reason"
	HeaderDLQSubject  = "Payflow-Dlq-Original-Subject"
	HeaderDLQAttempts = "Payflow-Dlq-Attempts"
	HeaderDLQTime     = "Payflow-Dlq-Time"
	HeaderDLQKind     = "Payflow-Dlq-Kind"
	HeaderIntentID    = "Payflow-Intent-Id"
	HeaderMerchantID  = "Payflow-Merchant-Id"
)

// Intents returns the intents subject of a merchant.
func Intents(merchantID string) string { return IntentsPrefix + merchantID }

// Results returns the results subject of a merchant.
func Results(merchantID string) string { return ResultsPrefix + merchantID }

// Callbacks returns the callbacks subject of a merchant.
func Callbacks(merchantID string) string { return CallbacksPrefix + merchantID }

// MerchantOf returns the last token of a subject (the merchantId).
func MerchantOf(subject string) string {
	if i := strings.LastIndexByte(subject, '.'); i >= 0 {
		return subject[i+1:]
	}
	return subject
}

// Config sizes the streams. Zero values mean the defaults.
type Config struct {
	Replicas int
	// DuplicateWindow of the intents and callbacks streams. Defaults to 10 min.
	DuplicateWindow time.Duration
	// MaxIntentBytes caps one intent message. Defaults to 64 KiB.
	MaxIntentBytes int32
	// MaxIntents caps the intents stream (discard new when full, so upstream
	// sees back-pressure). Defaults to 1,000,000 messages.
	MaxIntents int64
	// ResultsMaxAge defaults to 7 days.
	ResultsMaxAge time.Duration
	// DLQMaxAge defaults to 30 days.
	DLQMaxAge time.Duration
}

// Defaults.
const (
	DuplicateWindowDefault = 10 * time.Minute
	ResultsMaxAgeDefault   = 7 * 24 * time.Hour
	DLQMaxAgeDefault       = 30 * 24 * time.Hour
)

// WithDefaults fills in zero values.
func (c Config) WithDefaults() Config {
	c.Replicas = cmp.Or(c.Replicas, 1)
	c.DuplicateWindow = cmp.Or(c.DuplicateWindow, DuplicateWindowDefault)
	c.MaxIntentBytes = cmp.Or(c.MaxIntentBytes, 64<<10)
	c.MaxIntents = cmp.Or(c.MaxIntents, 1_000_000)
	c.ResultsMaxAge = cmp.Or(c.ResultsMaxAge, ResultsMaxAgeDefault)
	c.DLQMaxAge = cmp.Or(c.DLQMaxAge, DLQMaxAgeDefault)
	return c
}

// Configs returns the four stream configurations.
func (c Config) Configs() []jetstream.StreamConfig {
	c = c.WithDefaults()
	return []jetstream.StreamConfig{
		{
			Name: StreamIntents, Subjects: []string{IntentsPrefix + "*"},
			Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage, Replicas: c.Replicas,
			Duplicates: c.DuplicateWindow, MaxMsgSize: c.MaxIntentBytes, MaxMsgs: c.MaxIntents,
			Discard: jetstream.DiscardNew,
		},
		{
			Name: StreamCallbacks, Subjects: []string{CallbacksPrefix + "*"},
			Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage, Replicas: c.Replicas,
			Duplicates: c.DuplicateWindow, Discard: jetstream.DiscardNew, MaxMsgs: c.MaxIntents,
		},
		{
			Name: StreamResults, Subjects: []string{ResultsPrefix + "*"},
			Retention: jetstream.LimitsPolicy, Storage: jetstream.FileStorage, Replicas: c.Replicas,
			Duplicates: c.DuplicateWindow, MaxAge: c.ResultsMaxAge,
		},
		{
			Name: StreamDLQ, Subjects: []string{"payments.dlq.>"},
			Retention: jetstream.LimitsPolicy, Storage: jetstream.FileStorage, Replicas: c.Replicas,
			Duplicates: c.DuplicateWindow, MaxAge: c.DLQMaxAge,
		},
	}
}

// Ensure creates the streams, or updates them to this configuration. It is
// idempotent and safe for many pods at once: in a cluster, concurrent
// create requests from several pods can go unanswered, so each attempt has
// a short timeout, and after a failed attempt a stream that now exists with
// this configuration's subjects counts as created.
func Ensure(ctx context.Context, js jetstream.JetStream, c Config) error {
	for _, sc := range c.Configs() {
		if err := ensureOne(ctx, js, sc); err != nil {
			return fmt.Errorf("stream %s: %w", sc.Name, err)
		}
	}
	return nil
}

func ensureOne(ctx context.Context, js jetstream.JetStream, sc jetstream.StreamConfig) error {
	wait := 100 * time.Millisecond
	for {
		// Look first: a pod starting next to running ones changes nothing.
		ictx, cancel := context.WithTimeout(ctx, 3*time.Second)
		s, err := js.Stream(ictx, sc.Name)
		cancel()
		switch {
		case err == nil && sameConfig(s.CachedInfo().Config, sc):
			return nil
		case err == nil:
			actx, cancel := context.WithTimeout(ctx, time.Second)
			_, err = js.UpdateStream(actx, sc)
			cancel()
		case errors.Is(err, jetstream.ErrStreamNotFound):
			// Concurrent creates from several pods can go unanswered on a
			// cluster: keep the attempt short; the next lookup finds a
			// stream another pod (or a slow answer) created.
			actx, cancel := context.WithTimeout(ctx, time.Second)
			_, err = js.CreateStream(actx, sc)
			cancel()
		}
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last attempt: %w)", ctx.Err(), err)
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// sameConfig compares the settings this package manages.
func sameConfig(have, want jetstream.StreamConfig) bool {
	return slices.Equal(have.Subjects, want.Subjects) && have.Retention == want.Retention &&
		have.Replicas == want.Replicas && have.Duplicates == want.Duplicates && have.MaxMsgSize == want.MaxMsgSize &&
		have.MaxMsgs == want.MaxMsgs && have.MaxAge == want.MaxAge && have.Discard == want.Discard && have.Storage == want.Storage
}

// ConsumerConfig is the durable pull consumer of a role. AckWait is kept
// honest by InProgress during slow calls; MaxDeliver is unlimited because
// the consumers enforce their own budgets and dead-letter, so that JetStream
// never silently stops delivering a message.
func ConsumerConfig(name string, ackWait time.Duration, maxAckPending int) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       name,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxDeliver:    -1,
		MaxAckPending: maxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
}

// EnsureConsumer creates or updates a role's durable consumer.
func EnsureConsumer(ctx context.Context, js jetstream.JetStream, stream string, cc jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	c, err := js.CreateOrUpdateConsumer(ctx, stream, cc)
	if err != nil {
		return nil, fmt.Errorf("consumer %s on %s: %w", cc.Durable, stream, err)
	}
	return c, nil
}

// ErrNotReady is returned by Check when a stream is missing.
var ErrNotReady = errors.New("streams not ready")

// Check verifies that every stream exists (readiness).
func Check(ctx context.Context, js jetstream.JetStream) error {
	for _, name := range []string{StreamIntents, StreamResults, StreamCallbacks, StreamDLQ} {
		if _, err := js.Stream(ctx, name); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrNotReady, name, err)
		}
	}
	return nil
}
