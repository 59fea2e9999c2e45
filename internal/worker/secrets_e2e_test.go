package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/ttcpay/payflow/internal/deadletter"
	"github.com/ttcpay/payflow/internal/harness"
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

// TestNoSecretLeaks: no card number, CVV, access token, API key, password,
// cache key or private key reaches a log line, an error, Redis or a stream
// message, in a mixed workload, at start-up, or when CyberSource redirects.
func TestNoSecretLeaks(t *testing.T) {
	t.Run("Workload", testLeaksWorkload)
	t.Run("StartupErrors", testLeaksStartupErrors)
	t.Run("CyberSourceRedirect", testLeaksCyberSourceRedirect)
	t.Run("ProductionDeadLetters", testLeaksProductionDeadLetters)
	t.Run("CardNumberInVersion", testLeaksCardNumberInVersion)
}

// testLeaksWorkload runs a mixed workload (approvals, declines, invalid
// intents, an unknown outcome, a revoked token, callback failures) with every
// log line captured, then searches the logs, every Redis key and value and
// every message of every stream for card numbers, CVVs, access tokens, the
// API key, the cache key and PEM private keys. A plaintext card may appear
// only in the intents stream, as upstream sent it (REQUIRE_ENCRYPTED_CARD
// is off here); never in a dead letter.
func testLeaksWorkload(t *testing.T) {
	e := systemtest.New(t, sandbox.Config{Faults: sandbox.Faults{
		Errors: map[string]sandbox.ErrorFault{"callback": {Rate: 0.3, Status: 500}},
	}}, false)
	e.Start(e.Vars(map[string]string{"LOG_LEVEL": "debug", "CALLBACK_RETRY_MAX": "2s"}), worker.TestConfig{})
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
	checkStores(t, e, secrets, n)
}

// checkStores searches every Redis key and value and every message of every
// stream (data and headers) for the secrets. A card or CVV may appear only
// in the data of the intents stream, as upstream sent it: never in a dead
// letter (scrubbed before it is written), a result, a callback job or a
// header.
func checkStores(t *testing.T, e *systemtest.Env, secrets map[string]string, minKeys int) {
	t.Helper()
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: e.Redis.Addr()})
	defer rdb.Close()
	keys, _ := rdb.Keys(ctx, "*").Result()
	if len(keys) < minKeys {
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
		case "list": // an intent's history
			l, _ := rdb.LRange(ctx, k, 0, -1).Result()
			v = strings.Join(l, "\n")
		default:
			t.Errorf("unexpected Redis type %s for %s", typ, k)
		}
		if f := scan(k+" "+v, secrets); len(f) > 0 {
			t.Errorf("Redis %s holds: %v", k, f)
		}
	}
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
			if f := scan(fmt.Sprint(m.Header), secrets); len(f) > 0 {
				t.Errorf("%s message %d headers hold: %v", name, seq, f)
			}
			intentPayload := name == streams.StreamIntents
			for _, f := range scan(string(m.Data), secrets) {
				if intentPayload && (strings.HasPrefix(f, "card") || strings.HasPrefix(f, "cvv")) {
					continue // the intent itself, as upstream sent it
				}
				t.Errorf("%s message %d holds: %s", name, seq, f)
			}
			if name == streams.StreamDLQ {
				// What an operator's `dlq show` prints.
				if f := scan(deadletter.MaskedPayload(m.Data), secrets); len(f) > 0 {
					t.Errorf("dlq show %d prints: %v", seq, f)
				}
			}
		}
	}
}

// testLeaksCyberSourceRedirect: CYBS_BASE_URL points at a stand-in that
// answers every call with a 307 to another server (the sandbox cannot
// redirect). The worker never follows it: the other server receives
// nothing, neither the payment nor the timeout reversal that resolves its
// unknown outcome, and no log line, Redis value or message holds a secret.
func testLeaksCyberSourceRedirect(t *testing.T) {
	e := systemtest.New(t, sandbox.Config{}, false)
	var stolen atomic.Int64
	thief := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stolen.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"id":"stolen","status":"AUTHORIZED"}`))
	}))
	defer thief.Close()
	var mu sync.Mutex
	seen := map[string]int{}
	redirector := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		seen[r.URL.Path]++
		mu.Unlock()
		http.Redirect(w, r, thief.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()
	// Trust the stand-in (httptest servers share one certificate, so the
	// thief is trusted too: only the refusal to follow protects it).
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: redirector.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	e.Start(e.Vars(map[string]string{"CYBS_BASE_URL": redirector.URL, "CYBS_CA_FILE": ca}), worker.TestConfig{})
	const card, cvv = "4111111111111111", "737"
	in := systemtest.NewIntent("redirect-01", card, "10.00", false)
	in.Card.SecurityCode = cvv
	e.Publish(in)
	e.WaitFor("the payment and a timeout reversal (or a followed redirect)", 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return seen["/pts/v2/payments"] >= 1 && (seen["/pts/v2/reversals"] >= 1 || stolen.Load() > 0)
	})
	if n := stolen.Load(); n != 0 {
		t.Fatalf("the redirect target received %d request(s)", n)
	}
	if !strings.Contains(e.Logs.String(), "redirect") {
		t.Fatalf("no log line tells of the redirect:\n%s", e.Logs.String())
	}
	if l := e.SB.Ledger(); len(l.Charges) != 0 {
		t.Fatalf("%d charges", len(l.Charges))
	}
	secrets := map[string]string{
		"api key": systemtest.APIKey, "cache key": e.CacheKey, "private key": "PRIVATE KEY",
		"cvv field": `"securityCode"`, "cvv value": `"` + cvv + `"`, "card": card,
	}
	for i, tok := range e.SB.IssuedTokens() {
		secrets[fmt.Sprintf("access token %d", i)] = tok
	}
	if f := scan(e.Logs.String(), secrets); len(f) > 0 {
		t.Errorf("logs hold: %v", f)
	}
	checkStores(t, e, secrets, 1)
}

// testLeaksStartupErrors: a worker that cannot start because of its NATS
// or Redis URL says which variable is wrong, never the password in it (nor
// the rest of the userinfo: a NATS token sits where a user name would).
func testLeaksStartupErrors(t *testing.T) {
	const pw = "s3cret-Pw0"
	closed := fmt.Sprint(harness.FreePort(t))
	base := map[string]string{
		"NATS_URL":             "nats://payflow:" + pw + "@127.0.0.1:" + closed,
		"REDIS_URL":            "redis://payflow:" + pw + "@127.0.0.1:" + closed + "/0",
		"CACHE_ENCRYPTION_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
		"TTC_BASE_URL":         "http://127.0.0.1:1", "TTC_API_KEYS": "costco=" + systemtest.APIKey,
		"CYBS_BASE_URL": "https://127.0.0.1:2", "HTTP_ADDR": "127.0.0.1:0", "LOG_LEVEL": "debug",
	}
	cases := []struct {
		name, want string
		env        map[string]string
	}{
		{"RedisURLUnparsable", "REDIS_URL", map[string]string{"REDIS_URL": "redis://:" + pw + "@127.0.0.1:port/0"}},
		{"RedisURLBadUserinfo", "REDIS_URL", map[string]string{"REDIS_URL": "redis://payflow:" + pw + " @127.0.0.1:6379/0"}},
		{"RedisURLSlashInPassword", "REDIS_URL", map[string]string{"REDIS_URL": "redis://:" + pw + "/x@127.0.0.1:6379/0"}},
		{"NATSURLUnparsable", "NATS_URL", map[string]string{"NATS_URL": "nats://payflow:" + pw + "@127.0.0.1:port"}},
		{"NATSTokenUnparsable", "NATS_URL", map[string]string{"NATS_URL": "nats://" + pw + "@[::1:4222"}},
		{"NATSURLListUnparsable", "NATS_URL", map[string]string{"NATS_URL": "nats://a:" + pw + "@127.0.0.1:4222,nats://b:" + pw + "@127.0.0.1:port"}},
		// Both reachable-looking but nothing listens: the worker serves
		// /readyz, which says what it waits for, until its context ends.
		{"NATSAndRedisUnreachable", "waiting for NATS at nats://", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range base {
				env[k] = v
			}
			for k, v := range tc.env {
				env[k] = v
			}
			logs := &systemtest.SyncBuffer{}
			log := zerolog.New(logs).Level(zerolog.DebugLevel)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			cfg, err := worker.ConfigFromEnv(func(k string) string { return env[k] })
			if err == nil {
				addr := make(chan string, 1)
				cfg.Test.HTTPReady = func(a string) { addr <- a }
				var w *worker.Worker
				w, err = worker.New(ctx, cfg, log)
				if err == nil {
					// Only an unreachable NATS lets New succeed: the
					// start-up goes on in Run; its /readyz answer is
					// checked as an error would be.
					done := make(chan error, 1)
					go func() { done <- w.Run(ctx) }()
					err = waitingAnswer(t, <-addr, "connection attempts failed")
					cancel()
					if rerr := <-done; rerr != nil {
						t.Fatalf("Run: %v", rerr)
					}
				}
			}
			if strings.Contains(err.Error(), pw) || strings.Contains(logs.String(), pw) {
				t.Fatalf("the password is printed:\nerror: %v\nlogs: %s", err, logs.String())
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("the error does not name %s: %v", tc.want, err)
			}
			t.Logf("start-up error: %v", err)
		})
	}
}

// waitingAnswer polls the worker's /readyz until its 503 answer contains
// want, and returns that answer as an error.
func waitingAnswer(t *testing.T, addr, want string) error {
	t.Helper()
	var body []byte
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			t.Fatalf("/readyz: %v", err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("/readyz %d: %s", resp.StatusCode, body)
		}
		if strings.Contains(string(body), want) {
			return fmt.Errorf("readyz: %s", strings.TrimSpace(string(body)))
		}
	}
	t.Fatalf("/readyz never said %q; the last answer: %s", want, body)
	return nil
}

// TestClusterHappyPath: the end-to-end happy path on a three-node JetStream
// cluster with R3 streams.
func TestClusterHappyPath(t *testing.T) {
	e := systemtest.NewOnCluster(t, sandbox.Config{})
	e.Start(e.Vars(nil), worker.TestConfig{})
	e.Start(e.Vars(nil), worker.TestConfig{})
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

// testLeaksProductionDeadLetters: with production settings
// (REQUIRE_ENCRYPTED_CARD=true) a plaintext intent is refused and
// dead-lettered; neither that letter nor those of invalid plaintext intents
// (a Luhn failure, case-variant names, truncated JSON) hold a card number
// or a CVV, with a dead-letter card key (the card sealed) or without one
// (removed). Logs, Redis and every stream are searched, as is what `dlq
// show` prints.
func testLeaksProductionDeadLetters(t *testing.T) {
	for _, sealed := range []bool{false, true} {
		t.Run(map[bool]string{false: "NoKey", true: "Sealed"}[sealed], func(t *testing.T) {
			e := systemtest.New(t, sandbox.Config{}, false)
			vars, _ := dlqKeys(t)
			if !sealed {
				delete(vars, "DLQ_CARD_PUBLIC_KEY_FILE")
			}
			vars["REQUIRE_ENCRYPTED_CARD"] = "true"
			vars["LOG_LEVEL"] = "debug"
			e.Start(e.Vars(vars), worker.TestConfig{})
			const card, luhn, cvv = "5555555555554444", "5555555555554445", "7373"
			in := systemtest.NewIntent("prod-plain", card, "10.00", true)
			in.Card.SecurityCode = cvv[:3]
			e.Publish(in)
			bad := systemtest.NewIntent("prod-luhn", luhn, "10.00", true)
			bad.Card.SecurityCode = cvv[:3]
			e.Publish(bad)
			b, _ := json.Marshal(systemtest.NewIntent("prod-case", card, "10.00", true))
			e.PublishRaw("prod-case", "ttc_ttusas_m", bytes.Replace(bytes.Replace(b, []byte(`"card"`), []byte(`"Card"`), 1),
				[]byte(`"securityCode":"123"`), []byte(`"SecurityCode":"`+cvv[:3]+`"`), 1))
			b, _ = json.Marshal(in)
			e.PublishRaw("prod-truncated", "ttc_ttusas_m", b[:bytes.Index(b, []byte(`"billTo"`))])
			e.WaitFor("four dead letters", 20*time.Second, func() bool { return len(e.DeadLetters()) == 4 })
			secrets := map[string]string{
				"api key": systemtest.APIKey, "cache key": e.CacheKey, "private key": "PRIVATE KEY",
				"cvv field": "ecurityCode", "cvv value": `"` + cvv[:3] + `"`,
				"card": card, "card (luhn)": luhn, "card (12 digits)": card[:12],
			}
			if f := scan(e.Logs.String(), secrets); len(f) > 0 {
				t.Errorf("logs hold: %v", f)
			}
			checkStores(t, e, secrets, 0) // nothing was claimed
			for _, m := range e.DeadLetters() {
				h := m.Headers().Get(deadletter.HeaderCardRemoved)
				id := m.Headers().Get(deadletter.HeaderIntentID)
				replayable := sealed && id == "prod-plain"
				if (h == "") != replayable {
					t.Errorf("%s: %s %q (sealed %v)", id, deadletter.HeaderCardRemoved, h, sealed)
				}
			}
		})
	}
}

// testLeaksCardNumberInVersion: an intent whose version field holds a card
// number is invalid; the number is not echoed in a log line, an error, the
// result, the dead letter (payload or headers) or Redis.
func testLeaksCardNumberInVersion(t *testing.T) {
	e := systemtest.New(t, sandbox.Config{}, false)
	e.Start(e.Vars(nil), worker.TestConfig{})
	const pan = "4111111111111111"
	b, _ := json.Marshal(systemtest.NewIntent("version-pan", "5555555555554444", "10.00", true))
	b = bytes.Replace(b, []byte(`"version":1`), []byte(`"version":`+pan), 1)
	e.PublishRaw("version-pan", "ttc_ttusas_m", b)
	e.WaitFor("the result", 15*time.Second, func() bool { return e.Results()["version-pan"].Status == intent.StatusInvalid })
	e.WaitFor("the dead letter", 15*time.Second, func() bool { return len(e.DeadLetters()) == 1 })
	secrets := map[string]string{
		"version digits": pan, "version digits (12)": pan[:12], "version digits (tail)": pan[4:],
		"card": "5555555555554444", "cvv value": `"123"`, "cvv field": "ecurityCode",
	}
	if f := scan(e.Logs.String(), secrets); len(f) > 0 {
		t.Errorf("logs hold: %v", f)
	}
	if r := e.Results()["version-pan"]; !strings.Contains(r.Reason, "version") {
		t.Errorf("the result does not name the field: %q", r.Reason)
	}
	checkStores(t, e, secrets, 0)
}
