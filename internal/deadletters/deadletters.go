// Package deadletters lets operators inspect and replay the dead-letter
// stream: list with filters, show one with card data masked, and replay to
// the original subject (idempotency makes a replay safe).
package deadletters

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ttcpay/payflow/internal/streams"
)

// Entry is one dead letter.
type Entry struct {
	Seq             uint64
	Time            time.Time // when it was dead-lettered
	Kind            string
	Class           string
	Reason          string
	IntentID        string
	Merchant        string
	OriginalSubject string
	Attempts        string
	Data            []byte
	Header          nats.Header
}

// Filter selects dead letters; zero fields match everything.
type Filter struct {
	Kind     string // intents or callbacks
	Merchant string
	Class    string
	Since    time.Time
}

func (f Filter) subject() string {
	kind, merchant := "*", "*"
	if f.Kind != "" {
		kind = f.Kind
	}
	if f.Merchant != "" {
		merchant = f.Merchant
	}
	return "payments.dlq." + kind + "." + merchant
}

// List returns the dead letters matching f, oldest first.
func List(ctx context.Context, js jetstream.JetStream, f Filter) ([]Entry, error) {
	if f.Kind != "" && f.Kind != "intents" && f.Kind != "callbacks" {
		return nil, fmt.Errorf("kind %q: want intents or callbacks", f.Kind)
	}
	s, err := js.Stream(ctx, streams.StreamDLQ)
	if err != nil {
		return nil, fmt.Errorf("dead-letter stream: %w", err)
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{f.subject()}}
	if !f.Since.IsZero() {
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		cfg.OptStartTime = &f.Since
	}
	c, err := s.OrderedConsumer(ctx, cfg)
	if err != nil {
		return nil, err
	}
	var out []Entry
	for {
		info := c.CachedInfo()
		if info != nil && info.NumPending == 0 && len(out) > 0 {
			break
		}
		batch, err := c.FetchNoWait(256)
		if err != nil {
			return nil, err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			e := fromMsg(m)
			if f.Class == "" || e.Class == f.Class {
				out = append(out, e)
			}
		}
		if n == 0 {
			break
		}
	}
	return out, nil
}

func fromMsg(m jetstream.Msg) Entry {
	h := m.Headers()
	e := Entry{
		Kind: h.Get(streams.HeaderDLQKind), Class: h.Get(streams.HeaderDLQClass), Reason: h.Get(streams.HeaderDLQReason),
		IntentID: h.Get(streams.HeaderIntentID), Merchant: h.Get(streams.HeaderMerchantID),
		OriginalSubject: h.Get(streams.HeaderDLQSubject), Attempts: h.Get(streams.HeaderDLQAttempts),
		Data: m.Data(), Header: h,
	}
	e.Time, _ = time.Parse(time.RFC3339Nano, h.Get(streams.HeaderDLQTime))
	if md, err := m.Metadata(); err == nil {
		e.Seq = md.Sequence.Stream
	}
	return e
}

// Show returns one dead letter by its stream sequence.
func Show(ctx context.Context, js jetstream.JetStream, seq uint64) (Entry, error) {
	s, err := js.Stream(ctx, streams.StreamDLQ)
	if err != nil {
		return Entry{}, fmt.Errorf("dead-letter stream: %w", err)
	}
	raw, err := s.GetMsg(ctx, seq)
	if err != nil {
		return Entry{}, fmt.Errorf("dead letter %d: %w", seq, err)
	}
	h := raw.Header
	e := Entry{
		Seq: raw.Sequence, Kind: h.Get(streams.HeaderDLQKind), Class: h.Get(streams.HeaderDLQClass),
		Reason: h.Get(streams.HeaderDLQReason), IntentID: h.Get(streams.HeaderIntentID),
		Merchant: h.Get(streams.HeaderMerchantID), OriginalSubject: h.Get(streams.HeaderDLQSubject),
		Attempts: h.Get(streams.HeaderDLQAttempts), Data: raw.Data, Header: h,
	}
	e.Time, _ = time.Parse(time.RFC3339Nano, h.Get(streams.HeaderDLQTime))
	return e, nil
}

var longDigits = regexp.MustCompile(`\d{12,19}`)

// MaskedPayload returns the payload for display: in JSON, card.number keeps
// its last four digits and card.securityCode is hidden; any other run of 12
// to 19 digits is masked too. Encrypted card data stays as it is.
func MaskedPayload(data []byte) string {
	var v any
	if json.Unmarshal(data, &v) == nil {
		maskCard(v)
		b, _ := json.MarshalIndent(v, "", "  ")
		data = b
	}
	return longDigits.ReplaceAllStringFunc(string(data), func(s string) string {
		return "****" + s[len(s)-4:]
	})
}

func maskCard(v any) {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if k == "card" {
				if c, ok := val.(map[string]any); ok {
					if n, ok := c["number"].(string); ok && len(n) > 4 {
						c["number"] = "****" + n[len(n)-4:]
					}
					if _, ok := c["securityCode"]; ok {
						c["securityCode"] = "***"
					}
				}
			}
			maskCard(val)
		}
	case []any:
		for _, e := range x {
			maskCard(e)
		}
	}
}

// Summary of a replay.
type Summary struct {
	Matched, Replayed, Failed int
	DryRun                    bool
}

// Replay republishes every dead letter matching f to its original subject
// and deletes it from the dead-letter stream once the republish was
// acknowledged. progress, if set, is called after each one.
func Replay(ctx context.Context, js jetstream.JetStream, f Filter, dryRun bool, progress func(done, total int, e Entry, err error)) (Summary, error) {
	entries, err := List(ctx, js, f)
	if err != nil {
		return Summary{}, err
	}
	sum := Summary{Matched: len(entries), DryRun: dryRun}
	if dryRun {
		return sum, nil
	}
	s, err := js.Stream(ctx, streams.StreamDLQ)
	if err != nil {
		return sum, err
	}
	for i, e := range entries {
		err := replayOne(ctx, js, s, e)
		if err != nil {
			sum.Failed++
		} else {
			sum.Replayed++
		}
		if progress != nil {
			progress(i+1, len(entries), e, err)
		}
		if ctx.Err() != nil {
			return sum, ctx.Err()
		}
	}
	return sum, nil
}

func replayOne(ctx context.Context, js jetstream.JetStream, s jetstream.Stream, e Entry) error {
	if e.OriginalSubject == "" {
		return errors.New("no original subject")
	}
	m := nats.NewMsg(e.OriginalSubject)
	m.Data = e.Data
	if e.IntentID != "" {
		// Not the intent's own id: inside the duplicate window JetStream
		// would drop it. One id per dead letter, so a retried replay of the
		// same letter is still deduplicated.
		m.Header.Set(nats.MsgIdHdr, e.IntentID+":replay:"+strconv.FormatUint(e.Seq, 10))
	}
	m.Header.Set("Payflow-Replayed-From", strconv.FormatUint(e.Seq, 10))
	if _, err := js.PublishMsg(ctx, m); err != nil {
		return fmt.Errorf("republish: %w", err)
	}
	if err := s.DeleteMsg(ctx, e.Seq); err != nil {
		return fmt.Errorf("republished, but the dead letter was not removed: %w", err)
	}
	return nil
}
