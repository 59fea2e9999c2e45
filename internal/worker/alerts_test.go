package worker_test

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/ttcpay/payflow/internal/sandbox"
	"github.com/ttcpay/payflow/internal/systemtest"
	"github.com/ttcpay/payflow/internal/worker"
)

// TestAlertRules runs promtool's unit tests of the alerting rules
// (deploy/prometheus/alerts_test.yaml) against the rules as kustomize
// renders them for production, and checks that every alert has a test that
// fires it and one that clears it. scripts/test.sh installs promtool and
// sets PAYFLOW_REQUIRE_PROMTOOL, so CI cannot skip it.
func TestAlertRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("PAYFLOW_REQUIRE_PROMTOOL") != "" {
			t.Fatal("promtool is required (scripts/test.sh installs it: apt-get install prometheus)")
		}
		t.Skip("promtool not installed (scripts/test.sh installs it)")
	}
	var groups any
	alerts := map[string]bool{}
	for _, d := range render(t, "production") {
		if d.kind() != "PrometheusRule" {
			continue
		}
		groups = dig(d, "spec", "groups")
		for _, g := range list(groups) {
			for _, r := range list(dig(g, "rules")) {
				if a := str(dig(r, "alert")); a != "" {
					alerts[a] = true
				}
			}
		}
	}
	if groups == nil {
		t.Fatal("no PrometheusRule rendered")
	}
	dir := t.TempDir()
	rules, _ := yaml.Marshal(map[string]any{"groups": groups})
	tests, err := os.ReadFile(filepath.Join("..", "..", "deploy", "prometheus", "alerts_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(dir, "rules.yaml"), rules, 0o600)
	_ = os.WriteFile(filepath.Join(dir, "alerts_test.yaml"), tests, 0o600)
	cmd := exec.Command(promtool, "test", "rules", "alerts_test.yaml")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}

	// Every alert is fired by a test and cleared by another.
	var spec struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(tests, &spec); err != nil {
		t.Fatal(err)
	}
	fired, cleared := map[string]bool{}, map[string]bool{}
	for _, tc := range spec.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fired[a.Alertname] = true
			} else {
				cleared[a.Alertname] = true
			}
		}
	}
	var missing []string
	for a := range alerts {
		if !fired[a] {
			missing = append(missing, a+" (no firing test)")
		}
		if !cleared[a] {
			missing = append(missing, a+" (no clearing test)")
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("alerts without tests: %v", missing)
	}
	t.Logf("%d alerts, each fired and cleared by promtool tests", len(alerts))
}

// TestDashboardAndAlertsUseRealMetrics: every payflow_ metric the dashboard
// and the alerts read is one a running worker exports (a renamed metric
// would otherwise leave a panel empty and an alert silent).
func TestDashboardAndAlertsUseRealMetrics(t *testing.T) {
	e := systemtest.New(t, sandbox.Config{}, false)
	w := e.Start(e.Vars(nil), worker.TestConfig{})
	resp, err := http.Get("http://" + w.Addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	exported := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^# TYPE (payflow_\w+) (\w+)`).FindAllStringSubmatch(string(body), -1) {
		exported[m[1]] = true
		if m[2] == "histogram" {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				exported[m[1]+s] = true
			}
		}
	}
	var used []string
	for _, f := range []string{"deploy/grafana/payflow-worker.json", "deploy/base/prometheusrule.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", "..", f))
		if err != nil {
			t.Fatal(err)
		}
		used = append(used, regexp.MustCompile(`payflow_[a-z_]+`).FindAllString(string(b), -1)...)
	}
	if len(used) < 20 || len(exported) < 20 {
		t.Fatalf("%d metric references, %d exported metrics: the parsing is broken", len(used), len(exported))
	}
	for _, name := range used {
		if name == "payflow_worker" || name == "payflow_" {
			continue // the job and rule group names
		}
		if !exported[name] {
			t.Errorf("%s is read by the dashboard or an alert but the worker does not export it", name)
		}
	}
}
