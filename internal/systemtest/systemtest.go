// Package systemtest is internal/rig for end-to-end tests: a rig per test
// (an embedded JetStream server or cluster, a real redis-server, the
// sandbox), workers started through their real wiring, and readers of
// results, dead letters and the sandbox ledger, each with one long-lived
// consumer; failures fail the test and t.Cleanup stops everything.
package systemtest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ttcpay/payflow/internal/intent"
	"github.com/ttcpay/payflow/internal/rig"
	"github.com/ttcpay/payflow/internal/sandbox"
	"github.com/ttcpay/payflow/internal/worker"
)

// APIKey is the sandbox API key of integrator "costco".
const APIKey = rig.APIKeyDefault

// Env is one running system. The rig's fields (NATSURL, Redis, Sentinel,
// SB, CAFile, NC, JS, Cluster, CacheKey) are reached through it.
type Env struct {
	*rig.Rig
	t *testing.T
	// Logs collects the in-process workers' logs.
	Logs *SyncBuffer
}

// SyncBuffer collects the workers' logs.
type SyncBuffer = rig.SyncBuffer

// ResultMsg is one message of the results stream.
type ResultMsg = rig.ResultMsg

// New starts NATS, Redis (persistent: AOF fsynced on every write) and the
// sandbox, with integrator "costco" (key APIKey) unless sbCfg names others.
func New(t *testing.T, sbCfg sandbox.Config, persistentRedis bool) *Env {
	t.Helper()
	kind := rig.RedisSingle
	if persistentRedis {
		kind = rig.RedisPersistent
	}
	return Start(t, rig.Options{Redis: kind, Sandbox: sbCfg})
}

// NewOnCluster is New on a three-node JetStream cluster; Vars sets
// STREAM_REPLICAS=3 so every stream is R3.
func NewOnCluster(t *testing.T, sbCfg sandbox.Config) *Env {
	t.Helper()
	return Start(t, rig.Options{NATS: rig.NATSCluster, Sandbox: sbCfg})
}

// NewWithNATS is New against a NATS server of the test's own (one with
// users and TLS, say); the Env's own connection (NC, JS: Results,
// DeadLetters, Publish) uses opts.
func NewWithNATS(t *testing.T, sbCfg sandbox.Config, natsURL string, opts ...nats.Option) *Env {
	t.Helper()
	return Start(t, rig.Options{NATS: rig.NATSExternal, NATSURL: natsURL, NATSOptions: opts, Sandbox: sbCfg})
}

// Start starts a rig with these options (Dir: the test's temporary
// directory) for the test.
func Start(t *testing.T, o rig.Options) *Env {
	t.Helper()
	o.Dir = t.TempDir()
	r, err := rig.Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return &Env{Rig: r, t: t, Logs: &SyncBuffer{}}
}

// T is the test the system belongs to.
func (e *Env) T() *testing.T { return e.t }

// Vars is a complete worker environment for this system (rig.WorkerEnv
// with the tuning of end-to-end tests, rig.Fast), plus extra.
func (e *Env) Vars(extra map[string]string) map[string]string {
	return e.WorkerEnv(rig.Fast, extra)
}

// Running is a started worker.
type Running struct{ *rig.Worker }

// Start runs a worker in this process with these variables and hooks until
// Stop or the end of the test, and waits until it is ready.
func (e *Env) Start(vars map[string]string, h worker.TestConfig) *Running {
	e.t.Helper()
	w, err := e.StartWorker(context.Background(), vars, h, e.Logs)
	if err != nil {
		e.t.Fatal(err)
	}
	r := &Running{w}
	e.t.Cleanup(func() { r.Stop(e.t) })
	return r
}

// Stop cancels the worker (as SIGTERM does) and returns how long it took
// to exit. Safe to call twice.
func (r *Running) Stop(t *testing.T) time.Duration {
	took, err := r.Worker.Stop()
	if err != nil {
		t.Errorf("worker: %v", err)
	}
	return took
}

// WaitFor polls cond until it holds or fails the test after timeout.
func (e *Env) WaitFor(what string, timeout time.Duration, cond func() bool) {
	e.t.Helper()
	if err := rig.Await(context.Background(), what, timeout, cond); err != nil {
		e.t.Fatal(err)
	}
}

// NewIntent is a valid intent for merchant ttc_ttusas_m with reference
// "REF-"+id.
func NewIntent(id, card, amount string, capture bool) *intent.Intent {
	return rig.NewIntent(id, card, amount, capture)
}

// Publish publishes an intent with Nats-Msg-Id = intentId.
func (e *Env) Publish(in *intent.Intent) {
	e.t.Helper()
	if err := e.Rig.Publish(context.Background(), in, 5*time.Second); err != nil {
		e.t.Fatal(err)
	}
}

// PublishRaw publishes bytes to the merchant's intents subject.
func (e *Env) PublishRaw(msgID, merchant string, data []byte) {
	e.t.Helper()
	if err := e.PublishMsg(context.Background(), rig.RawMsg(msgID, merchant, data), 5*time.Second); err != nil {
		e.t.Fatal(err)
	}
}

// Results reads every result published so far, latest per intent.
func (e *Env) Results() map[string]intent.Result {
	e.t.Helper()
	out, err := e.Rig.Results(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// AllResults reads every result published so far, oldest first, with the
// subject each was published on (Results keeps only the latest per intent,
// whatever the merchant).
func (e *Env) AllResults() []ResultMsg {
	e.t.Helper()
	out, err := e.Rig.AllResults(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// DeadLetters reads every dead letter.
func (e *Env) DeadLetters() []jetstream.Msg {
	e.t.Helper()
	out, err := e.Rig.DeadLetters(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// ChargesByRef counts charges (live or not) per reference.
func ChargesByRef(l sandbox.Ledger) map[string]int { return rig.ChargesByRef(l) }

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
