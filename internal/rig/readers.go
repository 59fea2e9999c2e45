package rig

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ttcpay/payflow/internal/deadletter"
	"github.com/ttcpay/payflow/internal/intent"
	"github.com/ttcpay/payflow/internal/sandbox"
)

// Reader reads a stream from its start through ONE ordered consumer that
// lives as long as the reader: each Read fetches only what arrived since
// the last one and returns everything read so far. (A consumer per read
// runs into the server's consumer limit during a long wait.) If the
// consumer is lost (a cluster node restarted), the next Read makes a new
// one that starts after the last message read. Safe for concurrent use.
type Reader struct {
	js     jetstream.JetStream
	stream string

	mu   sync.Mutex
	s    jetstream.Stream
	cons jetstream.Consumer
	seen uint64 // stream sequence of the last message read
	msgs []jetstream.Msg
}

// NewReader returns a reader of a stream; nothing is read until Read.
func NewReader(js jetstream.JetStream, stream string) *Reader {
	return &Reader{js: js, stream: stream}
}

// readerInactive keeps the reader's consumer through a long phase without
// reads (a chaos run's publishing).
const readerInactive = time.Hour

// Read returns every message of the stream so far, oldest first. A stream
// that does not exist yet reads as empty.
func (r *Reader) Read(ctx context.Context) ([]jetstream.Msg, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.fetch(ctx); err != nil {
		return slices.Clone(r.msgs), err
	}
	return slices.Clone(r.msgs), nil
}

func (r *Reader) fetch(ctx context.Context) error {
	if r.s == nil {
		s, err := r.js.Stream(ctx, r.stream)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		r.s = s
	}
	info, err := r.s.Info(ctx)
	if err != nil {
		return err
	}
	for r.seen < info.State.LastSeq {
		if r.cons == nil {
			cfg := jetstream.OrderedConsumerConfig{InactiveThreshold: readerInactive}
			if r.seen > 0 {
				cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, r.seen+1
			}
			if r.cons, err = r.s.OrderedConsumer(ctx, cfg); err != nil {
				return err
			}
		}
		n, err := r.batch(func() (jetstream.MessageBatch, error) { return r.cons.FetchNoWait(500) })
		if err == nil && n == 0 {
			// Right after a consumer is made or reset, a no-wait fetch can
			// come back empty: give it a moment once.
			n, err = r.batch(func() (jetstream.MessageBatch, error) {
				return r.cons.Fetch(500, jetstream.FetchMaxWait(300*time.Millisecond))
			})
		}
		if err != nil {
			r.cons = nil // made anew after the last message read
			return fmt.Errorf("read %s: %w", r.stream, err)
		}
		if n == 0 {
			return nil // the rest was removed by the stream's limits
		}
	}
	return nil
}

func (r *Reader) batch(fetch func() (jetstream.MessageBatch, error)) (int, error) {
	b, err := fetch()
	if err != nil {
		return 0, err
	}
	n := 0
	for m := range b.Messages() {
		md, err := m.Metadata()
		if err != nil {
			continue
		}
		r.seen = md.Sequence.Stream
		r.msgs = append(r.msgs, m)
		n++
	}
	if err := b.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) {
		return n, err
	}
	return n, nil
}

// ResultMsg is one message of the results stream.
type ResultMsg struct {
	Subject string
	Result  intent.Result
}

// AllResults reads every result published so far, oldest first, with its
// subject.
func (r *Rig) AllResults(ctx context.Context) ([]ResultMsg, error) {
	msgs, err := r.ResultsReader.Read(ctx)
	out := make([]ResultMsg, 0, len(msgs))
	for _, m := range msgs {
		var res intent.Result
		if json.Unmarshal(m.Data(), &res) == nil {
			out = append(out, ResultMsg{Subject: m.Subject(), Result: res})
		}
	}
	return out, err
}

// Results reads every result so far, the latest per intent (results
// without an intentId under "?n").
func (r *Rig) Results(ctx context.Context) (map[string]intent.Result, error) {
	all, err := r.AllResults(ctx)
	out := make(map[string]intent.Result, len(all))
	for _, m := range all {
		key := m.Result.IntentID
		if key == "" {
			key = fmt.Sprintf("?%d", len(out))
		}
		out[key] = m.Result
	}
	return out, err
}

// DeadLetters reads every dead letter so far, oldest first (not the
// replay notes the stream also holds).
func (r *Rig) DeadLetters(ctx context.Context) ([]jetstream.Msg, error) {
	msgs, err := r.DeadLetterReader.Read(ctx)
	return slices.DeleteFunc(msgs, func(m jetstream.Msg) bool { return strings.HasPrefix(m.Subject(), deadletter.ReplayedPrefix) }), err
}

// IntentDeadLetters maps each intent that has a dead letter of kind
// "intents" with a reason to its class (the latest).
func (r *Rig) IntentDeadLetters(ctx context.Context) (map[string]string, error) {
	msgs, err := r.DeadLetters(ctx)
	out := map[string]string{}
	for _, m := range msgs {
		h := m.Headers()
		if h.Get(deadletter.HeaderKind) == "intents" && h.Get(deadletter.HeaderReason) != "" {
			out[h.Get(deadletter.HeaderIntentID)] = h.Get(deadletter.HeaderClass)
		}
	}
	return out, err
}

// ChargesByRef counts charges (live or not) per reference.
func ChargesByRef(l sandbox.Ledger) map[string]int {
	m := map[string]int{}
	for _, c := range l.Charges {
		m[c.Reference]++
	}
	return m
}
