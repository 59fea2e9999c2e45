package worker

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ttcpay/payflow/internal/harness"
)

func TestConfigProblemsOnePerLine(t *testing.T) {
	_, err := ConfigFromEnv(func(string) string { return "" })
	if err == nil {
		t.Fatal("empty environment accepted")
	}
	for _, want := range []string{"REDIS_URL", "CACHE_ENCRYPTION_KEY", "TTC_ENV", "TTC_API_KEYS", "CYBS_ENV"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("no problem names %s:\n%v", want, err)
		}
	}
	if lines := strings.Count(err.Error(), "\n"); lines != 5 {
		t.Errorf("%d problem lines, want 5:\n%v", lines, err)
	}
}

func TestConfigValuesAndFiles(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	_ = os.WriteFile(keyFile, []byte("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n"), 0o600)
	apiFile := filepath.Join(dir, "api")
	_ = os.WriteFile(apiFile, []byte("costco=k1,acme=k2"), 0o600)
	env := map[string]string{
		"REDIS_URL": "redis://127.0.0.1:6379/0", "CACHE_ENCRYPTION_KEY_FILE": keyFile,
		"TTC_ENV": "uat", "TTC_API_KEYS_FILE": apiFile, "CYBS_ENV": "test",
		"WORKER_ROLES": "payments", "PAYMENTS_CONCURRENCY": "8",
	}
	c, err := ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	c = c.WithDefaults()
	if len(c.CacheKey) != 32 || c.TTCAPIKeys["acme"] != "k2" || c.TTCBaseURL == "" || c.PaymentsConcurrency != 8 || len(c.Roles) != 1 {
		t.Fatalf("%+v", c)
	}

	bad := map[string]string{
		"CACHE_ENCRYPTION_KEY": "short", "CHARGE_LEASE": "10s", "WORKER_ROLES": "payments,nope",
		"ACK_WAIT": "soon", "TOKEN_CACHE": "disk", "RECORD_RETENTION": "24h", "TTC_API_KEYS": "costco",
		"TTC_BASE_URL": "http://127.0.0.1:1", "CYBS_BASE_URL": "https://127.0.0.1:2", "LOG_LEVEL": "loud",
		"RESOLVE_DELAY": "5s", "CALLBACK_BUDGET": "384h",
	}
	for k, v := range bad {
		e := map[string]string{}
		for kk, vv := range env {
			e[kk] = vv
		}
		if k == "CACHE_ENCRYPTION_KEY" || k == "TTC_API_KEYS" {
			delete(e, k+"_FILE")
		}
		e[k] = v
		if _, err := ConfigFromEnv(func(x string) string { return e[x] }); err == nil || !strings.Contains(err.Error(), strings.Split(k, "_FILE")[0]) {
			t.Errorf("%s=%s: %v", k, v, err)
		} else if strings.Contains(err.Error(), "k1") || strings.Contains(err.Error(), v) && k == "CACHE_ENCRYPTION_KEY" {
			t.Errorf("%s: error quotes a secret: %v", k, err)
		}
	}
}

// TestConfigRelations: each cross-check names the variables it relates.
func TestConfigRelations(t *testing.T) {
	base := map[string]string{
		"REDIS_URL": "redis://127.0.0.1:6379/0", "CACHE_ENCRYPTION_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
		"TTC_BASE_URL": "http://127.0.0.1:1", "TTC_API_KEYS": "costco=k", "CYBS_BASE_URL": "https://127.0.0.1:2",
	}
	cases := []struct {
		name string
		env  map[string]string
		want string // "" means accepted
	}{
		{"SandboxAllowsShortResolveDelay", map[string]string{"RESOLVE_DELAY": "2s"}, ""},
		{"CyberSourceHostRefusesShortResolveDelay", map[string]string{"RESOLVE_DELAY": "2s", "CYBS_BASE_URL": "https://api-matest.cybersource.com"}, "RESOLVE_DELAY"},
		{"CyberSourceEnvRefusesShortResolveDelay", map[string]string{"RESOLVE_DELAY": "59s", "CYBS_BASE_URL": "", "CYBS_ENV": "test"}, "RESOLVE_DELAY"},
		{"CallbackBudgetPlusDLQAgeWithinRetention", map[string]string{"CALLBACK_BUDGET": "360h"}, "CALLBACK_BUDGET"},
		{"CallbackBudgetFits", map[string]string{"CALLBACK_BUDGET": "359h"}, ""},
		{"BothTTCURLs", map[string]string{"TTC_ENV": "uat"}, "TTC_ENV and TTC_BASE_URL"},
		{"BothCybsURLs", map[string]string{"CYBS_ENV": "test"}, "CYBS_ENV and CYBS_BASE_URL"},
		{"LogLevel", map[string]string{"LOG_LEVEL": "verbose"}, "LOG_LEVEL"},
		{"TTCPlainHTTPOnLoopback", map[string]string{"TTC_BASE_URL": "http://localhost:8081"}, ""},
		{"TTCPlainHTTPElsewhere", map[string]string{"TTC_BASE_URL": "http://ttc-sandbox.internal:8081"}, "TTC_BASE_URL"},
		{"TTCAPIKeysNewline", map[string]string{"TTC_API_KEYS": "costco=k1\nacme=k2"}, "TTC_API_KEYS"},
		{"TTCAPIKeysTab", map[string]string{"TTC_API_KEYS": "costco=k1\tx"}, "TTC_API_KEYS"},
		{"TTCAPIKeysLinesWithCommas", map[string]string{"TTC_API_KEYS": "costco=k1,\nacme=k2\n"}, ""},
		{"SentinelPasswordWithoutSentinel", map[string]string{"REDIS_SENTINEL_PASSWORD": "s3cret"}, "REDIS_SENTINEL_PASSWORD"},
		{"SentinelPasswordWithSentinel", map[string]string{"REDIS_URL": "", "REDIS_ADDRS": "127.0.0.1:26379", "REDIS_MASTER_NAME": "payflow", "REDIS_SENTINEL_PASSWORD": "s3cret"}, ""},
		// Only the payments role reads credentials: a callbacks pod holds no cache key.
		{"CallbacksWithoutCacheKey", map[string]string{"WORKER_ROLES": "callbacks", "CACHE_ENCRYPTION_KEY": ""}, ""},
		{"PaymentsWithoutCacheKey", map[string]string{"WORKER_ROLES": "payments", "CACHE_ENCRYPTION_KEY": ""}, "CACHE_ENCRYPTION_KEY"},
		{"NATSUserAndPassword", map[string]string{"NATS_USER": "payflow-payments", "NATS_PASSWORD": "s3cret", "NATS_INBOX_PREFIX": "_INBOX_payments"}, ""},
		{"NATSUserWithoutPassword", map[string]string{"NATS_USER": "payflow-payments"}, "NATS_USER"},
		{"NATSPasswordWithoutUser", map[string]string{"NATS_PASSWORD": "s3cret"}, "NATS_PASSWORD"},
		{"NATSPasswordControlCharacter", map[string]string{"NATS_USER": "u", "NATS_PASSWORD": "s3cret\nother"}, "NATS_PASSWORD"},
		{"NATSPasswordAndFile", map[string]string{"NATS_USER": "u", "NATS_PASSWORD": "s3cret", "NATS_PASSWORD_FILE": "config_test.go"}, "NATS_PASSWORD and NATS_PASSWORD_FILE"},
		{"NATSCredsAndUser", map[string]string{"NATS_CREDS_FILE": "config_test.go", "NATS_USER": "u", "NATS_PASSWORD": "s3cret"}, "NATS_CREDS_FILE and NATS_USER"},
		{"NATSCredsMissing", map[string]string{"NATS_CREDS_FILE": "no-such.creds"}, "NATS_CREDS_FILE"},
		{"NATSURLUserinfoAndUser", map[string]string{"NATS_URL": "nats://a:s3cret@127.0.0.1:4222", "NATS_USER": "u", "NATS_PASSWORD": "s3cret"}, "NATS_URL holds credentials"},
		{"NATSCANotACertificate", map[string]string{"NATS_CA_FILE": "config_test.go"}, "NATS_CA_FILE"},
		{"NATSInboxPrefixWildcard", map[string]string{"NATS_INBOX_PREFIX": "_INBOX.>"}, "NATS_INBOX_PREFIX"},
		// A charge in flight at SIGTERM must be able to finish within the drain.
		{"DrainShorterThanCybsTimeout", map[string]string{"CYBS_TIMEOUT": "30s", "DRAIN_TIMEOUT": "25s"}, "DRAIN_TIMEOUT (25s) must exceed CYBS_TIMEOUT (30s)"},
		{"DrainWithinMarginOfCybsTimeout", map[string]string{"CYBS_TIMEOUT": "30s", "DRAIN_TIMEOUT": "31s"}, "DRAIN_TIMEOUT"},
		{"DrainCoversCybsTimeout", map[string]string{"CYBS_TIMEOUT": "30s", "DRAIN_TIMEOUT": "32s"}, ""},
		{"DrainDefaultsFit", map[string]string{}, ""},
		{"CallbacksNeedNoCybsDrain", map[string]string{"WORKER_ROLES": "callbacks", "DRAIN_TIMEOUT": "5s"}, ""},
		{"DLQKeyNotAKey", map[string]string{"DLQ_CARD_PUBLIC_KEY": "not a key"}, "DLQ_CARD_PUBLIC_KEY"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range base {
				env[k] = v
			}
			for k, v := range tc.env {
				env[k] = v
			}
			_, err := ConfigFromEnv(func(k string) string { return env[k] })
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("want a problem naming %s, got %v", tc.want, err)
			case err != nil && (strings.Contains(err.Error(), "k1") || strings.Contains(err.Error(), "k2")):
				t.Fatalf("the problem quotes an API key: %v", err)
			case err != nil && strings.Contains(err.Error(), "s3cret"):
				t.Fatalf("a problem quotes a password: %v", err)
			}
		})
	}
}

// TestConfigSentinelPassword: the sentinels' password defaults to the
// Redis password (the Bitnami chart's auth.sentinel), and an explicit one
// wins, from the variable or its file.
func TestConfigSentinelPassword(t *testing.T) {
	file := filepath.Join(t.TempDir(), "sentinel")
	_ = os.WriteFile(file, []byte("from-file\n"), 0o600)
	cases := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"DefaultsToRedisPassword", map[string]string{"REDIS_PASSWORD": "redis-pw"}, "redis-pw"},
		{"Explicit", map[string]string{"REDIS_PASSWORD": "redis-pw", "REDIS_SENTINEL_PASSWORD": "sentinel-pw"}, "sentinel-pw"},
		{"File", map[string]string{"REDIS_PASSWORD": "redis-pw", "REDIS_SENTINEL_PASSWORD_FILE": file}, "from-file"},
		{"None", map[string]string{}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := LoadConfig(func(k string) string { return tc.env[k] })
			if err != nil {
				t.Fatal(err)
			}
			if got := c.WithDefaults().RedisSentinelPassword; got != tc.want {
				t.Fatalf("sentinel password %q, want %q", got, tc.want)
			}
		})
	}
}

// TestConfigSolutionIDLength: a CYBS_SOLUTION_ID over the 8 characters
// CyberSource documents is accepted (TTC's guide uses a 14-character test
// value) with a warning at start-up; one within the limit starts quietly.
func TestConfigSolutionIDLength(t *testing.T) {
	nats, rdb := harness.StartNATS(t), harness.StartRedis(t)
	for id, warn := range map[string]bool{"ttctestpartner": true, "ttcpart1": false, "": false} {
		t.Run(cmp.Or(id, "Unset"), func(t *testing.T) {
			env := map[string]string{
				"NATS_URL": nats.URL(), "REDIS_URL": rdb.URL(), "CACHE_ENCRYPTION_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
				"TTC_BASE_URL": "http://127.0.0.1:1", "TTC_API_KEYS": "costco=k", "CYBS_BASE_URL": "https://127.0.0.1:2",
				"CYBS_SOLUTION_ID": id,
			}
			cfg, err := ConfigFromEnv(func(k string) string { return env[k] })
			if err != nil {
				t.Fatal(err)
			}
			logs := &lockedBuffer{}
			w, err := New(context.Background(), cfg, zerolog.New(logs))
			if err != nil {
				t.Fatal(err)
			}
			w.close()
			if got := strings.Contains(logs.String(), `"level":"warn"`) && strings.Contains(logs.String(), "CYBS_SOLUTION_ID"); got != warn {
				t.Fatalf("warning logged: %v, want %v; logs:\n%s", got, warn, logs.String())
			}
		})
	}
}

// TestConfigCAFilePinsTrust: CYBS_CA_FILE is the whole trust for
// CyberSource (a sandbox's or a private proxy's CA), not an extra CA next to
// the system roots.
func TestConfigCAFilePinsTrust(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sandbox CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "ca.pem")
	_ = os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	pool, n, err := pinnedRoots(file)
	if err != nil || n != 1 {
		t.Fatalf("%d certificates, %v", n, err)
	}
	ca, _ := x509.ParseCertificate(der)
	want := x509.NewCertPool()
	want.AddCert(ca)
	if !pool.Equal(want) {
		t.Fatal("the pool holds more than the file's CA (the system roots?)")
	}
	_ = os.WriteFile(file, []byte("not a certificate"), 0o600)
	if _, _, err := pinnedRoots(file); err == nil || !strings.Contains(err.Error(), "CYBS_CA_FILE") {
		t.Fatalf("a file without a certificate: %v", err)
	}
}

// TestConfigCacheKeys: CACHE_ENCRYPTION_KEYS (or its _FILE) holds the keys of
// a rotation, the encrypting one first; CACHE_ENCRYPTION_KEY stays a single
// key; setting both is an error. No error quotes a key.
func TestConfigCacheKeys(t *testing.T) {
	const b64 = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // "0123456789abcdef0123456789abcdef"
	const hexKey = "6162636465666768696a6b6c6d6e6f706162636465666768696a6b6c6d6e6f70"
	dir := t.TempDir()
	keysFile := filepath.Join(dir, "keys")
	_ = os.WriteFile(keysFile, []byte(hexKey+" , "+b64+"\n"), 0o600)
	base := map[string]string{
		"REDIS_URL": "redis://127.0.0.1:6379/0", "TTC_BASE_URL": "http://127.0.0.1:1",
		"TTC_API_KEYS": "costco=k", "CYBS_BASE_URL": "https://127.0.0.1:2",
	}
	cases := []struct {
		name  string
		env   map[string]string
		first string // the encrypting key's first byte, "" when refused
		n     int    // keys
		want  string // a problem naming this, when refused
	}{
		{"OneKey", map[string]string{"CACHE_ENCRYPTION_KEY": b64}, "0", 1, ""},
		{"Keys", map[string]string{"CACHE_ENCRYPTION_KEYS": b64 + "," + hexKey}, "0", 2, ""},
		{"KeysHexFirst", map[string]string{"CACHE_ENCRYPTION_KEYS": hexKey + ", " + b64}, "a", 2, ""},
		{"KeysFile", map[string]string{"CACHE_ENCRYPTION_KEYS_FILE": keysFile}, "a", 2, ""},
		{"BothSet", map[string]string{"CACHE_ENCRYPTION_KEY": b64, "CACHE_ENCRYPTION_KEYS": hexKey}, "", 0, "CACHE_ENCRYPTION_KEY and CACHE_ENCRYPTION_KEYS are both set"},
		{"KeysAndFile", map[string]string{"CACHE_ENCRYPTION_KEYS": b64, "CACHE_ENCRYPTION_KEYS_FILE": keysFile}, "", 0, "CACHE_ENCRYPTION_KEYS and CACHE_ENCRYPTION_KEYS_FILE are both set"},
		{"ShortKeyInList", map[string]string{"CACHE_ENCRYPTION_KEYS": b64 + ",c2hvcnQ="}, "", 0, "CACHE_ENCRYPTION_KEYS: key 2"},
		{"EmptyEntry", map[string]string{"CACHE_ENCRYPTION_KEYS": b64 + ",,"}, "", 0, "CACHE_ENCRYPTION_KEYS: key 2"},
		{"None", map[string]string{}, "", 0, "CACHE_ENCRYPTION_KEY or CACHE_ENCRYPTION_KEYS"},
		{"NoneNeededForMemory", map[string]string{"TOKEN_CACHE": "memory"}, "", 0, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range base {
				env[k] = v
			}
			for k, v := range tc.env {
				env[k] = v
			}
			c, err := ConfigFromEnv(func(k string) string { return env[k] })
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("want a problem naming %q, got %v", tc.want, err)
				}
				for _, secret := range []string{b64, hexKey, "c2hvcnQ="} {
					if strings.Contains(err.Error(), secret) {
						t.Fatalf("the error quotes a key: %v", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			keys := c.CacheEncryptionKeys()
			if len(keys) != tc.n || (tc.n > 0 && string(keys[0][:1]) != tc.first) {
				t.Fatalf("%d keys; want %d, the first starting with %q", len(keys), tc.n, tc.first)
			}
		})
	}
	for _, name := range []string{"CACHE_ENCRYPTION_KEYS", "CACHE_ENCRYPTION_KEYS_FILE", "CACHE_ENCRYPTION_KEY", "CACHE_ENCRYPTION_KEY_FILE"} {
		if !slices.Contains(EnvNames(), name) {
			t.Errorf("EnvNames lacks %s", name)
		}
	}
}

// TestConfigFingerprintKeys: FINGERPRINT_KEYS (or its _FILE) is optional;
// the keys of a rotation come in order; a bad entry is named, never quoted.
func TestConfigFingerprintKeys(t *testing.T) {
	const b64 = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	const hexKey = "6162636465666768696a6b6c6d6e6f706162636465666768696a6b6c6d6e6f70"
	keysFile := filepath.Join(t.TempDir(), "fp")
	_ = os.WriteFile(keysFile, []byte(hexKey+","+b64+"\n"), 0o600)
	for _, tc := range []struct {
		name  string
		env   map[string]string
		first string
		n     int
		want  string
	}{
		{"None", nil, "", 0, ""},
		{"Two", map[string]string{"FINGERPRINT_KEYS": b64 + "," + hexKey}, "0", 2, ""},
		{"File", map[string]string{"FINGERPRINT_KEYS_FILE": keysFile}, "a", 2, ""},
		{"Short", map[string]string{"FINGERPRINT_KEYS": "c2hvcnQ="}, "", 0, "FINGERPRINT_KEYS: key 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"REDIS_URL": "redis://127.0.0.1:6379/0", "TTC_BASE_URL": "http://127.0.0.1:1",
				"TTC_API_KEYS": "costco=k", "CYBS_BASE_URL": "https://127.0.0.1:2", "TOKEN_CACHE": "memory"}
			for k, v := range tc.env {
				env[k] = v
			}
			c, err := ConfigFromEnv(func(k string) string { return env[k] })
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "c2hvcnQ=") {
					t.Fatalf("want a problem naming %q (never the key), got %v", tc.want, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(c.FingerprintKeys) != tc.n || tc.n > 0 && string(c.FingerprintKeys[0][:1]) != tc.first {
				t.Fatalf("%d keys; want %d starting with %q", len(c.FingerprintKeys), tc.n, tc.first)
			}
		})
	}
}

// lockedBuffer is a log buffer that NATS's callbacks may write to while
// the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
