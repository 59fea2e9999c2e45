package payment

import (
	"strconv"
	"time"

	"github.com/ttcpay/payflow/internal/deadletter"
	"github.com/ttcpay/payflow/internal/idempotency"
	"github.com/ttcpay/payflow/internal/intent"
)

// Action is what the consumer does with the message.
type Action int

// Actions.
const (
	// Ack: publish Result (when set; its callback job too when it is
	// authorized), then ack.
	Ack Action = iota + 1
	// Retry: redeliver after Delay (NakWithDelay).
	Retry
	// DeadLetter: write Letter and Result, then ack.
	DeadLetter
	// Wait: redeliver after Delay, when an unknown outcome may be resolved.
	Wait
)

func (a Action) String() string {
	switch a {
	case Ack:
		return "ack"
	case Retry:
		return "retry"
	case DeadLetter:
		return "dead-letter"
	case Wait:
		return "wait"
	}
	return "none"
}

// Letter is a dead letter a decision writes.
type Letter struct {
	Class  deadletter.Class
	Reason string
	// DedupID makes a re-sent letter a duplicate.
	DedupID string
	// Attempt is the payment attempt whose outcome it reports (0: none).
	Attempt int
	// NoReplay, when set, says why the letter must not be replayed.
	NoReplay string
}

// Decision is the outcome of processing one delivery: what to publish and
// whether to ack or redeliver. The consumer applies it; if publishing fails
// it redelivers instead (everything it publishes is deduplicated).
type Decision struct {
	Action Action
	// Delay before the redelivery (Retry, Wait).
	Delay time.Duration
	// Reason: why a Retry or Wait waits (for the log).
	Reason string
	// Merchant whose subjects the result and dead letter go to.
	Merchant string
	// IntentID named on the dead letter and in logs ("" when unreadable).
	IntentID string
	// Letter is written before anything else: with DeadLetter, the intent's
	// dead letter; with Retry, a report a person must see (a charge that
	// landed after its pod lost the lease and could not be reversed).
	Letter *Letter
	// Result to publish on payments.results.<Merchant> (Ack, DeadLetter);
	// nil: none.
	Result *intent.Result
	// ResultMsgID is the result's Nats-Msg-Id.
	ResultMsgID string
	// Reemit: the result was recorded by an earlier delivery; its callback
	// job is marked re-emitted, so the callbacks consumer checks whether TTC
	// already has it.
	Reemit bool
	// HistoryID is the intent whose history Events extend ("" for a
	// delivery that claimed nothing: invalid, conflicting, unroutable).
	HistoryID string
	// Events: what this delivery did (each CyberSource call and its
	// answer), for the intent's history; the consumer adds the decision.
	Events []idempotency.Event
}

// Acks reports whether the decision acks the message.
func (d Decision) Acks() bool { return d.Action == Ack || d.Action == DeadLetter }

// ack publishes a recorded result and acks.
func ack(r *intent.Result, reemit bool) Decision {
	return Decision{Action: Ack, Result: r, ResultMsgID: ResultMsgID(r), Merchant: r.MerchantID, IntentID: r.IntentID, Reemit: reemit}
}

// ResultMsgID is the Nats-Msg-Id of a recorded result: the intent, the
// attempt that ended it and its status. Re-emits of the same outcome are
// duplicates; the outcome of a later attempt (after an earlier one was
// cancelled) is not.
func ResultMsgID(r *intent.Result) string {
	return r.IntentID + ":" + strconv.Itoa(r.Attempts) + ":" + r.Status
}

// ackOnly acks without publishing anything.
func ackOnly() Decision { return Decision{Action: Ack} }

// retry redelivers after delay.
func retry(delay time.Duration, reason string) Decision {
	return Decision{Action: Retry, Delay: delay, Reason: reason}
}

// wait redelivers after delay, when an unknown outcome may be resolved.
func wait(delay time.Duration, reason string) Decision {
	return Decision{Action: Wait, Delay: delay, Reason: reason}
}
