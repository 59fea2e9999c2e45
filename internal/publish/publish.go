// Package publish puts intents on the queue for upstream systems and
// operators: it reads intent files (one JSON object, a JSON array, or JSON
// lines), validates every intent with the intent model, publishes with
// Nats-Msg-Id = intentId, and waits for results.
package publish

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ttcpay/payflow/internal/intent"
	"github.com/ttcpay/payflow/internal/streams"
	"github.com/ttcpay/payflow/internal/tracing"
)

// Item is one intent read from a file.
type Item struct {
	Line   int // the line it starts on
	Raw    []byte
	Intent *intent.Intent // nil when Err is set
	Err    error
}

// MaxFileSize bounds an intents file.
const MaxFileSize = 256 << 20

// Read reads intents: JSON lines (every non-empty line is an object), or
// else a stream of JSON values (one object, an array of objects, or
// objects one after another, pretty-printed or not). Each item is validated;
// bad items carry Err with the reason.
func Read(r io.Reader, now time.Time) ([]Item, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("input is larger than %d bytes", MaxFileSize)
	}
	if isJSONLines(data) {
		return readLines(data, now), nil
	}
	return readStream(data, now), nil
}

func isJSONLines(data []byte) bool {
	n := 0
	for _, l := range bytes.Split(data, []byte("\n")) {
		l = bytes.TrimSpace(l)
		if len(l) == 0 {
			continue
		}
		if l[0] != '{' || l[len(l)-1] != '}' {
			return false
		}
		n++
	}
	return n > 0
}

func readLines(data []byte, now time.Time) []Item {
	var items []Item
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), intent.MaxSize*4)
	line := 0
	for sc.Scan() {
		line++
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		items = append(items, decode(line, append([]byte(nil), raw...), now))
	}
	if err := sc.Err(); err != nil {
		items = append(items, Item{Line: line + 1, Err: fmt.Errorf("reading: %w", err)})
	}
	return items
}

func readStream(data []byte, now time.Time) []Item {
	var items []Item
	lineAt := func(off int64) int { return 1 + bytes.Count(data[:min(int(off), len(data))], []byte("\n")) }
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		start := dec.InputOffset()
		// Skip white space so that the line is the value's own.
		for int(start) < len(data) && strings.ContainsRune(" \t\r\n", rune(data[start])) {
			start++
		}
		var v json.RawMessage
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return items
		}
		if err != nil {
			var se *json.SyntaxError
			msg := "is not valid JSON"
			if errors.As(err, &se) {
				return append(items, Item{Line: lineAt(se.Offset), Err: errors.New(msg)})
			}
			return append(items, Item{Line: lineAt(start), Err: errors.New(msg)})
		}
		trimmed := bytes.TrimSpace(v)
		if len(trimmed) > 0 && trimmed[0] == '[' {
			var arr []json.RawMessage
			if err := json.Unmarshal(trimmed, &arr); err != nil {
				return append(items, Item{Line: lineAt(start), Err: errors.New("is not a JSON array of intents")})
			}
			// Find each element's line by its position in the array text.
			pos := int(start)
			for _, el := range arr {
				if i := bytes.Index(data[pos:], bytes.TrimSpace(el)); i >= 0 {
					pos += i
				}
				items = append(items, decode(lineAt(int64(pos)), compact(el), now))
			}
			continue
		}
		items = append(items, decode(lineAt(start), compact(v), now))
	}
}

func compact(v []byte) []byte {
	var b bytes.Buffer
	if err := json.Compact(&b, v); err != nil {
		return v
	}
	return b.Bytes()
}

func decode(line int, raw []byte, now time.Time) Item {
	in, err := intent.Decode(raw, now)
	return Item{Line: line, Raw: raw, Intent: in, Err: err}
}

// DuplicateError is a publish that JetStream acknowledged as a duplicate:
// a message with the same Nats-Msg-Id (the intentId) is already in the
// stream's duplicate window, so this one was dropped, whatever it held. It
// is an error for the publisher: the intent it sent will never be
// processed, and if its body differs from the accepted one (a reused
// intentId), that difference is lost.
type DuplicateError struct {
	IntentID string
	// Stream and Sequence locate the message accepted earlier.
	Stream   string
	Sequence uint64
}

func (e *DuplicateError) Error() string { return "already accepted: intentId " + e.IntentID }

// Publish sends one intent to payments.intents.<merchantId> with
// Nats-Msg-Id = intentId and the trace context (traceparent) of ctx, and
// waits for the stream's ack. A Duplicate ack is a *DuplicateError (the
// message was dropped). tr may be nil (no trace context).
func Publish(ctx context.Context, js jetstream.Publisher, in *intent.Intent, raw []byte, tr *tracing.Tracing) (*jetstream.PubAck, error) {
	m := nats.NewMsg(streams.Intents(in.MerchantID))
	m.Data = raw
	m.Header.Set(nats.MsgIdHdr, in.IntentID)
	if tr != nil {
		tr.ToMsg(ctx, m)
	}
	ack, err := js.PublishMsg(ctx, m)
	if err != nil {
		return nil, fmt.Errorf("publish %s: %w", in.IntentID, err)
	}
	if ack.Duplicate {
		return nil, &DuplicateError{IntentID: in.IntentID, Stream: ack.Stream, Sequence: ack.Sequence}
	}
	return ack, nil
}

// Waiter collects results from the results stream.
type Waiter struct {
	cons jetstream.ConsumeContext
	ch   chan intent.Result
}

// NewWaiter starts reading results published since since (the zero time:
// only new ones). Start it before publishing so that nothing is missed.
func NewWaiter(ctx context.Context, js jetstream.JetStream, since time.Time) (*Waiter, error) {
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{streams.ResultsPrefix + "*"}, DeliverPolicy: jetstream.DeliverNewPolicy}
	if !since.IsZero() {
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		cfg.OptStartTime = &since
	}
	c, err := js.OrderedConsumer(ctx, streams.StreamResults, cfg)
	if err != nil {
		return nil, fmt.Errorf("results stream: %w", err)
	}
	w := &Waiter{ch: make(chan intent.Result, 4096)}
	w.cons, err = c.Consume(func(m jetstream.Msg) {
		var r intent.Result
		if json.Unmarshal(m.Data(), &r) == nil {
			w.ch <- r
		}
	})
	if err != nil {
		return nil, err
	}
	return w, nil
}

// Results delivers results as they arrive.
func (w *Waiter) Results() <-chan intent.Result { return w.ch }

// Wait returns the latest result of each wanted intent, until all have one
// or ctx ends (then the map holds those that arrived).
func (w *Waiter) Wait(ctx context.Context, wanted map[string]bool) map[string]intent.Result {
	got := map[string]intent.Result{}
	for len(got) < len(wanted) {
		select {
		case r := <-w.ch:
			if wanted[r.IntentID] {
				got[r.IntentID] = r
			}
		case <-ctx.Done():
			return got
		}
	}
	return got
}

// Stop ends the subscription.
func (w *Waiter) Stop() { w.cons.Stop() }
