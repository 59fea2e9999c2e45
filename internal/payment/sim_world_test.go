package payment_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/ttcpay/payflow/internal/consume"
	"github.com/ttcpay/payflow/internal/deadletter"
	"github.com/ttcpay/payflow/internal/idempotency"
	"github.com/ttcpay/payflow/internal/intent"
	"github.com/ttcpay/payflow/internal/payment"
	"github.com/ttcpay/payflow/internal/redelivery"
	"github.com/ttcpay/payflow/internal/streams"
	"github.com/ttcpay/payflow/internal/tokencache"
	"github.com/ttcpay/payflow/internal/ttc"
)

// Timings of the simulated deployment (production values, except where a
// scenario changes them).
const (
	simAckWait       = 60 * time.Second
	simLease         = 2 * time.Minute
	simResolveDelay  = 60 * time.Second
	simClientTimeout = 30 * time.Second
	simDupWindow     = 10 * time.Minute
)

// pod is one worker process.
type pod struct {
	name        string
	slots, busy int
	dead        bool
	frozenUntil time.Time
	skew        time.Duration
	consumer    *consume.Payments
}

func (p *pod) frozenAt(t time.Time) bool { return t.Before(p.frozenUntil) }

// world is one simulated system.
type world struct {
	cfg   simConfig
	s     *scheduler
	store *idempotency.Memory
	js    *jsModel
	cs    *csModel
	pods  []*pod
	up    *upstream
	stats simStats
	// vault is the dead-letter card key every pod has, as production with
	// DLQ_CARD_PUBLIC_KEY: letters carry the card sealed (no CVV), and a
	// replay of one is decrypted.
	vault *simVault
}

// simVault is the dead-letter card key: Encrypt seals a card (as the
// scrubber's Sealer), Decrypt opens it (as the workers' card keyring).
type simVault struct {
	cards map[string]intent.Card
}

func (v *simVault) Encrypt(c intent.Card) (string, error) {
	compact := fmt.Sprintf("eyJhbGciOiJSU0EtT0FFUC0yNTYiLCJraWQiOiJkbHEifQ.c2ltLTA.aXY.Y2lwaGVy%d.dGFn", len(v.cards))
	v.cards[compact] = c
	return compact, nil
}

func (v *simVault) Decrypt(compact string) (*intent.Card, error) {
	c, ok := v.cards[compact]
	if !ok {
		return nil, fmt.Errorf("not sealed by this vault")
	}
	return &c, nil
}

type simStats struct {
	crashes, freezes, longFreezes, redisErrors, ambiguous, publishErrors, lostAcks, failovers, lostKeys, deliveries int
	notReplicated                                                                                                   int
}

func (st simStats) faults() int {
	return st.crashes + st.freezes + st.redisErrors + st.ambiguous + st.publishErrors + st.lostAcks + st.failovers + st.notReplicated
}

// faultsOn: faults are injected only during the chaos period; afterwards
// the system must settle.
func (w *world) faultsOn() bool { return w.s.now.Before(w.cfg.start.Add(w.cfg.faultsFor)) }

// step is called by every modelled collaborator at the start of a call: it
// logs the call, may crash or freeze the calling pod, and yields.
func (w *world) step(format string, args ...any) {
	t := w.s.cur
	w.s.logf(format, args...)
	if t == nil {
		return
	}
	if w.faultsOn() && !t.killed {
		switch {
		case w.s.chance(w.cfg.crash):
			w.crash(t.pod)
		case w.s.chance(w.cfg.freeze):
			d := w.s.between(time.Second, 20*time.Second)
			if w.s.chance(0.3) {
				d = w.s.between(simLease, simLease+3*time.Minute) // past the lease
				w.stats.longFreezes++
			}
			w.freeze(t.pod, d)
		}
	}
	w.s.yield(t)
}

// crash kills every task of a pod; it restarts a little later.
func (w *world) crash(p *pod) {
	w.stats.crashes++
	w.s.logf("CRASH %s", p.name)
	p.dead = true
	for _, t := range w.s.tasks {
		if t.pod == p {
			w.s.kill(t)
		}
	}
	w.s.after(w.s.between(time.Second, 30*time.Second), func() {
		p.dead, p.busy = false, 0
		w.s.logf("restart %s", p.name)
	})
}

// freeze stops a pod (a GC pause, a VM stall, SIGSTOP): its tasks do not
// run and its messages get no InProgress, so JetStream redelivers them
// after AckWait.
func (w *world) freeze(p *pod, d time.Duration) {
	w.stats.freezes++
	w.s.logf("FREEZE %s for %s", p.name, d)
	p.frozenUntil = w.s.now.Add(d)
	for _, m := range w.js.intents {
		if m.inflight && m.holder != nil && m.holder.pod == p {
			w.js.expireLater(m, m.holder)
		}
	}
}

// newPod builds one worker process: the real payments consumer over the
// real payment logic, on the modelled collaborators.
func (w *world) newPod(i int) *pod {
	p := &pod{name: fmt.Sprintf("pod-%d", i), slots: w.cfg.slots}
	if w.cfg.skew > 0 {
		p.skew = w.s.between(-w.cfg.skew, w.cfg.skew)
	}
	w.buildConsumer(p, func(*payment.Config) {})
	return p
}

// rebuildPods rebuilds the pods' processes as newPod does, each with its
// own configuration changes (a rolling update, say).
func (w *world) rebuildPods(change func(i int, c *payment.Config)) {
	for i, p := range w.pods {
		w.buildConsumer(p, func(c *payment.Config) { change(i, c) })
	}
}

func (w *world) buildConsumer(p *pod, change func(c *payment.Config)) {
	now := func() time.Time { return w.s.now.Add(p.skew) }
	owners := 0
	cfg := payment.Config{
		SolutionID: "sim", Lease: simLease, ResolveDelay: w.cfg.resolveDelay,
		Retry: redelivery.Backoff{Initial: time.Second, Max: time.Minute, Multiplier: 2},
		Now:   now,
		NewOwner: func() string {
			owners++
			return fmt.Sprintf("%s#%d", p.name, owners)
		},
		Cards: w.vault,
	}
	change(&cfg)
	proc := payment.New(cfg, &simCreds{w: w}, w.cs, &simStore{w: w}, zerolog.New(io.Discard))
	p.consumer = consume.NewPayments(consume.PaymentsConfig{KeepAlive: 24 * time.Hour, Now: now, History: w.store,
		Scrub: deadletter.NewScrubber(w.vault),
		Retry: redelivery.Backoff{Initial: time.Second, Max: time.Minute, Multiplier: 2}},
		proc, &simPublisher{w: w}, zerolog.New(io.Discard), consume.NewMetrics(prometheus.NewRegistry()))
}

// The JetStream model.

type jsMsg struct {
	seq         uint64
	subject     string
	data        []byte
	header      nats.Header
	published   time.Time
	deleted     bool
	inflight    bool
	availableAt time.Time
	deliveries  uint64
	holder      *simDelivery
}

type simDelivery struct {
	m    *jsMsg
	n    uint64
	pod  *pod
	task *task
}

type stored struct {
	subject string
	msgID   string
	header  nats.Header
	data    []byte
	at      time.Time
}

type jsModel struct {
	w        *world
	seq      uint64
	intents  []*jsMsg
	results  []stored
	callback []stored
	dlq      []stored
	dedup    map[string]time.Time // stream/msgID → when
}

// publish stores a message on its stream, deduplicated by Nats-Msg-Id inside
// the duplicate window; it reports a duplicate.
func (js *jsModel) publish(m *nats.Msg) (dup bool) {
	stream := strings.SplitN(strings.TrimPrefix(m.Subject, "payments."), ".", 2)[0]
	id := m.Header.Get(nats.MsgIdHdr)
	if id != "" {
		key := stream + "/" + id
		if at, ok := js.dedup[key]; ok && js.w.s.now.Sub(at) < simDupWindow {
			return true
		}
		js.dedup[key] = js.w.s.now
	}
	st := stored{subject: m.Subject, msgID: id, header: m.Header, data: m.Data, at: js.w.s.now}
	switch stream {
	case "intents":
		js.seq++
		js.intents = append(js.intents, &jsMsg{seq: js.seq, subject: m.Subject, data: m.Data, header: m.Header,
			published: js.w.s.now, availableAt: js.w.s.now})
	case "results":
		js.results = append(js.results, st)
	case "callbacks":
		js.callback = append(js.callback, st)
	case "dlq":
		js.dlq = append(js.dlq, st)
	}
	return false
}

// nextAvailable is when the next queued message can be delivered.
// A message already due that no pod could take waits for a frozen pod to
// thaw (a crashed one restarts on a timer; a busy one frees its slot when a
// task ends).
func (js *jsModel) nextAvailable() (time.Time, bool) {
	now := js.w.s.now
	var next time.Time
	ok := false
	for _, m := range js.intents {
		if !m.deleted && !m.inflight && (!ok || m.availableAt.Before(next)) {
			next, ok = m.availableAt, true
		}
	}
	if !ok || next.After(now) {
		return next, ok
	}
	ok = false
	for _, p := range js.w.pods {
		if !p.dead && p.frozenAt(now) && (!ok || p.frozenUntil.Before(next)) {
			next, ok = p.frozenUntil, true
		}
	}
	return next, ok
}

// dispatch hands available messages to pods with a free slot.
func (js *jsModel) dispatch() {
	w := js.w
	for _, m := range js.intents {
		if m.deleted || m.inflight || m.availableAt.After(w.s.now) {
			continue
		}
		var free []*pod
		for _, p := range w.pods {
			if !p.dead && !p.frozenAt(w.s.now) && p.busy < p.slots {
				free = append(free, p)
			}
		}
		if len(free) == 0 {
			return
		}
		p := free[w.s.rng.Intn(len(free))]
		m.deliveries++
		m.inflight = true
		d := &simDelivery{m: m, n: m.deliveries, pod: p}
		m.holder = d
		p.busy++
		w.stats.deliveries++
		name := fmt.Sprintf("%s/%s#%d", p.name, intentIDOf(m), d.n)
		t := w.s.spawn(name, p, func(t *task) {
			p.consumer.Handle(context.Background(), &simMsg{w: w, d: d})
		})
		d.task = t
		t.onDeath = func() { js.expireLater(m, d) }
		// When the task ends its slot is free again; a message it left
		// neither acked nor nak'ed waits out the ack wait.
		t.onExit = func() {
			if !t.killed && p.busy > 0 {
				p.busy--
			}
			if !t.killed && m.inflight && m.holder == d {
				js.expireLater(m, d)
			}
		}
	}
}

// expireLater redelivers m after AckWait if delivery d still holds it and
// nobody kept it alive (its task died or its pod froze).
func (js *jsModel) expireLater(m *jsMsg, d *simDelivery) {
	w := js.w
	w.s.after(simAckWait, func() {
		if m.deleted || !m.inflight || m.holder != d {
			return
		}
		if !d.pod.dead && !d.pod.frozenAt(w.s.now) && js.stillWorking(d) {
			return // kept alive by InProgress
		}
		w.s.logf("ack wait over: %s delivery %d redelivered", intentIDOf(m), d.n)
		m.inflight, m.holder, m.availableAt = false, nil, w.s.now
	})
}

// stillWorking: the delivery's task is alive.
func (js *jsModel) stillWorking(d *simDelivery) bool {
	return d.task != nil && !d.task.killed && d.task.state != finished
}

func intentIDOf(m *jsMsg) string {
	if id := m.header.Get(nats.MsgIdHdr); id != "" {
		return id
	}
	return fmt.Sprintf("seq%d", m.seq)
}

// simMsg is one delivery as the consumer sees it.
type simMsg struct {
	w *world
	d *simDelivery
}

var _ jetstream.Msg = (*simMsg)(nil)

func (m *simMsg) Metadata() (*jetstream.MsgMetadata, error) {
	return &jetstream.MsgMetadata{NumDelivered: m.d.n, Sequence: jetstream.SequencePair{Stream: m.d.m.seq}, Timestamp: m.d.m.published}, nil
}
func (m *simMsg) Data() []byte         { return m.d.m.data }
func (m *simMsg) Headers() nats.Header { return m.d.m.header }
func (m *simMsg) Subject() string      { return m.d.m.subject }
func (m *simMsg) Reply() string        { return "" }

// Ack removes the message, even from a stale delivery: that is what
// JetStream does (an ack names the stream sequence; measured on
// nats-server 2.15 with a work-queue stream).
func (m *simMsg) Ack() error {
	w := m.w
	w.step("ack %s delivery %d", intentIDOf(m.d.m), m.d.n)
	if w.faultsOn() && w.s.chance(w.cfg.failoverAtAck) {
		lost := w.store.Failover()
		w.stats.failovers++
		w.stats.lostKeys += lost
		w.s.logf("REDIS FAILOVER before the ack: %d keys lost their last writes", lost)
		w.crash(m.d.pod)
		w.s.yield(w.s.cur) // the crashed task exits here
	}
	if w.faultsOn() && w.s.chance(w.cfg.lostAck) {
		w.stats.lostAcks++
		w.s.logf("ack lost")
		return nil
	}
	if m.d.m.holder != m.d {
		w.s.logf("STALE ack of delivery %d removes the message", m.d.n)
	}
	m.d.m.deleted, m.d.m.inflight = true, false
	return nil
}

// NakWithDelay makes the message available again after delay, even from a
// stale delivery (JetStream then redelivers it while another holds it).
func (m *simMsg) NakWithDelay(delay time.Duration) error {
	w := m.w
	w.step("nak %s delivery %d +%s", intentIDOf(m.d.m), m.d.n, delay)
	if m.d.m.deleted {
		return nil
	}
	m.d.m.inflight, m.d.m.holder, m.d.m.availableAt = false, nil, w.s.now.Add(delay)
	return nil
}

func (m *simMsg) InProgress() error               { return nil }
func (m *simMsg) DoubleAck(context.Context) error { panic("simMsg: DoubleAck not used") }
func (m *simMsg) Nak() error {
	panic("simMsg: Nak burns MaxDeliver; the consumer must use NakWithDelay")
}
func (m *simMsg) Term() error                 { panic("simMsg: Term not used") }
func (m *simMsg) TermWithReason(string) error { panic("simMsg: Term not used") }

// simPublisher publishes through the model.
type simPublisher struct{ w *world }

func (p *simPublisher) PublishMsg(_ context.Context, m *nats.Msg, _ ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	w := p.w
	w.step("publish %s id=%s", m.Subject, m.Header.Get(nats.MsgIdHdr))
	if w.faultsOn() && w.s.chance(w.cfg.publishErr) {
		w.stats.publishErrors++
		return nil, errors.New("nats: timeout")
	}
	dup := w.js.publish(m)
	return &jetstream.PubAck{Duplicate: dup}, nil
}

// simStore is the record store with Redis failures: an error before the
// operation (nothing written) or after it (written, answer lost).
type simStore struct{ w *world }

var _ payment.Store = (*simStore)(nil)

var errRedis = errors.New("redis: i/o timeout")

// call runs op with the injected faults.
func (st *simStore) call(name string, op func() error) error {
	w := st.w
	w.step("redis %s", name)
	if w.faultsOn() && w.s.chance(w.cfg.redisErr) {
		w.stats.redisErrors++
		return errRedis
	}
	err := op()
	if err == nil && w.faultsOn() && w.s.chance(w.cfg.redisAmbiguous) {
		w.stats.ambiguous++
		w.s.logf("redis %s applied, answer lost", name)
		return errRedis
	}
	return err
}

func (st *simStore) Claim(ctx context.Context, id, fp, owner string, lease time.Duration) (c idempotency.Claim, err error) {
	err = st.call("claim "+id, func() error { c, err = st.w.store.Claim(ctx, id, fp, owner, lease); return err })
	st.w.s.logf("  -> state %d attempt %d", c.State, c.Attempt.N)
	return c, err
}
func (st *simStore) Extend(ctx context.Context, a idempotency.Attempt, lease time.Duration) error {
	return st.call(fmt.Sprintf("extend %s/%d", a.IntentID, a.N), func() error { return st.w.store.Extend(ctx, a, lease) })
}
func (st *simStore) Release(ctx context.Context, a idempotency.Attempt) error {
	return st.call(fmt.Sprintf("release %s/%d", a.IntentID, a.N), func() error { return st.w.store.Release(ctx, a) })
}
func (st *simStore) Advance(ctx context.Context, a idempotency.Attempt, lease time.Duration, fingerprint string) (n idempotency.Attempt, err error) {
	err = st.call(fmt.Sprintf("advance %s/%d", a.IntentID, a.N), func() error { n, err = st.w.store.Advance(ctx, a, lease, fingerprint); return err })
	return n, err
}
func (st *simStore) MarkUnknown(ctx context.Context, a idempotency.Attempt) error {
	return st.call(fmt.Sprintf("markUnknown %s/%d", a.IntentID, a.N), func() error { return st.w.store.MarkUnknown(ctx, a) })
}
func (st *simStore) BeginResolve(ctx context.Context, a idempotency.Attempt, lease, delay time.Duration) (wt time.Duration, ok bool, err error) {
	err = st.call(fmt.Sprintf("beginResolve %s/%d", a.IntentID, a.N), func() error {
		wt, ok, err = st.w.store.BeginResolve(ctx, a, lease, delay)
		return err
	})
	return wt, ok, err
}
func (st *simStore) Finish(ctx context.Context, a idempotency.Attempt, out idempotency.Outcome) error {
	return st.call(fmt.Sprintf("finish %s/%d", a.IntentID, a.N), func() error { return st.w.store.Finish(ctx, a, out) })
}
func (st *simStore) Reopen(ctx context.Context, a idempotency.Attempt, fp, class string, lease time.Duration) (c idempotency.Claim, err error) {
	err = st.call(fmt.Sprintf("reopen %s/%d", a.IntentID, a.N), func() error { c, err = st.w.store.Reopen(ctx, a, fp, class, lease); return err })
	st.w.s.logf("  -> state %d attempt %d", c.State, c.Attempt.N)
	return c, err
}
func (st *simStore) ReversalDone(ctx context.Context, id, paymentID string) error {
	return st.call("reversalDone "+id, func() error { return st.w.store.ReversalDone(ctx, id, paymentID) })
}
func (st *simStore) Result(ctx context.Context, id string) (b []byte, err error) {
	err = st.call("result "+id, func() error { b, err = st.w.store.Result(ctx, id); return err })
	return b, err
}
func (st *simStore) State(ctx context.Context, id string) (v string, err error) {
	err = st.call("state "+id, func() error { v, err = st.w.store.State(ctx, id); return err })
	return v, err
}
func (st *simStore) PaymentIntent(ctx context.Context, cid string) (id string, err error) {
	err = st.call("paymentIntent "+cid, func() error { id, err = st.w.store.PaymentIntent(ctx, cid); return err })
	return id, err
}
func (st *simStore) Reserve(ctx context.Context, pi, merchant, kind string, a idempotency.Attempt, amount int64) (n int64, cur string, err error) {
	err = st.call(fmt.Sprintf("reserve %s %s %s/%d", pi, kind, a.IntentID, a.N), func() error {
		n, cur, err = st.w.store.Reserve(ctx, pi, merchant, kind, a, amount)
		return err
	})
	return n, cur, err
}
func (st *simStore) Unreserve(ctx context.Context, pi, kind string, a idempotency.Attempt) error {
	return st.call(fmt.Sprintf("unreserve %s %s/%d", pi, a.IntentID, a.N), func() error { return st.w.store.Unreserve(ctx, pi, kind, a) })
}
func (st *simStore) LastTransaction(ctx context.Context, merchant, root string) (v string, err error) {
	err = st.call("lastTransaction "+merchant+"/"+root, func() error { v, err = st.w.store.LastTransaction(ctx, merchant, root); return err })
	return v, err
}
func (st *simStore) AdvanceChain(ctx context.Context, merchant, root, txn string, at time.Time) error {
	return st.call("advanceChain "+merchant+"/"+root, func() error { return st.w.store.AdvanceChain(ctx, merchant, root, txn, at) })
}

// simCreds hands out credentials; TTC is sometimes unavailable, and one
// merchant has no refresh token (a configuration problem).
type simCreds struct{ w *world }

func (c *simCreds) Get(_ context.Context, integrator, merchant string) (*tokencache.Credentials, error) {
	w := c.w
	w.step("credentials %s", merchant)
	if merchant == merchantNoToken {
		return nil, &ttc.Error{Op: "token", Kind: ttc.KindNoRefreshToken, Status: 404, Message: "no refresh token"}
	}
	if w.faultsOn() && w.s.chance(w.cfg.ttcDown) {
		return nil, &ttc.Error{Op: "token", Kind: ttc.KindTransient, Status: 503}
	}
	return &tokencache.Credentials{Integrator: integrator, MerchantID: merchant, AccessToken: "sim-token", Generation: 1}, nil
}

func (c *simCreds) Invalidate(context.Context, *tokencache.Credentials) error {
	c.w.step("invalidate credentials")
	return nil
}

// letter reads a dead letter back.
func letterOf(s stored) deadletter.Letter {
	return deadletter.FromHeaders(0, s.header, s.data)
}

// merchantOfSubject is the last token of a subject.
func merchantOfSubject(subject string) string { return streams.MerchantOf(subject) }
