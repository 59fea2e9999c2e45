package inspect_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ttcpay/payflow/internal/idempotency"
	"github.com/ttcpay/payflow/internal/inspect"
	"github.com/ttcpay/payflow/internal/intent"
	"github.com/ttcpay/payflow/internal/sandbox"
	"github.com/ttcpay/payflow/internal/systemtest"
	"github.com/ttcpay/payflow/internal/worker"
)

func newInspector(t *testing.T, e *systemtest.Env) *inspect.Inspector {
	t.Helper()
	opt, err := redis.ParseURL(e.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	return inspect.New(e.JS, idempotency.New(rdb, idempotency.Options{}), inspect.Options{ResolveDelay: time.Second})
}

// TestAuthorizedStory: a card payment's story has its outcome, its
// attempt, the result published, the callback delivered and the ledger,
// and no card data anywhere in it.
func TestAuthorizedStory(t *testing.T) {
	e := systemtest.New(t, sandbox.Config{}, false)
	e.Start(e.Vars(nil), worker.TestConfig{})
	in := systemtest.NewIntent("story-ok", "4111111111111111", "7.50", false)
	e.Publish(in)
	e.WaitFor("result", 20*time.Second, func() bool { return e.Results()["story-ok"].Authorized() })
	e.WaitFor("callback", 20*time.Second, func() bool { return len(e.SB.Ledger().Callbacks) == 1 })
	insp := newInspector(t, e)
	ctx := context.Background()
	var st inspect.IntentStory
	e.WaitFor("callback marked", 10*time.Second, func() bool {
		var err error
		st, err = insp.Intent(ctx, "story-ok")
		if err != nil {
			t.Fatal(err)
		}
		return st.Callback != nil && st.Callback.Delivered
	})
	if !st.Known || st.State != "ended" || st.Outcome == nil || st.Outcome.Status != "AUTHORIZED" || st.MerchantID != in.MerchantID {
		t.Fatalf("story %+v", st)
	}
	if len(st.Attempts) != 1 || st.Attempts[0].TransactionID != intent.TransactionID("story-ok", 1) {
		t.Fatalf("attempts %+v", st.Attempts)
	}
	if len(st.Results) != 1 || st.Results[0].Status != "AUTHORIZED" || st.Results[0].Seq == 0 {
		t.Fatalf("results %+v", st.Results)
	}
	if st.Ledger == nil || st.Ledger.Authorized != "7.50" || st.Ledger.Captured != "0.00" {
		t.Fatalf("ledger %+v", st.Ledger)
	}
	b, _ := json.Marshal(st)
	for _, secret := range []string{"4111111111111111", "411111111111", in.Card.SecurityCode + `"`} {
		if strings.Contains(string(b), secret) {
			t.Fatalf("story holds card data %q: %s", secret, b)
		}
	}
	rep, err := insp.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Unknown.Count != 0 || rep.Callbacks.Count != 0 || len(rep.DeadLetters) != 0 || len(rep.Problems) != 0 {
		t.Fatalf("status %+v", rep)
	}
	if st, err := insp.Intent(ctx, "never-seen"); err != nil || st.Known || len(st.Results) != 0 {
		t.Fatalf("unknown intent: %+v, %v", st, err)
	}
}

// TestStatusFindsUnknownOutcome: a charge whose answer was lost, and
// whose reversal cannot be sent, is counted as an unknown outcome with its
// next step, and its story says so.
func TestStatusFindsUnknownOutcome(t *testing.T) {
	e := systemtest.New(t, sandbox.Config{Faults: sandbox.Faults{CutAfterChargeRate: 1,
		Outages: []sandbox.Outage{{Endpoint: sandbox.EndpointFollowUps, For: sandbox.Duration(time.Hour)}}}}, false)
	e.Start(e.Vars(nil), worker.TestConfig{})
	e.Publish(systemtest.NewIntent("story-unk", "4111111111111111", "9.00", true))
	insp := newInspector(t, e)
	ctx := context.Background()
	var rep inspect.StatusReport
	e.WaitFor("unknown outcome", 30*time.Second, func() bool {
		var err error
		rep, err = insp.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return rep.Unknown.Count+rep.Resolving.Count == 1
	})
	o := rep.Unknown.Oldest
	if o == nil {
		o = rep.Resolving.Oldest
	}
	if o.IntentID != "story-unk" || o.Attempt != 1 || o.Next.What == "" {
		t.Fatalf("oldest %+v", o)
	}
	if len(rep.Merchants) != 1 || rep.Merchants[0].Intents != 1 {
		t.Fatalf("merchants %+v", rep.Merchants)
	}
	st, err := insp.Intent(ctx, "story-unk")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(st.State, "unknown") || st.UnknownSince.IsZero() || len(st.Attempts) != 1 || !strings.Contains(st.Attempts[0].Outcome, "unknown") {
		t.Fatalf("story %+v", st)
	}
}

// TestCallbackFailuresInTheStory: while TTC's callback endpoint is down, the
// story counts the failed deliveries and gives the last error and the next
// try (from the events' fields, not their wording); once TTC has it, the
// story says delivered and no next try.
func TestCallbackFailuresInTheStory(t *testing.T) {
	e := systemtest.New(t, sandbox.Config{}, false)
	e.Start(e.Vars(nil), worker.TestConfig{})
	if err := e.SB.SetFaults(sandbox.Faults{Outages: []sandbox.Outage{{Endpoint: sandbox.EndpointCallback, For: sandbox.Duration(3 * time.Second)}}}); err != nil {
		t.Fatal(err)
	}
	e.Publish(systemtest.NewIntent("story-cb", "4111111111111111", "7.50", false))
	insp := newInspector(t, e)
	ctx := context.Background()
	story := func() inspect.IntentStory {
		st, err := insp.Intent(ctx, "story-cb")
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	var st inspect.IntentStory
	e.WaitFor("a failed delivery in the story", 20*time.Second, func() bool {
		st = story()
		return st.Callback != nil && st.Callback.Failures > 0
	})
	cb := st.Callback
	if cb.Delivered || cb.LastError == "" || cb.LastAt.IsZero() || !cb.NextRetry.After(cb.LastAt) {
		t.Fatalf("callback during the outage: %+v", cb)
	}
	var failed int
	for _, ev := range st.Events {
		if ev.Kind == "callback" && ev.Outcome == idempotency.OutcomeFailed {
			failed++
		}
	}
	if failed != cb.Failures {
		t.Fatalf("%d failed callback events, story counts %d", failed, cb.Failures)
	}
	e.WaitFor("callback", 30*time.Second, func() bool { return len(e.SB.Ledger().Callbacks) == 1 })
	e.WaitFor("delivered in the story", 10*time.Second, func() bool {
		st = story()
		return st.Callback != nil && st.Callback.Delivered
	})
	if cb := st.Callback; cb.Failures == 0 || !cb.NextRetry.IsZero() {
		t.Fatalf("callback after delivery: %+v", cb)
	}
	var delivered bool
	for _, ev := range st.Events {
		delivered = delivered || (ev.Kind == "callback" && ev.Outcome == idempotency.OutcomeDelivered)
	}
	if !delivered {
		t.Fatalf("no delivered callback event: %+v", st.Events)
	}
}
