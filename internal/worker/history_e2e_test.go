package worker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ttcpay/payflow/internal/idempotency"
	"github.com/ttcpay/payflow/internal/intent"
	"github.com/ttcpay/payflow/internal/sandbox"
	"github.com/ttcpay/payflow/internal/systemtest"
	"github.com/ttcpay/payflow/internal/worker"
)

// TestIntentHistory: an intent's history tells its story in order, as an
// operator reads it: a sale whose answer was lost is claimed, its outcome is
// unknown, it waits, its timeout void cancels it, attempt 2 is approved and
// published. No card digits appear in it.
func TestIntentHistory(t *testing.T) {
	e := systemtest.New(t, sandbox.Config{Faults: sandbox.Faults{CutAfterChargeRate: 1}}, false)
	e.Start(e.Vars(nil), worker.TestConfig{})
	e.Publish(systemtest.NewIntent("hist-1", "4111111111111111", "44.00", true))
	e.WaitFor("the cut charge", 10*time.Second, func() bool { return len(e.SB.Ledger().Charges) == 1 })
	_ = e.SB.SetFaults(sandbox.Faults{})
	e.WaitFor("result", 20*time.Second, func() bool { return e.Results()["hist-1"].Status == "AUTHORIZED" })
	rdb := redis.NewClient(&redis.Options{Addr: e.Redis.Addr()})
	defer rdb.Close()
	store := idempotency.New(rdb, idempotency.Options{})
	var story []string
	e.WaitFor("the ack in the history", 10*time.Second, func() bool {
		h, err := store.History(context.Background(), "hist-1")
		if err != nil {
			t.Fatal(err)
		}
		story = story[:0]
		for _, ev := range h {
			story = append(story, ev.Kind+": "+ev.Detail)
		}
		return len(h) > 0 && h[len(h)-1].Kind == "ack"
	})
	want := []string{"claim: delivery 1 claimed attempt 1", "call: sale of 44.00 USD, transactionId " + intent.TransactionID("hist-1", 1) + ": unknown",
		"wait: resolving an unknown outcome", "resolve: timeout-void of transactionId " + intent.TransactionID("hist-1", 1) + ": cancelled",
		"call: sale of 44.00 USD, transactionId " + intent.TransactionID("hist-1", 2) + ": applied AUTHORIZED",
		"ack: result AUTHORIZED published"}
	i := 0
	for _, line := range story {
		if i < len(want) && strings.HasPrefix(line, want[i]) {
			i++
		}
		if strings.Contains(line, "4111111111111111") || strings.Contains(line, "111111") {
			t.Fatalf("card digits in the history: %s", line)
		}
	}
	if i != len(want) {
		t.Fatalf("history lacks %q (in order); got:\n%s", want[i], strings.Join(story, "\n"))
	}
	t.Logf("history:\n%s", strings.Join(story, "\n"))

	// An intent that went straight through leaves no history: its record
	// and result tell the same.
	e.Publish(systemtest.NewIntent("hist-2", "4111111111111111", "45.00", true))
	e.WaitFor("result", 10*time.Second, func() bool { return e.Results()["hist-2"].Status == "AUTHORIZED" })
	e.WaitFor("callback", 10*time.Second, func() bool { return len(e.SB.Ledger().Callbacks) == 2 })
	if h, _ := store.History(context.Background(), "hist-2"); len(h) != 0 {
		t.Fatalf("a straight-through intent wrote history: %+v", h)
	}
}
