// Package streams holds the JetStream contract: subject and stream names
// and consumer names, in one place (dead-letter headers are in package
// deadletter), and creates the streams at start-up (Ensure) or brings them
// to a configuration on an operator's request (Update).
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
	IntentsPrefix      = "payments.intents."      // payments.intents.<m>
	ResultsPrefix      = "payments.results."      // payments.results.<m>
	CallbacksPrefix    = "payments.callbacks."    // payments.callbacks.<m>
	DLQPrefix          = "payments.dlq."          // payments.dlq.<kind>.<m>
	DLQIntentsPrefix   = DLQPrefix + "intents."   // payments.dlq.intents.<m>
	DLQCallbacksPrefix = DLQPrefix + "callbacks." // payments.dlq.callbacks.<m>
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

// Unroutable is the merchant token dead letters go to when an intent's
// subject names no valid merchant (a wildcard literal, say). It cannot be a
// merchantId, so it never collides with one.
const Unroutable = "!unroutable"

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

	// Mismatch, when set, is told by Ensure about each setting of an
	// existing stream that differs from this configuration (Ensure leaves
	// the stream as it is).
	Mismatch func(Mismatch)
}

// Mismatch is a setting of an existing stream that differs from the
// configuration a process asked for.
type Mismatch struct {
	Stream  string
	Setting string // the JetStream name of the setting, e.g. max_msgs
	Have    string // what the stream has (and keeps)
	Want    string // what this process's configuration asks for
}

func (m Mismatch) String() string {
	return fmt.Sprintf("stream %s: %s is %s, this configuration asks for %s", m.Stream, m.Setting, m.Have, m.Want)
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
			Name: StreamDLQ, Subjects: []string{DLQPrefix + ">"},
			Retention: jetstream.LimitsPolicy, Storage: jetstream.FileStorage, Replicas: c.Replicas,
			Duplicates: c.DuplicateWindow, MaxAge: c.DLQMaxAge,
		},
	}
}

// Ensure creates the streams that are missing. A stream that exists keeps
// its settings, whatever this configuration asks: the streams are shared by
// every pod, and a pod started with other limits (a different
// MAX_QUEUED_INTENTS, say) must not rewrite them, or the last pod started
// would win. Each setting that differs is reported to c.Mismatch. Changing
// the settings of existing streams is an operator's act: Update, or
// `nats stream edit`.
//
// Ensure is idempotent and safe for many pods at once: in a cluster,
// concurrent create requests from several pods can go unanswered, so each
// attempt has a short timeout, and after a failed attempt a stream that now
// exists counts as created.
func Ensure(ctx context.Context, js jetstream.JetStream, c Config) error {
	return ensure(ctx, js, c, false)
}

// Update creates the streams that are missing and brings the existing ones
// to this configuration: the explicit operator path for changing limits.
// JetStream refuses some changes (retention, storage); the error says which.
func Update(ctx context.Context, js jetstream.JetStream, c Config) error {
	return ensure(ctx, js, c, true)
}

func ensure(ctx context.Context, js jetstream.JetStream, c Config, update bool) error {
	for _, sc := range c.Configs() {
		if err := ensureOne(ctx, js, sc, update, c.Mismatch); err != nil {
			return fmt.Errorf("stream %s: %w", sc.Name, err)
		}
	}
	return nil
}

func ensureOne(ctx context.Context, js jetstream.JetStream, sc jetstream.StreamConfig, update bool, report func(Mismatch)) error {
	wait := 100 * time.Millisecond
	for {
		// Look first: a pod starting next to running ones changes nothing.
		ictx, cancel := context.WithTimeout(ctx, 3*time.Second)
		s, err := js.Stream(ictx, sc.Name)
		cancel()
		switch {
		case err == nil && !update:
			if report != nil {
				for _, m := range mismatches(s.CachedInfo().Config, sc) {
					report(m)
				}
			}
			return nil
		case err == nil && len(mismatches(s.CachedInfo().Config, sc)) == 0:
			return nil
		case err == nil:
			actx, cancel := context.WithTimeout(ctx, time.Second)
			_, err = js.UpdateStream(actx, sc)
			cancel()
			if errors.Is(err, jetstream.ErrStreamNotFound) {
				continue
			}
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

// mismatches lists the settings this package manages that differ.
func mismatches(have, want jetstream.StreamConfig) []Mismatch {
	var out []Mismatch
	add := func(setting string, differ bool, h, w any) {
		if differ {
			out = append(out, Mismatch{Stream: want.Name, Setting: setting, Have: fmt.Sprint(h), Want: fmt.Sprint(w)})
		}
	}
	add("subjects", !slices.Equal(have.Subjects, want.Subjects), have.Subjects, want.Subjects)
	add("retention", have.Retention != want.Retention, have.Retention, want.Retention)
	add("storage", have.Storage != want.Storage, have.Storage, want.Storage)
	add("num_replicas", have.Replicas != want.Replicas, have.Replicas, want.Replicas)
	add("duplicate_window", have.Duplicates != want.Duplicates, have.Duplicates, want.Duplicates)
	add("max_msg_size", unlimited(int64(have.MaxMsgSize)) != unlimited(int64(want.MaxMsgSize)), unlimited(int64(have.MaxMsgSize)), unlimited(int64(want.MaxMsgSize)))
	add("max_msgs", unlimited(have.MaxMsgs) != unlimited(want.MaxMsgs), unlimited(have.MaxMsgs), unlimited(want.MaxMsgs))
	add("max_age", have.MaxAge != want.MaxAge, have.MaxAge, want.MaxAge)
	add("discard", have.Discard != want.Discard, have.Discard, want.Discard)
	return out
}

// unlimited maps JetStream's two spellings of "no limit" (0 in a request,
// -1 in what the server stores) to -1.
func unlimited(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
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
