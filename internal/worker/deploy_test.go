package worker_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ttcpay/payflow/internal/streams"
	"github.com/ttcpay/payflow/internal/worker"
)

type probe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
}

type k8sObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Spec       struct {
		Template struct {
			Spec struct {
				TerminationGracePeriodSeconds int `yaml:"terminationGracePeriodSeconds"`
				Containers                    []struct {
					Ports []struct {
						Name          string `yaml:"name"`
						ContainerPort int    `yaml:"containerPort"`
					} `yaml:"ports"`
					Env []struct {
						Name  string `yaml:"name"`
						Value string `yaml:"value"`
					} `yaml:"env"`
					EnvFrom []struct {
						ConfigMapRef struct {
							Name string `yaml:"name"`
						} `yaml:"configMapRef"`
					} `yaml:"envFrom"`
					ReadinessProbe  *probe `yaml:"readinessProbe"`
					LivenessProbe   *probe `yaml:"livenessProbe"`
					StartupProbe    *probe `yaml:"startupProbe"`
					SecurityContext struct {
						ReadOnlyRootFilesystem bool `yaml:"readOnlyRootFilesystem"`
					} `yaml:"securityContext"`
				} `yaml:"containers"`
				SecurityContext struct {
					RunAsNonRoot bool `yaml:"runAsNonRoot"`
				} `yaml:"securityContext"`
				Volumes []struct {
					Secret struct {
						SecretName string `yaml:"secretName"`
					} `yaml:"secret"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
		ScaleTargetRef struct {
			Name string `yaml:"name"`
		} `yaml:"scaleTargetRef"`
		Triggers []struct {
			Type     string            `yaml:"type"`
			Metadata map[string]string `yaml:"metadata"`
		} `yaml:"triggers"`
	} `yaml:"spec"`
}

func readManifests(t *testing.T, dir string) []k8sObject {
	t.Helper()
	var out []k8sObject
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	for _, f := range files {
		if strings.HasSuffix(f, "kustomization.yaml") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var o k8sObject
			err := dec.Decode(&o)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			out = append(out, o)
		}
	}
	return out
}

// TestDeployManifests checks deploy/ against the code: every environment
// variable set is one the worker reads; probe paths and ports match the
// server; KEDA's stream and consumer names are the code's constants; the
// grace period exceeds the drain timeout; secrets referenced exist.
func TestDeployManifests(t *testing.T) {
	known := worker.EnvNames()
	objs := readManifests(t, "../../deploy/base")
	for _, overlay := range []string{"uat", "production"} {
		patches := readManifests(t, "../../deploy/overlays/"+overlay)
		if len(patches) == 0 {
			t.Fatalf("overlay %s has no patches", overlay)
		}
		for _, p := range patches {
			for k := range p.Data {
				if !slices.Contains(known, k) {
					t.Errorf("overlay %s sets %s, which the worker does not read", overlay, k)
				}
			}
			if overlay == "production" && p.Kind == "ConfigMap" && p.Data["REQUIRE_ENCRYPTED_CARD"] != "true" {
				t.Errorf("production does not require encrypted cards")
			}
		}
	}
	var config map[string]string
	secrets := map[string]bool{}
	deployments := map[string]k8sObject{}
	for _, o := range objs {
		switch o.Kind {
		case "ConfigMap":
			config = o.Data
		case "Secret":
			secrets[o.Metadata.Name] = true
		case "Deployment":
			deployments[o.Metadata.Name] = o
		}
	}
	for k := range config {
		if !slices.Contains(known, k) {
			t.Errorf("ConfigMap sets %s, which the worker does not read", k)
		}
	}
	drain, err := time.ParseDuration(config["DRAIN_TIMEOUT"])
	if err != nil {
		t.Fatalf("DRAIN_TIMEOUT: %v", err)
	}
	_, port, _ := strings.Cut(config["HTTP_ADDR"], ":")
	roles := map[string]string{}
	for name, d := range deployments {
		spec := d.Spec.Template.Spec
		if time.Duration(spec.TerminationGracePeriodSeconds)*time.Second <= drain+5*time.Second {
			t.Errorf("%s: grace period %ds does not exceed DRAIN_TIMEOUT %s by 5s", name, spec.TerminationGracePeriodSeconds, drain)
		}
		if !spec.SecurityContext.RunAsNonRoot {
			t.Errorf("%s: not runAsNonRoot", name)
		}
		for _, v := range spec.Volumes {
			if v.Secret.SecretName != "" && !secrets[v.Secret.SecretName] {
				t.Errorf("%s: secret %s is not defined", name, v.Secret.SecretName)
			}
		}
		c := spec.Containers[0]
		if !c.SecurityContext.ReadOnlyRootFilesystem {
			t.Errorf("%s: root filesystem not read-only", name)
		}
		for _, e := range c.Env {
			if !slices.Contains(known, e.Name) {
				t.Errorf("%s sets %s, which the worker does not read", name, e.Name)
			}
			if e.Name == "WORKER_ROLES" {
				roles[name] = e.Value
			}
		}
		if len(c.EnvFrom) == 0 || c.EnvFrom[0].ConfigMapRef.Name != "payflow-worker" {
			t.Errorf("%s does not read the ConfigMap", name)
		}
		if len(c.Ports) != 1 || c.Ports[0].Name != "http" || strconv.Itoa(c.Ports[0].ContainerPort) != port {
			t.Errorf("%s: container port %v does not match HTTP_ADDR %s", name, c.Ports, config["HTTP_ADDR"])
		}
		if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.ReadinessProbe.HTTPGet.Port != "http" {
			t.Errorf("%s: readiness probe must be /readyz on http", name)
		}
		if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" || c.LivenessProbe.HTTPGet.Port != "http" {
			t.Errorf("%s: liveness probe must be /healthz on http", name)
		}
	}
	if roles["payflow-payments"] != "payments" || roles["payflow-callbacks"] != "callbacks" {
		t.Fatalf("roles %v", roles)
	}
	wantKEDA := map[string][2]string{
		"payflow-payments":  {streams.StreamIntents, streams.ConsumerPayments},
		"payflow-callbacks": {streams.StreamCallbacks, streams.ConsumerCallbacks},
	}
	found := 0
	for _, o := range objs {
		if o.Kind != "ScaledObject" {
			continue
		}
		found++
		want, ok := wantKEDA[o.Spec.ScaleTargetRef.Name]
		if !ok {
			t.Errorf("ScaledObject %s targets %s", o.Metadata.Name, o.Spec.ScaleTargetRef.Name)
			continue
		}
		tr := o.Spec.Triggers[0]
		if tr.Type != "nats-jetstream" || tr.Metadata["stream"] != want[0] || tr.Metadata["consumer"] != want[1] {
			t.Errorf("ScaledObject %s: %s stream %q consumer %q, want %v", o.Metadata.Name, tr.Type, tr.Metadata["stream"], tr.Metadata["consumer"], want)
		}
	}
	if found != 2 {
		t.Errorf("%d ScaledObjects, want 2", found)
	}
}
