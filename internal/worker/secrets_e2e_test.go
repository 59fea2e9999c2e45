package worker_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ttcpay/payflow/internal/intent"
	"github.com/ttcpay/payflow/internal/sandbox"
	"github.com/ttcpay/payflow/internal/streams"
	"github.com/ttcpay/payflow/internal/systemtest"
	"github.com/ttcpay/payflow/internal/worker"
)

// scan reports every secret found in text, by name.
func scan(text string, secrets map[string]string) []string {
	var found []string
	for name, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			found = append(found, name)
		}
	}
	return found
}

// TestNoSecretLeaks runs a mixed workload (approvals, declines, invalid
// intents, an unknown outcome, a revoked token, callback failures) with every
// log line captured, then searches the logs, every Redis key and value and
// every message of every stream for card numbers, CVVs, access tokens, the
// API key, the cache key and PEM private keys. A plaintext card may appear
// only in intent payloads (the intents stream and its dead letters), since
// REQUIRE_ENCRYPTED_CARD is off here.
func TestNoSecretLeaks(t *testing.T) {
	e := systemtest.New(t, sandbox.Config{Faults: sandbox.Faults{
		Errors: map[string]sandbox.ErrorFault{"callback": {Rate: 0.3, Status: 500}},
	}}, false)
	e.Start(e.Vars(map[string]string{"LOG_LEVEL": "debug", "CALLBACK_RETRY_MAX": "2s"}), worker.Hooks{})
	cards := map[string]string{"approved": "4111111111111111", "declined": "4000000000000002", "mastercard": "5555555555554444", "luhn": "4111111111111112"}
	const cvv = "737"
	n := 0
	add := func(card, amount string, capture bool) {
		n++
		in := systemtest.NewIntent(fmt.Sprintf("leak-%02d", n), card, amount, capture)
		in.Card.SecurityCode = cvv
		e.Publish(in)
	}
	for range 3 {
		add(cards["approved"], "10.00", true)
		add(cards["declined"], "10.00", true)
		add(cards["mastercard"], "11.00", false)
		add(cards["luhn"], "12.00", true)
	}
	_ = e.SB.SetFaults(sandbox.Faults{CutAfterChargeRate: 1})
	add(cards["approved"], "13.00", false) // unknown outcome, resolved by a timeout reversal
	e.WaitFor("the cut charge", 10*time.Second, func() bool { return len(e.SB.Ledger().Charges) >= 10 })
	_ = e.SB.SetFaults(sandbox.Faults{Errors: map[string]sandbox.ErrorFault{"callback": {Rate: 0.3, Status: 500}}})
	e.SB.RevokeTokens("costco", "ttc_ttusas_m") // a 401, an invalidation, a new token
	add(cards["mastercard"], "14.00", true)
	e.WaitFor("every outcome", 30*time.Second, func() bool { return len(e.Results()) == n })
	e.WaitFor("callbacks", 60*time.Second, func() bool { return len(e.SB.Ledger().Callbacks) >= 8 })

	secrets := map[string]string{
		"api key":         systemtest.APIKey,
		"cache key":       e.CacheKey,
		"private key":     "PRIVATE KEY",
		"cvv field":       `"securityCode"`,
		"cvv value":       `"` + cvv + `"`,
		"card (approved)": cards["approved"], "card (declined)": cards["declined"],
		"card (mastercard)": cards["mastercard"], "card (luhn)": cards["luhn"],
	}
	tokens := e.SB.IssuedTokens()
	if len(tokens) < 2 {
		t.Fatalf("%d tokens issued: the scenario did not refresh", len(tokens))
	}
	for i, tok := range tokens {
		secrets[fmt.Sprintf("access token %d", i)] = tok
	}
	// The scanner must bite.
	if len(scan("x "+cards["approved"]+" y", secrets)) == 0 || len(scan(tokens[0], secrets)) == 0 {
		t.Fatal("the scanner finds nothing it should")
	}

	// Logs.
	if f := scan(e.Logs.String(), secrets); len(f) > 0 {
		t.Errorf("logs hold: %v", f)
	}
	if !strings.Contains(e.Logs.String(), `"intentId":"leak-01"`) {
		t.Fatal("no logs captured")
	}
	// Redis: every key and value.
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: e.Redis.Addr()})
	defer rdb.Close()
	keys, _ := rdb.Keys(ctx, "*").Result()
	if len(keys) < n {
		t.Fatalf("only %d Redis keys", len(keys))
	}
	for _, k := range keys {
		var v string
		switch typ, _ := rdb.Type(ctx, k).Result(); typ {
		case "hash":
			m, _ := rdb.HGetAll(ctx, k).Result()
			v = fmt.Sprint(m)
		case "string":
			v, _ = rdb.Get(ctx, k).Result()
		default:
			t.Errorf("unexpected Redis type %s for %s", typ, k)
		}
		if f := scan(k+" "+v, secrets); len(f) > 0 {
			t.Errorf("Redis %s holds: %v", k, f)
		}
	}
	// Streams: every message (data and headers).
	for _, name := range []string{streams.StreamIntents, streams.StreamResults, streams.StreamCallbacks, streams.StreamDLQ} {
		s, err := e.JS.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		info, _ := s.Info(ctx)
		for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
			m, err := s.GetMsg(ctx, seq)
			if err != nil {
				continue // deleted (work queue)
			}
			text := string(m.Data) + fmt.Sprint(m.Header)
			intentPayload := name == streams.StreamIntents ||
				(name == streams.StreamDLQ && m.Header.Get(streams.HeaderDLQKind) == "intents")
			for _, f := range scan(text, secrets) {
				if intentPayload && (strings.HasPrefix(f, "card") || strings.HasPrefix(f, "cvv")) && !strings.Contains(fmt.Sprint(m.Header), f) {
					continue // the intent itself, as upstream sent it
				}
				t.Errorf("%s message %d holds: %s", name, seq, f)
			}
		}
	}
}

// TestClusterHappyPath: the end-to-end happy path on a three-node JetStream
// cluster with R3 streams.
func TestClusterHappyPath(t *testing.T) {
	e := systemtest.NewOnCluster(t, sandbox.Config{})
	e.Start(e.Vars(nil), worker.Hooks{})
	e.Start(e.Vars(nil), worker.Hooks{})
	const n = 60
	for i := range n {
		card := "4111111111111111"
		if i%5 == 0 {
			card = "4000000000000002"
		}
		e.Publish(systemtest.NewIntent(fmt.Sprintf("r3-%02d", i), card, "9.00", i%2 == 0))
	}
	var res map[string]intent.Result
	e.WaitFor("results", 60*time.Second, func() bool { res = e.Results(); return len(res) == n })
	e.WaitFor("callbacks", 30*time.Second, func() bool { return len(e.SB.Ledger().Callbacks) == n-n/5 })
	e.CheckCallbacks(res)
	for _, name := range []string{streams.StreamIntents, streams.StreamResults, streams.StreamCallbacks, streams.StreamDLQ} {
		s, err := e.JS.Stream(context.Background(), name)
		if err != nil || s.CachedInfo().Config.Replicas != 3 {
			t.Fatalf("%s: %v", name, err)
		}
	}
}
