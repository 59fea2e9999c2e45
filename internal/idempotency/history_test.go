package idempotency_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ttcpay/payflow/internal/harness"
	"github.com/ttcpay/payflow/internal/idempotency"
)

func newRedisStore(t *testing.T) (*idempotency.Store, *redis.Client) {
	t.Helper()
	r := harness.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	return idempotency.New(rdb, idempotency.Options{Retention: time.Hour}), rdb
}

// TestHistoryKeepsTheLatest: the Redis store's history keeps the latest
// HistoryMax events, oldest first, every field round-tripping; it expires
// after the retention asked for (HistoryRetentionDefault for 0); an entry
// that is not an event is skipped, not fatal.
func TestHistoryKeepsTheLatest(t *testing.T) {
	s, rdb := newRedisStore(t)
	ctx := context.Background()
	if err := s.AppendHistory(ctx, "h1", 0); err != nil {
		t.Fatal(err)
	}
	if n, _ := rdb.Exists(ctx, idempotency.HistoryKey("h1")).Result(); n != 0 {
		t.Fatal("appending no events wrote a history")
	}
	if h, err := s.History(ctx, "h1"); err != nil || len(h) != 0 {
		t.Fatalf("history of nothing: %v, %v", h, err)
	}
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	ev := func(i int) idempotency.Event {
		return idempotency.Event{At: t0.Add(time.Duration(i) * time.Second), Attempt: i, Kind: "callback",
			Detail: fmt.Sprintf("event %d", i), Merchant: "m" + strconv.Itoa(i), Next: t0.Add(time.Hour), Outcome: idempotency.OutcomeFailed}
	}
	var first []idempotency.Event
	for i := range 10 {
		first = append(first, ev(i))
	}
	if err := s.AppendHistory(ctx, "h1", 0, first...); err != nil {
		t.Fatal(err)
	}
	ttl, _ := rdb.PTTL(ctx, idempotency.HistoryKey("h1")).Result()
	if ttl <= idempotency.HistoryRetentionDefault-time.Minute || ttl > idempotency.HistoryRetentionDefault {
		t.Fatalf("TTL %v with retention 0, want %v", ttl, idempotency.HistoryRetentionDefault)
	}
	var more []idempotency.Event
	for i := 10; i < idempotency.HistoryMax+5; i++ {
		more = append(more, ev(i))
	}
	if err := s.AppendHistory(ctx, "h1", time.Hour, more...); err != nil {
		t.Fatal(err)
	}
	if ttl, _ := rdb.PTTL(ctx, idempotency.HistoryKey("h1")).Result(); ttl <= 59*time.Minute || ttl > time.Hour {
		t.Fatalf("TTL %v with retention 1h", ttl)
	}
	h, err := s.History(ctx, "h1")
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != idempotency.HistoryMax {
		t.Fatalf("%d events kept, want %d", len(h), idempotency.HistoryMax)
	}
	for i, e := range h {
		want := ev(i + 5)
		if !e.At.Equal(want.At) || e.Attempt != want.Attempt || e.Kind != want.Kind || e.Detail != want.Detail ||
			e.Merchant != want.Merchant || !e.Next.Equal(want.Next) || e.Outcome != want.Outcome {
			t.Fatalf("event %d: %+v, want %+v", i, e, want)
		}
	}
	if err := rdb.RPush(ctx, idempotency.HistoryKey("h1"), "not an event").Err(); err != nil {
		t.Fatal(err)
	}
	if h, err := s.History(ctx, "h1"); err != nil || len(h) != idempotency.HistoryMax {
		t.Fatalf("with a foreign entry: %d events, %v", len(h), err)
	}
}

// TestInspectNamesEveryField: Inspect reads each field of the record into
// the operator's view, the lease only while someone works on the intent.
func TestInspectNamesEveryField(t *testing.T) {
	s, rdb := newRedisStore(t)
	ctx := context.Background()
	if r, err := s.Inspect(ctx, "absent"); err != nil || r != nil {
		t.Fatalf("absent record: %+v, %v", r, err)
	}
	lease := time.UnixMilli(1_800_000_000_000)
	unknown := time.UnixMilli(1_799_999_000_000)
	put := func(id string, f map[string]any) {
		t.Helper()
		if err := rdb.HSet(ctx, idempotency.Key(id), f).Err(); err != nil {
			t.Fatal(err)
		}
		if err := rdb.PExpire(ctx, idempotency.Key(id), time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
	}
	put("full", map[string]any{"s": "resolving", "a": "3", "o": "pod-1", "l": lease.UnixMilli(), "u": unknown.UnixMilli(),
		"r": `{"x":1}`, "dc": "unknown-outcome", "dr": "why", "rv": "p9|1.00|USD", "cb": "tx-7",
		"p_id": "p9", "p_cur": "USD", "p_m": "m1", "p_auth": "100000", "p_cap": "40000", "p_rev": "10000", "p_ref": "5000", "p_void": "1",
		"op:cap-1": "40000|x", "op:ref-1": "5000|y"})
	r, err := s.Inspect(ctx, "full")
	if err != nil || r == nil {
		t.Fatalf("inspect: %+v, %v", r, err)
	}
	if r.State != "resolving" || r.Attempt != 3 || r.Owner != "pod-1" || !r.LeaseEnd.Equal(lease) || !r.UnknownFrom.Equal(unknown) ||
		string(r.Result) != `{"x":1}` || r.CallbackDelivered != "tx-7" || r.TTL <= 59*time.Minute || r.TTL > time.Hour {
		t.Fatalf("record %+v", r)
	}
	if r.Letter == nil || r.Letter.Class != "unknown-outcome" || r.Letter.Reason != "why" {
		t.Fatalf("letter %+v", r.Letter)
	}
	if r.Reverse == nil || r.Reverse.PaymentID != "p9" || r.Reverse.Amount != "1.00" || r.Reverse.Currency != "USD" {
		t.Fatalf("reversal %+v", r.Reverse)
	}
	l := r.Ledger
	if l == nil || l.PaymentID != "p9" || l.Currency != "USD" || l.Merchant != "m1" || l.Authorized != 100000 || l.Captured != 40000 ||
		l.Reversed != 10000 || l.Refunded != 5000 || !l.Voided || len(l.Reservations) != 2 || l.Reservations["cap-1"] != 40000 || l.Reservations["ref-1"] != 5000 {
		t.Fatalf("ledger %+v", l)
	}
	put("nolease", map[string]any{"s": "charging", "a": "1"})
	if r, _ := s.Inspect(ctx, "nolease"); r == nil || !r.LeaseEnd.IsZero() || !r.UnknownFrom.IsZero() {
		t.Fatalf("a record without lease or unknown times: %+v", r)
	}
	put("charging", map[string]any{"s": "charging", "a": "1", "l": lease.UnixMilli()})
	if r, _ := s.Inspect(ctx, "charging"); r == nil || !r.LeaseEnd.Equal(lease) || !r.UnknownFrom.IsZero() || r.Letter != nil || r.Ledger != nil || r.Reverse != nil {
		t.Fatalf("charging record %+v", r)
	}
	// A done record keeps its last lease field; it is no lease.
	put("done", map[string]any{"s": "done", "a": "2", "l": lease.UnixMilli(), "p_cur": "EUR", "p_void": "0"})
	if r, _ := s.Inspect(ctx, "done"); r == nil || !r.LeaseEnd.IsZero() || r.Ledger == nil || r.Ledger.Voided || len(r.Ledger.Reservations) != 0 {
		t.Fatalf("done record %+v", r)
	}
}

// TestScanStates: the scan finds every record in the states asked for,
// with its attempt and times, skips the others, and stops (cut) once it
// has looked at limit keys.
func TestScanStates(t *testing.T) {
	s, rdb := newRedisStore(t)
	ctx := context.Background()
	p := rdb.Pipeline()
	want := map[string]idempotency.Waiting{}
	for i := range 2500 {
		id := fmt.Sprintf("scan-%04d", i)
		st := []string{"done", "unknown", "resolving", "charging", "idle"}[i%5]
		f := map[string]any{"s": st, "a": strconv.Itoa(i%7 + 1)}
		w := idempotency.Waiting{IntentID: id, State: st, Attempt: i%7 + 1}
		if st == "unknown" || st == "resolving" {
			f["u"] = 1_700_000_000_000 + int64(i)
			w.UnknownFrom = time.UnixMilli(1_700_000_000_000 + int64(i))
		}
		if st == "resolving" {
			f["l"] = 1_800_000_000_000 + int64(i)
			w.LeaseEnd = time.UnixMilli(1_800_000_000_000 + int64(i))
		}
		p.HSet(ctx, idempotency.Key(id), f)
		if st == "unknown" || st == "resolving" || st == "idle" {
			want[id] = w
		}
	}
	p.Set(ctx, "payflow:other", "x", 0)
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	got, cut, err := s.ScanStates(ctx, 1_000_000, "unknown", "resolving", "idle")
	if err != nil || cut {
		t.Fatalf("scan: cut %v, %v", cut, err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d found, want %d", len(got), len(want))
	}
	for _, w := range got {
		if want[w.IntentID] != w {
			t.Fatalf("found %+v, want %+v", w, want[w.IntentID])
		}
	}
	got, cut, err = s.ScanStates(ctx, 100, "unknown", "resolving", "idle")
	if err != nil || !cut || len(got) == 0 || len(got) >= len(want) {
		t.Fatalf("a scan limited to 100 keys: %d found, cut %v, %v", len(got), cut, err)
	}
	// A limit of exactly the first SCAN batch stops after that batch.
	batch := func() []string {
		keys, _, err := rdb.Scan(ctx, 0, "payflow:intent:{*}", 1000).Result()
		if err != nil {
			t.Fatal(err)
		}
		return keys
	}
	first := batch()
	for range 50 { // wait out an incremental rehash, which could change the batch
		time.Sleep(20 * time.Millisecond)
		if again := batch(); len(again) == len(first) {
			break
		} else {
			first = again
		}
	}
	inFirst := 0
	for _, k := range first {
		if _, ok := want[strings.TrimSuffix(strings.TrimPrefix(k, "payflow:intent:{"), "}")]; ok {
			inFirst++
		}
	}
	got, cut, err = s.ScanStates(ctx, len(first), "unknown", "resolving", "idle")
	if err != nil || !cut || len(got) != inFirst {
		t.Fatalf("a scan limited to the first batch (%d keys, %d wanted): %d found, cut %v, %v", len(first), inFirst, len(got), cut, err)
	}
}
