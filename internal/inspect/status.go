package inspect

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ttcpay/payflow/internal/deadletter"
	"github.com/ttcpay/payflow/internal/idempotency"
	"github.com/ttcpay/payflow/internal/intent"
	"github.com/ttcpay/payflow/internal/redact"
	"github.com/ttcpay/payflow/internal/streams"
)

// StatusReport is the whole system at a glance (publisher status).
type StatusReport struct {
	At        time.Time        `json:"at"`
	Streams   []StreamStatus   `json:"streams"`
	Consumers []ConsumerStatus `json:"consumers"`
	// DeadLetters counts the dead letters by kind and class.
	DeadLetters []DeadLetterCount `json:"deadLetters"`
	// Unknown are the intents whose charge has an unknown outcome, waiting
	// for their timeout reversal or void; Resolving, those being resolved
	// now. Both are read from the intents still waiting in the stream.
	Unknown   WaitingIntents `json:"unknown"`
	Resolving WaitingIntents `json:"resolving"`
	// Callbacks are the TTC callbacks not yet delivered.
	Callbacks WaitingCallbacks `json:"callbacks"`
	// Merchants says what waits for each merchant that has anything
	// waiting or dead-lettered, busiest first.
	Merchants []MerchantStatus `json:"merchants"`
	// Problems are the parts that could not be read, or were cut short.
	Problems []string `json:"problems,omitempty"`
}

// StreamStatus is one stream's depth.
type StreamStatus struct {
	Name     string    `json:"name"`
	Messages uint64    `json:"messages"`
	Bytes    uint64    `json:"bytes"`
	Oldest   time.Time `json:"oldest,omitzero"`
	// OldestAge is the age of the oldest message; for the intents and
	// callbacks streams (work queues) that is the oldest message not yet
	// acknowledged.
	OldestAge Age `json:"oldestAgeSeconds"`
}

// ConsumerStatus is one consumer's backlog.
type ConsumerStatus struct {
	Stream string `json:"stream"`
	Name   string `json:"name"`
	// Pending: messages not yet delivered to any worker.
	Pending uint64 `json:"pending"`
	// AckPending: delivered, not yet acknowledged (being worked on, or
	// waiting for a delayed redelivery).
	AckPending int `json:"ackPending"`
	// Redelivered: of those, how many were delivered more than once.
	Redelivered int `json:"redelivered"`
	// PullsWaiting: open pull requests (roughly, idle worker slots).
	PullsWaiting int `json:"pullsWaiting"`
	// OldestUnacked is the oldest message the consumer has not
	// acknowledged (zero when none).
	OldestUnacked    time.Time `json:"oldestUnacked,omitzero"`
	OldestUnackedAge Age       `json:"oldestUnackedAgeSeconds"`
}

// DeadLetterCount counts the dead letters of one kind and class.
type DeadLetterCount struct {
	Kind      string    `json:"kind"`
	Class     string    `json:"class"`
	Count     int       `json:"count"`
	Oldest    time.Time `json:"oldest"`
	OldestSeq uint64    `json:"oldestSeq"`
}

// WaitingIntents counts intents in one state, with the oldest.
type WaitingIntents struct {
	Count  int            `json:"count"`
	Oldest *WaitingIntent `json:"oldest,omitempty"`
}

// WaitingIntent is one intent that waits.
type WaitingIntent struct {
	IntentID string `json:"intentId"`
	// MerchantID is read from the intent's history ("" when it has none).
	MerchantID string `json:"merchantId,omitempty"`
	Attempt    int    `json:"attempt"`
	// Since: when the attempt's outcome became unknown.
	Since time.Time `json:"since,omitzero"`
	Age   Age       `json:"ageSeconds"`
	// Next is what happens to it next, and when.
	Next Next `json:"next"`
}

// WaitingCallbacks counts TTC callbacks not yet delivered.
type WaitingCallbacks struct {
	Count int `json:"count"`
	// InRetry: of those, how many failed at least once.
	InRetry int              `json:"inRetry"`
	Oldest  *WaitingCallback `json:"oldest,omitempty"`
}

// WaitingCallback is one callback not yet delivered.
type WaitingCallback struct {
	IntentID      string    `json:"intentId"`
	MerchantID    string    `json:"merchantId"`
	TransactionID string    `json:"transactionId"`
	Since         time.Time `json:"since"`
	Age           Age       `json:"ageSeconds"`
}

// MerchantStatus is what waits for one merchant.
type MerchantStatus struct {
	MerchantID string `json:"merchantId"`
	// Intents waiting in the stream (not yet acknowledged, unknown
	// outcomes included).
	Intents uint64 `json:"intents"`
	// UnknownOutcomes: intents in unknown or resolving.
	UnknownOutcomes int `json:"unknownOutcomes"`
	// Callbacks not yet delivered.
	Callbacks   uint64 `json:"callbacks"`
	DeadLetters int    `json:"deadLetters"`
}

// Next is what happens next to an intent, and when (zero At: nothing is
// scheduled).
type Next struct {
	What string    `json:"what"`
	At   time.Time `json:"at,omitzero"`
}

// Status reads the whole system. Parts that cannot be read are listed in
// Problems; an error means nothing could be read.
func (in *Inspector) Status(ctx context.Context) (StatusReport, error) {
	now := in.opt.Now()
	rep := StatusReport{At: now.UTC()}
	merchants := map[string]*MerchantStatus{}
	merchant := func(m string) *MerchantStatus {
		ms := merchants[m]
		if ms == nil {
			ms = &MerchantStatus{MerchantID: m}
			merchants[m] = ms
		}
		return ms
	}
	problem := func(format string, args ...any) { rep.Problems = append(rep.Problems, fmt.Sprintf(format, args...)) }

	for _, name := range []string{streams.StreamIntents, streams.StreamCallbacks, streams.StreamResults, streams.StreamDLQ} {
		s, err := in.js.Stream(ctx, name)
		if err != nil {
			if name == streams.StreamIntents {
				return rep, fmt.Errorf("stream %s: %w", name, err)
			}
			problem("stream %s: %v", name, err)
			continue
		}
		var subjFilter string
		switch name {
		case streams.StreamIntents:
			subjFilter = streams.IntentsPrefix + "*"
		case streams.StreamCallbacks:
			subjFilter = streams.CallbacksPrefix + "*"
		}
		var info *jetstream.StreamInfo
		if subjFilter != "" {
			info, err = s.Info(ctx, jetstream.WithSubjectFilter(subjFilter))
		} else {
			info, err = s.Info(ctx)
		}
		if err != nil {
			problem("stream %s: %v", name, err)
			continue
		}
		st := StreamStatus{Name: name, Messages: info.State.Msgs, Bytes: info.State.Bytes}
		if info.State.Msgs > 0 {
			st.Oldest = info.State.FirstTime.UTC()
			st.OldestAge = ageOf(now, info.State.FirstTime)
		}
		rep.Streams = append(rep.Streams, st)
		for subj, n := range info.State.Subjects {
			m := streams.MerchantOf(subj)
			switch name {
			case streams.StreamIntents:
				merchant(m).Intents += n
			case streams.StreamCallbacks:
				merchant(m).Callbacks += n
			}
		}
		if name == streams.StreamIntents || name == streams.StreamCallbacks {
			cname := streams.ConsumerPayments
			if name == streams.StreamCallbacks {
				cname = streams.ConsumerCallbacks
			}
			cs := ConsumerStatus{Stream: name, Name: cname}
			c, err := s.Consumer(ctx, cname)
			if err == nil {
				var ci *jetstream.ConsumerInfo
				if ci, err = c.Info(ctx); err == nil {
					cs.Pending, cs.AckPending, cs.Redelivered, cs.PullsWaiting = ci.NumPending, ci.NumAckPending, ci.NumRedelivered, ci.NumWaiting
				}
			}
			if err != nil {
				problem("consumer %s of %s: %v (no worker with this role has started?)", cname, name, err)
			}
			// A work queue holds only what is not acknowledged.
			cs.OldestUnacked, cs.OldestUnackedAge = st.Oldest, st.OldestAge
			rep.Consumers = append(rep.Consumers, cs)
			if name == streams.StreamCallbacks {
				rep.Callbacks.Count = int(info.State.Msgs)
				rep.Callbacks.InRetry = cs.Redelivered
				if info.State.Msgs > 0 {
					if w, err := oldestCallback(ctx, s, info.State.FirstSeq); err == nil {
						w.Age = ageOf(now, w.Since)
						rep.Callbacks.Oldest = w
					} else {
						problem("oldest callback: %v", err)
					}
				}
			}
		}
	}

	// Dead letters by kind and class.
	letters, err := deadletter.List(ctx, in.js, deadletter.Filter{})
	if err != nil {
		problem("dead letters: %v", err)
	}
	counts := map[[2]string]*DeadLetterCount{}
	for _, l := range letters {
		k := [2]string{string(l.Kind), string(l.Class)}
		c := counts[k]
		if c == nil {
			c = &DeadLetterCount{Kind: k[0], Class: k[1], Oldest: l.Time.UTC(), OldestSeq: l.Seq}
			counts[k] = c
		}
		c.Count++
		if l.MerchantID != "" {
			merchant(l.MerchantID).DeadLetters++
		}
	}
	for _, c := range counts {
		rep.DeadLetters = append(rep.DeadLetters, *c)
	}
	sort.Slice(rep.DeadLetters, func(i, j int) bool {
		a, b := rep.DeadLetters[i], rep.DeadLetters[j]
		return a.Kind < b.Kind || a.Kind == b.Kind && a.Class < b.Class
	})

	// Unknown outcomes: the records in unknown or resolving. (The intents
	// stream's messages are not read: they may hold card data.)
	if in.rec == nil {
		problem("%v", ErrNoRecords)
	} else {
		ws, cut, err := in.rec.ScanStates(ctx, in.opt.ScanLimit, idempotency.StateUnknown, idempotency.StateResolving)
		if err != nil {
			problem("intent records: %v", err)
		}
		if cut {
			problem("only the first %d intent records were checked for unknown outcomes (--scan-limit)", in.opt.ScanLimit)
		}
		for _, r := range ws {
			w := &WaitingIntent{IntentID: redact.CardNumbers(r.IntentID), Attempt: r.Attempt,
				Since: r.UnknownFrom.UTC(), Age: ageOf(now, r.UnknownFrom),
				Next: in.next(&idempotency.Record{State: r.State, Attempt: r.Attempt, UnknownFrom: r.UnknownFrom, LeaseEnd: r.LeaseEnd})}
			if hist, err := in.rec.History(ctx, r.IntentID); err == nil {
				events := make([]Event, len(hist))
				for i, e := range hist {
					events[i] = Event{At: e.At, Attempt: e.Attempt, Kind: e.Kind, Detail: e.Detail}
					if w.MerchantID == "" {
						w.MerchantID = e.Merchant
					}
				}
				w.Next = laterScheduled(w.Next, events)
			}
			dst := &rep.Unknown
			if r.State == idempotency.StateResolving {
				dst = &rep.Resolving
			}
			if w.MerchantID != "" {
				merchant(w.MerchantID).UnknownOutcomes++
			}
			dst.Count++
			if dst.Oldest == nil || w.Since.Before(dst.Oldest.Since) {
				dst.Oldest = w
			}
		}
	}

	for _, ms := range merchants {
		rep.Merchants = append(rep.Merchants, *ms)
	}
	sort.Slice(rep.Merchants, func(i, j int) bool {
		a, b := rep.Merchants[i], rep.Merchants[j]
		wa, wb := a.Intents+a.Callbacks+uint64(a.DeadLetters), b.Intents+b.Callbacks+uint64(b.DeadLetters)
		return wa > wb || wa == wb && a.MerchantID < b.MerchantID
	})
	return rep, nil
}

// next says what happens next to an intent with this record.
func (in *Inspector) next(r *idempotency.Record) Next {
	switch r.State {
	case idempotency.StateUnknown:
		if r.UnknownFrom.IsZero() {
			return Next{What: fmt.Sprintf("resolve the unknown outcome of attempt %d (timeout reversal or void)", r.Attempt)}
		}
		return Next{What: fmt.Sprintf("resolve the unknown outcome of attempt %d (timeout reversal or void)", r.Attempt), At: r.UnknownFrom.Add(in.opt.ResolveDelay).UTC()}
	case idempotency.StateResolving:
		return Next{What: fmt.Sprintf("resolving attempt %d now (a worker holds it; it is retried if that worker stops)", r.Attempt), At: r.LeaseEnd.UTC()}
	case idempotency.StateCharging:
		return Next{What: fmt.Sprintf("charging attempt %d now (a worker holds it; if that worker stops, its outcome is treated as unknown when the lease ends)", r.Attempt), At: r.LeaseEnd.UTC()}
	case idempotency.StateIdle:
		return Next{What: fmt.Sprintf("retry: attempt %d is settled as not charged; the next delivery tries again", r.Attempt)}
	case idempotency.StateDone:
		return Next{What: "nothing: the intent has ended"}
	}
	return Next{What: "waiting for a worker to claim it"}
}

func oldestCallback(ctx context.Context, s jetstream.Stream, first uint64) (*WaitingCallback, error) {
	m, err := s.GetMsg(ctx, first, jetstream.WithGetMsgSubject(streams.CallbacksPrefix+"*"))
	if err != nil {
		return nil, err
	}
	var job intent.CallbackJob
	_ = json.Unmarshal(m.Data, &job)
	id := job.IntentID
	if id == "" {
		id = m.Header.Get(nats.MsgIdHdr)
	}
	return &WaitingCallback{IntentID: redact.CardNumbers(id), MerchantID: streams.MerchantOf(m.Subject),
		TransactionID: job.TransactionID, Since: m.Time.UTC()}, nil
}
