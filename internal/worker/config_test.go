package worker

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigProblemsOnePerLine(t *testing.T) {
	_, err := LoadConfig(func(string) string { return "" })
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
	c, err := LoadConfig(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if len(c.CacheKey) != 32 || c.TTCAPIKeys["acme"] != "k2" || c.TTCBaseURL == "" || c.PaymentsConcurrency != 8 || len(c.Roles) != 1 {
		t.Fatalf("%+v", c)
	}

	bad := map[string]string{
		"CACHE_ENCRYPTION_KEY": "short", "CHARGE_LEASE": "10s", "WORKER_ROLES": "payments,nope",
		"ACK_WAIT": "soon", "TOKEN_CACHE": "disk", "RECORD_RETENTION": "24h", "TTC_API_KEYS": "costco",
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
		if _, err := LoadConfig(func(x string) string { return e[x] }); err == nil || !strings.Contains(err.Error(), strings.Split(k, "_FILE")[0]) {
			t.Errorf("%s=%s: %v", k, v, err)
		} else if strings.Contains(err.Error(), "k1") || strings.Contains(err.Error(), v) && k == "CACHE_ENCRYPTION_KEY" {
			t.Errorf("%s: error quotes a secret: %v", k, err)
		}
	}
}
