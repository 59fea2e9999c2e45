package worker

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ttcpay/payflow/internal/cybs"
	"github.com/ttcpay/payflow/internal/ttc"
)

// Config is everything the worker reads from its environment. The README
// lists each variable with its default.
type Config struct {
	Roles []string

	NATSURL string

	RedisURL        string
	RedisAddrs      []string
	RedisMasterName string
	RedisPassword   string
	TokenCache      string // "redis" or "memory"
	CacheKey        []byte

	TTCBaseURL string
	TTCAPIKeys map[string]string
	TTCTimeout time.Duration

	CardKeys             []byte // PEM, kid headers
	RequireEncryptedCard bool

	CybsBaseURL    string
	CybsCAFile     string
	CybsSolutionID string
	CybsTimeout    time.Duration

	PaymentsConcurrency  int
	CallbacksConcurrency int
	AckWait              time.Duration
	Lease                time.Duration
	ResolveDelay         time.Duration
	ConfigBudget         time.Duration
	RetryBudget          time.Duration
	CallbackBudget       time.Duration
	CallbackRetryMax     time.Duration
	RecordRetention      time.Duration
	TokenRefreshAhead    float64

	StreamReplicas  int
	MaxIntentBytes  int
	MaxIntents      int
	DuplicateWindow time.Duration
	ResultsMaxAge   time.Duration
	DLQMaxAge       time.Duration

	HTTPAddr     string
	EnablePprof  bool
	DrainTimeout time.Duration
	LogLevel     string

	// Version is the build's version (set by the command, not the environment).
	Version string

	// OTELExporter is OTEL_TRACES_EXPORTER ("" or none: off; otlp). The
	// exporter's own OTEL_* variables are read through otelEnv.
	OTELExporter string
	otelEnv      func(string) string
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

func (e *envReader) bad(format string, args ...any) {
	e.problems = append(e.problems, fmt.Sprintf(format, args...))
}

// LoadConfig reads and validates the configuration; the error lists every
// problem, one per line.
func LoadConfig(getenv func(string) string) (Config, error) {
	e := &envReader{getenv: getenv}
	var c Config

	for _, r := range strings.Split(e.str("WORKER_ROLES", "payments,callbacks"), ",") {
		r = strings.TrimSpace(r)
		switch r {
		case "payments", "callbacks":
			c.Roles = append(c.Roles, r)
		case "":
		default:
			e.bad("WORKER_ROLES: unknown role %q (want payments, callbacks or both)", r)
		}
	}
	c.NATSURL = e.str("NATS_URL", "nats://127.0.0.1:4222")

	c.RedisURL = e.str("REDIS_URL", "")
	if a := e.str("REDIS_ADDRS", ""); a != "" {
		c.RedisAddrs = strings.Split(a, ",")
	}
	c.RedisMasterName = e.str("REDIS_MASTER_NAME", "")
	c.RedisPassword = e.secret("REDIS_PASSWORD")
	if c.RedisURL == "" && len(c.RedisAddrs) == 0 {
		e.bad("REDIS_URL (or REDIS_ADDRS) is required: intents are claimed in Redis before they are charged")
	}
	if c.RedisURL != "" && len(c.RedisAddrs) > 0 {
		e.bad("REDIS_URL and REDIS_ADDRS are both set: set one")
	}
	c.TokenCache = e.str("TOKEN_CACHE", "redis")
	switch c.TokenCache {
	case "redis":
		k := e.secret("CACHE_ENCRYPTION_KEY")
		switch key, err := decodeKey(k); {
		case k == "":
			e.bad("CACHE_ENCRYPTION_KEY (or CACHE_ENCRYPTION_KEY_FILE) is required: 32 bytes, base64 or hex, e.g. from `openssl rand -base64 32`")
		case err != nil:
			e.bad("CACHE_ENCRYPTION_KEY: %v", err)
		default:
			c.CacheKey = key
		}
	case "memory":
	default:
		e.bad("TOKEN_CACHE=%q: want redis or memory", c.TokenCache)
	}

	c.TTCBaseURL = e.str("TTC_BASE_URL", "")
	if env := e.str("TTC_ENV", ""); env != "" {
		u, err := ttc.BaseURLFor(env)
		if err != nil {
			e.bad("TTC_ENV: %v", err)
		} else if c.TTCBaseURL == "" {
			c.TTCBaseURL = u
		}
	}
	if c.TTCBaseURL == "" {
		e.bad("TTC_ENV (uat or production) or TTC_BASE_URL is required; there is no default, so nothing reaches TTC by accident")
	}
	c.TTCAPIKeys = map[string]string{}
	if keys := e.secret("TTC_API_KEYS"); keys == "" {
		e.bad("TTC_API_KEYS (or TTC_API_KEYS_FILE) is required: integrator=key[,integrator=key...]")
	} else {
		for _, kv := range strings.Split(keys, ",") {
			name, key, ok := strings.Cut(strings.TrimSpace(kv), "=")
			if !ok || name == "" || key == "" {
				e.bad("TTC_API_KEYS: an entry is not integrator=key (entry %d)", len(c.TTCAPIKeys)+1)
				continue
			}
			c.TTCAPIKeys[name] = key
		}
	}
	c.TTCTimeout = e.duration("TTC_TIMEOUT", ttc.TimeoutDefault)

	c.CybsBaseURL = e.str("CYBS_BASE_URL", "")
	if env := e.str("CYBS_ENV", ""); env != "" {
		switch env {
		case "test":
			c.CybsBaseURL = firstNonEmpty(c.CybsBaseURL, cybs.TestBaseURL)
		case "production":
			c.CybsBaseURL = firstNonEmpty(c.CybsBaseURL, cybs.ProductionBaseURL)
		default:
			e.bad("CYBS_ENV=%q: want test or production", env)
		}
	}
	if c.CybsBaseURL == "" && contains(c.Roles, "payments") {
		e.bad("CYBS_ENV (test or production) or CYBS_BASE_URL is required for the payments role; there is no default")
	}
	c.CybsCAFile = e.str("CYBS_CA_FILE", "")
	if k := e.secret("CARD_DECRYPTION_KEYS"); k != "" {
		c.CardKeys = []byte(k)
	}
	switch v := e.str("REQUIRE_ENCRYPTED_CARD", "false"); v {
	case "true", "1":
		c.RequireEncryptedCard = true
		if len(c.CardKeys) == 0 && contains(c.Roles, "payments") {
			e.bad("REQUIRE_ENCRYPTED_CARD is on but CARD_DECRYPTION_KEYS (or CARD_DECRYPTION_KEYS_FILE) is not set: no intent could be charged")
		}
	case "false", "0":
	default:
		e.bad("REQUIRE_ENCRYPTED_CARD=%q: want true or false", v)
	}
	c.CybsSolutionID = e.str("CYBS_SOLUTION_ID", "")
	c.CybsTimeout = e.duration("CYBS_TIMEOUT", cybs.TimeoutDefault)

	c.PaymentsConcurrency = e.integer("PAYMENTS_CONCURRENCY", 32, 1)
	c.CallbacksConcurrency = e.integer("CALLBACKS_CONCURRENCY", 16, 1)
	c.AckWait = e.duration("ACK_WAIT", 60*time.Second)
	c.Lease = e.duration("CHARGE_LEASE", 2*time.Minute)
	c.ResolveDelay = e.duration("RESOLVE_DELAY", 60*time.Second)
	c.ConfigBudget = e.duration("CONFIG_BUDGET", time.Hour)
	c.RetryBudget = e.duration("PAYMENT_RETRY_BUDGET", 24*time.Hour)
	c.CallbackBudget = e.duration("CALLBACK_BUDGET", 24*time.Hour)
	c.CallbackRetryMax = e.duration("CALLBACK_RETRY_MAX", 5*time.Minute)
	c.RecordRetention = e.duration("RECORD_RETENTION", 45*24*time.Hour)
	c.TokenRefreshAhead = e.fraction("TOKEN_REFRESH_AHEAD", 0.2)

	c.StreamReplicas = e.integer("STREAM_REPLICAS", 1, 1)
	c.MaxIntentBytes = e.integer("MAX_INTENT_BYTES", 64<<10, 1<<10)
	c.MaxIntents = e.integer("MAX_QUEUED_INTENTS", 1_000_000, 1)
	c.DuplicateWindow = e.duration("DUPLICATE_WINDOW", 10*time.Minute)
	c.ResultsMaxAge = e.duration("RESULTS_MAX_AGE", 7*24*time.Hour)
	c.DLQMaxAge = e.duration("DLQ_MAX_AGE", 30*24*time.Hour)

	c.HTTPAddr = e.str("HTTP_ADDR", ":8080")
	switch v := e.str("ENABLE_PPROF", "false"); v {
	case "true", "1":
		c.EnablePprof = true
	case "false", "0":
	default:
		e.bad("ENABLE_PPROF=%q: want true or false", v)
	}
	c.DrainTimeout = e.duration("DRAIN_TIMEOUT", 25*time.Second)
	c.LogLevel = e.str("LOG_LEVEL", "info")
	c.OTELExporter = e.str("OTEL_TRACES_EXPORTER", "")
	switch c.OTELExporter {
	case "", "none", "otlp":
	default:
		e.bad("OTEL_TRACES_EXPORTER=%q: want otlp or none (OTLP endpoint and headers from the standard OTEL_EXPORTER_OTLP_* variables)", c.OTELExporter)
	}
	for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_SERVICE_NAME"} {
		_ = e.getenv(k) // read by the exporter itself; listed here as the worker's
	}
	c.otelEnv = getenv

	// Cross-checks.
	if c.Lease <= c.CybsTimeout+10*time.Second {
		e.bad("CHARGE_LEASE (%s) must exceed CYBS_TIMEOUT (%s) by more than 10s, or a slow charge could be presumed lost", c.Lease, c.CybsTimeout)
	}
	if c.AckWait <= 3*time.Second {
		e.bad("ACK_WAIT (%s) must be more than 3s", c.AckWait)
	}
	if c.RecordRetention <= c.DLQMaxAge {
		e.bad("RECORD_RETENTION (%s) must exceed DLQ_MAX_AGE (%s): a record must outlive every copy of its intent", c.RecordRetention, c.DLQMaxAge)
	}
	if len(e.problems) > 0 {
		return c, errors.New("configuration:\n  " + strings.Join(e.problems, "\n  "))
	}
	return c, nil
}

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
