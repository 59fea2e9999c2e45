package worker_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ttcpay/payflow/internal/harness"
	"github.com/ttcpay/payflow/internal/sandbox"
	"github.com/ttcpay/payflow/internal/systemtest"
	"github.com/ttcpay/payflow/internal/worker"
)

// TestSentinelPasswordProtectedSentinels: the worker reaches Redis through
// sentinels that require a password, as the Bitnami chart's default
// auth.sentinel sets them up: by default with the Redis password, or with
// REDIS_SENTINEL_PASSWORD(_FILE). It charges through them, and again after
// the primary is killed and the replica promoted.
func TestSentinelPasswordProtectedSentinels(t *testing.T) {
	cases := []struct {
		name             string
		sentinelPassword string            // requirepass of the sentinels
		vars             map[string]string // besides REDIS_ADDRS, REDIS_MASTER_NAME, REDIS_PASSWORD
	}{
		// The chart's layout: one password for Redis and the sentinels.
		{name: "DefaultsToRedisPassword", sentinelPassword: "redis-pw"},
		// Sentinels without a password (auth.sentinel=false) accept the
		// default too: go-redis authenticates with HELLO, which Redis ≥ 6
		// accepts for a user without a password.
		{name: "UnprotectedSentinels", sentinelPassword: ""},
		{name: "SentinelPasswordFile", sentinelPassword: "sentinel-pw", vars: map[string]string{"REDIS_SENTINEL_PASSWORD_FILE": "sentinel-pw"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := harness.StartSentinel(t, harness.SentinelOptions{Password: "redis-pw", SentinelPassword: tc.sentinelPassword})
			e := systemtest.New(t, sandbox.Config{}, false)
			vars := map[string]string{
				"REDIS_URL": "", "REDIS_ADDRS": joinAddrs(s.SentinelAddrs()), "REDIS_MASTER_NAME": s.MasterName(),
				"REDIS_PASSWORD": "redis-pw",
			}
			for k, v := range tc.vars {
				if k == "REDIS_SENTINEL_PASSWORD_FILE" {
					f := filepath.Join(t.TempDir(), "sentinel-password")
					if err := os.WriteFile(f, []byte(v+"\n"), 0o600); err != nil {
						t.Fatal(err)
					}
					v = f
				}
				vars[k] = v
			}
			e.Start(e.Vars(vars), worker.TestConfig{}) // waits for /readyz
			e.Publish(systemtest.NewIntent("sentinel-1", "4111111111111111", "10.00", true))
			e.WaitFor("the first outcome", 20*time.Second, func() bool { return len(e.Results()) == 1 })

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			old, _, err := s.KillPrimary(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.WaitForPromotion(ctx, old); err != nil {
				t.Fatal(err)
			}
			e.Publish(systemtest.NewIntent("sentinel-2", "4111111111111111", "11.00", true))
			e.WaitFor("the outcome after the failover", 30*time.Second, func() bool { return len(e.Results()) == 2 })
			for id, r := range e.Results() {
				if r.Status != "AUTHORIZED" {
					t.Errorf("%s: %s", id, r.Status)
				}
			}
		})
	}
}

func joinAddrs(a []string) string {
	out := ""
	for i, s := range a {
		if i > 0 {
			out += ","
		}
		out += s
	}
	return out
}
