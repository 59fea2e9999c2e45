package deadletter

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ttcpay/payflow/internal/streams"
)

// The replay log: a replay deletes the letter it republished, so it first
// leaves a small note (no payload) on payments.dlq.replayed.<merchant> in
// the dead-letter stream, kept as long as the letters are. dlq show of a
// replayed letter reads it back: when it was replayed, where to, and (with
// the intent's record) what became of it.

// ReplayedPrefix is the subject prefix of the replay log.
const ReplayedPrefix = streams.DLQPrefix + "replayed."

// Header names of a replay note (besides the letter's own Kind, Class,
// Intent and Merchant headers, which it copies).
const (
	HeaderReplayOf        = "Payflow-Replay-Of"         // the letter's sequence
	HeaderReplayTime      = "Payflow-Replay-Time"       // when it was replayed
	HeaderReplayStreamSeq = "Payflow-Replay-Stream-Seq" // the republished message's stream and sequence
	HeaderReplayLetterAt  = "Payflow-Replay-Letter-Time"
)

// Replayed is one replay note.
type Replayed struct {
	// Seq is the replayed letter's sequence.
	Seq        uint64    `json:"seq"`
	Kind       Kind      `json:"kind"`
	Class      Class     `json:"class"`
	IntentID   string    `json:"intentId"`
	MerchantID string    `json:"merchantId"`
	LetterTime time.Time `json:"letterTime"`
	At         time.Time `json:"replayedAt"`
	// To is the republished message: stream and sequence.
	To string `json:"to"`
}

// RecordReplay writes the replay note of a letter republished as ack.
func RecordReplay(ctx context.Context, js Publisher, l Letter, ack *jetstream.PubAck, now time.Time) error {
	m := nats.NewMsg(ReplayedPrefix + l.MerchantID)
	m.Header.Set(nats.MsgIdHdr, "replayed:"+strconv.FormatUint(l.Seq, 10))
	m.Header.Set(HeaderReplayOf, strconv.FormatUint(l.Seq, 10))
	m.Header.Set(HeaderReplayTime, now.UTC().Format(time.RFC3339Nano))
	m.Header.Set(HeaderReplayLetterAt, l.Time.UTC().Format(time.RFC3339Nano))
	m.Header.Set(HeaderKind, string(l.Kind))
	m.Header.Set(HeaderClass, string(l.Class))
	m.Header.Set(HeaderMerchant, l.MerchantID)
	if l.IntentID != "" {
		m.Header.Set(HeaderIntentID, l.IntentID)
	}
	if ack != nil {
		m.Header.Set(HeaderReplayStreamSeq, ack.Stream+" "+strconv.FormatUint(ack.Sequence, 10))
	}
	if _, err := js.PublishMsg(ctx, m); err != nil {
		return fmt.Errorf("replay note: %w", err)
	}
	return nil
}

// Replays returns the replay notes, oldest first, of the letter with
// sequence seq (0: any) and of intentID ("": any).
func Replays(ctx context.Context, js jetstream.JetStream, merchant string, seq uint64, intentID string) ([]Replayed, error) {
	s, err := js.Stream(ctx, streams.StreamDLQ)
	if err != nil {
		return nil, fmt.Errorf("dead-letter stream: %w", err)
	}
	subj := ReplayedPrefix + "*"
	if merchant != "" {
		subj = ReplayedPrefix + merchant
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subj}})
	if err != nil {
		return nil, err
	}
	var out []Replayed
	for {
		batch, err := c.FetchNoWait(256)
		if err != nil {
			return nil, err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			h := m.Headers()
			r := Replayed{Kind: Kind(h.Get(HeaderKind)), Class: Class(h.Get(HeaderClass)), IntentID: h.Get(HeaderIntentID),
				MerchantID: h.Get(HeaderMerchant), To: h.Get(HeaderReplayStreamSeq)}
			r.Seq, _ = strconv.ParseUint(h.Get(HeaderReplayOf), 10, 64)
			r.At, _ = time.Parse(time.RFC3339Nano, h.Get(HeaderReplayTime))
			r.LetterTime, _ = time.Parse(time.RFC3339Nano, h.Get(HeaderReplayLetterAt))
			if (seq == 0 || r.Seq == seq) && (intentID == "" || r.IntentID == intentID) {
				out = append(out, r)
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return nil, err
		}
		if n == 0 {
			return out, nil
		}
	}
}
