package idempotency

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The story of an intent, for operators (publisher intent show): what each
// delivery did, each CyberSource call and its answer, each decision, each
// TTC callback attempt. It is bounded and best effort: it never guards
// money, and a crash can cut its last entries.

// HistoryKey is the Redis key of an intent's history (same hash slot as
// its record).
func HistoryKey(intentID string) string { return "payflow:hist:{" + intentID + "}" }

// HistoryMax is how many entries an intent's history keeps (the latest).
const HistoryMax = 40

// HistoryRetentionDefault keeps a history as long as the dead letters that
// may send an operator to it.
const HistoryRetentionDefault = 30 * 24 * time.Hour

// Event is one entry of an intent's history. Detail is text for people;
// it never holds card data (the writers build it from statuses, reasons,
// ids and amounts).
type Event struct {
	At      time.Time `json:"t"`
	Attempt int       `json:"a,omitempty"`
	// Kind is short and stable: claim, call, resolve, late, reverse,
	// conflict, invalid, ack, retry, wait, dead-letter, callback.
	Kind   string `json:"k"`
	Detail string `json:"d,omitempty"`
	// Merchant is the intent's merchantId, on claim events (so that the
	// story of an intent without a result can name its merchant).
	Merchant string `json:"m,omitempty"`
	// Next is when the next try is due, on events that schedule one (a
	// callback redelivery), so readers need not parse Detail.
	Next time.Time `json:"n,omitzero"`
	// Outcome is what came of the step, on callback events (Outcome*
	// constants), so readers need not parse Detail.
	Outcome string `json:"o,omitempty"`
}

// Outcomes of a callback event.
const (
	OutcomeDelivered = "delivered" // TTC has the callback
	OutcomeFailed    = "failed"    // this delivery failed; Next says when the next is due, if any
	OutcomeRejected  = "rejected"  // TTC refused it as invalid: dead-lettered
)

// AppendHistory adds events to an intent's history, keeping the latest
// HistoryMax, for retention (0: HistoryRetentionDefault). One round trip.
func (s *Store) AppendHistory(ctx context.Context, intentID string, retention time.Duration, events ...Event) error {
	if len(events) == 0 {
		return nil
	}
	if retention <= 0 {
		retention = HistoryRetentionDefault
	}
	vals := make([]any, len(events))
	for i, e := range events {
		b, _ := json.Marshal(e)
		vals[i] = b
	}
	k := HistoryKey(intentID)
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.RPush(ctx, k, vals...)
		p.LTrim(ctx, k, -HistoryMax, -1)
		p.PExpire(ctx, k, retention)
		return nil
	})
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	return nil
}

// History returns an intent's history, oldest first (empty when none).
func (s *Store) History(ctx context.Context, intentID string) ([]Event, error) {
	vals, err := s.rdb.LRange(ctx, HistoryKey(intentID), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	out := make([]Event, 0, len(vals))
	for _, v := range vals {
		var e Event
		if json.Unmarshal([]byte(v), &e) == nil {
			out = append(out, e)
		}
	}
	return out, nil
}

// Record is an intent's record as operators see it (publisher intent show),
// with every Redis field named.
type Record struct {
	State       string
	Attempt     int
	Owner       string
	LeaseEnd    time.Time // zero when no lease
	UnknownFrom time.Time // when the current attempt became unknown
	Result      []byte
	Letter      *Letter
	Reverse     *Reversal
	// CallbackDelivered is the CyberSource transaction whose TTC callback
	// was delivered ("" none).
	CallbackDelivered string
	Ledger            *LedgerView
	TTL               time.Duration
}

// LedgerView is an authorized payment's settlement ledger, in
// ten-thousandths of the currency unit.
type LedgerView struct {
	PaymentID, Currency, Merchant            string
	Authorized, Captured, Reversed, Refunded int64
	Voided                                   bool
	Reservations                             map[string]int64 // operation intentId → amount
}

// Inspect reads an intent's record (nil when none).
func (s *Store) Inspect(ctx context.Context, intentID string) (*Record, error) {
	k := Key(intentID)
	var fields *redis.MapStringStringCmd
	var ttl *redis.DurationCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		fields = p.HGetAll(ctx, k)
		ttl = p.PTTL(ctx, k)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("inspect: %w", err)
	}
	return recordOf(fields.Val(), ttl.Val()), nil
}

func recordOf(f map[string]string, ttl time.Duration) *Record {
	if len(f) == 0 {
		return nil
	}
	r := &Record{State: f["s"], Attempt: int(atoi(f["a"])), Owner: f["o"], Result: []byte(f["r"]),
		Reverse: decodeReversal(f["rv"]), CallbackDelivered: f["cb"], TTL: ttl}
	if l := atoi(f["l"]); l > 0 && (r.State == StateCharging || r.State == StateResolving) {
		r.LeaseEnd = time.UnixMilli(l)
	}
	if u := atoi(f["u"]); u > 0 {
		r.UnknownFrom = time.UnixMilli(u)
	}
	if f["dc"] != "" {
		r.Letter = &Letter{Class: f["dc"], Reason: f["dr"]}
	}
	if f["p_cur"] != "" {
		lv := &LedgerView{PaymentID: f["p_id"], Currency: f["p_cur"], Merchant: f["p_m"], Authorized: atoi(f["p_auth"]),
			Captured: atoi(f["p_cap"]), Reversed: atoi(f["p_rev"]), Refunded: atoi(f["p_ref"]), Voided: f["p_void"] == "1",
			Reservations: map[string]int64{}}
		for name, v := range f {
			if op, ok := strings.CutPrefix(name, "op:"); ok {
				amt, _, _ := strings.Cut(v, "|")
				lv.Reservations[op] = atoi(amt)
			}
		}
		r.Ledger = lv
	}
	return r
}

// Waiting is an intent whose record is in one of the states ScanStates
// was asked for.
type Waiting struct {
	IntentID    string
	State       string
	Attempt     int
	UnknownFrom time.Time
	LeaseEnd    time.Time
}

// ScanStates walks the intent records (SCAN, at most limit keys; cut says
// it stopped there) and returns those in one of the states. It costs one
// pass over the keyspace: an operator's command, not a worker's.
func (s *Store) ScanStates(ctx context.Context, limit int, states ...string) (out []Waiting, cut bool, err error) {
	want := map[string]bool{}
	for _, st := range states {
		want[st] = true
	}
	var cursor uint64
	seen := 0
	for {
		keys, next, err := s.rdb.Scan(ctx, cursor, "payflow:intent:{*}", 1000).Result()
		if err != nil {
			return out, false, fmt.Errorf("scan: %w", err)
		}
		cmds := make([]*redis.SliceCmd, len(keys))
		_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, k := range keys {
				cmds[i] = p.HMGet(ctx, k, "s", "a", "u", "l")
			}
			return nil
		})
		if err != nil {
			return out, false, fmt.Errorf("scan: %w", err)
		}
		for i, c := range cmds {
			v := c.Val()
			st, _ := v[0].(string)
			if !want[st] {
				continue
			}
			str := func(x any) string { s, _ := x.(string); return s }
			id := strings.TrimSuffix(strings.TrimPrefix(keys[i], "payflow:intent:{"), "}")
			w := Waiting{IntentID: id, State: st, Attempt: int(atoi(str(v[1])))}
			if u := atoi(str(v[2])); u > 0 {
				w.UnknownFrom = time.UnixMilli(u)
			}
			if l := atoi(str(v[3])); l > 0 {
				w.LeaseEnd = time.UnixMilli(l)
			}
			out = append(out, w)
		}
		seen += len(keys)
		cursor = next
		if cursor == 0 {
			return out, false, nil
		}
		if seen >= limit {
			return out, true, nil
		}
	}
}
