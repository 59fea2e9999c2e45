// Package rig runs the whole system on one machine, outside `go test` as
// well as inside it: NATS JetStream (one embedded server or a three-node
// cluster), Redis (one redis-server, persistent or not, a Sentinel set-up,
// an in-process emulator, or one given by URL), the TTC/CyberSource sandbox,
// and workers (in process through worker.New, or as OS processes through
// workerproc). It builds the worker environment in one place (WorkerEnv),
// makes intents (NewIntent), publishes them, and reads results, dead letters
// and the sandbox ledger, each stream through one long-lived consumer.
//
// internal/systemtest wraps it for tests; cmd/chaos, cmd/bench and cmd/demo
// run on it as named phases (Phases).
package rig

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ttcpay/payflow/internal/harness"
	"github.com/ttcpay/payflow/internal/intent"
	"github.com/ttcpay/payflow/internal/sandbox"
	"github.com/ttcpay/payflow/internal/streams"
	"github.com/ttcpay/payflow/internal/worker"
	"github.com/ttcpay/payflow/internal/workerproc"
)

// NATSKind picks the JetStream set-up.
type NATSKind int

const (
	// NATSSingle is one embedded server.
	NATSSingle NATSKind = iota
	// NATSCluster is three embedded servers in a cluster; WorkerEnv sets
	// STREAM_REPLICAS=3.
	NATSCluster
	// NATSExternal is a server the caller runs (Options.NATSURL, one with
	// users and TLS, say); the rig's own connection uses
	// Options.NATSOptions.
	NATSExternal
)

// RedisKind picks the Redis set-up.
type RedisKind int

const (
	// RedisSingle is one redis-server without persistence.
	RedisSingle RedisKind = iota
	// RedisPersistent is one redis-server with an append-only file fsynced
	// on every write: a kill and restart keeps every acknowledged write.
	RedisPersistent
	// RedisSentinel is a primary, a replica and three sentinels
	// (harness.Sentinel); the workers connect through the sentinels.
	RedisSentinel
	// RedisEmulated is an in-process emulator (miniredis) for a machine
	// without redis-server; WorkerEnv sets TOKEN_CACHE=memory.
	RedisEmulated
	// RedisURL is a Redis the caller runs (Options.RedisURL).
	RedisURL
)

// APIKeyDefault is the sandbox API key of integrator "costco" unless
// Options.APIKey names another.
const APIKeyDefault = "e2e-api-key"

// Options configure a rig. Zero values mean the defaults.
type Options struct {
	// Dir holds every file of the run (stores, logs, the CA). Required.
	Dir   string
	NATS  NATSKind
	Redis RedisKind
	// RedisURL is the Redis of RedisURL.
	RedisURL string
	// NATSURL and NATSOptions: the server of NATSExternal.
	NATSURL     string
	NATSOptions []nats.Option
	// Sentinel configures RedisSentinel.
	Sentinel harness.SentinelOptions
	// Sandbox configures the sandbox; its integrators default to "costco"
	// with APIKey.
	Sandbox sandbox.Config
	// APIKey of integrator "costco". Defaults to APIKeyDefault.
	APIKey string
	// SandboxProcess runs the sandbox in its own process (the caller's
	// main must hand children to workerproc.RunChild, as for StartProc):
	// SB is nil then, and SBProc, LedgerE and Counts reach it. The bench
	// uses it so that the sandbox's TLS server is not in its process.
	// Options.Sandbox's Now and Seed do not cross to the process.
	SandboxProcess bool
}

// Rig is one running system. Close stops everything it started.
type Rig struct {
	Dir     string
	NATSURL string
	NATS    *harness.NATS    // NATSSingle
	Cluster *harness.Cluster // NATSCluster
	// Redis is the single redis-server (RedisSingle, RedisPersistent).
	Redis *harness.Redis
	// Sentinel is the Sentinel set-up (RedisSentinel).
	Sentinel *harness.Sentinel
	// RedisURL is the Redis of every kind but RedisSentinel.
	RedisURL string
	// SB is the in-process sandbox (a test may replace it before it
	// starts workers); SBProc the sandbox's process
	// (Options.SandboxProcess).
	SB     *sandbox.Server
	SBProc *workerproc.Sandbox
	CAFile string
	APIKey string
	// CacheKey is the CACHE_ENCRYPTION_KEY that WorkerEnv hands out.
	CacheKey string
	NC       *nats.Conn
	JS       jetstream.JetStream

	// Readers of the results and dead-letter streams, each with one
	// long-lived ordered consumer.
	ResultsReader, DeadLetterReader *Reader

	emulated bool
	mu       sync.Mutex
	closers  []func()
}

// Start starts NATS, Redis and the sandbox. On an error it stops what it
// had started.
func Start(ctx context.Context, o Options) (_ *Rig, err error) {
	if o.Dir == "" {
		return nil, errors.New("rig: Options.Dir is required")
	}
	r := &Rig{Dir: o.Dir, APIKey: o.APIKey, CacheKey: randomB64(32)}
	if r.APIKey == "" {
		r.APIKey = APIKeyDefault
	}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	switch o.NATS {
	case NATSCluster:
		if r.Cluster, err = harness.NewCluster(filepath.Join(o.Dir, "nats"), 3); err != nil {
			return nil, err
		}
		r.onClose(r.Cluster.Shutdown)
		r.NATSURL = r.Cluster.URLs()
	case NATSExternal:
		if o.NATSURL == "" {
			return nil, errors.New("rig: NATSExternal without Options.NATSURL")
		}
		r.NATSURL = o.NATSURL
	default:
		if r.NATS, err = harness.NewNATS(filepath.Join(o.Dir, "nats")); err != nil {
			return nil, err
		}
		r.onClose(r.NATS.Close)
		r.NATSURL = r.NATS.URL()
	}
	switch o.Redis {
	case RedisSingle, RedisPersistent:
		if r.Redis, err = harness.NewRedis(filepath.Join(o.Dir, "redis"), o.Redis == RedisPersistent); err != nil {
			return nil, err
		}
		r.onClose(r.Redis.Stop)
		r.RedisURL = r.Redis.URL()
	case RedisSentinel:
		if r.Sentinel, err = harness.NewSentinel(filepath.Join(o.Dir, "redis"), o.Sentinel); err != nil {
			return nil, err
		}
		r.onClose(r.Sentinel.Close)
	case RedisEmulated:
		mr, err := miniredis.Run()
		if err != nil {
			return nil, err
		}
		r.onClose(mr.Close)
		r.RedisURL, r.emulated = "redis://"+mr.Addr(), true
	case RedisURL:
		if o.RedisURL == "" {
			return nil, errors.New("rig: RedisURL without Options.RedisURL")
		}
		r.RedisURL = o.RedisURL
	default:
		return nil, fmt.Errorf("rig: unknown Redis kind %d", o.Redis)
	}
	sbCfg := o.Sandbox
	if sbCfg.Integrators == nil {
		sbCfg.Integrators = map[string]sandbox.Integrator{"costco": {APIKey: r.APIKey}}
	}
	r.CAFile = filepath.Join(o.Dir, "sandbox-ca.pem")
	if o.SandboxProcess {
		spec := workerproc.SandboxSpec{Integrators: sbCfg.Integrators, Faults: sbCfg.Faults, CAFile: r.CAFile}
		if r.SBProc, err = workerproc.StartSandbox(ctx, spec, filepath.Join(o.Dir, "sandbox.log")); err != nil {
			return nil, err
		}
		r.onClose(r.SBProc.Close)
	} else {
		if r.SB, err = sandbox.Listen(sbCfg, "127.0.0.1:0", "127.0.0.1:0"); err != nil {
			return nil, err
		}
		r.onClose(func() { _ = r.SB.Close() })
		if err = os.WriteFile(r.CAFile, r.SB.CACertPEM(), 0o600); err != nil {
			return nil, err
		}
	}
	if r.NC, err = nats.Connect(r.NATSURL, append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(100 * time.Millisecond)}, o.NATSOptions...)...); err != nil {
		return nil, err
	}
	r.onClose(r.NC.Close)
	if r.JS, err = jetstream.New(r.NC); err != nil {
		return nil, err
	}
	r.ResultsReader = NewReader(r.JS, streams.StreamResults)
	r.DeadLetterReader = NewReader(r.JS, streams.StreamDLQ)
	if err = ctx.Err(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Rig) onClose(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closers = append(r.closers, f)
}

// Close stops what Start and the workers started, last first. Safe to call
// twice.
func (r *Rig) Close() {
	r.mu.Lock()
	cs := r.closers
	r.closers = nil
	r.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i]()
	}
}

// Fast is the worker tuning of end-to-end tests: short timeouts, lease and
// resolution delay, so that faults resolve within a test's patience.
var Fast = map[string]string{
	"CYBS_TIMEOUT":  "3s",
	"CHARGE_LEASE":  "15s",
	"RESOLVE_DELAY": "1s",
	"ACK_WAIT":      "5s",
	"DRAIN_TIMEOUT": "5s",
	"LOG_LEVEL":     "debug",
}

// WorkerEnv is a complete worker environment for this rig: where NATS,
// Redis (a URL, or the sentinels with the master name and passwords), TTC
// and CyberSource are, the keys, STREAM_REPLICAS=3 on a cluster, TOKEN_CACHE
// =memory with the emulator, and HTTP on a free port. Each of extra, in
// order, adds to it or overrides it (an empty value unsets in effect).
func (r *Rig) WorkerEnv(extra ...map[string]string) map[string]string {
	ttcURL, cybsURL := r.sandboxURLs()
	v := map[string]string{
		"NATS_URL":             r.NATSURL,
		"CACHE_ENCRYPTION_KEY": r.CacheKey,
		"TTC_BASE_URL":         ttcURL,
		"TTC_API_KEYS":         "costco=" + r.APIKey,
		"CYBS_BASE_URL":        cybsURL,
		"CYBS_CA_FILE":         r.CAFile,
		"CYBS_SOLUTION_ID":     "ttctestpartner",
		"HTTP_ADDR":            "127.0.0.1:0",
	}
	if s := r.Sentinel; s != nil {
		v["REDIS_ADDRS"] = strings.Join(s.SentinelAddrs(), ",")
		v["REDIS_MASTER_NAME"] = s.MasterName()
		if p := s.Password(); p != "" {
			v["REDIS_PASSWORD"] = p
		}
		if p := s.SentinelPassword(); p != "" {
			v["REDIS_SENTINEL_PASSWORD"] = p
		}
	} else {
		v["REDIS_URL"] = r.RedisURL
	}
	if r.emulated {
		v["TOKEN_CACHE"] = "memory"
	}
	if r.Cluster != nil {
		v["STREAM_REPLICAS"] = "3"
	}
	for _, m := range extra {
		for k, x := range m {
			v[k] = x
		}
	}
	return v
}

// EnvList turns a worker environment into KEY=value lines, sorted, for a
// process: with PATH, HOME, TMPDIR and the Go runtime's variables of this
// process, and nothing else of it (a REDIS_URL in the caller's shell must
// not reach a worker that talks to sentinels).
func EnvList(vars map[string]string) []string {
	var out []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "GORACE", "GOTRACEBACK", "GOCOVERDIR", "GOMAXPROCS"} {
		if x, ok := os.LookupEnv(k); ok {
			if _, set := vars[k]; !set {
				out = append(out, k+"="+x)
			}
		}
	}
	for k, x := range vars {
		out = append(out, k+"="+x)
	}
	sort.Strings(out)
	return out
}

// Worker is a worker running in this process.
type Worker struct {
	cancel context.CancelFunc
	done   chan error
	// Addr is the address its HTTP server listens on.
	Addr string

	mu      sync.Mutex
	stopped bool
	err     error
}

// StartWorker runs a worker in this process with these variables and test
// hooks until Stop or Close, logging JSON to log, and returns once its
// /readyz answers 200.
func (r *Rig) StartWorker(ctx context.Context, vars map[string]string, h worker.TestConfig, log io.Writer) (*Worker, error) {
	cfg, err := worker.ConfigFromEnv(func(k string) string { return vars[k] })
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	addr := make(chan string, 1)
	h.HTTPReady = func(a string) { addr <- a }
	cfg.Test = h
	w, err := worker.New(wctx, cfg, zerolog.New(log).Level(zerolog.DebugLevel).With().Timestamp().Logger())
	if err != nil {
		cancel()
		return nil, err
	}
	rw := &Worker{cancel: cancel, done: make(chan error, 1)}
	go func() { rw.done <- w.Run(wctx) }()
	select {
	case rw.Addr = <-addr:
	case err := <-rw.done:
		cancel()
		return nil, fmt.Errorf("worker exited at start: %w", err)
	}
	r.onClose(func() { _, _ = rw.Stop() })
	if err := Await(ctx, "worker ready", 20*time.Second, func() bool { return ready(rw.Addr) }); err != nil {
		_, _ = rw.Stop()
		return nil, err
	}
	return rw, nil
}

func ready(addr string) bool {
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Stop cancels the worker (as SIGTERM does), waits up to 30 s for it to
// drain, and returns how long that took and the worker's error. Safe to
// call twice: later calls return the first result.
func (w *Worker) Stop() (time.Duration, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return 0, w.err
	}
	w.stopped = true
	start := time.Now()
	w.cancel()
	select {
	case w.err = <-w.done:
	case <-time.After(30 * time.Second):
		w.err = errors.New("worker did not stop within 30 s")
	}
	return time.Since(start), w.err
}

// StartProc starts a worker as an OS process (the running binary
// re-executed, see workerproc) with these variables, logging to
// Dir/<name>.log. The caller's main must hand a workerproc child to
// workerproc.RunChild. Close kills it.
func (r *Rig) StartProc(name string, vars map[string]string) (*workerproc.Proc, error) {
	p := &workerproc.Proc{Name: name, Env: EnvList(vars), LogPath: filepath.Join(r.Dir, name+".log")}
	if err := p.Start(); err != nil {
		return nil, err
	}
	r.onClose(p.Kill)
	return p, nil
}

// WaitReady waits until the worker at addr answers /readyz with 200.
func WaitReady(ctx context.Context, addr string, timeout time.Duration) error {
	return Await(ctx, "worker "+addr+" ready", timeout, func() bool { return ready(addr) })
}

// WaitStreams waits until the workers have created the streams.
func (r *Rig) WaitStreams(ctx context.Context, timeout time.Duration) error {
	return Await(ctx, "streams created by the workers", timeout, func() bool { return streams.Check(ctx, r.JS) == nil })
}

// Await polls cond every 50 ms until it holds; it fails after timeout or
// when ctx ends.
func Await(ctx context.Context, what string, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s", timeout, what)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// NewIntent is a valid intent of integrator "costco" for merchant
// ttc_ttusas_m, with booking "B-"+id and reference "REF-"+id. Callers change
// the fields they need.
func NewIntent(id, card, amount string, capture bool) *intent.Intent {
	return &intent.Intent{
		Version: 1, IntentID: id, Integrator: "costco", MerchantID: "ttc_ttusas_m", BookingID: "B-" + id,
		Reference: "REF-" + id, Amount: amount, Currency: "USD", Capture: &capture,
		Card:   &intent.Card{Number: card, ExpirationMonth: "12", ExpirationYear: "2031", SecurityCode: "123"},
		BillTo: &intent.BillTo{FirstName: "John", LastName: "Doe", Address1: "1 Market St", Locality: "san francisco", AdministrativeArea: "CA", PostalCode: "94105", Country: "US", Email: "test@cybs.com"},
	}
}

// IntentMsg is the message that publishes an intent: on its merchant's
// subject, with Nats-Msg-Id = intentId.
func IntentMsg(in *intent.Intent) *nats.Msg {
	b, _ := json.Marshal(in)
	return RawMsg(in.IntentID, in.MerchantID, b)
}

// RawMsg is a message of bytes to a merchant's intents subject, with
// Nats-Msg-Id msgID unless empty.
func RawMsg(msgID, merchant string, data []byte) *nats.Msg {
	m := nats.NewMsg(streams.Intents(merchant))
	m.Data = data
	if msgID != "" {
		m.Header.Set(nats.MsgIdHdr, msgID)
	}
	return m
}

// Publish publishes an intent, retrying for up to patience (the stream
// appears when the first worker starts; a cluster node may be restarting).
func (r *Rig) Publish(ctx context.Context, in *intent.Intent, patience time.Duration) error {
	return r.PublishMsg(ctx, IntentMsg(in), patience)
}

// PublishMsg publishes m, retrying every 100 ms for up to patience.
func (r *Rig) PublishMsg(ctx context.Context, m *nats.Msg, patience time.Duration) error {
	deadline := time.Now().Add(patience)
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := r.JS.PublishMsg(pctx, m)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("publish to %s: %w", m.Subject, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Ledger is the sandbox's ledger: the ground truth of what CyberSource
// and TTC saw. In-process sandbox only; with Options.SandboxProcess use
// LedgerE.
func (r *Rig) Ledger() sandbox.Ledger { return r.SB.Ledger() }

// sandboxURLs are the TTC and CyberSource URLs of the sandbox now in use:
// read when asked, since a test may swap SB for a differently configured
// sandbox after Start.
func (r *Rig) sandboxURLs() (ttc, cybs string) {
	if r.SB != nil {
		return r.SB.TTCURL, r.SB.CybsURL
	}
	return r.SBProc.TTCURL, r.SBProc.CybsURL
}

// LedgerE is the ledger of either sandbox (in process or its own process).
func (r *Rig) LedgerE(ctx context.Context) (sandbox.Ledger, error) {
	if r.SB != nil {
		return r.SB.Ledger(), nil
	}
	return r.SBProc.Admin.Ledger(ctx)
}

// Counts is how many charges and callbacks either sandbox has recorded.
func (r *Rig) Counts(ctx context.Context) (charges, callbacks int, err error) {
	if r.SB != nil {
		charges, callbacks = r.SB.Counts()
		return charges, callbacks, nil
	}
	return r.SBProc.Admin.Counts(ctx)
}

// SyncBuffer collects in-process workers' logs; safe for concurrent use.
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

func randomB64(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// RandomB64 is n random bytes in standard base64 (keys, API keys).
func RandomB64(n int) string { return randomB64(n) }
