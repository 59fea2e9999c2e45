package inspect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ttcpay/payflow/internal/deadletter"
	"github.com/ttcpay/payflow/internal/idempotency"
	"github.com/ttcpay/payflow/internal/intent"
	"github.com/ttcpay/payflow/internal/redact"
	"github.com/ttcpay/payflow/internal/streams"
)

// IntentStory is one intent's whole story (publisher intent show).
type IntentStory struct {
	IntentID   string `json:"intentId"`
	MerchantID string `json:"merchantId,omitempty"`
	// Known: the intent has a record (it was claimed at least once).
	Known bool `json:"known"`
	// State is the record's state in words: waiting, charging, unknown
	// outcome, resolving, not charged (retrying), ended.
	State   string `json:"state"`
	Attempt int    `json:"attempt,omitempty"`
	// Worker is the worker process that holds the intent (charging,
	// resolving) until LeaseUntil.
	Worker     string    `json:"worker,omitempty"`
	LeaseUntil time.Time `json:"leaseUntil,omitzero"`
	// UnknownSince: when the current attempt's outcome became unknown.
	UnknownSince time.Time `json:"unknownSince,omitzero"`
	Next         Next      `json:"next"`
	// Outcome is the recorded result of an ended intent.
	Outcome *intent.Result `json:"outcome,omitempty"`
	// Attempts are the charge attempts the history knows of.
	Attempts []AttemptStory `json:"attempts"`
	// Results are the results published for it (the results stream).
	Results []PublishedResult `json:"results"`
	// Callback is its TTC callback (authorized intents only).
	Callback *CallbackStory `json:"callback,omitempty"`
	// DeadLetters are its dead letters, present and replayed.
	DeadLetters []LetterStory `json:"deadLetters"`
	// Ledger is the settlement ledger of an authorized payment.
	Ledger *Ledger `json:"ledger,omitempty"`
	// Events is the history, oldest first (the latest
	// idempotency.HistoryMax).
	Events []Event `json:"events"`
	// ForgottenIn: when the record expires.
	ForgottenIn Age      `json:"forgottenInSeconds,omitempty"`
	Problems    []string `json:"problems,omitempty"`
}

// AttemptStory is one charge attempt.
type AttemptStory struct {
	N int `json:"n"`
	// TransactionID is the clientReferenceInformation.transactionId sent
	// to CyberSource for it.
	TransactionID string    `json:"transactionId"`
	Started       time.Time `json:"started,omitzero"`
	// Outcome is the last thing the history says of it.
	Outcome string `json:"outcome"`
}

// PublishedResult is one result message.
type PublishedResult struct {
	Seq           uint64    `json:"seq"`
	Time          time.Time `json:"time"`
	Status        string    `json:"status"`
	Operation     string    `json:"operation,omitempty"`
	CyberSourceID string    `json:"cybersourceId,omitempty"`
	Amount        string    `json:"amount,omitempty"`
	Currency      string    `json:"currency,omitempty"`
	Reason        string    `json:"reason,omitempty"`
}

// CallbackStory is an authorized intent's TTC callback.
type CallbackStory struct {
	TransactionID string `json:"transactionId"`
	// Delivered: TTC has it.
	Delivered bool `json:"delivered"`
	// Waiting: its job is still in the callbacks stream (not delivered,
	// or delivered and not yet acknowledged), since WaitingSince.
	Waiting      bool      `json:"waiting"`
	WaitingSince time.Time `json:"waitingSince,omitzero"`
	// Failures are the failed deliveries the history knows of.
	Failures  int       `json:"failures"`
	LastError string    `json:"lastError,omitempty"`
	LastAt    time.Time `json:"lastAt,omitzero"`
	NextRetry time.Time `json:"nextRetry,omitzero"`
}

// LetterStory is one dead letter of the intent.
type LetterStory struct {
	Seq    uint64    `json:"seq"`
	Time   time.Time `json:"time"`
	Kind   string    `json:"kind"`
	Class  string    `json:"class"`
	Reason string    `json:"reason,omitempty"`
	// ReplayedAt is set when it was replayed (and so removed), To where.
	ReplayedAt time.Time `json:"replayedAt,omitzero"`
	ReplayedTo string    `json:"replayedTo,omitempty"`
}

// Ledger is an authorized payment's settlement, in the currency's units.
type Ledger struct {
	PaymentID  string `json:"paymentId"`
	Currency   string `json:"currency"`
	Authorized string `json:"authorized"`
	Captured   string `json:"captured"`
	Reversed   string `json:"reversed"`
	Refunded   string `json:"refunded"`
	Voided     bool   `json:"voided"`
	// Operations are the capture/reverse/refund intents that reserved an
	// amount on it.
	Operations map[string]string `json:"operations,omitempty"`
}

// Event is one history entry.
type Event struct {
	At      time.Time `json:"at"`
	Attempt int       `json:"attempt,omitempty"`
	Kind    string    `json:"kind"`
	Detail  string    `json:"detail"`
	// Next is when the next try is due, on an event that scheduled one.
	Next time.Time `json:"next,omitzero"`
	// Outcome is what came of a callback delivery: delivered, failed or
	// rejected.
	Outcome string `json:"outcome,omitempty"`
}

// Intent tells one intent's story. An intent nobody has heard of is not an
// error: Known is false and every list is empty.
func (in *Inspector) Intent(ctx context.Context, id string) (IntentStory, error) {
	now := in.opt.Now()
	st := IntentStory{IntentID: id, Attempts: []AttemptStory{}, Results: []PublishedResult{}, DeadLetters: []LetterStory{}, Events: []Event{}}
	problem := func(format string, args ...any) { st.Problems = append(st.Problems, fmt.Sprintf(format, args...)) }
	var rec *idempotency.Record
	if in.rec == nil {
		problem("%v", ErrNoRecords)
	} else {
		var err error
		if rec, err = in.rec.Inspect(ctx, id); err != nil {
			return st, err
		}
		hist, err := in.rec.History(ctx, id)
		if err != nil {
			problem("history: %v", err)
		}
		for _, e := range hist {
			st.Events = append(st.Events, Event{At: e.At.UTC(), Attempt: e.Attempt, Kind: e.Kind, Detail: e.Detail, Next: e.Next.UTC(), Outcome: e.Outcome})
			st.MerchantID = orStr(st.MerchantID, e.Merchant)
		}
	}
	st.State, st.Next = "not claimed by any worker", Next{What: "nothing known: never published, not yet taken by a worker, or forgotten"}
	if rec != nil {
		st.Known = true
		st.State, st.Attempt = stateWords(rec.State), rec.Attempt
		if rec.State == idempotency.StateCharging || rec.State == idempotency.StateResolving {
			st.Worker, st.LeaseUntil = rec.Owner, rec.LeaseEnd.UTC()
		}
		if !rec.UnknownFrom.IsZero() && (rec.State == idempotency.StateUnknown || rec.State == idempotency.StateResolving) {
			st.UnknownSince = rec.UnknownFrom.UTC()
		}
		st.Next = in.next(rec)
		if rec.TTL > 0 {
			st.ForgottenIn = Age(rec.TTL)
		}
		if len(rec.Result) > 0 {
			var r intent.Result
			if json.Unmarshal(rec.Result, &r) == nil {
				st.Outcome = &r
				st.MerchantID = r.MerchantID
			}
		}
		if rec.State == idempotency.StateDone && rec.Letter != nil {
			st.Next.What = fmt.Sprintf("nothing until an operator acts: ended with a %s dead letter", rec.Letter.Class)
		}
		if lv := rec.Ledger; lv != nil {
			st.Ledger = &Ledger{PaymentID: lv.PaymentID, Currency: lv.Currency, Authorized: units(lv.Authorized), Captured: units(lv.Captured),
				Reversed: units(lv.Reversed), Refunded: units(lv.Refunded), Voided: lv.Voided}
			for op, amt := range lv.Reservations {
				if st.Ledger.Operations == nil {
					st.Ledger.Operations = map[string]string{}
				}
				st.Ledger.Operations[op] = units(amt)
			}
			st.MerchantID = orStr(st.MerchantID, lv.Merchant)
		}
	}
	st.Attempts = attempts(id, st.Events, st.Attempt)
	if rec != nil && rec.State != idempotency.StateDone {
		// A retry or a wait the history scheduled after the record's own
		// next step (a resolution that failed and is retried, say).
		st.Next = laterScheduled(st.Next, st.Events)
	}

	// Dead letters, present and replayed.
	letters, err := deadletter.List(ctx, in.js, deadletter.Filter{IntentID: id})
	if err != nil {
		problem("dead letters: %v", err)
	}
	for _, l := range letters {
		st.DeadLetters = append(st.DeadLetters, LetterStory{Seq: l.Seq, Time: l.Time.UTC(), Kind: string(l.Kind), Class: string(l.Class), Reason: redact.CardNumbers(l.Reason)})
		st.MerchantID = orStr(st.MerchantID, l.MerchantID)
	}
	replays, err := deadletter.Replays(ctx, in.js, "", 0, id)
	if err != nil {
		problem("replay notes: %v", err)
	}
	for _, r := range replays {
		st.DeadLetters = append(st.DeadLetters, LetterStory{Seq: r.Seq, Time: r.LetterTime.UTC(), Kind: string(r.Kind), Class: string(r.Class), ReplayedAt: r.At.UTC(), ReplayedTo: r.To})
		st.MerchantID = orStr(st.MerchantID, r.MerchantID)
	}
	sort.Slice(st.DeadLetters, func(i, j int) bool { return st.DeadLetters[i].Seq < st.DeadLetters[j].Seq })

	if st.MerchantID == "" {
		if st.Known || len(st.DeadLetters) > 0 {
			problem("merchant unknown (no result, history, ledger or dead letter names it): results and callback not looked up")
		}
		st.redact()
		return st, nil
	}
	since := earliest(st, now)
	if err := in.results(ctx, &st, since); err != nil {
		problem("results: %v", err)
	}
	if st.Outcome != nil && st.Outcome.Authorized() && st.Outcome.Operation == "" {
		cb := &CallbackStory{TransactionID: st.Outcome.CyberSourceID, Delivered: rec != nil && rec.CallbackDelivered != "" && rec.CallbackDelivered == st.Outcome.CyberSourceID}
		for _, e := range st.Events {
			if e.Kind != "callback" {
				continue
			}
			switch e.Outcome {
			case idempotency.OutcomeDelivered:
				cb.Delivered = true
			case idempotency.OutcomeFailed, idempotency.OutcomeRejected:
				cb.Failures++
				cb.LastError, cb.LastAt, cb.NextRetry = e.Detail, e.At, e.Next
			}
		}
		if cb.Delivered {
			cb.NextRetry = time.Time{}
		}
		if err := in.waitingCallback(ctx, cb, st.MerchantID, id); err != nil {
			problem("callbacks stream: %v", err)
		}
		st.Callback = cb
	}
	st.redact()
	return st, nil
}

// redact masks what looks like a card number in every text of the story
// (redact.CardNumbers), except the CyberSource ids the story itself names
// (22 digits, which CardNumbers would mask as "may hold a card number").
func (st *IntentStory) redact() {
	var keep []string
	add := func(id string) {
		if id != "" {
			keep = append(keep, id)
		}
	}
	if st.Outcome != nil {
		add(st.Outcome.CyberSourceID)
		add(st.Outcome.PaymentID)
		st.Outcome.Reason = redactKeeping(st.Outcome.Reason, keep)
	}
	if st.Ledger != nil {
		add(st.Ledger.PaymentID)
	}
	for _, r := range st.Results {
		add(r.CyberSourceID)
	}
	if st.Callback != nil {
		add(st.Callback.TransactionID)
		st.Callback.LastError = redactKeeping(st.Callback.LastError, keep)
	}
	for i := range st.Events {
		st.Events[i].Detail = redactKeeping(st.Events[i].Detail, keep)
	}
	for i := range st.Attempts {
		st.Attempts[i].Outcome = redactKeeping(st.Attempts[i].Outcome, keep)
	}
	for i := range st.Results {
		st.Results[i].Reason = redactKeeping(st.Results[i].Reason, keep)
	}
	for i := range st.DeadLetters {
		st.DeadLetters[i].Reason = redactKeeping(st.DeadLetters[i].Reason, keep)
	}
}

func redactKeeping(s string, keep []string) string {
	var r []string
	for i, id := range keep {
		if !redact.LooksLikeCard(id) {
			continue // CardNumbers leaves it as it is
		}
		ph := fmt.Sprintf("\x00%d\x00", i)
		s = strings.ReplaceAll(s, id, ph)
		r = append(r, ph, id)
	}
	s = redact.CardNumbers(s)
	return strings.NewReplacer(r...).Replace(s)
}

func orStr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func stateWords(s string) string {
	switch s {
	case idempotency.StateIdle:
		return "not charged; waiting to be tried again"
	case idempotency.StateCharging:
		return "charging"
	case idempotency.StateUnknown:
		return "unknown outcome (waiting to resolve it)"
	case idempotency.StateResolving:
		return "resolving an unknown outcome"
	case idempotency.StateDone:
		return "ended"
	}
	return s
}

// units formats ten-thousandths of a currency unit.
func units(v int64) string {
	neg := ""
	if v < 0 {
		neg, v = "-", -v
	}
	s := fmt.Sprintf("%s%d.%04d", neg, v/10000, v%10000)
	return strings.TrimSuffix(strings.TrimSuffix(s, "0"), "0")
}

// attempts groups the history by attempt.
func attempts(id string, events []Event, current int) []AttemptStory {
	by := map[int]*AttemptStory{}
	for _, e := range events {
		if e.Attempt == 0 {
			continue
		}
		a := by[e.Attempt]
		if a == nil {
			a = &AttemptStory{N: e.Attempt, TransactionID: intent.TransactionID(id, e.Attempt), Started: e.At}
			by[e.Attempt] = a
		}
		switch e.Kind {
		case "call", "resolve", "late", "dead-letter", "credentials", "reverse":
			a.Outcome = e.Detail
		}
	}
	if current > 0 && by[current] == nil {
		// A straight-through attempt writes no history: the record tells it.
		by[current] = &AttemptStory{N: current, TransactionID: intent.TransactionID(id, current), Outcome: "see the outcome"}
	}
	out := make([]AttemptStory, 0, len(by))
	for _, a := range by {
		if a.Outcome == "" {
			a.Outcome = "no answer recorded"
		}
		out = append(out, *a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].N < out[j].N })
	return out
}

// laterScheduled is next, or the redelivery the history scheduled after
// it (a resolution that failed and is retried, say), with its reason.
func laterScheduled(next Next, events []Event) Next {
	w, at := lastScheduled(events)
	if at.IsZero() || !at.After(next.At) {
		return next
	}
	if _, why, ok := strings.Cut(w, at.Format(time.RFC3339)); ok {
		w = strings.TrimLeft(why, ": (")
		w = strings.TrimSuffix(w, ")")
	}
	return Next{What: next.What + "; the last try did not settle it (" + w + "), next try", At: at}
}

// lastScheduled is the redelivery time the last retry or wait event gives.
func lastScheduled(events []Event) (string, time.Time) {
	for i := len(events) - 1; i >= 0; i-- {
		e := events[i]
		if e.Kind == "retry" || e.Kind == "wait" {
			return e.Detail, e.Next
		}
		if e.Kind == "ack" || e.Kind == "dead-letter" {
			return "", time.Time{}
		}
	}
	return "", time.Time{}
}

func earliest(st IntentStory, now time.Time) time.Time {
	t := now
	for _, e := range st.Events {
		if !e.At.IsZero() && e.At.Before(t) {
			t = e.At
		}
	}
	for _, l := range st.DeadLetters {
		if !l.Time.IsZero() && l.Time.Before(t) {
			t = l.Time
		}
	}
	if st.Outcome != nil && !st.Outcome.Time.IsZero() && st.Outcome.Time.Before(t) {
		t = st.Outcome.Time
	}
	return t.Add(-5 * time.Minute)
}

// results reads the merchant's results since since, keeping the intent's.
func (in *Inspector) results(ctx context.Context, st *IntentStory, since time.Time) error {
	s, err := in.js.Stream(ctx, streams.StreamResults)
	if err != nil {
		return err
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{streams.Results(st.MerchantID)},
		DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &since})
	if err != nil {
		return err
	}
	read := 0
	for read < in.opt.ResultsScanLimit {
		batch, err := c.FetchNoWait(512)
		if err != nil {
			return err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			var r intent.Result
			if json.Unmarshal(m.Data(), &r) != nil || r.IntentID != st.IntentID {
				continue
			}
			md, _ := m.Metadata()
			pr := PublishedResult{Time: r.Time.UTC(), Status: r.Status, Operation: r.Operation, CyberSourceID: r.CyberSourceID,
				Amount: orStr(r.AuthorizedAmount, r.Amount), Currency: r.Currency, Reason: redact.CardNumbers(r.Reason)}
			if md != nil {
				pr.Seq = md.Sequence.Stream
			}
			st.Results = append(st.Results, pr)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return err
		}
		read += n
		if n == 0 {
			return nil
		}
	}
	st.Problems = append(st.Problems, fmt.Sprintf("results: only the first %d of the merchant's results since %s were read", read, since.Format(time.RFC3339)))
	return nil
}

// waitingCallback looks for the intent's job in the callbacks stream
// (work queue: only jobs not yet acknowledged are there).
func (in *Inspector) waitingCallback(ctx context.Context, cb *CallbackStory, merchant, id string) error {
	s, err := in.js.Stream(ctx, streams.StreamCallbacks)
	if err != nil {
		return err
	}
	seq := uint64(1)
	for range in.opt.ScanLimit {
		m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(streams.Callbacks(merchant)))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		var job intent.CallbackJob
		if json.Unmarshal(m.Data, &job) == nil && job.IntentID == id {
			cb.Waiting, cb.WaitingSince = true, m.Time.UTC()
			return nil
		}
		seq = m.Sequence + 1
	}
	return nil
}
