package inspect_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ttcpay/payflow/internal/idempotency"
	"github.com/ttcpay/payflow/internal/sandbox"
	"github.com/ttcpay/payflow/internal/systemtest"
	"github.com/ttcpay/payflow/internal/worker"
)

// TestMeasureBytesPerIntent measures (PAYFLOW_MEASURE=1) what an intent's
// record and history cost in Redis (MEMORY USAGE): after a payment that went
// straight through, and after one whose TTC callback failed and was retried.
// The figures are in the README ("What an intent costs in Redis").
func TestMeasureBytesPerIntent(t *testing.T) {
	if os.Getenv("PAYFLOW_MEASURE") == "" {
		t.Skip("a measurement: PAYFLOW_MEASURE=1")
	}
	e := systemtest.New(t, sandbox.Config{}, false)
	e.Start(e.Vars(nil), worker.TestConfig{})
	opt, _ := redis.ParseURL(e.RedisURL)
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx := context.Background()
	usage := func(id string) (int64, int64) {
		rec, _ := rdb.MemoryUsage(ctx, idempotency.Key(id)).Result()
		hist, _ := rdb.MemoryUsage(ctx, idempotency.HistoryKey(id)).Result()
		return rec, hist
	}
	e.Publish(systemtest.NewIntent("mem-plain", "4111111111111111", "10.00", true))
	e.WaitFor("callback", 20*time.Second, func() bool { return len(e.SB.Ledger().Callbacks) == 1 })
	time.Sleep(500 * time.Millisecond)
	r, h := usage("mem-plain")
	t.Logf("straight through: record %d B, history %d B", r, h)

	_ = e.SB.SetFaults(sandbox.Faults{Outages: []sandbox.Outage{{Endpoint: sandbox.EndpointCallback, For: sandbox.Duration(2 * time.Second)}}})
	e.Publish(systemtest.NewIntent("mem-retried", "4111111111111111", "10.00", true))
	e.WaitFor("callback", 30*time.Second, func() bool { return len(e.SB.Ledger().Callbacks) == 2 })
	time.Sleep(500 * time.Millisecond)
	r, h = usage("mem-retried")
	n, _ := rdb.LLen(ctx, idempotency.HistoryKey("mem-retried")).Result()
	t.Logf("callback retried: record %d B, history %d B (%d events)", r, h, n)
}
