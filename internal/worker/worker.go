// Package worker wires the payment pipeline's consumers into one process:
// role "payments" charges intents exactly once; role "callbacks" tells TTC.
// It serves /healthz, /readyz and /metrics and drains on shutdown.
package worker

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"sync"
	"sync/atomic"
	"time"

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
	"github.com/ttcpay/payflow/internal/idempotency"
	"github.com/ttcpay/payflow/internal/streams"
	"github.com/ttcpay/payflow/internal/tokencache"
	"github.com/ttcpay/payflow/internal/tracing"
	"github.com/ttcpay/payflow/internal/ttc"
)

// Hooks are seams for tests and the demo.
type Hooks struct {
	// AfterRecord: see consume.PaymentsConfig.AfterRecord.
	AfterRecord func(intentID string) bool
	// HTTPReady receives the address the HTTP server listens on.
	HTTPReady func(addr string)
	// Tracing replaces the tracing set up from OTEL_* (tests).
	Tracing *tracing.Tracing
}

// Worker is one worker process.
type Worker struct {
	cfg   Config
	log   zerolog.Logger
	nc    *nats.Conn
	js    jetstream.JetStream
	rdb   redis.UniversalClient
	reg   *prometheus.Registry
	ready atomic.Bool
	http  *http.Server
	hooks Hooks
	trace *tracing.Tracing

	payments  *consume.Payments
	callbacks *consume.Callbacks
	cache     *tokencache.Cache
}

// New connects to NATS and Redis, builds the clients and consumers and
// creates or updates the streams.
func New(ctx context.Context, cfg Config, log zerolog.Logger, h Hooks) (*Worker, error) {
	w := &Worker{cfg: cfg, log: log, reg: prometheus.NewRegistry(), hooks: h}
	w.trace = h.Tracing
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

	nc, err := nats.Connect(cfg.NATSURL, nats.Name("payflow-worker"), nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond), nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { log.Warn().Err(err).Msg("NATS disconnected") }),
		nats.ReconnectHandler(func(*nats.Conn) { log.Info().Msg("NATS reconnected") }))
	if err != nil {
		return nil, fmt.Errorf("NATS %s: %w", cfg.NATSURL, err)
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
	records := idempotency.New(w.rdb, cfg.RecordRetention)
	metrics := consume.NewMetrics(w.reg)

	ttcClient, err := ttc.New(ttc.Config{BaseURL: cfg.TTCBaseURL, APIKeys: cfg.TTCAPIKeys, Timeout: cfg.TTCTimeout, Trace: w.trace})
	if err != nil {
		w.close()
		return nil, err
	}
	if contains(cfg.Roles, "payments") {
		var cache *tokencache.Cache
		opts := tokencache.Options{RefreshAhead: cfg.TokenRefreshAhead, Logger: log.With().Str("component", "tokencache").Logger()}
		if cfg.TokenCache == "memory" {
			log.Warn().Msg("TOKEN_CACHE=memory: credentials are not shared between pods; each pod calls TTC on its own. Use redis when more than one pod runs.")
			cache = tokencache.New(ttcClient, tokencache.NewMemoryStore(), opts)
		} else {
			rs, err := tokencache.NewRedisStore(w.rdb, cfg.CacheKey)
			if err != nil {
				w.close()
				return nil, err
			}
			cache = tokencache.New(ttcClient, rs, opts)
		}
		w.cache = cache
		registerCacheMetrics(w.reg, cache)
		cc := cybs.Config{BaseURL: cfg.CybsBaseURL, SolutionID: cfg.CybsSolutionID, Timeout: cfg.CybsTimeout, Trace: w.trace}
		if cfg.CybsCAFile != "" {
			pem, err := os.ReadFile(cfg.CybsCAFile)
			if err != nil {
				w.close()
				return nil, fmt.Errorf("CYBS_CA_FILE: %w", err)
			}
			cc.RootCAs = x509.NewCertPool()
			if !cc.RootCAs.AppendCertsFromPEM(pem) {
				w.close()
				return nil, fmt.Errorf("CYBS_CA_FILE %s holds no PEM certificate", cfg.CybsCAFile)
			}
		}
		cybsClient, err := cybs.New(cc)
		if err != nil {
			w.close()
			return nil, err
		}
		w.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "payflow_cybersource_tls_handshakes_total",
			Help: "TLS handshakes to CyberSource (one per connection; connections are reused)."},
			func() float64 { return float64(cybsClient.Handshakes.Load()) }))
		var cards consume.CardDecrypter
		if len(cfg.CardKeys) > 0 {
			kr, err := cardcrypt.ParseKeyring(cfg.CardKeys)
			if err != nil {
				w.close()
				return nil, fmt.Errorf("CARD_DECRYPTION_KEYS: %w", err)
			}
			cards = kr
			log.Info().Strs("kids", kr.Kids()).Msg("card decryption keys loaded")
		}
		w.payments = consume.NewPayments(consume.PaymentsConfig{
			Tracing: w.trace, Cards: cards, RequireEncryptedCard: cfg.RequireEncryptedCard,
			IsConfigError: func(err error) bool {
				return errors.Is(err, cardcrypt.ErrUnknownKid) || errors.Is(err, cardcrypt.ErrNoKeys)
			},
			SolutionID: cfg.CybsSolutionID, Lease: cfg.Lease, ResolveDelay: cfg.ResolveDelay,
			ConfigBudget: cfg.ConfigBudget, RetryBudget: cfg.RetryBudget, KeepAlive: cfg.AckWait / 3, AfterRecord: h.AfterRecord,
		}, cache, cybsClient, records, w.js, log.With().Str("role", "payments").Logger(), metrics)
	}
	if contains(cfg.Roles, "callbacks") {
		w.callbacks = consume.NewCallbacks(consume.CallbacksConfig{Budget: cfg.CallbackBudget, Tracing: w.trace,
			Retry: consume.Backoff{Initial: time.Second, Max: cfg.CallbackRetryMax, Multiplier: 2, Jitter: 0.3}},
			ttcClient, records, w.js, log.With().Str("role", "callbacks").Logger(), metrics)
	}

	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := streams.Ensure(sctx, w.js, streams.Config{
		Replicas: cfg.StreamReplicas, DuplicateWindow: cfg.DuplicateWindow,
		MaxIntentBytes: int32(min(cfg.MaxIntentBytes, 1<<30)), MaxIntents: int64(cfg.MaxIntents),
		ResultsMaxAge: cfg.ResultsMaxAge, DLQMaxAge: cfg.DLQMaxAge,
	}); err != nil {
		w.close()
		return nil, err
	}
	return w, nil
}

func redisClient(cfg Config) (redis.UniversalClient, error) {
	if cfg.RedisURL != "" {
		opt, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		if cfg.RedisPassword != "" {
			opt.Password = cfg.RedisPassword
		}
		opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = 2*time.Second, 2*time.Second, 2*time.Second
		opt.MaxRetries = 1
		return redis.NewClient(opt), nil
	}
	return redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs: cfg.RedisAddrs, MasterName: cfg.RedisMasterName, Password: cfg.RedisPassword,
		DialTimeout: 2 * time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second, MaxRetries: 1,
	}), nil
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
	if w.hooks.HTTPReady != nil {
		w.hooks.HTTPReady(ln.Addr().String())
	}

	workCtx, hardStop := context.WithCancel(context.WithoutCancel(ctx))
	defer hardStop()
	type role struct {
		name, stream string
		conc         int
		h            consume.Handler
	}
	var roles []role
	if w.payments != nil {
		roles = append(roles, role{streams.ConsumerPayments, streams.StreamIntents, w.cfg.PaymentsConcurrency, w.payments.Handle})
	}
	if w.callbacks != nil {
		roles = append(roles, role{streams.ConsumerCallbacks, streams.StreamCallbacks, w.cfg.CallbacksConcurrency, w.callbacks.Handle})
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(roles))
	for _, r := range roles {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		cons, err := streams.EnsureConsumer(cctx, w.js, r.stream,
			streams.ConsumerConfig(r.name, w.cfg.AckWait, max(1000, 4*r.conc)))
		cancel()
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := consume.Run(ctx, workCtx, cons, r.conc, w.log.With().Str("role", r.name).Logger(), r.h); err != nil {
				errs <- fmt.Errorf("%s: %w", r.name, err)
			}
		}()
	}
	w.ready.Store(true)
	w.log.Info().Strs("roles", w.cfg.Roles).Str("http", ln.Addr().String()).Msg("worker started")

	<-ctx.Done()
	w.ready.Store(false)
	w.log.Info().Dur("grace", w.cfg.DrainTimeout).Msg("draining: no new messages; finishing in-flight work")
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

func (w *Worker) readiness(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	switch {
	case !w.ready.Load():
		return errors.New("consumers not running")
	case w.nc.Status() != nats.CONNECTED:
		return fmt.Errorf("NATS %s", w.nc.Status())
	}
	if err := w.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return streams.Check(ctx, w.js)
}

func (w *Worker) close() {
	if w.trace != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = w.trace.Shutdown(ctx)
		cancel()
	}
	if w.nc != nil {
		_ = w.nc.Drain()
	}
	if w.rdb != nil {
		_ = w.rdb.Close()
	}
}
