package worker_test

// Regression tests for the confirmed breaks 1–10 of issue 12 ("Money
// safety"), end to end: embedded JetStream, a real redis-server, the sandbox
// and workers started through their real wiring. Each is written against
// the target behaviour of the fix and fails on the code before it. Break 11
// (sandbox fidelity) is covered by internal/sandbox's own tests.
//
// Run one with: go test -race -count=1 -run 'TestMoneySafety04' ./internal/worker/

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"

	"github.com/ttcpay/payflow/internal/deadletter"
	"github.com/ttcpay/payflow/internal/idempotency"
	"github.com/ttcpay/payflow/internal/intent"
	"github.com/ttcpay/payflow/internal/sandbox"
	"github.com/ttcpay/payflow/internal/streams"
	"github.com/ttcpay/payflow/internal/systemtest"
	"github.com/ttcpay/payflow/internal/worker"
)

// The two merchants of integrator costco. merchantA is systemtest.NewIntent's.
const (
	merchantA = "ttc_ttusas_m"
	merchantB = "ttc_ttcanada_m"
)

// Generous waits: these run on a loaded two-core machine.
const (
	msResultWait = 90 * time.Second
	msDrainWait  = 90 * time.Second
)

// classConflict is the dead-letter class the fix of break 1 adds.
const classConflict = "conflict"

// statusConflict is the result status of a conflicting intent.
const statusConflict = "CONFLICT"

// msWait polls cond every 100 ms until it holds (true) or timeout passes
// (false), so that a test can report what it saw instead of only a timeout.
func msWait(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// msDrained waits until every intent message was acked (the intents stream
// is a work queue: an acked message is removed).
func msDrained(e *systemtest.Env) {
	e.T().Helper()
	e.WaitFor("every intent message acked", msDrainWait, func() bool {
		s, err := e.JS.Stream(context.Background(), streams.StreamIntents)
		if err != nil {
			return false
		}
		info, err := s.Info(context.Background())
		return err == nil && info.State.Msgs == 0
	})
}

// msResult waits for the latest result of an intent (any status).
func msResult(e *systemtest.Env, id string) intent.Result {
	e.T().Helper()
	var r intent.Result
	e.WaitFor("a result for "+id, msResultWait, func() bool {
		var ok bool
		r, ok = e.Results()[id]
		return ok
	})
	return r
}

// msResultsFor lists every result published for an intent, on any subject.
func msResultsFor(e *systemtest.Env, id string) []systemtest.ResultMsg {
	var out []systemtest.ResultMsg
	for _, m := range e.AllResults() {
		if m.Result.IntentID == id {
			out = append(out, m)
		}
	}
	return out
}

func msStatuses(rs []systemtest.ResultMsg) []string {
	out := make([]string, len(rs))
	for i, m := range rs {
		out[i] = m.Result.Status + "@" + streams.MerchantOf(m.Subject)
	}
	return out
}

// msLetter is a dead letter read back, with the subject it is stored on.
type msLetter struct {
	deadletter.Letter
	Subject string
}

// msLetters reads every dead letter back.
func msLetters(e *systemtest.Env) []msLetter {
	var out []msLetter
	for _, m := range e.DeadLetters() {
		var seq uint64
		if md, err := m.Metadata(); err == nil {
			seq = md.Sequence.Stream
		}
		out = append(out, msLetter{deadletter.FromHeaders(seq, m.Headers(), m.Data()), m.Subject()})
	}
	return out
}

// msLettersFor are the dead letters naming an intent.
func msLettersFor(e *systemtest.Env, id string) []msLetter {
	var out []msLetter
	for _, l := range msLetters(e) {
		if l.IntentID == id {
			out = append(out, l)
		}
	}
	return out
}

func msDescribe(ls []msLetter) string {
	if len(ls) == 0 {
		return "none"
	}
	parts := make([]string, len(ls))
	for i, l := range ls {
		parts[i] = fmt.Sprintf("{%s %s on %s: %q}", l.IntentID, l.Class, l.Subject, l.Reason)
	}
	return strings.Join(parts, " ")
}

// msCharges are the sandbox charges with a reference.
func msCharges(l sandbox.Ledger, ref string) []sandbox.Charge {
	var out []sandbox.Charge
	for _, c := range l.Charges {
		if c.Reference == ref {
			out = append(out, c)
		}
	}
	return out
}

func msDescribeCharges(cs []sandbox.Charge) string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = fmt.Sprintf("{%s txn %s %s %s live=%v reversed=%v voided=%v answered=%s}",
			c.ID, c.TransactionID, c.Status, c.Amount, c.Live, c.Reversed, c.Voided, c.Answered)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// msLoseRecordOnce is an AfterRecord hook for one intent: the first time its
// outcome is recorded, the record is deleted and the message abandoned, as a
// Redis failover that loses the write followed by a pod crash would do.
func msLoseRecordOnce(t *testing.T, e *systemtest.Env, id string) (hook func(string) bool, fired *atomic.Bool) {
	rdb := redis.NewClient(&redis.Options{Addr: e.Redis.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	fired = &atomic.Bool{}
	var once sync.Once
	return func(got string) bool {
		if got != id {
			return false
		}
		hit := false
		once.Do(func() {
			if err := rdb.Del(context.Background(), idempotency.Key(id)).Err(); err != nil {
				t.Errorf("delete the record of %s: %v", id, err)
			}
			hit = true
			fired.Store(true)
		})
		return hit
	}, fired
}

// msReplayAll replays every dead letter as an operator would, then waits
// until the replayed intents are settled.
func msReplayAll(t *testing.T, e *systemtest.Env) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sum, err := deadletter.Replay(ctx, e.JS, deadletter.Filter{}, false, nil)
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	t.Logf("operator replay: %d dead letters matched, %d replayed", sum.Matched, sum.Replayed)
	msDrained(e)
	time.Sleep(2 * time.Second) // callbacks and late publishes
}

// TestMoneySafety01ConflictingIntentID: merchant B publishes an intent whose
// intentId merchant A already used, outside the duplicate window. B's intent
// is a conflict: dead-lettered `conflict` on B's dead-letter subject with a
// CONFLICT result on B's results subject, never charged; A's result is not
// re-emitted, on B's subject or anywhere.
func TestMoneySafety01ConflictingIntentID(t *testing.T) {
	e := systemtest.New(t, sandbox.Config{}, false)
	e.Start(e.Vars(map[string]string{"DUPLICATE_WINDOW": "1s"}), worker.TestConfig{})
	const x = "order-1001"
	e.Publish(systemtest.NewIntent(x, "4111111111111111", "10.00", true))
	if r := msResult(e, x); r.Status != "AUTHORIZED" {
		t.Fatalf("A's intent: %+v", r)
	}
	msDrained(e)
	time.Sleep(1500 * time.Millisecond) // outside the duplicate window

	b := systemtest.NewIntent(x, "4242424242424242", "25.00", true)
	b.MerchantID, b.Reference, b.BookingID = merchantB, "REF-B-"+x, "B-B-"+x
	e.Publish(b)
	msDrained(e)
	time.Sleep(time.Second)

	letters := msLettersFor(e, x)
	conflict := 0
	for _, l := range letters {
		if l.Class == classConflict && l.Subject == streams.DLQIntentsPrefix+merchantB {
			conflict++
		}
	}
	if conflict != 1 {
		t.Errorf("want one %q dead letter for %s on %s%s; dead letters: %s", classConflict, x, streams.DLQIntentsPrefix, merchantB, msDescribe(letters))
	}
	var onA, onB []systemtest.ResultMsg
	for _, m := range msResultsFor(e, x) {
		switch m.Subject {
		case streams.Results(merchantA):
			onA = append(onA, m)
		case streams.Results(merchantB):
			onB = append(onB, m)
		}
	}
	if len(onB) != 1 || onB[0].Result.Status != statusConflict {
		t.Errorf("results for %s on %s: %v; want exactly one %s", x, streams.Results(merchantB), msStatuses(onB), statusConflict)
	}
	if len(onA) != 1 {
		t.Errorf("results for %s on %s: %v; want only A's own one (B's intent must not re-emit it)", x, streams.Results(merchantA), msStatuses(onA))
	}
	l := e.SB.Ledger()
	for _, c := range l.Charges {
		if c.MerchantID == merchantB {
			t.Errorf("B's conflicting intent was charged: %s", msDescribeCharges([]sandbox.Charge{c}))
		}
	}
	if n := len(l.Charges); n != 1 {
		t.Errorf("%d charges, want only A's", n)
	}
}

// TestMoneySafety02MalformedJSON: an intent with a duplicated "amount", an
// "AMOUNT" case variant, or a key spelt with a Kelvin sign (U+212A) is
// dead-lettered `invalid` with an INVALID result and never charged.
func TestMoneySafety02MalformedJSON(t *testing.T) {
	e := systemtest.New(t, sandbox.Config{}, false)
	e.Start(e.Vars(nil), worker.TestConfig{})
	withMember := func(id, member string) []byte {
		b, err := json.Marshal(systemtest.NewIntent(id, "4111111111111111", "10.00", true))
		if err != nil {
			t.Fatal(err)
		}
		// Append a member to the object: `{...,"amount":"1999.00"}`.
		return append(append(b[:len(b)-1:len(b)-1], ","+member...), '}')
	}
	bad := map[string][]byte{
		"ms02-duplicate": withMember("ms02-duplicate", `"amount":"1999.00"`),
		"ms02-case":      withMember("ms02-case", `"AMOUNT":"1998.00"`),
		"ms02-kelvin":    withMember("ms02-kelvin", "\"boo\u212AingId\":\"B-OVERWRITTEN\""),
	}
	for id, data := range bad {
		e.PublishRaw(id, merchantA, data)
	}
	e.Publish(systemtest.NewIntent("ms02-ok", "4111111111111111", "10.00", true))
	msDrained(e)
	time.Sleep(time.Second)

	res := e.Results()
	l := e.SB.Ledger()
	for id := range bad {
		invalid := false
		for _, d := range msLettersFor(e, id) {
			invalid = invalid || d.Class == deadletter.ClassInvalid
		}
		cs := msCharges(l, "REF-"+id)
		if len(cs) > 0 || !invalid || res[id].Status != intent.StatusInvalid {
			amounts := make([]string, len(cs))
			for i, c := range cs {
				amounts[i] = c.Amount
			}
			t.Errorf("%s: charged %d time(s) at %v, result %q, invalid dead letter %v; want dead-lettered invalid with an INVALID result, never charged",
				id, len(cs), amounts, res[id].Status, invalid)
		}
	}
	if n := len(msCharges(l, "REF-ms02-ok")); n != 1 {
		t.Errorf("the valid control intent was charged %d times", n)
	}
}

// TestMoneySafety03MsgIDMismatch: the Nats-Msg-Id must be the body's
// intentId. A valid intent J published with Nats-Msg-Id "victim-1" is
// dead-lettered `invalid` (the reason names the mismatch) with an INVALID
// result for J and no result for "victim-1", never charged; an intent with
// no Nats-Msg-Id is invalid too; a replay of its dead letter (Nats-Msg-Id
// <intentId>:replay:<seq>, Payflow-Replayed-From: <seq>) is accepted.
func TestMoneySafety03MsgIDMismatch(t *testing.T) {
	e := systemtest.New(t, sandbox.Config{}, false)
	dlq, _ := dlqKeys(t) // the dead letter's card is sealed, not removed, so that its replay is charged
	e.Start(e.Vars(dlq), worker.TestConfig{})
	const j, victim, noID = "ms03-junk", "victim-1", "ms03-no-msgid"
	bj, _ := json.Marshal(systemtest.NewIntent(j, "4111111111111111", "11.00", true))
	e.PublishRaw(victim, merchantA, bj)
	bn, _ := json.Marshal(systemtest.NewIntent(noID, "4111111111111111", "12.00", true))
	e.PublishRaw("", merchantA, bn)
	msDrained(e)
	time.Sleep(time.Second)

	l := e.SB.Ledger()
	res := e.Results()
	var mismatch []msLetter
	for _, d := range msLetters(e) {
		if d.IntentID == j || d.IntentID == victim {
			mismatch = append(mismatch, d)
		}
	}
	if len(mismatch) != 1 || mismatch[0].Class != deadletter.ClassInvalid || !strings.Contains(strings.ToLower(mismatch[0].Reason), "nats-msg-id") {
		t.Errorf("body %s under Nats-Msg-Id %s: dead letters %s; want one `invalid` whose reason names the Nats-Msg-Id mismatch", j, victim, msDescribe(mismatch))
	}
	if n := len(msCharges(l, "REF-"+j)); n != 0 {
		t.Errorf("body %s under Nats-Msg-Id %s was charged %d time(s)", j, victim, n)
	}
	if r, ok := res[j]; !ok || r.Status != intent.StatusInvalid {
		t.Errorf("result for %s: %q (present %v); want INVALID", j, r.Status, ok)
	}
	if rs := msResultsFor(e, victim); len(rs) != 0 {
		t.Errorf("results stream shows %s: %v; the junk must not take the victim's id", victim, msStatuses(rs))
	}

	noIDLetters := msLettersFor(e, noID)
	if n := len(msCharges(l, "REF-"+noID)); n != 0 || len(noIDLetters) != 1 || noIDLetters[0].Class != deadletter.ClassInvalid ||
		res[noID].Status != intent.StatusInvalid {
		t.Fatalf("intent without Nats-Msg-Id: charged %d time(s), result %q, dead letters %s; want dead-lettered invalid, never charged",
			n, res[noID].Status, msDescribe(noIDLetters))
	}
	// The operator replays that dead letter (as deadletter.Replay sends it):
	// accepted and charged.
	dl := noIDLetters[0]
	m := nats.NewMsg(streams.Intents(merchantA))
	m.Data = dl.Data
	m.Header.Set(nats.MsgIdHdr, deadletter.ReplayMsgID(noID, dl.Seq))
	m.Header.Set(deadletter.HeaderReplayedFrom, fmt.Sprint(dl.Seq))
	if _, err := e.JS.PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	e.WaitFor("the replay charged", msResultWait, func() bool { return e.Results()[noID].Status == "AUTHORIZED" })
	if n := len(msCharges(e.SB.Ledger(), "REF-"+noID)); n != 1 {
		t.Errorf("the replay charged %s %d times", noID, n)
	}
}

// TestMoneySafety04DuplicateRequest: a 400 DUPLICATE_REQUEST means an earlier
// request with the transactionId may exist: an unknown outcome, resolved by
// a timeout reversal or void and a new attempt, never "not charged".
func TestMoneySafety04DuplicateRequest(t *testing.T) {
	t.Run("Authorization", func(t *testing.T) {
		e := systemtest.New(t, sandbox.Config{}, false)
		const id = "ms04-auth"
		hook, fired := msLoseRecordOnce(t, e, id)
		e.Start(e.Vars(nil), worker.TestConfig{AfterRecord: hook})
		e.Publish(systemtest.NewIntent(id, "4111111111111111", "40.00", false))
		r := msResult(e, id)
		msDrained(e)
		if !fired.Load() {
			t.Fatal("the record-losing hook never fired")
		}
		l := e.SB.Ledger()
		cs := msCharges(l, "REF-"+id)
		t.Logf("charges %s, duplicate requests %+v", msDescribeCharges(cs), l.DuplicateRequests)
		if r.Status != "AUTHORIZED" {
			t.Errorf("result %s (%s); want AUTHORIZED after resolving the DUPLICATE_REQUEST as an unknown outcome", r.Status, r.Reason)
		}
		if ls := msLettersFor(e, id); len(ls) != 0 {
			t.Errorf("dead letters %s; want none", msDescribe(ls))
		}
		if n := l.LiveCharges()["REF-"+id]; n != 1 {
			t.Errorf("%d live charges, want 1: %s", n, msDescribeCharges(cs))
		}
		if r.Authorized() {
			if !msWait(30*time.Second, func() bool { return e.SB.Ledger().CallbackCount(r.CyberSourceID) == 1 }) {
				t.Errorf("callbacks for %s: %d, want 1", r.CyberSourceID, e.SB.Ledger().CallbackCount(r.CyberSourceID))
			}
		}
		before := len(cs)
		msReplayAll(t, e)
		l = e.SB.Ledger()
		if n, live := len(msCharges(l, "REF-"+id)), l.LiveCharges()["REF-"+id]; n != before || live != 1 {
			t.Errorf("after the operator's replay: %d charges (before %d), %d live: %s", n, before, live, msDescribeCharges(msCharges(l, "REF-"+id)))
		}
		for _, c := range msCharges(l, "REF-"+id) {
			if !c.Live && l.CallbackCount(c.ID) != 0 {
				t.Errorf("the cancelled charge %s got a TTC callback", c.ID)
			}
		}
	})
	t.Run("Refund", func(t *testing.T) {
		e := systemtest.New(t, sandbox.Config{}, false)
		const id = "ms04-refund"
		hook, fired := msLoseRecordOnce(t, e, id)
		e.Start(e.Vars(nil), worker.TestConfig{AfterRecord: hook})
		e.Publish(systemtest.NewIntent("ms04-sale", "4111111111111111", "50.00", true))
		sale := msResult(e, "ms04-sale")
		if sale.Status != "AUTHORIZED" {
			t.Fatalf("sale %+v", sale)
		}
		e.Publish(op(id, intent.OpRefund, "ms04-sale", "20.00"))
		r := msResult(e, id)
		msDrained(e)
		if !fired.Load() {
			t.Fatal("the record-losing hook never fired")
		}
		if r.Status != intent.StatusRefunded {
			t.Errorf("refund result %s (%s); want REFUNDED", r.Status, r.Reason)
		}
		if ls := msLettersFor(e, id); len(ls) != 0 {
			t.Errorf("dead letters %s; want none", msDescribe(ls))
		}
		msReplayAll(t, e)
		l := e.SB.Ledger()
		if c := chargeOf(l, sale.CyberSourceID); c.RefundedAmount != "20.00" {
			t.Errorf("refunded %q (refunds %v), want exactly 20.00", c.RefundedAmount, c.Refunds)
		}
		voided := false
		for _, tr := range l.TimeoutReversals {
			voided = voided || tr.Kind == "void" && tr.Found && tr.TransactionID == intent.TransactionID(id, 1)
		}
		if !voided {
			t.Errorf("no timeout void found the lost refund %s: %+v", intent.TransactionID(id, 1), l.TimeoutReversals)
		}
	})
}

// TestMoneySafety05SettledTimeoutVoid: a sale whose answer is lost and whose
// timeout void answers "settled" (either reason) exists: it is dead-lettered
// `unknown-outcome` naming the attempt's transactionId, with an
// UNKNOWN_OUTCOME result, and never charged again.
func TestMoneySafety05SettledTimeoutVoid(t *testing.T) {
	for _, reason := range []string{"NOT_VOIDABLE", "TRANSACTION_ALREADY_REVERSED_OR_SETTLED"} {
		t.Run(reason, func(t *testing.T) {
			settled := sandbox.Faults{SettleAfter: sandbox.Duration(500 * time.Millisecond), SettledVoidReason: reason}
			cutting := settled
			cutting.CutAfterChargeRate = 1
			e := systemtest.New(t, sandbox.Config{Faults: cutting}, false)
			e.Start(e.Vars(nil), worker.TestConfig{})
			id := "ms05-" + strings.ToLower(strings.ReplaceAll(reason, "_", "-"))
			e.Publish(systemtest.NewIntent(id, "4111111111111111", "35.00", true))
			e.WaitFor("the sale reaches CyberSource", 30*time.Second, func() bool { return len(msCharges(e.SB.Ledger(), "REF-"+id)) == 1 })
			if err := e.SB.SetFaults(settled); err != nil {
				t.Fatal(err)
			}
			r := msResult(e, id)
			msDrained(e)
			time.Sleep(time.Second)

			txn := intent.TransactionID(id, 1)
			ls := msLettersFor(e, id)
			if len(ls) != 1 || ls[0].Class != deadletter.ClassUnknownOutcome || !strings.Contains(ls[0].Reason, txn) {
				t.Errorf("dead letters %s; want one unknown-outcome naming %s", msDescribe(ls), txn)
			}
			if r.Status != intent.StatusUnknownOutcome {
				t.Errorf("result %s (%s), want UNKNOWN_OUTCOME", r.Status, r.Reason)
			}
			if cs := msCharges(e.SB.Ledger(), "REF-"+id); len(cs) != 1 {
				t.Errorf("%d charges, want the one sale only: %s", len(cs), msDescribeCharges(cs))
			}
		})
	}
}

// TestMoneySafety06StaleLease: pod A freezes right before sending attempt 1
// and loses its lease; pod B resolves attempt 1 (its timeout reversal finds
// nothing and spends the transactionId) and charges attempt 2. When A
// resumes, its attempt 1 is refused DUPLICATE_REQUEST: that must not
// publish REJECTED or dead-letter a charged intent.
func TestMoneySafety06StaleLease(t *testing.T) {
	e := systemtest.New(t, sandbox.Config{}, false)
	v := e.Vars(map[string]string{"DUPLICATE_WINDOW": "1s"})
	const id = "ms06-stale"
	entered, resumed := make(chan struct{}), make(chan struct{})
	var once sync.Once
	freeze := func(got string, attempt int) {
		if got != id || attempt != 1 {
			return
		}
		first := false
		once.Do(func() { first = true })
		if !first {
			return
		}
		close(entered)
		defer close(resumed)
		// Frozen for at least 20 s (lease 15 s), and until the other pod
		// has charged attempt 2 (at most 60 s), so that the order is sure.
		start := time.Now()
		for {
			_, charged2 := e.SB.Ledger().Charge(merchantA, intent.TransactionID(id, 2))
			if el := time.Since(start); el >= 20*time.Second && (charged2 || el >= 60*time.Second) {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	e.Start(v, worker.TestConfig{BeforeCharge: freeze}) // A
	in := systemtest.NewIntent(id, "4111111111111111", "22.00", false)
	published := time.Now()
	e.Publish(in)
	select {
	case <-entered:
	case <-time.After(30 * time.Second):
		t.Fatal("pod A never reached the charge")
	}
	e.Start(v, worker.TestConfig{}) // B
	time.Sleep(time.Until(published.Add(1500 * time.Millisecond)))
	e.Publish(in) // outside the duplicate window: a second message, for B
	select {
	case <-resumed:
	case <-time.After(120 * time.Second):
		t.Fatal("pod A never resumed")
	}
	msDrained(e)
	time.Sleep(2 * time.Second)

	l := e.SB.Ledger()
	cs := msCharges(l, "REF-"+id)
	t.Logf("charges %s, duplicate requests %+v", msDescribeCharges(cs), l.DuplicateRequests)
	rs := msResultsFor(e, id)
	authorized := 0
	for _, m := range rs {
		if m.Result.Status == "AUTHORIZED" {
			authorized++
		}
	}
	if authorized == 0 || authorized != len(rs) {
		t.Errorf("results for %s: %v; want only AUTHORIZED", id, msStatuses(rs))
	}
	if ls := msLettersFor(e, id); len(ls) != 0 {
		t.Errorf("dead letters for the charged intent: %s", msDescribe(ls))
	}
	if n := l.LiveCharges()["REF-"+id]; n != 1 {
		t.Errorf("%d live charges, want 1: %s", n, msDescribeCharges(cs))
	}
}

// TestMoneySafety07LostPartialReversal: a partial reversal whose answer is
// lost is not simply sent again: exactly 30.00 of 100.00 is reversed, the
// reversal ends REVERSED or dead-lettered `unknown-outcome`, and the 70.00
// left can be captured.
func TestMoneySafety07LostPartialReversal(t *testing.T) {
	e := systemtest.New(t, sandbox.Config{}, false)
	e.Start(e.Vars(nil), worker.TestConfig{})
	e.Publish(systemtest.NewIntent("ms07-auth", "4111111111111111", "100.00", false))
	auth := msResult(e, "ms07-auth")
	if auth.Status != "AUTHORIZED" {
		t.Fatalf("authorization %+v", auth)
	}
	if err := e.SB.SetFaults(sandbox.Faults{CutAfterFollowUpRate: 1}); err != nil {
		t.Fatal(err)
	}
	e.Publish(op("ms07-rev", intent.OpReverse, "ms07-auth", "30.00"))
	e.WaitFor("the reversal reaches CyberSource", 30*time.Second, func() bool {
		return chargeOf(e.SB.Ledger(), auth.CyberSourceID).ReversedAmount != ""
	})
	if err := e.SB.SetFaults(sandbox.Faults{}); err != nil {
		t.Fatal(err)
	}
	rev := msResult(e, "ms07-rev")
	msDrained(e)
	switch rev.Status {
	case intent.StatusReversed:
	case intent.StatusUnknownOutcome:
		ls := msLettersFor(e, "ms07-rev")
		if len(ls) != 1 || ls[0].Class != deadletter.ClassUnknownOutcome {
			t.Errorf("reversal UNKNOWN_OUTCOME with dead letters %s; want one unknown-outcome", msDescribe(ls))
		}
	default:
		t.Errorf("reversal result %s (%s); want REVERSED or UNKNOWN_OUTCOME", rev.Status, rev.Reason)
	}
	if c := chargeOf(e.SB.Ledger(), auth.CyberSourceID); c.ReversedAmount != "30.00" {
		t.Errorf("reversed %q at CyberSource for one reversal of 30.00", c.ReversedAmount)
	}

	e.Publish(op("ms07-cap", intent.OpCapture, "ms07-auth", "70.00"))
	if r := msResult(e, "ms07-cap"); r.Status != intent.StatusCaptured {
		t.Errorf("capture of the 70.00 left: %s (%s), want CAPTURED", r.Status, r.Reason)
	}
	if c := chargeOf(e.SB.Ledger(), auth.CyberSourceID); c.CapturedAmount != "70.00" {
		t.Errorf("captured %q, want 70.00", c.CapturedAmount)
	}
}

// TestMoneySafety08HeldAuthorizationReversal: an AUTHORIZED_RISK_DECLINED
// payment holds an authorization; while follow-ups answer 502 its reversal
// fails; once they work again it must be reversed. Its result is published
// and TTC is not called back.
func TestMoneySafety08HeldAuthorizationReversal(t *testing.T) {
	failing := sandbox.Faults{Errors: map[string]sandbox.ErrorFault{sandbox.EndpointFollowUps: {Rate: 1, Status: 502}}}
	e := systemtest.New(t, sandbox.Config{Faults: failing}, false)
	e.Start(e.Vars(nil), worker.TestConfig{})
	const id = "ms08-risk"
	e.Publish(systemtest.NewIntent(id, "4111111111111111", "3002.00", false)) // sandbox: AUTHORIZED_RISK_DECLINED
	var charged time.Time
	e.WaitFor("the payment reaches CyberSource", 30*time.Second, func() bool {
		charged = time.Now()
		return len(msCharges(e.SB.Ledger(), "REF-"+id)) == 1
	})
	time.Sleep(time.Until(charged.Add(5 * time.Second)))
	if err := e.SB.SetFaults(sandbox.Faults{}); err != nil {
		t.Fatal(err)
	}
	reversed := msWait(90*time.Second, func() bool {
		cs := msCharges(e.SB.Ledger(), "REF-"+id)
		return len(cs) == 1 && !cs[0].Live
	})
	r := msResult(e, id)
	msDrained(e)
	time.Sleep(time.Second)
	cs := msCharges(e.SB.Ledger(), "REF-"+id)
	if !reversed || len(cs) != 1 || !cs[0].Reversed {
		t.Errorf("the authorization behind the refusal is still live 90 s after follow-ups recovered: %s", msDescribeCharges(cs))
	}
	if r.Status != "AUTHORIZED_RISK_DECLINED" {
		t.Errorf("result %s, want AUTHORIZED_RISK_DECLINED", r.Status)
	}
	for _, c := range cs {
		if n := e.SB.Ledger().CallbackCount(c.ID); n != 0 {
			t.Errorf("%d TTC callbacks for a refused payment", n)
		}
	}
}

// TestMoneySafety09DeadLetterPublishFails: the unknown-outcome dead letter of
// a sale whose timeout void answers NOT_VOIDABLE cannot be written while the
// dead-letter stream is gone; once it is back, the dead letter appears,
// with its UNKNOWN_OUTCOME result.
func TestMoneySafety09DeadLetterPublishFails(t *testing.T) {
	settled := sandbox.Faults{SettleAfter: sandbox.Duration(500 * time.Millisecond)}
	cutting := settled
	cutting.CutAfterChargeRate = 1
	e := systemtest.New(t, sandbox.Config{Faults: cutting}, false)
	e.Start(e.Vars(nil), worker.TestConfig{})
	ctx := context.Background()
	if err := e.JS.DeleteStream(ctx, streams.StreamDLQ); err != nil {
		t.Fatal(err)
	}
	const id = "ms09-lost-letter"
	published := time.Now()
	e.Publish(systemtest.NewIntent(id, "4111111111111111", "60.00", true))
	e.WaitFor("the sale reaches CyberSource", 30*time.Second, func() bool { return len(msCharges(e.SB.Ledger(), "REF-"+id)) == 1 })
	if err := e.SB.SetFaults(settled); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(published.Add(8 * time.Second)))
	for _, sc := range (streams.Config{}).Configs() {
		if sc.Name == streams.StreamDLQ {
			if _, err := e.JS.CreateStream(ctx, sc); err != nil {
				t.Fatal(err)
			}
		}
	}
	txn := intent.TransactionID(id, 1)
	found := msWait(60*time.Second, func() bool {
		for _, l := range msLettersFor(e, id) {
			if l.Class == deadletter.ClassUnknownOutcome {
				return true
			}
		}
		return false
	})
	msDrained(e)
	time.Sleep(time.Second)
	ls := msLettersFor(e, id)
	r := e.Results()[id]
	if !found || len(ls) != 1 || !strings.Contains(ls[0].Reason, txn) {
		t.Errorf("60 s after the dead-letter stream came back: dead letters %s, result %q; want one unknown-outcome naming %s",
			msDescribe(ls), r.Status, txn)
	}
	if r.Status != intent.StatusUnknownOutcome {
		t.Errorf("result %q, want UNKNOWN_OUTCOME", r.Status)
	}
	if cs := msCharges(e.SB.Ledger(), "REF-"+id); len(cs) != 1 {
		t.Errorf("%d charges, want 1: %s", len(cs), msDescribeCharges(cs))
	}
}

// TestMoneySafety10CrossTenant: state is scoped by merchant. (a) B's MIT
// naming A's card-on-file root does not move A's series: A's next MIT
// carries A's own id, never B's. (b) B's refund of A's sale is refused
// before any call, and A's own void then succeeds.
func TestMoneySafety10CrossTenant(t *testing.T) {
	t.Run("CardOnFileChain", func(t *testing.T) {
		e := systemtest.New(t, sandbox.Config{}, false)
		e.Start(e.Vars(nil), worker.TestConfig{})
		cit := systemtest.NewIntent("ms10-a-cit", "4111111111111111", "50.00", true)
		cit.Tokenize = true
		cit.Credential = &intent.Credential{Type: intent.CredentialCITStore, Reason: "recurring"}
		e.Publish(cit)
		rc := msResult(e, "ms10-a-cit")
		n1 := rc.NetworkTransactionID
		if !rc.Authorized() || n1 == "" {
			t.Fatalf("A's CIT %+v", rc)
		}
		mit := func(id, merchant string) *intent.Intent {
			in := systemtest.NewIntent(id, "4111111111111111", "20.00", true)
			in.MerchantID = merchant
			in.Credential = &intent.Credential{Type: intent.CredentialMIT, Reason: "recurring", PreviousTransactionID: n1}
			return in
		}
		e.Publish(mit("ms10-b-mit", merchantB))
		rb := msResult(e, "ms10-b-mit")
		if !rb.Authorized() || rb.NetworkTransactionID == "" {
			t.Fatalf("B's MIT %+v", rb)
		}
		n2 := rb.NetworkTransactionID
		e.Publish(mit("ms10-a-mit", merchantA))
		ra := msResult(e, "ms10-a-mit")
		if !ra.Authorized() {
			t.Fatalf("A's MIT %+v", ra)
		}
		l := e.SB.Ledger()
		sent := chargeOf(l, ra.CyberSourceID).Credential.PreviousTransactionID
		if sent != n1 {
			who := "neither"
			if sent == n2 {
				who = "B's MIT"
			}
			t.Errorf("A's MIT carried previousTransactionId %s (%s's); want A's own %s", sent, who, n1)
		}
		// B's MIT names A's root on purpose (that is the test's input), and
		// the sandbox flags it; nothing A sends may name B's payments.
		for _, x := range l.CrossMerchant {
			if x.MerchantID == merchantA {
				t.Errorf("A named B's payment: %+v", x)
			} else {
				t.Logf("expected flag for B's own MIT naming A's root: %+v", x)
			}
		}
	})
	t.Run("Settlement", func(t *testing.T) {
		e := systemtest.New(t, sandbox.Config{}, false)
		e.Start(e.Vars(nil), worker.TestConfig{})
		e.Publish(systemtest.NewIntent("ms10-sale", "4111111111111111", "40.00", true))
		sale := msResult(e, "ms10-sale")
		if sale.Status != "AUTHORIZED" {
			t.Fatalf("A's sale %+v", sale)
		}
		refund := op("ms10-b-refund", intent.OpRefund, "ms10-sale", "10.00")
		refund.MerchantID = merchantB
		e.Publish(refund)
		rr := msResult(e, "ms10-b-refund")
		msDrained(e)
		l := e.SB.Ledger()
		if len(l.CrossMerchant) != 0 {
			t.Errorf("B's refund of A's sale reached CyberSource: crossMerchant %+v", l.CrossMerchant)
		}
		for _, f := range l.FollowUps {
			if f.MerchantID == merchantB {
				t.Errorf("a follow-up by B was applied: %+v", f)
			}
		}
		ls := msLettersFor(e, "ms10-b-refund")
		if len(ls) != 1 || ls[0].Class != deadletter.ClassRejected || ls[0].Subject != streams.DLQIntentsPrefix+merchantB ||
			rr.Status != intent.StatusRejected {
			t.Errorf("B's refund: result %s, dead letters %s; want REJECTED and one `rejected` on B's subject", rr.Status, msDescribe(ls))
		}
		e.Publish(op("ms10-void", intent.OpVoid, "ms10-sale", ""))
		if r := msResult(e, "ms10-void"); r.Status != intent.StatusVoided {
			t.Errorf("A's own void after B's refund: %s (%s), want VOIDED", r.Status, r.Reason)
		}
		if c := chargeOf(e.SB.Ledger(), sale.CyberSourceID); !c.Voided || c.Live {
			t.Errorf("A's sale after its void: %s", msDescribeCharges([]sandbox.Charge{c}))
		}
	})
}
