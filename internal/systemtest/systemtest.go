// Package systemtest runs the whole system for end-to-end tests: an
// embedded JetStream server, a real redis-server, the sandbox and workers
// started through their real wiring, with readers for results, dead letters
// and the sandbox ledger.
package systemtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ttcpay/payflow/internal/harness"
	"github.com/ttcpay/payflow/internal/intent"
	"github.com/ttcpay/payflow/internal/sandbox"
	"github.com/ttcpay/payflow/internal/streams"
	"github.com/ttcpay/payflow/internal/worker"
)

// APIKey is the sandbox API key of integrator "costco".
const APIKey = "e2e-api-key"

// Env is one running system.
type Env struct {
	t       *testing.T
	NATSURL string
	Redis   *harness.Redis
	SB      *sandbox.Server
	CAFile  string
	NC      *nats.Conn
	JS      jetstream.JetStream
	Logs    *SyncBuffer
	Cluster *harness.Cluster // set by NewOnCluster
	// CacheKey is the CACHE_ENCRYPTION_KEY that Vars hands out.
	CacheKey string
}

// SyncBuffer collects the workers' logs.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// New starts NATS, Redis (persistent: AOF fsynced on every write) and the
// sandbox, with integrator "costco" (key APIKey) unless sbCfg names others.
func New(t *testing.T, sbCfg sandbox.Config, persistentRedis bool) *Env {
	t.Helper()
	return newEnv(t, sbCfg, persistentRedis, harness.StartNATS(t).URL())
}

// NewOnCluster is New on a three-node JetStream cluster; Vars sets
// STREAM_REPLICAS=3 so every stream is R3.
func NewOnCluster(t *testing.T, sbCfg sandbox.Config) *Env {
	t.Helper()
	c := harness.StartCluster(t, 3)
	e := newEnv(t, sbCfg, false, c.URLs())
	e.Cluster = c
	return e
}

func newEnv(t *testing.T, sbCfg sandbox.Config, persistentRedis bool, natsURL string) *Env {
	t.Helper()
	e := &Env{t: t, NATSURL: natsURL, Logs: &SyncBuffer{}}
	if persistentRedis {
		e.Redis = harness.StartPersistentRedis(t)
	} else {
		e.Redis = harness.StartRedis(t)
	}
	if sbCfg.Integrators == nil {
		sbCfg.Integrators = map[string]sandbox.Integrator{"costco": {APIKey: APIKey}}
	}
	sb, err := sandbox.Listen(sbCfg, "127.0.0.1:0", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sb.Close() })
	e.SB = sb
	e.CAFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(e.CAFile, sb.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	e.NC, err = nats.Connect(e.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.NC.Close)
	e.JS, _ = jetstream.New(e.NC)
	return e
}

// T is the test the system belongs to.
func (e *Env) T() *testing.T { return e.t }

// Vars is a complete worker environment for this system, plus extra.
func (e *Env) Vars(extra map[string]string) map[string]string {
	if e.CacheKey == "" {
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		e.CacheKey = base64.StdEncoding.EncodeToString(key)
	}
	v := map[string]string{
		"NATS_URL":             e.NATSURL,
		"REDIS_URL":            e.Redis.URL(),
		"CACHE_ENCRYPTION_KEY": e.CacheKey,
		"TTC_BASE_URL":         e.SB.TTCURL,
		"TTC_API_KEYS":         "costco=" + APIKey,
		"CYBS_BASE_URL":        e.SB.CybsURL,
		"CYBS_CA_FILE":         e.CAFile,
		"CYBS_SOLUTION_ID":     "ttctestpartner",
		"CYBS_TIMEOUT":         "3s",
		"CHARGE_LEASE":         "15s",
		"RESOLVE_DELAY":        "1s",
		"ACK_WAIT":             "5s",
		"DRAIN_TIMEOUT":        "5s",
		"HTTP_ADDR":            "127.0.0.1:0",
		"LOG_LEVEL":            "debug",
	}
	if e.Cluster != nil {
		v["STREAM_REPLICAS"] = "3"
	}
	for k, x := range extra {
		v[k] = x
	}
	return v
}

// Running is a started worker.
type Running struct {
	cancel context.CancelFunc
	done   chan error
	Addr   string
}

// Start runs a worker with these variables and hooks until Stop or the end
// of the test.
func (e *Env) Start(vars map[string]string, h worker.Hooks) *Running {
	e.t.Helper()
	cfg, err := worker.LoadConfig(func(k string) string { return vars[k] })
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	log := zerolog.New(e.Logs).Level(zerolog.DebugLevel).With().Timestamp().Logger()
	addr := make(chan string, 1)
	h.HTTPReady = func(a string) { addr <- a }
	w, err := worker.New(ctx, cfg, log, h)
	if err != nil {
		cancel()
		e.t.Fatal(err)
	}
	r := &Running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- w.Run(ctx) }()
	r.Addr = <-addr
	e.t.Cleanup(func() { r.Stop(e.t) })
	e.WaitFor("worker ready", 10*time.Second, func() bool {
		resp, err := http.Get("http://" + r.Addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return r
}

// Stop cancels the worker (as SIGTERM does) and returns how long it took
// to exit. Safe to call twice.
func (r *Running) Stop(t *testing.T) time.Duration {
	start := time.Now()
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("worker: %v", err)
		}
		r.done <- nil
	case <-time.After(30 * time.Second):
		t.Error("worker did not stop")
	}
	return time.Since(start)
}

// WaitFor polls cond until it holds or fails the test after timeout.
func (e *Env) WaitFor(what string, timeout time.Duration, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.t.Fatalf("timed out waiting for %s", what)
}

// NewIntent is a valid intent for merchant ttc_ttusas_m with reference
// "REF-"+id.
func NewIntent(id, card, amount string, capture bool) *intent.Intent {
	return &intent.Intent{
		Version: 1, IntentID: id, Integrator: "costco", MerchantID: "ttc_ttusas_m", BookingID: "B-" + id,
		Reference: "REF-" + id, Amount: amount, Currency: "USD", Capture: &capture,
		Card:   &intent.Card{Number: card, ExpirationMonth: "12", ExpirationYear: "2031", SecurityCode: "123"},
		BillTo: &intent.BillTo{FirstName: "John", LastName: "Doe", Address1: "1 Market St", Locality: "san francisco", AdministrativeArea: "CA", PostalCode: "94105", Country: "US", Email: "test@cybs.com"},
	}
}

// Publish publishes an intent with Nats-Msg-Id = intentId.
func (e *Env) Publish(in *intent.Intent) {
	e.t.Helper()
	b, _ := json.Marshal(in)
	e.PublishRaw(in.IntentID, in.MerchantID, b)
}

// PublishRaw publishes bytes to the merchant's intents subject.
func (e *Env) PublishRaw(msgID, merchant string, data []byte) {
	e.t.Helper()
	m := nats.NewMsg(streams.Intents(merchant))
	m.Data = data
	if msgID != "" {
		m.Header.Set(nats.MsgIdHdr, msgID)
	}
	var err error
	for range 50 { // the stream appears when the first worker starts
		if _, err = e.JS.PublishMsg(context.Background(), m); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.t.Fatalf("publish: %v", err)
}

// Results reads every result published so far, latest per intent.
func (e *Env) Results() map[string]intent.Result {
	e.t.Helper()
	out := map[string]intent.Result{}
	s, err := e.JS.Stream(context.Background(), streams.StreamResults)
	if err != nil {
		return out
	}
	info, _ := s.Info(context.Background())
	if info.State.Msgs == 0 {
		return out
	}
	c, err := s.OrderedConsumer(context.Background(), jetstream.OrderedConsumerConfig{})
	if err != nil {
		e.t.Fatal(err)
	}
	batch, err := c.FetchNoWait(int(info.State.Msgs))
	if err != nil {
		e.t.Fatal(err)
	}
	for m := range batch.Messages() {
		var r intent.Result
		if json.Unmarshal(m.Data(), &r) == nil {
			key := r.IntentID
			if key == "" {
				key = fmt.Sprintf("?%d", len(out))
			}
			out[key] = r
		}
	}
	return out
}

// DeadLetters reads every dead letter.
func (e *Env) DeadLetters() []jetstream.Msg {
	e.t.Helper()
	s, err := e.JS.Stream(context.Background(), streams.StreamDLQ)
	if err != nil {
		return nil
	}
	info, _ := s.Info(context.Background())
	if info.State.Msgs == 0 {
		return nil
	}
	c, _ := s.OrderedConsumer(context.Background(), jetstream.OrderedConsumerConfig{})
	batch, err := c.FetchNoWait(int(info.State.Msgs))
	if err != nil {
		e.t.Fatal(err)
	}
	var out []jetstream.Msg
	for m := range batch.Messages() {
		out = append(out, m)
	}
	return out
}

// ChargesByRef counts charges (live or not) per reference.
func ChargesByRef(l sandbox.Ledger) map[string]int {
	m := map[string]int{}
	for _, c := range l.Charges {
		m[c.Reference]++
	}
	return m
}

// CheckCallbacks: no reference has more than one live charge; every
// authorized result has exactly one callback, and no other result has one.
func (e *Env) CheckCallbacks(res map[string]intent.Result) {
	e.t.Helper()
	l := e.SB.Ledger()
	for ref, n := range l.LiveCharges() {
		if n > 1 {
			e.t.Errorf("%s has %d live charges", ref, n)
		}
	}
	for id, r := range res {
		if r.Authorized() {
			if n := l.CallbackCount(r.CyberSourceID); n != 1 {
				e.t.Errorf("%s (%s): %d callbacks", id, r.CyberSourceID, n)
			}
		} else if r.CyberSourceID != "" && l.CallbackCount(r.CyberSourceID) != 0 {
			e.t.Errorf("%s (%s) was not authorized but got a callback", id, r.Status)
		}
	}
}
