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
	b.Run("RedisDefaults", func(b *testing.B) { recordMemory(b, "", false) })
	// With hash-max-listpack-value above the result's size, the record
	// stays in Redis's compact hash encoding.
	b.Run("ListpackValue1024", func(b *testing.B) { recordMemory(b, "1024", false) })
	// Plus the intent's history (four entries: claim, call, ack, callback).
	b.Run("ListpackValue1024WithHistory", func(b *testing.B) { recordMemory(b, "1024", true) })
	b.Run("RedisDefaultsWithHistory", func(b *testing.B) { recordMemory(b, "", true) })
}

func recordMemory(b *testing.B, listpackValue string, withHistory bool) {
	r := harness.StartRedis(b)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rdb.Close()
	if listpackValue != "" {
		if err := rdb.ConfigSet(context.Background(), "hash-max-listpack-value", listpackValue).Err(); err != nil {
			b.Fatal(err)
		}
	}
	s := idempotency.New(rdb, idempotency.Options{})
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
		c, err := s.Claim(ctx, id, "0123456789abcdef0123456789abcdef", owner, time.Minute)
		if err != nil || c.State != idempotency.Claimed {
			b.Fatal(err, c)
		}
		if err := s.Finish(ctx, c.Attempt, idempotency.Outcome{Result: rb, Payment: &idempotency.Payment{CyberSourceID: res.CyberSourceID, Currency: "USD", Authorized: 1022100, Sale: true, MerchantID: "ttc_ttusas_m"}}); err != nil {
			b.Fatal(err)
		}
		if err := s.MarkCallbackDelivered(ctx, id, res.CyberSourceID); err != nil {
			b.Fatal(err)
		}
		if withHistory {
			// The story a normal authorized intent leaves (publisher intent show).
			now := time.Now()
			txn := intent.TransactionID(id, 1)
			if err := s.AppendHistory(ctx, id, 0,
				idempotency.Event{At: now, Attempt: 1, Kind: "claim", Detail: "delivery 1 claimed attempt 1 (transactionId " + txn + ")"},
				idempotency.Event{At: now, Attempt: 1, Kind: "call", Detail: "sale of 102.21 USD, transactionId " + txn + ": applied AUTHORIZED (CyberSource id " + res.CyberSourceID + ")"},
				idempotency.Event{At: now, Kind: "ack", Detail: "result AUTHORIZED published"},
				idempotency.Event{At: now, Kind: "callback", Detail: "delivery 1 of the callback for " + res.CyberSourceID + ": delivered to TTC"},
			); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(used()-before)/float64(b.N), "bytes/record")
}
