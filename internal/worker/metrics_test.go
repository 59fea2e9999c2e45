package worker

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ttcpay/payflow/internal/tokencache"
	"github.com/ttcpay/payflow/internal/ttc"
)

// refusingTTC answers every token request with TTC's 404 (no refresh token).
type refusingTTC struct{}

func (refusingTTC) Token(context.Context, string, string) (*ttc.Token, error) {
	return nil, &ttc.Error{Op: "token", Kind: ttc.KindNoRefreshToken, Status: 404}
}

// TestCacheMetricsByIntegrator: refresh failures are exported per configured
// integrator, every other name under "other", so that an alert can name who
// is failing and a label never carries text from an intent.
func TestCacheMetricsByIntegrator(t *testing.T) {
	c := tokencache.New(refusingTTC{}, tokencache.NewMemoryStore(), tokencache.Options{Integrators: []string{"costco", "acme"}})
	reg := prometheus.NewRegistry()
	registerCacheMetrics(reg, c)
	ctx := context.Background()
	for _, k := range []struct{ integrator, merchant string }{{"costco", "m1"}, {"costco", "m2"}, {"4111111111111111", "m1"}} {
		if _, err := c.Get(ctx, k.integrator, k.merchant); ttc.KindOf(err) != ttc.KindNoRefreshToken {
			t.Fatalf("%v: %v", k, err)
		}
	}
	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			got[name] = m.GetCounter().GetValue()
		}
	}
	want := map[string]float64{
		"payflow_credentials_refresh_failures_by_integrator_total{integrator=acme}":   0,
		"payflow_credentials_refresh_failures_by_integrator_total{integrator=costco}": 2,
		"payflow_credentials_refresh_failures_by_integrator_total{integrator=other}":  1,
		"payflow_credentials_refresh_failures_total":                                  3,
	}
	for name, v := range want {
		if g, ok := got[name]; !ok || g != v {
			t.Errorf("%s = %v (exported: %v), want %v", name, g, ok, v)
		}
	}
	for name := range got {
		if strings.Contains(name, "4111") {
			t.Errorf("a label carries the intent's integrator: %s", name)
		}
	}
}
