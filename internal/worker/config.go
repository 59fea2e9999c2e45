package worker

import (
	"cmp"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/rs/zerolog"

	"github.com/ttcpay/payflow/internal/cardcrypt"
	"github.com/ttcpay/payflow/internal/cybs"
	"github.com/ttcpay/payflow/internal/natsconn"
	"github.com/ttcpay/payflow/internal/tracing"
	"github.com/ttcpay/payflow/internal/ttc"
)

// Config is the worker's configuration. Each field is read from the
// environment variable named beside it (the README lists them with their
// defaults); a zero value means the default (WithDefaults). New validates it.
type Config struct {
	Roles []string // WORKER_ROLES

	NATSURL string // NATS_URL
	// NATS is how the worker authenticates to NATS and trusts its TLS
	// certificate: NATS_CREDS_FILE or NATS_USER + NATS_PASSWORD(_FILE),
	// NATS_CA_FILE, NATS_INBOX_PREFIX.
	NATS natsconn.Config

	RedisURL        string   // REDIS_URL
	RedisAddrs      []string // REDIS_ADDRS
	RedisMasterName string   // REDIS_MASTER_NAME
	RedisPassword   string   // REDIS_PASSWORD(_FILE)
	// RedisMinReplicas: guard writes wait for this many replica
	// acknowledgements (WAIT); 0 for a single-node Redis.
	RedisMinReplicas    int           // REDIS_MIN_REPLICAS
	RedisReplicaTimeout time.Duration // REDIS_REPLICA_TIMEOUT
	TokenCache          string        // TOKEN_CACHE: "redis" or "memory"
	CacheKey            []byte        // CACHE_ENCRYPTION_KEY(_FILE): one key
	CacheKeys           [][]byte      // CACHE_ENCRYPTION_KEYS(_FILE): the first encrypts, all decrypt
	// FingerprintKeys (FINGERPRINT_KEYS(_FILE)) key the intents'
	// fingerprints over the whole card number: the first for new records,
	// all recognised. None: the unkeyed fingerprint (BIN, last four, expiry).
	FingerprintKeys [][]byte

	// RedisSentinelPassword is REDIS_SENTINEL_PASSWORD(_FILE): the
	// sentinels' own password (their requirepass), used with
	// REDIS_MASTER_NAME. Defaults to RedisPassword, as the Bitnami chart
	// protects its sentinels with the Redis password (auth.sentinel, on by
	// default); sentinels without a password accept it too.
	RedisSentinelPassword string

	TTCEnv     string            // TTC_ENV: uat or production
	TTCBaseURL string            // TTC_BASE_URL (a sandbox; or derived from TTC_ENV)
	TTCAPIKeys map[string]string // TTC_API_KEYS(_FILE)
	TTCTimeout time.Duration     // TTC_TIMEOUT

	CardKeys             []byte // CARD_DECRYPTION_KEYS(_FILE): PEM, kid headers
	RequireEncryptedCard bool   // REQUIRE_ENCRYPTED_CARD
	// DLQCardKey is DLQ_CARD_PUBLIC_KEY(_FILE): the PEM public key (with a
	// kid header) that a plaintext card is sealed to before its intent is
	// dead-lettered; its private half belongs in CARD_DECRYPTION_KEYS so
	// that a replay is charged. Without it the card is removed (brand and
	// last four kept) and the letter cannot be replayed.
	DLQCardKey []byte

	CybsEnv        string        // CYBS_ENV: test or production
	CybsBaseURL    string        // CYBS_BASE_URL (a sandbox; or derived from CYBS_ENV)
	CybsCAFile     string        // CYBS_CA_FILE
	CybsSolutionID string        // CYBS_SOLUTION_ID
	CybsTimeout    time.Duration // CYBS_TIMEOUT

	PaymentsConcurrency  int           // PAYMENTS_CONCURRENCY
	CallbacksConcurrency int           // CALLBACKS_CONCURRENCY
	AckWait              time.Duration // ACK_WAIT
	Lease                time.Duration // CHARGE_LEASE
	ResolveDelay         time.Duration // RESOLVE_DELAY
	ResolveBudget        time.Duration // RESOLVE_BUDGET
	ConfigBudget         time.Duration // CONFIG_BUDGET
	RetryBudget          time.Duration // PAYMENT_RETRY_BUDGET
	CallbackBudget       time.Duration // CALLBACK_BUDGET
	CallbackRetryMax     time.Duration // CALLBACK_RETRY_MAX
	RecordRetention      time.Duration // RECORD_RETENTION
	TokenRefreshAhead    float64       // TOKEN_REFRESH_AHEAD

	StreamReplicas  int           // STREAM_REPLICAS
	MaxIntentBytes  int           // MAX_INTENT_BYTES
	MaxIntents      int           // MAX_QUEUED_INTENTS
	DuplicateWindow time.Duration // DUPLICATE_WINDOW
	ResultsMaxAge   time.Duration // RESULTS_MAX_AGE
	DLQMaxAge       time.Duration // DLQ_MAX_AGE

	HTTPAddr     string        // HTTP_ADDR
	EnablePprof  bool          // ENABLE_PPROF
	DrainTimeout time.Duration // DRAIN_TIMEOUT
	LogLevel     string        // LOG_LEVEL

	// Version is the build's version (set by the command, not the environment).
	Version string

	// OTELExporter is OTEL_TRACES_EXPORTER ("" or none: off; otlp). The
	// exporter's own OTEL_* variables are read through otelEnv.
	OTELExporter string
	otelEnv      func(string) string

	// Test holds seams for tests and the demo; production leaves it zero.
	Test TestConfig
}

// TestConfig holds the seams tests and the demo use.
type TestConfig struct {
	// AfterRecord runs after an outcome is recorded and before results are
	// published and the message is acked; returning true abandons the
	// message there, as a crash would.
	AfterRecord func(intentID string) bool
	// BeforeCharge: see payment.TestHooks.
	BeforeCharge func(intentID string, attempt int)
	// HTTPReady receives the address the HTTP server listens on.
	HTTPReady func(addr string)
	// Tracing replaces the tracing set up from OTEL_*.
	Tracing *tracing.Tracing
}

// envReader reads variables and collects one problem per bad variable.
type envReader struct {
	getenv   func(string) string
	problems []string
}

func (e *envReader) str(key, def string) string {
	if v := strings.TrimSpace(e.getenv(key)); v != "" {
		return v
	}
	return def
}

// secret reads KEY, or the file named by KEY_FILE.
func (e *envReader) secret(key string) string {
	v := e.getenv(key)
	file := e.getenv(key + "_FILE")
	switch {
	case v != "" && file != "":
		e.problems = append(e.problems, fmt.Sprintf("%s and %s_FILE are both set: set one", key, key))
		return ""
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			e.problems = append(e.problems, fmt.Sprintf("%s_FILE: cannot read %s: %v", key, file, errors.Unwrap(err)))
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	return strings.TrimSpace(v)
}

func (e *envReader) duration(key string, def time.Duration) time.Duration {
	v := e.getenv(key)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		e.problems = append(e.problems, fmt.Sprintf("%s=%q is not a positive duration such as 30s or 5m", key, v))
		return def
	}
	return d
}

func (e *envReader) integer(key string, def, min int) int {
	v := e.getenv(key)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min {
		e.problems = append(e.problems, fmt.Sprintf("%s=%q must be an integer ≥ %d", key, v, min))
		return def
	}
	return n
}

func (e *envReader) fraction(key string, def float64) float64 {
	v := e.getenv(key)
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 || f >= 1 {
		e.problems = append(e.problems, fmt.Sprintf("%s=%q must be a fraction between 0 and 1", key, v))
		return def
	}
	return f
}

func (e *envReader) boolean(key string) bool {
	switch v := e.str(key, "false"); v {
	case "true", "1":
		return true
	case "false", "0":
		return false
	default:
		e.bad("%s=%q: want true or false", key, v)
		return false
	}
}

func (e *envReader) err() error {
	if len(e.problems) > 0 {
		return &ConfigError{Problems: e.problems}
	}
	return nil
}

func (e *envReader) bad(format string, args ...any) {
	e.problems = append(e.problems, fmt.Sprintf(format, args...))
}

// Defaults of Config (zero values mean these).
const (
	RolesDefault                = "payments,callbacks"
	NATSURLDefault              = "nats://127.0.0.1:4222"
	TokenCacheDefault           = "redis"
	RedisReplicaTimeoutDefault  = time.Second
	PaymentsConcurrencyDefault  = 32
	CallbacksConcurrencyDefault = 16
	AckWaitDefault              = 60 * time.Second
	LeaseDefault                = 2 * time.Minute
	ResolveDelayDefault         = 60 * time.Second
	ResolveDelayMin             = 60 * time.Second // CyberSource: wait 60 s before a timeout reversal/void
	ResolveBudgetDefault        = 24 * time.Hour
	ConfigBudgetDefault         = time.Hour
	RetryBudgetDefault          = 24 * time.Hour
	CallbackBudgetDefault       = 24 * time.Hour
	CallbackRetryMaxDefault     = 5 * time.Minute
	RecordRetentionDefault      = 45 * 24 * time.Hour
	TokenRefreshAheadDefault    = 0.2
	StreamReplicasDefault       = 1
	MaxIntentBytesDefault       = 64 << 10
	MaxIntentsDefault           = 1_000_000
	DuplicateWindowDefault      = 10 * time.Minute
	ResultsMaxAgeDefault        = 7 * 24 * time.Hour
	DLQMaxAgeDefault            = 30 * 24 * time.Hour
	HTTPAddrDefault             = ":8080"
	DrainTimeoutDefault         = 35 * time.Second
	LogLevelDefault             = "info"
)

// DrainMargin is how much DRAIN_TIMEOUT must exceed CYBS_TIMEOUT: after
// its CyberSource call, a charge in flight at SIGTERM records its outcome
// (one Redis write, bounded by RedisTimeout) and publishes its result.
const DrainMargin = RedisTimeout

// LoadConfig reads the environment into a Config. It checks only that each
// variable is well-formed (a duration is a duration, a file can be read);
// defaults and cross-checks are WithDefaults and Validate, which New applies.
// The error lists every problem, one per line.
func LoadConfig(getenv func(string) string) (Config, error) {
	e := &envReader{getenv: getenv}
	var c Config

	for _, r := range strings.Split(e.str("WORKER_ROLES", ""), ",") {
		if r = strings.TrimSpace(r); r != "" {
			c.Roles = append(c.Roles, r)
		}
	}
	c.NATSURL = e.str("NATS_URL", "")
	var natsProblems []string
	c.NATS, natsProblems = natsconn.FromEnv(e.getenv)
	e.problems = append(e.problems, natsProblems...)

	c.RedisURL = e.str("REDIS_URL", "")
	if a := e.str("REDIS_ADDRS", ""); a != "" {
		c.RedisAddrs = strings.Split(a, ",")
	}
	c.RedisMasterName = e.str("REDIS_MASTER_NAME", "")
	c.RedisPassword = e.secret("REDIS_PASSWORD")
	c.RedisSentinelPassword = e.secret("REDIS_SENTINEL_PASSWORD")
	c.RedisMinReplicas = e.integer("REDIS_MIN_REPLICAS", 0, 0)
	c.RedisReplicaTimeout = e.duration("REDIS_REPLICA_TIMEOUT", 0)
	c.TokenCache = e.str("TOKEN_CACHE", "")
	if k := e.secret("CACHE_ENCRYPTION_KEY"); k != "" {
		key, err := decodeKey(k)
		if err != nil {
			e.bad("CACHE_ENCRYPTION_KEY: %v", err)
		}
		c.CacheKey = key
	}
	if ks := e.secret("CACHE_ENCRYPTION_KEYS"); ks != "" {
		for i, k := range strings.Split(ks, ",") {
			key, err := decodeKey(strings.TrimSpace(k))
			if err != nil || key == nil {
				e.bad("CACHE_ENCRYPTION_KEYS: key %d of a comma-separated list %v", i+1, cmp.Or(err, errEmptyKey))
				continue
			}
			c.CacheKeys = append(c.CacheKeys, key)
		}
	}

	if ks := e.secret("FINGERPRINT_KEYS"); ks != "" {
		for i, k := range strings.Split(ks, ",") {
			key, err := decodeKey(strings.TrimSpace(k))
			if err != nil || key == nil {
				e.bad("FINGERPRINT_KEYS: key %d of a comma-separated list %v", i+1, cmp.Or(err, errEmptyKey))
				continue
			}
			c.FingerprintKeys = append(c.FingerprintKeys, key)
		}
	}

	c.TTCEnv = e.str("TTC_ENV", "")
	c.TTCBaseURL = e.str("TTC_BASE_URL", "")
	if keys := e.secret("TTC_API_KEYS"); keys != "" {
		c.TTCAPIKeys = map[string]string{}
		for i, kv := range strings.Split(keys, ",") {
			name, key, ok := strings.Cut(strings.TrimSpace(kv), "=")
			if !ok || name == "" || key == "" {
				e.bad("TTC_API_KEYS: an entry is not integrator=key (entry %d)", i+1)
				continue
			}
			if strings.IndexFunc(name+key, unicode.IsControl) >= 0 {
				// Two lines of a key file joined into one key, say; never
				// quote the entry, it holds a key.
				e.bad("TTC_API_KEYS: entry %d holds a control character such as a line break (separate entries with commas)", i+1)
				continue
			}
			c.TTCAPIKeys[name] = key
		}
	}
	c.TTCTimeout = e.duration("TTC_TIMEOUT", 0)

	c.CybsEnv = e.str("CYBS_ENV", "")
	c.CybsBaseURL = e.str("CYBS_BASE_URL", "")
	c.CybsCAFile = e.str("CYBS_CA_FILE", "")
	if k := e.secret("CARD_DECRYPTION_KEYS"); k != "" {
		c.CardKeys = []byte(k)
	}
	c.RequireEncryptedCard = e.boolean("REQUIRE_ENCRYPTED_CARD")
	if k := e.secret("DLQ_CARD_PUBLIC_KEY"); k != "" {
		c.DLQCardKey = []byte(k)
	}
	c.CybsSolutionID = e.str("CYBS_SOLUTION_ID", "")
	c.CybsTimeout = e.duration("CYBS_TIMEOUT", 0)

	c.PaymentsConcurrency = e.integer("PAYMENTS_CONCURRENCY", 0, 1)
	c.CallbacksConcurrency = e.integer("CALLBACKS_CONCURRENCY", 0, 1)
	c.AckWait = e.duration("ACK_WAIT", 0)
	c.Lease = e.duration("CHARGE_LEASE", 0)
	c.ResolveDelay = e.duration("RESOLVE_DELAY", 0)
	c.ResolveBudget = e.duration("RESOLVE_BUDGET", 0)
	c.ConfigBudget = e.duration("CONFIG_BUDGET", 0)
	c.RetryBudget = e.duration("PAYMENT_RETRY_BUDGET", 0)
	c.CallbackBudget = e.duration("CALLBACK_BUDGET", 0)
	c.CallbackRetryMax = e.duration("CALLBACK_RETRY_MAX", 0)
	c.RecordRetention = e.duration("RECORD_RETENTION", 0)
	c.TokenRefreshAhead = e.fraction("TOKEN_REFRESH_AHEAD", 0)

	c.StreamReplicas = e.integer("STREAM_REPLICAS", 0, 1)
	c.MaxIntentBytes = e.integer("MAX_INTENT_BYTES", 0, 1<<10)
	c.MaxIntents = e.integer("MAX_QUEUED_INTENTS", 0, 1)
	c.DuplicateWindow = e.duration("DUPLICATE_WINDOW", 0)
	c.ResultsMaxAge = e.duration("RESULTS_MAX_AGE", 0)
	c.DLQMaxAge = e.duration("DLQ_MAX_AGE", 0)

	c.HTTPAddr = e.str("HTTP_ADDR", "")
	c.EnablePprof = e.boolean("ENABLE_PPROF")
	c.DrainTimeout = e.duration("DRAIN_TIMEOUT", 0)
	c.LogLevel = e.str("LOG_LEVEL", "")
	c.OTELExporter = e.str("OTEL_TRACES_EXPORTER", "")
	for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_SERVICE_NAME"} {
		_ = e.getenv(k) // read by the exporter itself; listed here as the worker's
	}
	c.otelEnv = getenv
	return c, e.err()
}

// ConfigFromEnv is LoadConfig followed by Validate, with every problem of
// both in one error: what a command calls at start-up.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c, err := LoadConfig(getenv)
	var problems []string
	var ce *ConfigError
	if errors.As(err, &ce) {
		problems = ce.Problems
	} else if err != nil {
		return c, err
	}
	if errors.As(c.Validate(), &ce) {
		problems = append(problems, ce.Problems...)
	}
	if len(problems) > 0 {
		return c, &ConfigError{Problems: problems}
	}
	return c, nil
}

// ConfigError lists every configuration problem, one per line.
type ConfigError struct {
	Problems []string
}

func (e *ConfigError) Error() string {
	return "configuration:\n  " + strings.Join(e.Problems, "\n  ")
}

// WithDefaults returns a copy with every zero field set to its default and
// the base URLs resolved from TTC_ENV and CYBS_ENV.
func (c Config) WithDefaults() Config {
	if len(c.Roles) == 0 {
		c.Roles = strings.Split(RolesDefault, ",")
	}
	c.NATSURL = cmp.Or(c.NATSURL, NATSURLDefault)
	c.RedisSentinelPassword = cmp.Or(c.RedisSentinelPassword, c.RedisPassword)
	c.TokenCache = cmp.Or(c.TokenCache, TokenCacheDefault)
	c.RedisReplicaTimeout = cmp.Or(c.RedisReplicaTimeout, RedisReplicaTimeoutDefault)
	if c.TTCBaseURL == "" {
		c.TTCBaseURL, _ = ttc.BaseURLFor(c.TTCEnv)
	}
	c.TTCTimeout = cmp.Or(c.TTCTimeout, ttc.TimeoutDefault)
	if c.CybsBaseURL == "" {
		c.CybsBaseURL = map[string]string{"test": cybs.TestBaseURL, "production": cybs.ProductionBaseURL}[c.CybsEnv]
	}
	c.CybsTimeout = cmp.Or(c.CybsTimeout, cybs.TimeoutDefault)
	c.PaymentsConcurrency = cmp.Or(c.PaymentsConcurrency, PaymentsConcurrencyDefault)
	c.CallbacksConcurrency = cmp.Or(c.CallbacksConcurrency, CallbacksConcurrencyDefault)
	c.AckWait = cmp.Or(c.AckWait, AckWaitDefault)
	c.Lease = cmp.Or(c.Lease, LeaseDefault)
	c.ResolveDelay = cmp.Or(c.ResolveDelay, ResolveDelayDefault)
	c.ResolveBudget = cmp.Or(c.ResolveBudget, ResolveBudgetDefault)
	c.ConfigBudget = cmp.Or(c.ConfigBudget, ConfigBudgetDefault)
	c.RetryBudget = cmp.Or(c.RetryBudget, RetryBudgetDefault)
	c.CallbackBudget = cmp.Or(c.CallbackBudget, CallbackBudgetDefault)
	c.CallbackRetryMax = cmp.Or(c.CallbackRetryMax, CallbackRetryMaxDefault)
	c.RecordRetention = cmp.Or(c.RecordRetention, RecordRetentionDefault)
	c.TokenRefreshAhead = cmp.Or(c.TokenRefreshAhead, TokenRefreshAheadDefault)
	c.StreamReplicas = cmp.Or(c.StreamReplicas, StreamReplicasDefault)
	c.MaxIntentBytes = cmp.Or(c.MaxIntentBytes, MaxIntentBytesDefault)
	c.MaxIntents = cmp.Or(c.MaxIntents, MaxIntentsDefault)
	c.DuplicateWindow = cmp.Or(c.DuplicateWindow, DuplicateWindowDefault)
	c.ResultsMaxAge = cmp.Or(c.ResultsMaxAge, ResultsMaxAgeDefault)
	c.DLQMaxAge = cmp.Or(c.DLQMaxAge, DLQMaxAgeDefault)
	c.HTTPAddr = cmp.Or(c.HTTPAddr, HTTPAddrDefault)
	c.DrainTimeout = cmp.Or(c.DrainTimeout, DrainTimeoutDefault)
	c.LogLevel = cmp.Or(c.LogLevel, LogLevelDefault)
	return c
}

// Validate applies the defaults and checks the configuration: required
// values, known names, and the relations between values. The error is a
// *ConfigError naming each problem by its environment variable.
func (c Config) Validate() error {
	raw := c
	c = c.WithDefaults()
	var ps []string
	bad := func(format string, args ...any) { ps = append(ps, fmt.Sprintf(format, args...)) }
	payments := contains(c.Roles, "payments")

	for _, r := range c.Roles {
		if r != "payments" && r != "callbacks" {
			bad("WORKER_ROLES: unknown role %q (want payments, callbacks or both)", r)
		}
	}
	ps = append(ps, c.NATS.Check(c.NATSURL)...)
	if c.RedisURL == "" && len(c.RedisAddrs) == 0 {
		bad("REDIS_URL (or REDIS_ADDRS) is required: intents are claimed in Redis before they are charged")
	}
	if c.RedisURL != "" && len(c.RedisAddrs) > 0 {
		bad("REDIS_URL and REDIS_ADDRS are both set: set one")
	}
	if raw.RedisSentinelPassword != "" && c.RedisMasterName == "" {
		bad("REDIS_SENTINEL_PASSWORD is set but REDIS_MASTER_NAME is not: the sentinel password is only used with Sentinel (REDIS_ADDRS + REDIS_MASTER_NAME)")
	}
	switch c.TokenCache {
	case "redis":
		switch {
		case len(c.CacheKey) > 0 && len(c.CacheKeys) > 0:
			bad("CACHE_ENCRYPTION_KEY and CACHE_ENCRYPTION_KEYS are both set: set one (CACHE_ENCRYPTION_KEYS for a rotation: the first encrypts, all decrypt)")
		case len(c.CacheKey) == 0 && len(c.CacheKeys) == 0 && payments: // only the payments role reads credentials
			bad("CACHE_ENCRYPTION_KEY or CACHE_ENCRYPTION_KEYS (or their _FILE variants) is required: 32 bytes, base64 or hex, e.g. from `openssl rand -base64 32`")
		}
	case "memory":
	default:
		bad("TOKEN_CACHE=%q: want redis or memory", c.TokenCache)
	}
	switch {
	case raw.TTCEnv != "" && raw.TTCBaseURL != "":
		bad("TTC_ENV and TTC_BASE_URL are both set: set one (TTC_BASE_URL is for a sandbox)")
	case c.TTCEnv != "":
		if _, err := ttc.BaseURLFor(c.TTCEnv); err != nil {
			bad("TTC_ENV: %v", err)
		}
	case c.TTCBaseURL == "":
		bad("TTC_ENV (uat or production) or TTC_BASE_URL is required; there is no default, so nothing reaches TTC by accident")
	}
	if raw.TTCBaseURL != "" {
		if err := ttc.CheckBaseURL(raw.TTCBaseURL); err != nil {
			bad("TTC_BASE_URL: %v", err)
		}
	}
	if len(c.TTCAPIKeys) == 0 {
		bad("TTC_API_KEYS (or TTC_API_KEYS_FILE) is required: integrator=key[,integrator=key...]")
	}
	switch {
	case raw.CybsEnv != "" && raw.CybsBaseURL != "":
		bad("CYBS_ENV and CYBS_BASE_URL are both set: set one (CYBS_BASE_URL is for a sandbox)")
	case c.CybsEnv != "" && c.CybsEnv != "test" && c.CybsEnv != "production":
		bad("CYBS_ENV=%q: want test or production", c.CybsEnv)
	case c.CybsBaseURL == "" && payments:
		bad("CYBS_ENV (test or production) or CYBS_BASE_URL is required for the payments role; there is no default")
	}
	if c.RequireEncryptedCard && len(c.CardKeys) == 0 && payments {
		bad("REQUIRE_ENCRYPTED_CARD is on but CARD_DECRYPTION_KEYS (or CARD_DECRYPTION_KEYS_FILE) is not set: no intent could be charged")
	}
	if len(c.DLQCardKey) > 0 {
		if r, err := cardcrypt.ParseRecipient(c.DLQCardKey); err != nil {
			bad("DLQ_CARD_PUBLIC_KEY: %v (want a PEM RSA public key of at least 2048 bits with a kid header)", err)
		} else if kr, err := cardcrypt.ParseKeyring(c.CardKeys); err == nil {
			if _, err := kr.Holds(r); err != nil {
				bad("DLQ_CARD_PUBLIC_KEY and CARD_DECRYPTION_KEYS: %v: a replayed dead letter would not decrypt", err)
			}
		}
	}
	switch c.OTELExporter {
	case "", "none", "otlp":
	default:
		bad("OTEL_TRACES_EXPORTER=%q: want otlp or none (OTLP endpoint and headers from the standard OTEL_EXPORTER_OTLP_* variables)", c.OTELExporter)
	}
	if _, err := zerolog.ParseLevel(c.LogLevel); err != nil || c.LogLevel == "" {
		bad("LOG_LEVEL=%q: want trace, debug, info, warn or error", c.LogLevel)
	}

	// Relations.
	if c.RedisReplicaTimeout >= RedisTimeout {
		bad("REDIS_REPLICA_TIMEOUT (%s) must be below the Redis read timeout (%s): WAIT holds the connection that long", c.RedisReplicaTimeout, RedisTimeout)
	}
	if c.Lease <= c.CybsTimeout+10*time.Second {
		bad("CHARGE_LEASE (%s) must exceed CYBS_TIMEOUT (%s) by more than 10s, or a slow charge could be presumed lost", c.Lease, c.CybsTimeout)
	}
	if payments && c.CybsTimeout+DrainMargin > c.DrainTimeout {
		bad("DRAIN_TIMEOUT (%s) must exceed CYBS_TIMEOUT (%s) by at least %s: a charge in flight at SIGTERM must finish and be recorded before the drain cancels it, or it becomes an unknown outcome (the Deployment's terminationGracePeriodSeconds must exceed DRAIN_TIMEOUT in turn)", c.DrainTimeout, c.CybsTimeout, DrainMargin)
	}
	if c.AckWait <= 3*time.Second {
		bad("ACK_WAIT (%s) must be more than 3s", c.AckWait)
	}
	if c.RecordRetention <= c.DLQMaxAge {
		bad("RECORD_RETENTION (%s) must exceed DLQ_MAX_AGE (%s): a record must outlive every copy of its intent", c.RecordRetention, c.DLQMaxAge)
	}
	if c.CallbackBudget+c.DLQMaxAge >= c.RecordRetention {
		bad("CALLBACK_BUDGET (%s) + DLQ_MAX_AGE (%s) must be below RECORD_RETENTION (%s): a callback job retried to the end of its budget and then dead-lettered must still find its intent's record", c.CallbackBudget, c.DLQMaxAge, c.RecordRetention)
	}
	if c.ResolveDelay < ResolveDelayMin && payments && !isSandboxURL(c.CybsBaseURL) {
		bad("RESOLVE_DELAY (%s) is below %s: CyberSource asks for 60 s before a timeout reversal or void; a shorter delay is only for a sandbox (CYBS_BASE_URL not on a CyberSource host)", c.ResolveDelay, ResolveDelayMin)
	}
	if len(ps) > 0 {
		return &ConfigError{Problems: ps}
	}
	return nil
}

// isSandboxURL: a CyberSource URL whose host is not one of CyberSource's.
func isSandboxURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" {
		return false
	}
	h := strings.ToLower(u.Hostname())
	return h != "cybersource.com" && !strings.HasSuffix(h, ".cybersource.com")
}

// CacheEncryptionKeys are the credential cache's keys, the encrypting one
// first: CACHE_ENCRYPTION_KEYS, or CACHE_ENCRYPTION_KEY alone.
func (c Config) CacheEncryptionKeys() [][]byte {
	if len(c.CacheKeys) > 0 {
		return c.CacheKeys
	}
	if len(c.CacheKey) > 0 {
		return [][]byte{c.CacheKey}
	}
	return nil
}

var errEmptyKey = errors.New("is empty")

func decodeKey(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	if b, err := base64.StdEncoding.DecodeString(s); err == nil && len(b) == 32 {
		return b, nil
	}
	if b, err := hex.DecodeString(s); err == nil && len(b) == 32 {
		return b, nil
	}
	return nil, errors.New("must be 32 bytes, written as base64 (44 characters) or hex (64 characters)")
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// EnvNames lists every environment variable LoadConfig reads (the _FILE
// variants included): the contract deploy/ is checked against.
func EnvNames() []string {
	seen := map[string]bool{}
	_, _ = LoadConfig(func(k string) string {
		seen[k] = true
		return ""
	})
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
