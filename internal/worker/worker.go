// Package worker wires the payment pipeline's consumers into one process:
// role "payments" charges intents exactly once; role "callbacks" tells TTC.
// It serves /healthz, /readyz and /metrics and drains on shutdown.
package worker

import (
	"cmp"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/ttcpay/payflow/internal/cardcrypt"
	"github.com/ttcpay/payflow/internal/consume"
	"github.com/ttcpay/payflow/internal/cybs"
	"github.com/ttcpay/payflow/internal/deadletter"
	"github.com/ttcpay/payflow/internal/idempotency"
	"github.com/ttcpay/payflow/internal/payment"
	"github.com/ttcpay/payflow/internal/redact"
	"github.com/ttcpay/payflow/internal/redelivery"
	"github.com/ttcpay/payflow/internal/streams"
	"github.com/ttcpay/payflow/internal/tokencache"
	"github.com/ttcpay/payflow/internal/tracing"
	"github.com/ttcpay/payflow/internal/ttc"
)

// SolutionIDMax is the length CyberSource documents for
// clientReferenceInformation.partner.solutionId; a longer CYBS_SOLUTION_ID
// is logged as a warning at start-up.
const SolutionIDMax = 8

// Worker is one worker process.
type Worker struct {
	cfg Config
	log zerolog.Logger
	nc  *nats.Conn
	// natsClosed is closed once the NATS connection is closed.
	natsClosed chan struct{}
	js         jetstream.JetStream
	rdb        redis.UniversalClient
	reg        *prometheus.Registry
	ready      atomic.Bool
	// waiting is what the start-up waits for ("" once it is over): /readyz
	// answers with it.
	waiting atomic.Pointer[string]
	// natsTries counts the failed NATS connection attempts since the last
	// connection; natsErr is the last one's error.
	natsTries atomic.Int64
	natsErr   atomic.Pointer[natsProblem]
	http      *http.Server
	trace     *tracing.Tracing

	payments  *consume.Payments
	callbacks *consume.Callbacks
	cache     *tokencache.Cache
}

// New validates the configuration (after applying its defaults), connects
// to NATS and Redis, builds the clients and consumers and creates the
// streams that are missing (existing ones keep their settings; differences
// are logged).
func New(ctx context.Context, cfg Config, log zerolog.Logger) (*Worker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	if n := utf8.RuneCountInString(cfg.CybsSolutionID); n > SolutionIDMax && contains(cfg.Roles, "payments") {
		// TTC's guide itself uses a 14-character test value, so this is
		// not refused; CyberSource may refuse or cut a longer one.
		log.Warn().Str("solutionId", cfg.CybsSolutionID).Int("length", n).
			Msgf("CYBS_SOLUTION_ID is longer than the %d characters CyberSource documents for clientReferenceInformation.partner.solutionId", SolutionIDMax)
	}
	w := &Worker{cfg: cfg, log: log, reg: prometheus.NewRegistry()}
	w.trace = cfg.Test.Tracing
	if w.trace == nil {
		env := cfg.otelEnv
		if env == nil {
			env = func(string) string { return "" }
		}
		t, err := tracing.Setup(ctx, func(k string) string {
			if k == "OTEL_TRACES_EXPORTER" {
				return cfg.OTELExporter
			}
			return env(k)
		}, "payflow-worker")
		if err != nil {
			return nil, err
		}
		w.trace = t
	}
	w.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "payflow_build_info", Help: "The running build."}, []string{"version"})
	buildInfo.WithLabelValues(cmp.Or(cfg.Version, "dev")).Set(1)
	w.reg.MustRegister(buildInfo)

	w.natsClosed = make(chan struct{})
	w.setWaiting("NATS at " + redact.URL(cfg.NATSURL) + " (connecting)")
	server := redact.URL(cfg.NATSURL)
	// RetryOnFailedConnect: an unreachable NATS does not stop the start-up;
	// Run serves /healthz at once, /readyz says what it waits for, and each
	// failed connection attempt is logged with its error.
	nc, err := nats.Connect(cfg.NATSURL, append(cfg.NATS.Options(), nats.Name("payflow-worker"), nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond), nats.RetryOnFailedConnect(true),
		// The last callback NATS dispatches: close waits for it.
		nats.ClosedHandler(func(*nats.Conn) { close(w.natsClosed) }),
		nats.ConnectHandler(func(c *nats.Conn) {
			log.Info().Str("server", server).Str("connectedTo", c.ConnectedUrlRedacted()).Int64("connectTry", w.natsTries.Load()+1).Msg("NATS connected")
		}),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			n := w.natsTries.Add(1)
			w.natsErr.Store(&natsProblem{tries: n, err: err.Error()})
			log.Warn().Err(err).Str("server", server).Int64("connectTry", n).Msg("NATS connection attempt failed; retrying")
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { log.Warn().Err(err).Str("server", server).Msg("NATS disconnected") }),
		nats.ReconnectHandler(func(c *nats.Conn) {
			w.natsTries.Store(0)
			log.Info().Str("server", server).Str("connectedTo", c.ConnectedUrlRedacted()).Msg("NATS reconnected")
		}),
		// A permissions violation or an authorization error: the user's
		// permissions (deploy/nats) do not fit what this role does.
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.Error().Err(err).Str("server", server).Msg("NATS error")
		}))...)
	if err != nil {
		return nil, fmt.Errorf("NATS_URL %s: %w", redact.URL(cfg.NATSURL), urlProblem(err))
	}
	w.nc = nc
	w.js, err = jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}

	w.rdb, err = redisClient(cfg)
	if err != nil {
		nc.Close()
		return nil, err
	}
	metrics := consume.NewMetrics(w.reg)
	notReplicated := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "payflow_redis_not_replicated_total",
		Help: "Record writes that guard money and were acknowledged by fewer than REDIS_MIN_REPLICAS replicas (the step failed and was retried), by operation."}, []string{"op"})
	for _, op := range []string{idempotency.OpClaim, idempotency.OpAdvance, idempotency.OpMarkUnknown, idempotency.OpFinish, "reserve", "advanceChain"} {
		notReplicated.WithLabelValues(op)
	}
	w.reg.MustRegister(notReplicated)
	records := idempotency.New(w.rdb, idempotency.Options{
		Retention: cfg.RecordRetention, MinReplicas: cfg.RedisMinReplicas, ReplicaTimeout: cfg.RedisReplicaTimeout,
		OnNotReplicated: func(op string, acked int) {
			notReplicated.WithLabelValues(op).Inc()
			log.Warn().Str("op", op).Int("acked", acked).Int("required", cfg.RedisMinReplicas).
				Msg("a record write was not acknowledged by enough Redis replicas; the step failed and will be retried")
		},
	})

	ttcClient, err := ttc.New(ttc.Config{BaseURL: cfg.TTCBaseURL, APIKeys: cfg.TTCAPIKeys, Timeout: cfg.TTCTimeout, Trace: w.trace})
	if err != nil {
		w.close()
		return nil, err
	}
	if contains(cfg.Roles, "payments") {
		var cache *tokencache.Cache
		opts := tokencache.Options{RefreshAhead: cfg.TokenRefreshAhead, Logger: log.With().Str("component", "tokencache").Logger(),
			// The lock's lease covers a TTC call and, after one that got no
			// answer, the time TTC may still spend on it.
			LockTTL:     max(tokencache.LockTTLDefault, cfg.TTCTimeout),
			Integrators: ttcClient.Integrators()}
		if cfg.TokenCache == "memory" {
			log.Warn().Msg("TOKEN_CACHE=memory: credentials are not shared between pods; each pod calls TTC on its own. Use redis when more than one pod runs.")
			cache = tokencache.New(ttcClient, tokencache.NewMemoryStore(), opts)
		} else {
			rs, err := tokencache.NewRedisStore(w.rdb, cfg.CacheEncryptionKeys()...)
			if err != nil {
				w.close()
				return nil, err
			}
			cache = tokencache.New(ttcClient, rs, opts)
		}
		w.cache = cache
		registerCacheMetrics(w.reg, cache)
		// One knob scales a pod: PAYMENTS_CONCURRENCY sets the pull batch
		// (consume.Run), the handlers at once, and the CyberSource connections
		// kept open, so that each slot keeps its connection.
		cc := cybs.Config{BaseURL: cfg.CybsBaseURL, SolutionID: cfg.CybsSolutionID, Timeout: cfg.CybsTimeout, Trace: w.trace,
			IdleConns: cfg.PaymentsConcurrency}
		if cfg.CybsCAFile != "" {
			pool, n, err := pinnedRoots(cfg.CybsCAFile)
			if err != nil {
				w.close()
				return nil, err
			}
			cc.RootCAs = pool
			log.Info().Int("certificates", n).Msg("CYBS_CA_FILE: CyberSource is trusted only through the certificates of this file; the system roots are not used")
		}
		cybsClient, err := cybs.New(cc)
		if err != nil {
			w.close()
			return nil, err
		}
		w.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "payflow_cybersource_tls_handshakes_total",
			Help: "TLS handshakes to CyberSource (one per connection; connections are reused)."},
			func() float64 { return float64(cybsClient.Handshakes.Load()) }))
		var cards payment.Cards
		if len(cfg.CardKeys) > 0 {
			kr, err := cardcrypt.ParseKeyring(cfg.CardKeys)
			if err != nil {
				w.close()
				return nil, fmt.Errorf("CARD_DECRYPTION_KEYS: %w", err)
			}
			cards = kr
			log.Info().Strs("kids", kr.Kids()).Msg("card decryption keys loaded")
		}
		scrub, err := deadLetterScrubber(cfg, kr(cards), log)
		if err != nil {
			w.close()
			return nil, err
		}
		plog := log.With().Str("role", "payments").Logger()
		proc := payment.New(payment.Config{
			Cards: cards, RequireEncryptedCard: cfg.RequireEncryptedCard, FingerprintKeys: cfg.FingerprintKeys,
			IsConfigError: func(err error) bool {
				return errors.Is(err, cardcrypt.ErrUnknownKid) || errors.Is(err, cardcrypt.ErrNoKeys)
			},
			SolutionID: cfg.CybsSolutionID, Lease: cfg.Lease, ResolveDelay: cfg.ResolveDelay,
			ConfigBudget: cfg.ConfigBudget, RetryBudget: cfg.RetryBudget, ResolveBudget: cfg.ResolveBudget, Observer: metrics,
			Test: payment.TestHooks{BeforeCharge: cfg.Test.BeforeCharge},
		}, cache, cybsClient, records, plog)
		w.payments = consume.NewPayments(consume.PaymentsConfig{
			Tracing: w.trace, KeepAlive: cfg.AckWait / 3, Scrub: scrub, Test: consume.PaymentsTest{AfterRecord: cfg.Test.AfterRecord},
			History: records, HistoryRetention: cfg.DLQMaxAge,
		}, proc, w.js, plog, metrics)
	}
	if contains(cfg.Roles, "callbacks") {
		w.callbacks = consume.NewCallbacks(consume.CallbacksConfig{Budget: cfg.CallbackBudget, Tracing: w.trace,
			History: records, HistoryRetention: cfg.DLQMaxAge,
			Retry: redelivery.Backoff{Initial: time.Second, Max: cfg.CallbackRetryMax, Multiplier: 2, Jitter: 0.3}},
			ttcClient, records, w.js, log.With().Str("role", "callbacks").Logger(), metrics)
	}

	return w, nil
}

// kr is the card keyring behind cards (nil when none is configured).
func kr(cards payment.Cards) *cardcrypt.Keyring {
	k, _ := cards.(*cardcrypt.Keyring)
	return k
}

// deadLetterScrubber seals plaintext cards of dead-lettered intents to
// DLQ_CARD_PUBLIC_KEY, or removes them without it.
func deadLetterScrubber(cfg Config, ring *cardcrypt.Keyring, log zerolog.Logger) (*deadletter.Scrubber, error) {
	if len(cfg.DLQCardKey) == 0 {
		log.Warn().Msg("DLQ_CARD_PUBLIC_KEY is not set: a plaintext card is removed from its dead letter (brand and last four kept) and the letter cannot be replayed; upstream must publish the intent again")
		return deadletter.NewScrubber(nil), nil
	}
	r, err := cardcrypt.ParseRecipient(cfg.DLQCardKey)
	if err != nil {
		return nil, fmt.Errorf("DLQ_CARD_PUBLIC_KEY: %w", err)
	}
	switch held, err := ring.Holds(r); {
	case err != nil:
		return nil, fmt.Errorf("DLQ_CARD_PUBLIC_KEY: %w", err)
	case !held:
		log.Warn().Str("kid", r.Kid).Msg("CARD_DECRYPTION_KEYS does not hold the dead-letter card key: replayed dead letters with a sealed card go to `config` until a worker holds it")
	default:
		log.Info().Str("kid", r.Kid).Msg("dead letters: plaintext cards are sealed to the dead-letter card key")
	}
	return deadletter.NewScrubber(r), nil
}

// RedisTimeout bounds each Redis dial, read and write.
const RedisTimeout = 2 * time.Second

func redisClient(cfg Config) (redis.UniversalClient, error) {
	if cfg.RedisURL != "" {
		opt, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL %s: %w", redact.URL(cfg.RedisURL), urlProblem(err))
		}
		if cfg.RedisPassword != "" {
			opt.Password = cfg.RedisPassword
		}
		opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = RedisTimeout, RedisTimeout, RedisTimeout
		opt.MaxRetries = 1
		return redis.NewClient(opt), nil
	}
	opts := &redis.UniversalOptions{
		Addrs: cfg.RedisAddrs, MasterName: cfg.RedisMasterName, Password: cfg.RedisPassword,
		DialTimeout: RedisTimeout, ReadTimeout: RedisTimeout, WriteTimeout: RedisTimeout, MaxRetries: 1,
	}
	if cfg.RedisMasterName != "" {
		// The sentinels have their own password (go-redis sends Password
		// to the data nodes only).
		opts.SentinelPassword = cfg.RedisSentinelPassword
	}
	return redis.NewUniversalClient(opts), nil
}

// pinnedRoots reads CYBS_CA_FILE into a pool that holds only its
// certificates: the file pins CyberSource's trust to the given CA(s) (a
// sandbox's, or a private proxy's); it never adds to the system roots.
func pinnedRoots(file string) (*x509.CertPool, int, error) {
	rest, err := os.ReadFile(file)
	if err != nil {
		return nil, 0, fmt.Errorf("CYBS_CA_FILE: %w", err)
	}
	pool, n := x509.NewCertPool(), 0
	for {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if c, err := x509.ParseCertificate(b.Bytes); err == nil && b.Type == "CERTIFICATE" {
			pool.AddCert(c)
			n++
		}
	}
	if n == 0 {
		return nil, 0, fmt.Errorf("CYBS_CA_FILE %s holds no PEM certificate", file)
	}
	return pool, n, nil
}

// urlProblem is err without the text of a *url.Error from parsing, which
// quotes the whole URL, password included, and whose cause can quote a
// piece of the password (`invalid port ":s3cret"` when it holds a '/').
func urlProblem(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Op == "parse" {
		return errors.New("not a valid URL")
	}
	return err
}

func registerCacheMetrics(reg prometheus.Registerer, c *tokencache.Cache) {
	counter := func(name, help string, f func(tokencache.Stats) int64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "payflow_credentials_" + name, Help: help},
			func() float64 { return float64(f(c.Stats())) }))
	}
	counter("hits_local_total", "Credentials served from the in-process layer.", func(s tokencache.Stats) int64 { return s.HitsLocal })
	counter("hits_store_total", "Credentials loaded from the shared store.", func(s tokencache.Stats) int64 { return s.HitsStore })
	counter("refreshes_total", "Successful TTC token requests.", func(s tokencache.Stats) int64 { return s.Refreshes })
	counter("refresh_failures_total", "Failed TTC token requests.", func(s tokencache.Stats) int64 { return s.RefreshFailures })
	counter("lock_waits_total", "Times a caller waited for another refresher.", func(s tokencache.Stats) int64 { return s.LockWaits })
	counter("invalidations_total", "Credentials dropped after CyberSource refused them.", func(s tokencache.Stats) int64 { return s.Invalidations })
	counter("negative_hits_total", "Credential requests answered with a refusal of TTC remembered for a short while (400, 401/403, 404), without a token request.", func(s tokencache.Stats) int64 { return s.NegativeHits })
	counter("undecryptable_total", "Stored credentials that no CACHE_ENCRYPTION_KEYS key opened, replaced by a refresh.", func(s tokencache.Stats) int64 { return s.Undecryptable })
	counter("evictions_total", "Entries evicted from the in-process credential map (size cap).", func(s tokencache.Stats) int64 { return s.Evictions })
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "payflow_credentials_entries", Help: "Entries in the in-process credential map."},
		func() float64 { return float64(c.Stats().Entries) }))
	// One series per configured integrator, plus "other" for any other name,
	// so the label's values are bounded and never come from an intent.
	for integrator := range c.Stats().RefreshFailuresByIntegrator {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "payflow_credentials_refresh_failures_by_integrator_total", ConstLabels: prometheus.Labels{"integrator": integrator},
			Help: "Failed TTC token requests by integrator (\"other\": an integrator without an API key).",
		}, func() float64 { return float64(c.Stats().RefreshFailuresByIntegrator[integrator]) }))
	}
}

// Run serves HTTP, starts the consumers and, when ctx ends, drains: stop
// pulling, let in-flight messages finish for DrainTimeout, then hard-stop.
func (w *Worker) Run(ctx context.Context) error {
	defer w.close()
	ln, err := net.Listen("tcp", w.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("HTTP_ADDR: %w", err)
	}
	w.http = &http.Server{Handler: w.routes(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = w.http.Serve(ln) }()
	if w.cfg.Test.HTTPReady != nil {
		w.cfg.Test.HTTPReady(ln.Addr().String())
	}

	cons, err := w.startUp(ctx)
	if err != nil {
		if ctx.Err() != nil {
			w.log.Warn().Str("waitingFor", w.waitingFor()).Msg("stopped before the start-up was over; nothing was consumed")
			return nil
		}
		return err
	}

	workCtx, hardStop := context.WithCancel(context.WithoutCancel(ctx))
	defer hardStop()
	var wg sync.WaitGroup
	errs := make(chan error, len(cons))
	for _, r := range cons {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := consume.Run(ctx, workCtx, r.cons, r.conc, w.log.With().Str("role", r.name).Logger(), r.h); err != nil {
				errs <- fmt.Errorf("%s: %w", r.name, err)
			}
		}()
	}
	w.ready.Store(true)
	w.log.Info().Strs("roles", w.cfg.Roles).Str("http", ln.Addr().String()).Msg("worker started")

	<-ctx.Done()
	w.ready.Store(false)
	w.log.Info().Int64("graceMs", w.cfg.DrainTimeout.Milliseconds()).Msg("draining: no new messages; finishing in-flight work")
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(w.cfg.DrainTimeout):
		w.log.Warn().Msg("drain grace period over: cancelling in-flight work")
		hardStop()
		<-done
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = w.http.Shutdown(sctx)
	select {
	case err := <-errs:
		return err
	default:
	}
	w.log.Info().Msg("worker stopped")
	return nil
}

func (w *Worker) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) {
		_, _ = rw.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(rw http.ResponseWriter, r *http.Request) {
		if err := w.readiness(r.Context()); err != nil {
			http.Error(rw, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = rw.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(w.reg, promhttp.HandlerOpts{Registry: w.reg}))
	if w.cfg.EnablePprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// ReadinessTimeout bounds one /readyz answer (a Redis PING and a lookup of
// each stream): a readiness probe's timeout must exceed it.
const ReadinessTimeout = 2 * time.Second

func (w *Worker) readiness(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, ReadinessTimeout)
	defer cancel()
	switch {
	case w.waitingFor() != "":
		return fmt.Errorf("starting: waiting for %s", w.waitingFor())
	case !w.ready.Load():
		return errors.New("consumers not running (draining)")
	case w.nc.Status() != nats.CONNECTED:
		return fmt.Errorf("NATS %s", w.nc.Status())
	}
	if err := w.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return streams.Check(ctx, w.js)
}

// role is one consumer the worker runs.
type role struct {
	name string
	conc int
	h    consume.Handler
	cons jetstream.Consumer
}

// natsProblem is the last failed NATS connection attempt.
type natsProblem struct {
	tries int64
	err   string
}

func (w *Worker) setWaiting(what string) { w.waiting.Store(&what) }

// waitingFor is what the start-up waits for, "" once it is over.
func (w *Worker) waitingFor() string {
	if p := w.waiting.Load(); p != nil {
		return *p
	}
	return ""
}

// startUpRetry is the pause between two start-up steps that failed because
// NATS did not answer.
const startUpRetry = time.Second

// startUp waits for NATS, creates the streams that are missing (existing
// ones keep their settings; differences are logged) and the consumers.
// Each step retries while NATS is unreachable or does not answer, saying
// what it waits for in /readyz and in the log; it returns when ctx ends.
func (w *Worker) startUp(ctx context.Context) ([]role, error) {
	server := redact.URL(w.cfg.NATSURL)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !w.nc.IsConnected() {
		what := "NATS at " + server + " (connecting)"
		if p := w.natsErr.Load(); p != nil {
			what = fmt.Sprintf("NATS at %s (%d connection attempts failed; the last: %s)", server, p.tries, p.err)
		}
		w.setWaiting(what)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
	cfg := w.cfg
	step := func(what string, f func(ctx context.Context) error) error {
		for try := 1; ; try++ {
			w.setWaiting(what)
			sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err := f(sctx)
			cancel()
			switch {
			case err == nil:
				return nil
			case ctx.Err() != nil:
				return ctx.Err()
			case !natsUnavailable(err):
				return err
			}
			w.setWaiting(fmt.Sprintf("%s (try %d failed: %v)", what, try, err))
			w.log.Warn().Err(err).Str("server", server).Int("startUpTry", try).Msgf("start-up: %s failed; retrying", what)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(startUpRetry):
			}
		}
	}
	err := step("the JetStream streams (creating the missing ones)", func(ctx context.Context) error {
		return streams.Ensure(ctx, w.js, streams.Config{
			Replicas: cfg.StreamReplicas, DuplicateWindow: cfg.DuplicateWindow,
			MaxIntentBytes: int32(min(cfg.MaxIntentBytes, 1<<30)), MaxIntents: int64(cfg.MaxIntents),
			ResultsMaxAge: cfg.ResultsMaxAge, DLQMaxAge: cfg.DLQMaxAge,
			Mismatch: func(m streams.Mismatch) {
				w.log.Warn().Str("stream", m.Stream).Str("setting", m.Setting).Str("have", m.Have).Str("want", m.Want).
					Msg("stream setting differs from this worker's configuration: the stream keeps its own; an operator changes it (nats stream edit)")
			},
		})
	})
	if err != nil {
		return nil, err
	}
	var roles []role
	if w.payments != nil {
		roles = append(roles, role{name: streams.ConsumerPayments, conc: cfg.PaymentsConcurrency, h: w.payments.Handle})
	}
	if w.callbacks != nil {
		roles = append(roles, role{name: streams.ConsumerCallbacks, conc: cfg.CallbacksConcurrency, h: w.callbacks.Handle})
	}
	for i, r := range roles {
		stream := streams.StreamIntents
		if r.name == streams.ConsumerCallbacks {
			stream = streams.StreamCallbacks
		}
		err := step("the consumer "+r.name+" on "+stream, func(ctx context.Context) error {
			c, err := streams.EnsureConsumer(ctx, w.js, stream, streams.ConsumerConfig(r.name, cfg.AckWait, max(1000, 4*r.conc)))
			roles[i].cons = c
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	w.waiting.Store(nil)
	return roles, nil
}

// natsUnavailable: err says NATS (or its JetStream) did not answer, which
// a later try may fix; any other error (a refusal) ends the start-up.
func natsUnavailable(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoHeartbeat) ||
		errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, nats.ErrDisconnected) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabled)
}

func (w *Worker) close() {
	if w.trace != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = w.trace.Shutdown(ctx)
		cancel()
	}
	if w.nc != nil {
		// Drain returns at once; the connection (and its callbacks, which
		// log) finish later. Wait for them, within bounds.
		if err := w.nc.Drain(); err != nil {
			w.nc.Close()
		}
		select {
		case <-w.natsClosed:
		case <-time.After(natsCloseTimeout):
		}
	}
	if w.rdb != nil {
		_ = w.rdb.Close()
	}
}

// natsCloseTimeout bounds the wait for the NATS connection to close.
const natsCloseTimeout = 5 * time.Second
