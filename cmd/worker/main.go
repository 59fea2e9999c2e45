// Command worker runs the payment pipeline's consumers: role "payments"
// charges intents exactly once; role "callbacks" tells TTC. Configuration
// comes from the environment (see the README); SIGTERM drains.
package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/ttcpay/payflow/internal/consume"
	"github.com/ttcpay/payflow/internal/cybs"
	"github.com/ttcpay/payflow/internal/idempotency"
	"github.com/ttcpay/payflow/internal/streams"
	"github.com/ttcpay/payflow/internal/tokencache"
	"github.com/ttcpay/payflow/internal/ttc"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

// run loads the configuration, starts the worker and blocks until ctx ends
// and the drain is over.
func run(ctx context.Context, _ []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	level, err := zerolog.ParseLevel(cfg.LogLevel)
	if err != nil {
		return fmt.Errorf("LOG_LEVEL: %w", err)
	}
	log := zerolog.New(stdout).Level(level).With().Timestamp().Str("service", "payflow-worker").Logger()
	w, err := newWorker(ctx, cfg, log, hooks{})
	if err != nil {
		return err
	}
	return w.run(ctx)
}

// hooks are test seams.
type hooks struct {
	afterRecord func(intentID string) bool
	httpReady   func(addr string)
}

type worker struct {
	cfg   config
	log   zerolog.Logger
	nc    *nats.Conn
	js    jetstream.JetStream
	rdb   redis.UniversalClient
	reg   *prometheus.Registry
	ready atomic.Bool
	http  *http.Server
	hooks hooks

	payments  *consume.Payments
	callbacks *consume.Callbacks
	cache     *tokencache.Cache
}

func newWorker(ctx context.Context, cfg config, log zerolog.Logger, h hooks) (*worker, error) {
	w := &worker{cfg: cfg, log: log, reg: prometheus.NewRegistry(), hooks: h}
	w.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

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

	ttcClient, err := ttc.New(ttc.Config{BaseURL: cfg.TTCBaseURL, APIKeys: cfg.TTCAPIKeys, Timeout: cfg.TTCTimeout})
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
		cc := cybs.Config{BaseURL: cfg.CybsBaseURL, SolutionID: cfg.CybsSolutionID, Timeout: cfg.CybsTimeout}
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
		w.payments = consume.NewPayments(consume.PaymentsConfig{
			SolutionID: cfg.CybsSolutionID, Lease: cfg.Lease, ResolveDelay: cfg.ResolveDelay,
			ConfigBudget: cfg.ConfigBudget, KeepAlive: cfg.AckWait / 3, AfterRecord: h.afterRecord,
		}, cache, cybsClient, records, w.js, log.With().Str("role", "payments").Logger(), metrics)
	}
	if contains(cfg.Roles, "callbacks") {
		w.callbacks = consume.NewCallbacks(consume.CallbacksConfig{Budget: cfg.CallbackBudget},
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

func redisClient(cfg config) (redis.UniversalClient, error) {
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

// run serves HTTP, starts the consumers and, when ctx ends, drains: stop
// pulling, let in-flight messages finish for DrainTimeout, then hard-stop.
func (w *worker) run(ctx context.Context) error {
	defer w.close()
	ln, err := net.Listen("tcp", w.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("HTTP_ADDR: %w", err)
	}
	w.http = &http.Server{Handler: w.routes(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = w.http.Serve(ln) }()
	if w.hooks.httpReady != nil {
		w.hooks.httpReady(ln.Addr().String())
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

func (w *worker) routes() http.Handler {
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
	return mux
}

func (w *worker) readiness(ctx context.Context) error {
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

func (w *worker) close() {
	if w.nc != nil {
		_ = w.nc.Drain()
	}
	if w.rdb != nil {
		_ = w.rdb.Close()
	}
}
