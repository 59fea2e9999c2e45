package idempotency_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ttcpay/payflow/internal/harness"
	"github.com/ttcpay/payflow/internal/idempotency"
	"github.com/ttcpay/payflow/internal/intent"
)

// BenchmarkRecordMemory measures the Redis memory of terminal records: an
// authorized sale with its result, settlement ledger, payment index and
// callback mark, as the worker leaves them. Reports bytes/record.
//
//	go test -run '^$' -bench RecordMemory -benchtime 100000x ./internal/idempotency
func BenchmarkRecordMemory(b *testing.B) {
	b.Run("RedisDefaults", func(b *testing.B) { recordMemory(b, "") })
	// With hash-max-listpack-value above the result's size, the record
	// stays in Redis's compact hash encoding.
	b.Run("ListpackValue1024", func(b *testing.B) { recordMemory(b, "1024") })
}

func recordMemory(b *testing.B, listpackValue string) {
	r := harness.StartRedis(b)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rdb.Close()
	if listpackValue != "" {
		if err := rdb.ConfigSet(context.Background(), "hash-max-listpack-value", listpackValue).Err(); err != nil {
			b.Fatal(err)
		}
	}
	s := idempotency.New(rdb, 0)
	ctx := context.Background()
	used := func() int64 {
		info, _ := rdb.Info(ctx, "memory").Result()
		for _, line := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				return n
			}
		}
		return 0
	}
	before := used()
	b.ResetTimer()
	for i := range b.N {
		id := fmt.Sprintf("C%07d-1", i)
		res := intent.Result{IntentID: id, Integrator: "costco", MerchantID: "ttc_ttusas_m", BookingID: fmt.Sprintf("C%07d", i),
			Reference: fmt.Sprintf("TTUSAS_%07d", i), Status: "AUTHORIZED", CyberSourceID: fmt.Sprintf("17952557472640%08d", i),
			Capture: true, Amount: "102.21", AuthorizedAmount: "102.21", Currency: "USD", ApprovalCode: "831000",
			NetworkTransactionID: "016153570198200", CardType: "001", CardLast4: "1111", Attempts: 1, Time: time.Now()}
		rb, _ := json.Marshal(res)
		owner := idempotency.NewOwner()
		c, err := s.Claim(ctx, id, owner, time.Minute)
		if err != nil || c.State != idempotency.Claimed {
			b.Fatal(err, c)
		}
		if err := s.Finish(ctx, id, owner, c.Attempt, rb, &idempotency.Payment{CyberSourceID: res.CyberSourceID, Currency: "USD", Authorized: 1022100, Sale: true}); err != nil {
			b.Fatal(err)
		}
		if err := s.MarkCallbackDelivered(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(used()-before)/float64(b.N), "bytes/record")
}
