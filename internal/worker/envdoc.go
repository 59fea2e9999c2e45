package worker

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// EnvVar documents one environment variable of the worker. Name may end in
// "(_FILE)": the variable, or a file that holds its value. `worker --help`
// prints these; a test checks that they are exactly the variables
// LoadConfig reads and the README's configuration table lists.
type EnvVar struct {
	Name, Default, Meaning string
}

// EnvVars lists every environment variable the worker reads, in the
// README's order.
func EnvVars() []EnvVar {
	return []EnvVar{
		{"WORKER_ROLES", RolesDefault, "consumers this pod runs: payments, callbacks or both"},
		{"NATS_URL", NATSURLDefault, "NATS servers (comma-separated)"},
		{"NATS_USER", "", "the role's NATS user (with NATS_PASSWORD)"},
		{"NATS_PASSWORD(_FILE)", "", "its password"},
		{"NATS_CREDS_FILE", "", "instead of NATS_USER: a .creds file (user JWT and NKey seed)"},
		{"NATS_CA_FILE", "system roots", "PEM CA of the NATS servers' certificate; requires TLS"},
		{"NATS_INBOX_PREFIX", "_INBOX", "prefix of the reply inboxes (_INBOX_payments, _INBOX_callbacks)"},
		{"REDIS_URL", "", "one Redis URL (this or REDIS_ADDRS is required)"},
		{"REDIS_ADDRS", "", "Sentinel or Cluster addresses (comma-separated)"},
		{"REDIS_MASTER_NAME", "", "the Sentinel master's name"},
		{"REDIS_PASSWORD(_FILE)", "", "Redis password"},
		{"REDIS_SENTINEL_PASSWORD(_FILE)", "REDIS_PASSWORD", "the sentinels' own password"},
		{"REDIS_MIN_REPLICAS", "0", "replicas that must acknowledge each guard write (WAIT); 0 for one node"},
		{"REDIS_REPLICA_TIMEOUT", short(RedisReplicaTimeoutDefault), "how long a guard write waits for them; below 2s"},
		{"TOKEN_CACHE", TokenCacheDefault, "redis (shared by all pods) or memory (one process)"},
		{"CACHE_ENCRYPTION_KEY(_FILE)", "", "32-byte key (base64 or hex) of the credentials in Redis (payments role)"},
		{"CACHE_ENCRYPTION_KEYS(_FILE)", "", "for a rotation: comma-separated keys, the first encrypts, all decrypt"},
		{"FINGERPRINT_KEYS(_FILE)", "unkeyed", "comma-separated 32-byte keys of the intents' card fingerprints"},
		{"TTC_ENV", "", "uat or production (this or TTC_BASE_URL is required)"},
		{"TTC_BASE_URL", "", "TTC base URL of a sandbox (https; http only on loopback)"},
		{"TTC_API_KEYS(_FILE)", "", "integrator=key[,integrator=key...] (required)"},
		{"TTC_TIMEOUT", "10s", "one TTC call"},
		{"CYBS_ENV", "", "test or production (this or CYBS_BASE_URL is required for payments)"},
		{"CYBS_BASE_URL", "", "CyberSource base URL of a sandbox (https)"},
		{"CYBS_CA_FILE", "system roots", "PEM CA(s) that replace the system roots for CyberSource"},
		{"CARD_DECRYPTION_KEYS(_FILE)", "", "PEM RSA private keys with kid headers that open encryptedCard"},
		{"REQUIRE_ENCRYPTED_CARD", "false", "refuse intents with a plaintext card"},
		{"DLQ_CARD_PUBLIC_KEY(_FILE)", "", "PEM RSA public key (kid header) that dead-lettered cards are sealed to"},
		{"CYBS_SOLUTION_ID", "", "clientReferenceInformation.partner.solutionId"},
		{"CYBS_TIMEOUT", "30s", "one CyberSource call; beyond it the outcome is unknown"},
		{"PAYMENTS_CONCURRENCY", fmt.Sprint(PaymentsConcurrencyDefault), "payments processed at once per pod"},
		{"CALLBACKS_CONCURRENCY", fmt.Sprint(CallbacksConcurrencyDefault), "callbacks processed at once per pod"},
		{"ACK_WAIT", short(AckWaitDefault), "JetStream ack wait"},
		{"CHARGE_LEASE", short(LeaseDefault), "lease on an intent while it is charged; > CYBS_TIMEOUT + 10s"},
		{"RESOLVE_DELAY", short(ResolveDelayDefault), "wait before a timeout reversal/void of an unknown attempt (>= 60s)"},
		{"RESOLVE_BUDGET", short(ResolveBudgetDefault), "how long an unknown outcome is worked on before a person is asked"},
		{"CONFIG_BUDGET", short(ConfigBudgetDefault), "how long a configuration failure is retried before dead-lettering"},
		{"PAYMENT_RETRY_BUDGET", short(RetryBudgetDefault), "how long failing attempts without a charge are retried"},
		{"CALLBACK_RETRY_MAX", short(CallbackRetryMaxDefault), "longest delay between two callback deliveries"},
		{"CALLBACK_BUDGET", short(CallbackBudgetDefault), "how long a TTC callback is retried before dead-lettering"},
		{"RECORD_RETENTION", short(RecordRetentionDefault), "idempotency record lifetime; > DLQ_MAX_AGE"},
		{"TOKEN_REFRESH_AHEAD", fmt.Sprint(TokenRefreshAheadDefault), "refresh when this fraction of a token's lifetime is left"},
		{"STREAM_REPLICAS", fmt.Sprint(StreamReplicasDefault), "replicas of a stream the worker creates"},
		{"MAX_INTENT_BYTES", fmt.Sprint(MaxIntentBytesDefault), "largest intent message the stream accepts"},
		{"MAX_QUEUED_INTENTS", fmt.Sprint(MaxIntentsDefault), "intents waiting at most (an existing stream keeps its own)"},
		{"DUPLICATE_WINDOW", short(DuplicateWindowDefault), "JetStream duplicate window"},
		{"RESULTS_MAX_AGE", short(ResultsMaxAgeDefault), "retention of results"},
		{"DLQ_MAX_AGE", short(DLQMaxAgeDefault), "retention of dead letters"},
		{"HTTP_ADDR", HTTPAddrDefault, "/healthz, /readyz, /metrics"},
		{"ENABLE_PPROF", "false", "serve /debug/pprof/"},
		{"DRAIN_TIMEOUT", short(DrainTimeoutDefault), "SIGTERM: finish in-flight work this long; > CYBS_TIMEOUT + 2s"},
		{"LOG_LEVEL", LogLevelDefault, "trace, debug, info, warn or error"},
		{"OTEL_TRACES_EXPORTER", "none", "otlp exports spans over OTLP/HTTP"},
		{"OTEL_EXPORTER_OTLP_ENDPOINT", "", "the OTLP collector's base URL"},
		{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "", "the collector's traces URL (overrides the base URL)"},
		{"OTEL_EXPORTER_OTLP_HEADERS", "", "headers of the OTLP requests (key=value,...)"},
		{"OTEL_SERVICE_NAME", "payflow-worker", "service name of the spans"},
	}
}

// EnvVarNames expands "(_FILE)" into the two names it stands for.
func (v EnvVar) EnvVarNames() []string {
	if n, ok := strings.CutSuffix(v.Name, "(_FILE)"); ok {
		return []string{n, n + "_FILE"}
	}
	return []string{v.Name}
}

// WriteHelp writes `worker --help`: what the command does and its
// environment variables with their defaults.
func WriteHelp(w io.Writer) error {
	fmt.Fprint(w, `Usage: worker

Runs payflow's consumers: role "payments" charges intents exactly once,
role "callbacks" tells TTC. Takes no arguments: everything comes from the
environment (X(_FILE): the value, or a file that holds it). SIGTERM drains.
HTTP: /healthz, /readyz (says what the start-up waits for), /metrics.

`)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIABLE\tDEFAULT\tMEANING")
	for _, v := range EnvVars() {
		d := v.Default
		if d == "" {
			d = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", v.Name, d, v.Meaning)
	}
	return tw.Flush()
}

// short writes a duration without its zero parts ("24h", not "24h0m0s").
func short(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
