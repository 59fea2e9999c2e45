package worker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"gopkg.in/yaml.v3"

	"github.com/ttcpay/payflow/internal/cybs"
	"github.com/ttcpay/payflow/internal/deadletter"
	"github.com/ttcpay/payflow/internal/harness"
	"github.com/ttcpay/payflow/internal/streams"
	"github.com/ttcpay/payflow/internal/worker"
)

// The tests below check deploy/ as it is applied: each overlay rendered by
// kustomize (the version scripts/test.sh renders with, from the Go module
// proxy), the Helm values of NATS and Redis, and the README's walkthrough
// commands that tie them together (release names, namespaces, secrets).

const kustomizeModule = "sigs.k8s.io/kustomize/kustomize/v5@v5.6.0"

var overlays = []string{"uat", "production"}

// pendingEnv are variables the manifests set before the worker reads them,
// each with the work that makes the worker read it. Once the worker reads
// one, TestDeployManifests fails until it is removed from here.
var pendingEnv = map[string]string{}

// doc is one rendered object (or a values file), as YAML decodes it.
type doc map[string]any

func (d doc) kind() string { return str(d["kind"]) }
func (d doc) name() string { return str(dig(d, "metadata", "name")) }

// dig walks maps by key and lists by index ("0", "1", ...).
func dig(v any, path ...string) any {
	for _, p := range path {
		switch m := v.(type) {
		case map[string]any:
			v = m[p]
		case doc:
			v = m[p]
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i >= len(m) {
				return nil
			}
			v = m[i]
		default:
			return nil
		}
	}
	return v
}

func str(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

func list(v any) []any { l, _ := v.([]any); return l }

// intAt returns an integer field and whether it is set.
func intAt(v any, path ...string) (int, bool) {
	switch n := dig(v, path...).(type) {
	case int:
		return n, true
	case string:
		i, err := strconv.Atoi(n)
		return i, err == nil
	}
	return 0, false
}

func decodeDocs(t *testing.T, what string, b []byte) []doc {
	t.Helper()
	var out []doc
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var m map[string]any // nested mappings decode as map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if m != nil {
			out = append(out, doc(m))
		}
	}
}

var (
	renderMu    sync.Mutex
	renderCache = map[string][]doc{}
)

// render is `kustomize build deploy/overlays/<overlay>`.
func render(t *testing.T, overlay string) []doc {
	t.Helper()
	renderMu.Lock()
	defer renderMu.Unlock()
	if docs, ok := renderCache[overlay]; ok {
		return docs
	}
	cmd := exec.Command("go", "run", kustomizeModule, "build", filepath.Join("..", "..", "deploy", "overlays", overlay))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kustomize build %s: %v\n%s", overlay, err, stderr.String())
	}
	docs := decodeDocs(t, overlay, out)
	renderCache[overlay] = docs
	return docs
}

func readValues(t *testing.T, path string) doc {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", path))
	if err != nil {
		t.Fatal(err)
	}
	docs := decodeDocs(t, path, b)
	if len(docs) != 1 {
		t.Fatalf("%s: %d documents", path, len(docs))
	}
	return docs[0]
}

func readme(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// helmRelease is a `helm upgrade --install` command of the README.
type helmRelease struct {
	release, chart, version, namespace string
}

// readmeRelease finds the README's install command of a chart. Without
// one it fails the test and goes on with release and namespace "name".
func readmeRelease(t *testing.T, chart, name string) helmRelease {
	t.Helper()
	re := regexp.MustCompile(`helm upgrade --install (\S+) ` + regexp.QuoteMeta(chart) + `((?: --version \S+)?) -n (\S+)`)
	m := re.FindStringSubmatch(readme(t))
	if m == nil {
		t.Errorf("the README has no `helm upgrade --install RELEASE %s [--version V] -n NAMESPACE`", chart)
		return helmRelease{release: name, chart: chart, namespace: name}
	}
	return helmRelease{release: m[1], chart: chart, version: strings.TrimPrefix(m[2], " --version "), namespace: m[3]}
}

// fullname is Helm's usual <release>-<chart> name, or the release name
// when it already contains the chart's name (both charts name their
// objects so).
func (h helmRelease) fullname(chartName string) string {
	if strings.Contains(h.release, chartName) {
		return h.release
	}
	return h.release + "-" + chartName
}

const (
	natsChart  = "nats/nats"
	redisChart = "oci://registry-1.docker.io/bitnamicharts/redis"
)

func byKind(docs []doc, kind string) []doc {
	var out []doc
	for _, d := range docs {
		if d.kind() == kind {
			out = append(out, d)
		}
	}
	return out
}

func configMap(t *testing.T, docs []doc) map[string]string {
	t.Helper()
	for _, d := range byKind(docs, "ConfigMap") {
		if strings.HasPrefix(d.name(), "payflow-worker") {
			out := map[string]string{}
			for k, v := range dig(d, "data").(map[string]any) {
				out[k] = str(v)
			}
			return out
		}
	}
	t.Fatal("no payflow-worker ConfigMap")
	return nil
}

func container(d doc) doc {
	c, _ := dig(d, "spec", "template", "spec", "containers", "0").(map[string]any)
	return c
}

func envOf(d doc) map[string]string {
	out := map[string]string{}
	for _, e := range list(dig(container(d), "env")) {
		out[str(dig(e, "name"))] = str(dig(e, "value"))
	}
	return out
}

// TestDeployManifests checks each rendered overlay against the code: every
// environment variable set is one the worker reads; probe paths and ports
// match the server; KEDA's stream and consumer names are the code's
// constants; the grace period exceeds the drain timeout; every Secret a pod
// mounts is one the README's walkthrough creates in that namespace.
func TestDeployManifests(t *testing.T) {
	known := worker.EnvNames()
	for name, why := range pendingEnv {
		if slices.Contains(known, name) {
			t.Errorf("the worker now reads %s (%s): remove it from pendingEnv", name, why)
		}
	}
	knownOrPending := func(k string) bool { _, p := pendingEnv[k]; return p || slices.Contains(known, k) }
	created := regexp.MustCompile("kubectl -n (\\S+) create secret generic (\\S+)").FindAllStringSubmatch(readme(t), -1)
	for _, overlay := range overlays {
		t.Run(overlay, func(t *testing.T) {
			docs := render(t, overlay)
			config := configMap(t, docs)
			for k := range config {
				if !knownOrPending(k) {
					t.Errorf("the ConfigMap sets %s, which the worker does not read", k)
				}
			}
			if overlay == "production" && config["REQUIRE_ENCRYPTED_CARD"] != "true" {
				t.Errorf("production does not require encrypted cards")
			}
			drain, err := time.ParseDuration(config["DRAIN_TIMEOUT"])
			if err != nil {
				t.Fatalf("DRAIN_TIMEOUT: %v", err)
			}
			// A charge in flight at SIGTERM finishes within the drain.
			cybsTimeout := cybs.TimeoutDefault
			if v := config["CYBS_TIMEOUT"]; v != "" {
				if cybsTimeout, err = time.ParseDuration(v); err != nil {
					t.Fatalf("CYBS_TIMEOUT: %v", err)
				}
			}
			if cybsTimeout+worker.DrainMargin > drain {
				t.Errorf("DRAIN_TIMEOUT %s does not exceed CYBS_TIMEOUT %s by %s: a rollout during a slow CyberSource turns charges into unknown outcomes", drain, cybsTimeout, worker.DrainMargin)
			}
			_, port, _ := strings.Cut(config["HTTP_ADDR"], ":")
			roles := map[string]string{}
			for _, d := range byKind(docs, "Deployment") {
				name, ns := d.name(), str(dig(d, "metadata", "namespace"))
				grace, _ := intAt(d, "spec", "template", "spec", "terminationGracePeriodSeconds")
				if time.Duration(grace)*time.Second <= drain+5*time.Second {
					t.Errorf("%s: grace period %ds does not exceed DRAIN_TIMEOUT %s by 5s", name, grace, drain)
				}
				if dig(d, "spec", "template", "spec", "securityContext", "runAsNonRoot") != true {
					t.Errorf("%s: not runAsNonRoot", name)
				}
				for _, v := range list(dig(d, "spec", "template", "spec", "volumes")) {
					secret := str(dig(v, "secret", "secretName"))
					if secret == "" {
						continue
					}
					if !slices.ContainsFunc(created, func(m []string) bool { return m[1] == ns && m[2] == secret }) {
						t.Errorf("%s mounts Secret %s, which the README's walkthrough does not create in namespace %s (`kubectl -n %s create secret generic %s`)", name, secret, ns, ns, secret)
					}
				}
				c := container(d)
				if dig(c, "securityContext", "readOnlyRootFilesystem") != true {
					t.Errorf("%s: root filesystem not read-only", name)
				}
				env := envOf(d)
				for k := range env {
					if !knownOrPending(k) {
						t.Errorf("%s sets %s, which the worker does not read", name, k)
					}
				}
				roles[name] = env["WORKER_ROLES"]
				switch env["WORKER_ROLES"] {
				case "payments":
					// Rotation-ready: a rotation edits the Secret (old,new →
					// new,old → new), never the Deployment.
					if env["CACHE_ENCRYPTION_KEYS_FILE"] == "" || env["CACHE_ENCRYPTION_KEY_FILE"] != "" || env["CACHE_ENCRYPTION_KEY"] != "" {
						t.Errorf("%s: the cache key must come from CACHE_ENCRYPTION_KEYS_FILE (the first encrypts, all decrypt), not CACHE_ENCRYPTION_KEY(_FILE)", name)
					}
					if env["DLQ_CARD_PUBLIC_KEY_FILE"] == "" {
						t.Errorf("%s: no DLQ_CARD_PUBLIC_KEY_FILE: dead-lettered cards could only be removed", name)
					}
				case "callbacks":
					// Least privilege: no card keys, no cache key.
					for _, k := range []string{"CARD_DECRYPTION_KEYS_FILE", "CACHE_ENCRYPTION_KEYS_FILE", "CACHE_ENCRYPTION_KEY_FILE", "DLQ_CARD_PUBLIC_KEY_FILE"} {
						if env[k] != "" {
							t.Errorf("%s sets %s, which the callbacks role does not use", name, k)
						}
					}
				}
				if str(dig(c, "envFrom", "0", "configMapRef", "name")) != str(configMapName(docs)) {
					t.Errorf("%s does not read the ConfigMap", name)
				}
				ports := list(dig(c, "ports"))
				if cp, _ := intAt(c, "ports", "0", "containerPort"); len(ports) != 1 || str(dig(c, "ports", "0", "name")) != "http" || strconv.Itoa(cp) != port {
					t.Errorf("%s: container ports %v do not match HTTP_ADDR %s", name, ports, config["HTTP_ADDR"])
				}
				if str(dig(c, "readinessProbe", "httpGet", "path")) != "/readyz" || str(dig(c, "readinessProbe", "httpGet", "port")) != "http" {
					t.Errorf("%s: readiness probe must be /readyz on http", name)
				}
				if str(dig(c, "livenessProbe", "httpGet", "path")) != "/healthz" || str(dig(c, "livenessProbe", "httpGet", "port")) != "http" {
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
			scaled := byKind(docs, "ScaledObject")
			for _, o := range scaled {
				target := str(dig(o, "spec", "scaleTargetRef", "name"))
				want, ok := wantKEDA[target]
				if !ok {
					t.Errorf("ScaledObject %s targets %s", o.name(), target)
					continue
				}
				tr := dig(o, "spec", "triggers", "0")
				if str(dig(tr, "type")) != "nats-jetstream" || str(dig(tr, "metadata", "stream")) != want[0] || str(dig(tr, "metadata", "consumer")) != want[1] {
					t.Errorf("ScaledObject %s: trigger %v, want stream %s consumer %s", o.name(), tr, want[0], want[1])
				}
			}
			if len(scaled) != 2 {
				t.Errorf("%d ScaledObjects, want 2", len(scaled))
			}
		})
	}
}

func configMapName(docs []doc) string {
	for _, d := range byKind(docs, "ConfigMap") {
		if strings.HasPrefix(d.name(), "payflow-worker") {
			return d.name()
		}
	}
	return ""
}

// TestDeployRelations checks, on each rendered overlay, the relations
// between the manifests and what they run against: the NATS chart's
// services, KEDA's ownership of the replica count, /readyz's time budget,
// kube-prometheus-stack's selectors, the secrets, and the Redis chart's
// sentinels.
func TestDeployRelations(t *testing.T) {
	nats := readmeRelease(t, natsChart, "nats")
	redisRel := readmeRelease(t, redisChart, "redis")
	natsValues := readValues(t, "deploy/nats/values.yaml")
	redisValues := readValues(t, "deploy/redis/values.yaml")
	for _, overlay := range overlays {
		docs := render(t, overlay)
		config := configMap(t, docs)
		deployments := map[string]doc{}
		for _, d := range byKind(docs, "Deployment") {
			deployments[d.name()] = d
		}
		t.Run(overlay+"/KEDAEndpointIsNATSHeadlessService", func(t *testing.T) {
			// The chart's ClusterIP service exposes the client port only;
			// the monitoring port is on the headless service, and on a
			// cluster KEDA's scaler reaches each node as
			// <server>.<endpoint host>, which only the headless name resolves.
			if dig(natsValues, "config", "monitor", "enabled") == false {
				t.Fatal("deploy/nats/values.yaml turns the monitoring port off: KEDA's scaler reads it")
			}
			port, ok := intAt(natsValues, "config", "monitor", "port")
			if !ok {
				port = 8222
			}
			full := nats.fullname("nats")
			want := fmt.Sprintf("%s-headless.%s.svc.cluster.local:%d", full, nats.namespace, port)
			for _, o := range byKind(docs, "ScaledObject") {
				for _, tr := range list(dig(o, "spec", "triggers")) {
					if got := str(dig(tr, "metadata", "natsServerMonitoringEndpoint")); got != want {
						t.Errorf("ScaledObject %s: natsServerMonitoringEndpoint %q, want the chart's headless service %q", o.name(), got, want)
					}
				}
			}
			if want := fmt.Sprintf("nats://%s.%s.svc.cluster.local:4222", full, nats.namespace); config["NATS_URL"] != want {
				t.Errorf("NATS_URL %q, want the chart's client service %q", config["NATS_URL"], want)
			}
		})
		t.Run(overlay+"/NoReplicasOnScaledDeployments", func(t *testing.T) {
			for _, o := range byKind(docs, "ScaledObject") {
				target := str(dig(o, "spec", "scaleTargetRef", "name"))
				d, ok := deployments[target]
				if !ok {
					t.Errorf("ScaledObject %s targets %s, which is not rendered", o.name(), target)
					continue
				}
				if r, set := intAt(d, "spec", "replicas"); set {
					t.Errorf("Deployment %s sets spec.replicas %d, but KEDA's HPA owns it: every apply would reset it (use the ScaledObject's minReplicaCount)", target, r)
				}
				min, set := intAt(o, "spec", "minReplicaCount")
				max, _ := intAt(o, "spec", "maxReplicaCount")
				if !set || min < 1 || min > max {
					t.Errorf("ScaledObject %s: minReplicaCount %d (set %v), maxReplicaCount %d", o.name(), min, set, max)
				}
				if c, set := intAt(o, "spec", "cooldownPeriod"); set && min > 0 {
					t.Errorf("ScaledObject %s: cooldownPeriod %d with minReplicaCount %d: KEDA uses it only to scale to zero", o.name(), c, min)
				}
			}
		})
		t.Run(overlay+"/ProbeTimeoutsCoverReadyzBudget", func(t *testing.T) {
			downAfter, ok := intAt(redisValues, "sentinel", "downAfterMilliseconds")
			if !ok {
				downAfter = 60000 // the chart's default
			}
			for name, d := range deployments {
				p := dig(container(d), "readinessProbe")
				timeout, ok := intAt(p, "timeoutSeconds")
				if !ok {
					timeout = 1 // Kubernetes' default
				}
				if time.Duration(timeout)*time.Second < worker.ReadinessTimeout+time.Second {
					t.Errorf("%s: readiness probe timeout %ds does not cover /readyz's %s budget plus a second", name, timeout, worker.ReadinessTimeout)
				}
				period, ok := intAt(p, "periodSeconds")
				if !ok {
					period = 10
				}
				failures, ok := intAt(p, "failureThreshold")
				if !ok {
					failures = 3
				}
				// A Redis failover takes down-after-milliseconds plus a few
				// seconds; readiness should not drop every pod for it.
				if ride := time.Duration(period*failures) * time.Second; ride <= time.Duration(downAfter)*time.Millisecond+5*time.Second {
					t.Errorf("%s: readiness fails after %s of failed probes, within a Sentinel failover (down-after %dms + 5s)", name, ride, downAfter)
				}
			}
		})
		t.Run(overlay+"/MonitoringReleaseLabels", func(t *testing.T) {
			var release string
			for _, kind := range []string{"ServiceMonitor", "PrometheusRule"} {
				objs := byKind(docs, kind)
				if len(objs) != 1 {
					t.Errorf("%d %s objects, want 1", len(objs), kind)
					continue
				}
				r := str(dig(objs[0], "metadata", "labels", "release"))
				if r == "" {
					t.Errorf("%s %s has no release label: kube-prometheus-stack's default selectors ignore it", kind, objs[0].name())
				}
				if release != "" && r != release {
					t.Errorf("%s release label %q, the ServiceMonitor's is %q", kind, r, release)
				}
				release = r
			}
			if pm := str(dig(natsValues, "promExporter", "podMonitor", "merge", "metadata", "labels", "release")); pm != release {
				t.Errorf("deploy/nats/values.yaml's PodMonitor release label %q, the overlay's %q (the consumer-lag alert reads the NATS exporter)", pm, release)
			}
			var notReady string
			for _, r := range byKind(docs, "PrometheusRule") {
				for _, g := range list(dig(r, "spec", "groups")) {
					for _, rule := range list(dig(g, "rules")) {
						if str(dig(rule, "alert")) == "PayflowNotReady" {
							notReady = str(dig(rule, "expr"))
						}
					}
				}
			}
			if !strings.Contains(notReady, "absent(") {
				t.Errorf("PayflowNotReady %q is silent when there are no targets: use absent()", notReady)
			}
		})
		t.Run(overlay+"/NoPlaceholders", func(t *testing.T) {
			for _, s := range byKind(docs, "Secret") {
				if dig(s, "data") != nil || dig(s, "stringData") != nil {
					t.Errorf("the overlay applies Secret %s with values: an apply would overwrite the real one", s.name())
				}
			}
			for _, d := range docs {
				for _, p := range placeholders(d, d.kind()+"/"+d.name()) {
					t.Error(p)
				}
			}
		})
		t.Run(overlay+"/SentinelPasswordWired", func(t *testing.T) {
			if config["REDIS_MASTER_NAME"] == "" {
				t.Skip("no Sentinel")
			}
			if want := str(dig(redisValues, "sentinel", "masterSet")); config["REDIS_MASTER_NAME"] != want {
				t.Errorf("REDIS_MASTER_NAME %q, the chart's sentinel.masterSet %q", config["REDIS_MASTER_NAME"], want)
			}
			nodes, ok := intAt(redisValues, "replica", "replicaCount")
			if !ok {
				nodes = 3
			}
			full := redisRel.fullname("redis")
			var want []string
			for i := range nodes {
				want = append(want, fmt.Sprintf("%s-node-%d.%s-headless.%s.svc.cluster.local:26379", full, i, full, redisRel.namespace))
			}
			if got := strings.Split(config["REDIS_ADDRS"], ","); !slices.Equal(got, want) {
				t.Errorf("REDIS_ADDRS %v, want the chart's sentinels %v", got, want)
			}
			secret := str(dig(redisValues, "auth", "existingSecret"))
			key := str(dig(redisValues, "auth", "existingSecretPasswordKey"))
			sentinelAuth := dig(redisValues, "auth", "sentinel") != false
			for name, d := range deployments {
				env := envOf(d)
				for _, v := range []string{"REDIS_PASSWORD_FILE", "REDIS_SENTINEL_PASSWORD_FILE"} {
					if v == "REDIS_SENTINEL_PASSWORD_FILE" && !sentinelAuth {
						continue
					}
					path := env[v]
					if path == "" {
						t.Errorf("%s does not set %s: the chart's sentinels require the password (auth.sentinel)", name, v)
						continue
					}
					if got := mountedSecret(d, path); got != secret+"/"+key {
						t.Errorf("%s: %s=%s is %q, want key %q of the chart's Secret %q", name, v, path, got, key, secret)
					}
				}
			}
		})
	}
}

// mountedSecret names the Secret and key a file path of the pod reads, as
// "secret/key" (a volume's items map keys to other paths).
func mountedSecret(d doc, path string) string {
	spec := dig(d, "spec", "template", "spec")
	for _, m := range list(dig(container(d), "volumeMounts")) {
		dir := strings.TrimSuffix(str(dig(m, "mountPath")), "/") + "/"
		if path == "" || !strings.HasPrefix(path, dir) {
			continue
		}
		for _, v := range list(dig(spec, "volumes")) {
			if str(dig(v, "name")) != str(dig(m, "name")) || dig(v, "secret") == nil {
				continue
			}
			file := strings.TrimPrefix(path, dir)
			items := list(dig(v, "secret", "items"))
			if len(items) == 0 {
				return str(dig(v, "secret", "secretName")) + "/" + file
			}
			for _, it := range items {
				if str(dig(it, "path")) == file {
					return str(dig(v, "secret", "secretName")) + "/" + str(dig(it, "key"))
				}
			}
		}
	}
	return ""
}

var placeholderRE = regexp.MustCompile(`(?i)replace_?with|change_?me|<your[ _-]`)

// placeholders lists every string value under v that looks like a
// placeholder.
func placeholders(v any, at string) []string {
	var out []string
	switch x := v.(type) {
	case doc:
		return placeholders(map[string]any(x), at)
	case map[string]any:
		for k, e := range x {
			out = append(out, placeholders(e, at+"."+k)...)
		}
	case []any:
		for i, e := range x {
			out = append(out, placeholders(e, fmt.Sprintf("%s[%d]", at, i))...)
		}
	case string:
		if placeholderRE.MatchString(x) {
			out = append(out, fmt.Sprintf("%s is a placeholder (%.40q)", at, x))
		}
	}
	return out
}

// TestDeployRedisValues checks deploy/redis against the chart and the
// worker: pinned chart and images, the auth Secret where the chart looks
// for it, memory sized and bounded, persistence stated, a failover time
// chosen, and production's replication guard.
func TestDeployRedisValues(t *testing.T) {
	rel := readmeRelease(t, redisChart, "redis")
	text := readme(t)
	v := readValues(t, "deploy/redis/values.yaml")
	var prod doc = map[string]any{}
	if _, err := os.Stat("../../deploy/redis/values-production.yaml"); err == nil {
		prod = readValues(t, "deploy/redis/values-production.yaml")
	} else {
		t.Error("no deploy/redis/values-production.yaml: production's Redis needs replicas and min-replicas-to-write")
	}
	for _, p := range append(placeholders(v, "values.yaml"), placeholders(prod, "values-production.yaml")...) {
		t.Error(p)
	}
	if rel.version == "" {
		t.Errorf("the README installs %s without --version", redisChart)
	}
	if !strings.Contains(text, "-f deploy/redis/values.yaml -f deploy/redis/values-production.yaml") {
		t.Errorf("the README does not install production's Redis with deploy/redis/values-production.yaml")
	}
	for _, img := range []string{"image", "sentinel.image"} {
		path := append(strings.Split(img, "."), "tag")
		tag := str(dig(v, path...))
		if tag == "" || strings.HasPrefix(tag, "latest") {
			t.Errorf("%s.tag %q is not pinned", img, tag)
		}
		repo := str(dig(v, append(strings.Split(img, "."), "repository")...))
		if repo != "" && !strings.HasPrefix(repo, "bitnami/") && dig(v, "global", "security", "allowInsecureImages") != true {
			t.Errorf("%s.repository %s replaces the chart's image: the chart refuses to render without global.security.allowInsecureImages", img, repo)
		}
	}
	secret := str(dig(v, "auth", "existingSecret"))
	if secret == "" {
		t.Error("auth.existingSecret is not set: the chart would generate a password the worker does not know")
	} else if !strings.Contains(text, fmt.Sprintf("kubectl -n %s create secret generic %s", rel.namespace, secret)) {
		t.Errorf("the chart reads Secret %s in its own namespace %s, and the README does not create it there", secret, rel.namespace)
	}

	common := str(dig(v, "commonConfiguration"))
	directive := func(conf, name string) (string, bool) {
		for _, line := range strings.Split(conf, "\n") {
			f := strings.Fields(line)
			if len(f) >= 1 && f[0] == name {
				return strings.Join(f[1:], " "), true
			}
		}
		return "", false
	}
	for name, want := range map[string]string{"appendonly": "yes", "maxmemory-policy": "noeviction", "hash-max-listpack-value": "1024"} {
		if got, _ := directive(common, name); got != want {
			t.Errorf("commonConfiguration: %s %q, want %q", name, got, want)
		}
	}
	if _, ok := directive(common, "save"); !ok {
		t.Error("commonConfiguration replaces the chart's default (which had save \"\"): state whether RDB snapshots run beside AOF")
	}
	maxmemory, ok := directive(common, "maxmemory")
	mm, err := redisBytes(maxmemory)
	if !ok || err != nil || mm == 0 {
		t.Errorf("commonConfiguration: maxmemory %q (%v): size it from the bytes per record", maxmemory, err)
	}
	limit, err := k8sBytes(str(dig(v, "replica", "resources", "limits", "memory")))
	if err != nil {
		t.Errorf("replica.resources.limits.memory: %v (without it the chart's nano preset applies)", err)
	} else if limit < 2*mm {
		t.Errorf("replica memory limit %d bytes is under twice maxmemory (%d): an AOF rewrite or full sync forks", limit, mm)
	}
	if dig(v, "replica", "resources", "limits", "cpu") != nil {
		t.Error("replica.resources.limits.cpu throttles the Lua scripts into the worker's 2 s timeouts: request CPU, do not limit it")
	}
	if dig(v, "sentinel", "resources") == nil {
		t.Error("sentinel.resources is not set: the chart's nano preset applies")
	}
	if downAfter, ok := intAt(v, "sentinel", "downAfterMilliseconds"); !ok || downAfter >= 60000 {
		t.Errorf("sentinel.downAfterMilliseconds %d (set %v): the chart's 60 s leaves a minute without Redis", downAfter, ok)
	} else if !strings.Contains(text, fmt.Sprintf("down-after-milliseconds %d", downAfter)) {
		t.Errorf("the README does not state down-after-milliseconds %d and the unavailability it gives", downAfter)
	}

	// Production: replicas, and the primary refuses writes no replica
	// receives.
	if n, ok := intAt(prod, "replica", "replicaCount"); ok && n < 3 {
		t.Errorf("production replica.replicaCount %d: want at least 3 (a primary and two replicas)", n)
	}
	conf := str(dig(prod, "replica", "configuration"))
	if got, _ := directive(conf, "min-replicas-to-write"); got != "1" {
		t.Errorf("production min-replicas-to-write %q, want 1", got)
	}
	if _, ok := directive(conf, "min-replicas-max-lag"); !ok {
		t.Error("production sets no min-replicas-max-lag")
	}
	if dig(prod, "commonConfiguration") != nil {
		t.Error("values-production.yaml replaces commonConfiguration (Helm does not merge strings): put additions in replica.configuration")
	}
	if config := configMap(t, render(t, "production")); config["REDIS_MIN_REPLICAS"] != "1" {
		t.Errorf("the production overlay's REDIS_MIN_REPLICAS %q, want 1 to match min-replicas-to-write", config["REDIS_MIN_REPLICAS"])
	}
}

// redisBytes parses a Redis memory size (2gb, 2560mb, 1048576).
func redisBytes(s string) (int64, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"gb", 1 << 30}, {"mb", 1 << 20}, {"kb", 1 << 10}, {"g", 1e9}, {"m", 1e6}, {"k", 1e3}, {"b", 1}} {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			return v * u.mult, err
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

// k8sBytes parses a Kubernetes memory quantity (5Gi, 512Mi, 1G).
func k8sBytes(s string) (int64, error) {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40}, {"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}} {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			return v * u.mult, err
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("memory quantity %q: %w", s, err)
	}
	return v, nil
}

// TestDeployRedisConfigDirectives: every directive deploy/redis gives Redis
// (commonConfiguration, production's replica.configuration) is one a real
// redis-server accepts with that value: a typo there would crash-loop every
// Redis pod.
func TestDeployRedisConfigDirectives(t *testing.T) {
	r := harness.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rdb.Close()
	ctx := context.Background()
	for _, f := range []struct{ file, key string }{
		{"deploy/redis/values.yaml", "commonConfiguration"},
		{"deploy/redis/values-production.yaml", "replica.configuration"},
	} {
		conf := str(dig(readValues(t, f.file), strings.Split(f.key, ".")...))
		if conf == "" {
			t.Errorf("%s: no %s", f.file, f.key)
		}
		for _, line := range strings.Split(conf, "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			name, value, _ := strings.Cut(line, " ")
			value = strings.Trim(strings.TrimSpace(value), `"`)
			if err := rdb.ConfigSet(ctx, name, value).Err(); err != nil {
				t.Errorf("%s %s: %q: %v", f.file, f.key, line, err)
			}
		}
	}
}

// natsRole is what one NATS user may do: the contract between the code
// (internal/streams: subjects, streams, consumers; the JetStream API calls
// each process makes) and deploy/nats/values.yaml, which TestDeployNATS
// compares and TestNATSPermissions runs on a real server.
type natsRole struct {
	user      string
	inbox     string   // NATS_INBOX_PREFIX
	publish   []string // publish allow list
	subscribe []string // subscribe allow list
}

const jsAPI = "$JS.API."

var allStreams = []string{streams.StreamIntents, streams.StreamResults, streams.StreamCallbacks, streams.StreamDLQ}

// natsRoles are the four roles by name: a worker role's name is its
// WORKER_ROLES value.
func natsRoles() map[string]natsRole {
	// A worker creates missing streams and checks them (readiness), and
	// pulls from and acks on its own durable consumer only.
	worker := func(stream, consumer string, publish ...string) []string {
		for _, s := range allStreams {
			publish = append(publish, jsAPI+"STREAM.INFO."+s, jsAPI+"STREAM.CREATE."+s)
		}
		sc := stream + "." + consumer
		return append(publish, jsAPI+"CONSUMER.CREATE."+sc, jsAPI+"CONSUMER.INFO."+sc, jsAPI+"CONSUMER.MSG.NEXT."+sc, "$JS.ACK."+sc+".>")
	}
	// An ordered consumer (dlq list, publish --wait): create, pull,
	// recreate after a gap, delete.
	reader := func(stream string) []string {
		return []string{jsAPI + "CONSUMER.CREATE." + stream + ".>", jsAPI + "CONSUMER.INFO." + stream + ".>",
			jsAPI + "CONSUMER.MSG.NEXT." + stream + ".>", jsAPI + "CONSUMER.DELETE." + stream + ".>"}
	}
	// The operator also writes replay notes (dlq replay) and reads waiting
	// callback jobs (status, intent show).
	operator := []string{streams.IntentsPrefix + ">", streams.CallbacksPrefix + ">", deadletter.ReplayedPrefix + ">", jsAPI + "INFO", jsAPI + "STREAM.NAMES", jsAPI + "STREAM.LIST"}
	for _, s := range allStreams {
		operator = append(operator, jsAPI+"STREAM.INFO."+s, jsAPI+"STREAM.CREATE."+s, jsAPI+"STREAM.UPDATE."+s,
			jsAPI+"CONSUMER.NAMES."+s, jsAPI+"CONSUMER.LIST."+s, jsAPI+"CONSUMER.INFO."+s+".>")
	}
	for _, s := range []string{streams.StreamResults, streams.StreamDLQ} {
		for _, p := range reader(s) {
			if !slices.Contains(operator, p) {
				operator = append(operator, p)
			}
		}
	}
	operator = append(operator, jsAPI+"STREAM.MSG.GET."+streams.StreamDLQ, jsAPI+"STREAM.MSG.DELETE."+streams.StreamDLQ,
		jsAPI+"STREAM.MSG.GET."+streams.StreamCallbacks)
	return map[string]natsRole{
		"upstream": {user: "payflow-upstream", inbox: "_INBOX_upstream",
			publish: append([]string{streams.IntentsPrefix + ">", jsAPI + "STREAM.INFO." + streams.StreamResults}, reader(streams.StreamResults)...)},
		"payments": {user: "payflow-payments", inbox: "_INBOX_payments",
			publish: worker(streams.StreamIntents, streams.ConsumerPayments, streams.ResultsPrefix+">", streams.CallbacksPrefix+">", streams.DLQIntentsPrefix+">")},
		"callbacks": {user: "payflow-callbacks", inbox: "_INBOX_callbacks",
			publish: worker(streams.StreamCallbacks, streams.ConsumerCallbacks, streams.DLQCallbacksPrefix+">")},
		"operator": {user: "payflow-operator", inbox: "_INBOX_operator", publish: operator},
	}
}

func (r natsRole) subscribeAllow() []string { return []string{r.inbox + ".>"} }

// natsUsers reads the users of deploy/nats/values.yaml: account name, and
// user by name with its password and permissions.
type natsUser struct {
	account, password  string
	publish, subscribe []string
}

func natsUsers(t *testing.T, values doc) map[string]natsUser {
	t.Helper()
	out := map[string]natsUser{}
	accounts, _ := dig(values, "config", "merge", "accounts").(map[string]any)
	for name, acc := range accounts {
		for _, u := range list(dig(acc, "users")) {
			strs := func(path ...string) []string {
				var s []string
				for _, v := range list(dig(u, path...)) {
					s = append(s, str(v))
				}
				return s
			}
			if dig(u, "permissions", "publish", "deny") != nil || dig(u, "permissions", "subscribe", "deny") != nil || dig(u, "permissions", "allow_responses") != nil {
				t.Errorf("user %s: deny lists or allow_responses: the contract is allow lists only", str(dig(u, "user")))
			}
			out[str(dig(u, "user"))] = natsUser{account: name, password: str(dig(u, "password")),
				publish: strs("permissions", "publish", "allow"), subscribe: strs("permissions", "subscribe", "allow")}
		}
	}
	return out
}

// TestDeployNATS checks deploy/nats/values.yaml and the overlays against
// the code and the README: one user per role whose publish and subscribe
// permissions are exactly the role's (natsRoles, built from the constants
// of internal/streams), in one account with JetStream, which KEDA reads;
// passwords only from a Secret the README creates; TLS on client and route
// connections from a Secret the README creates; each worker Deployment logs
// in as its role's user with its own password file, the CA and the inbox
// prefix its permissions allow.
func TestDeployNATS(t *testing.T) {
	values := readValues(t, "deploy/nats/values.yaml")
	rel := readmeRelease(t, natsChart, "nats")
	created := regexp.MustCompile("kubectl -n (\\S+) create secret generic (\\S+)").FindAllStringSubmatch(readme(t), -1)
	createdIn := func(ns, name string) bool {
		return slices.ContainsFunc(created, func(m []string) bool { return m[1] == ns && m[2] == name })
	}
	users := natsUsers(t, values)
	roles := natsRoles()
	var account string
	for name, role := range roles {
		u, ok := users[role.user]
		if !ok {
			t.Errorf("role %s: no user %s in deploy/nats/values.yaml", name, role.user)
			continue
		}
		if account == "" {
			account = u.account
		} else if u.account != account {
			t.Errorf("user %s is in account %s, the others in %s: the streams live in one account", role.user, u.account, account)
		}
		if got, want := sorted(u.publish), sorted(role.publish); !slices.Equal(got, want) {
			t.Errorf("user %s (%s) may publish\n  %v\nwant exactly\n  %v\n(extra %v, missing %v)", role.user, name, got, want, minus(got, want), minus(want, got))
		}
		if got, want := sorted(u.subscribe), sorted(role.subscribeAllow()); !slices.Equal(got, want) {
			t.Errorf("user %s (%s) may subscribe to %v, want exactly %v", role.user, name, got, want)
		}
		m := regexp.MustCompile(`^<<\s+\$(\w+)\s+>>$`).FindStringSubmatch(u.password)
		if m == nil {
			t.Errorf("user %s: password %q is not a variable (<< $VAR >>) set from a Secret", role.user, u.password)
			continue
		}
		ref := dig(values, "container", "env", m[1], "valueFrom", "secretKeyRef")
		if secret := str(dig(ref, "name")); secret == "" || !createdIn(rel.namespace, secret) {
			t.Errorf("user %s: $%s comes from Secret %q, which the README does not create in namespace %s", role.user, m[1], secret, rel.namespace)
		}
	}
	if len(users) != len(roles) {
		t.Errorf("%d NATS users, want one per role (%d)", len(users), len(roles))
	}
	if js := str(dig(values, "config", "merge", "accounts", account, "jetstream")); js != "enabled" && js != "true" {
		t.Errorf("account %s has no JetStream (jetstream: %q)", account, js)
	}
	for _, conn := range []string{"nats", "cluster"} {
		tls := dig(values, "config", conn, "tls")
		if dig(tls, "enabled") != true || !createdIn(rel.namespace, str(dig(tls, "secretName"))) {
			t.Errorf("config.%s.tls: %v; want enabled, from a Secret the README creates in namespace %s", conn, tls, rel.namespace)
		}
	}
	if dig(values, "config", "nats", "tls", "ca") != nil {
		t.Error("config.nats.tls.ca makes the chart require client certificates (verify: true); clients log in with passwords")
	}
	if dig(values, "config", "cluster", "tls", "ca") == nil {
		t.Error("config.cluster.tls has no ca: routes could not verify each other")
	}

	for _, overlay := range overlays {
		t.Run(overlay, func(t *testing.T) {
			docs := render(t, overlay)
			for _, o := range byKind(docs, "ScaledObject") {
				for _, tr := range list(dig(o, "spec", "triggers")) {
					if got := str(dig(tr, "metadata", "account")); got != account {
						t.Errorf("ScaledObject %s reads account %q; the streams are in %q", o.name(), got, account)
					}
				}
			}
			for _, d := range byKind(docs, "Deployment") {
				env := envOf(d)
				role, ok := roles[env["WORKER_ROLES"]]
				if !ok {
					t.Errorf("%s: WORKER_ROLES %q is not one role", d.name(), env["WORKER_ROLES"])
					continue
				}
				if env["NATS_USER"] != role.user {
					t.Errorf("%s: NATS_USER %q, want %q", d.name(), env["NATS_USER"], role.user)
				}
				if env["NATS_INBOX_PREFIX"] != role.inbox {
					t.Errorf("%s: NATS_INBOX_PREFIX %q, want %q (what user %s may subscribe to)", d.name(), env["NATS_INBOX_PREFIX"], role.inbox, role.user)
				}
				pw := mountedSecret(d, env["NATS_PASSWORD_FILE"])
				if pw != "payflow-nats/"+env["WORKER_ROLES"]+"-password" || !createdIn("payflow", "payflow-nats") {
					t.Errorf("%s: NATS_PASSWORD_FILE %q reads %q, want its own key payflow-nats/%s-password (a Secret the README creates)", d.name(), env["NATS_PASSWORD_FILE"], pw, env["WORKER_ROLES"])
				}
				if ca := mountedSecret(d, env["NATS_CA_FILE"]); ca != "payflow-nats/ca.crt" {
					t.Errorf("%s: NATS_CA_FILE %q reads %q, want payflow-nats/ca.crt", d.name(), env["NATS_CA_FILE"], ca)
				}
				for other, r := range roles {
					if other != env["WORKER_ROLES"] && strings.Contains(fmt.Sprint(dig(d, "spec", "template", "spec", "volumes")), other+"-password") {
						t.Errorf("%s mounts the password of user %s", d.name(), r.user)
					}
				}
			}
		})
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}

func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// TestDeployConsole: deploy/console renders on its own, stays out of the
// base (operators add it on purpose), is read-only, takes its token from
// a Secret file and no literal, and its Service is cluster-internal.
func TestDeployConsole(t *testing.T) {
	base, err := os.ReadFile("../../deploy/base/kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(base), "console") {
		t.Error("deploy/base includes the console: it is optional")
	}
	for _, overlay := range []string{"uat", "production"} {
		for _, d := range render(t, overlay) {
			if strings.Contains(d.name(), "console") {
				t.Errorf("overlay %s renders %s %s", overlay, d.kind(), d.name())
			}
		}
	}
	docs := render(t, "../console")
	deps, svcs := byKind(docs, "Deployment"), byKind(docs, "Service")
	if len(deps) != 1 || len(svcs) != 1 {
		t.Fatalf("deploy/console: %d Deployments, %d Services", len(deps), len(svcs))
	}
	if typ := str(dig(svcs[0], "spec", "type")); typ != "ClusterIP" {
		t.Errorf("console Service type %q, want ClusterIP", typ)
	}
	containers, _ := dig(deps[0], "spec", "template", "spec", "containers").([]any)
	if len(containers) != 1 {
		t.Fatalf("console containers: %v", containers)
	}
	env := map[string]string{}
	for _, e := range containers[0].(map[string]any)["env"].([]any) {
		m := e.(map[string]any)
		env[str(m["name"])] = str(m["value"])
	}
	if _, ok := env["CONSOLE_TOKEN"]; ok {
		t.Error("console token given as a literal: use CONSOLE_TOKEN_FILE from Secret payflow-console")
	}
	if env["CONSOLE_TOKEN_FILE"] == "" || env["CONSOLE_ALLOW_ACTIONS"] != "false" || env["NATS_USER"] != "payflow-operator" {
		t.Errorf("console env: token file %q, allow actions %q, NATS user %q", env["CONSOLE_TOKEN_FILE"], env["CONSOLE_ALLOW_ACTIONS"], env["NATS_USER"])
	}
	secrets := map[string]bool{}
	for _, v := range dig(deps[0], "spec", "template", "spec", "volumes").([]any) {
		secrets[str(dig(doc(v.(map[string]any)), "secret", "secretName"))] = true
	}
	if !secrets["payflow-console"] {
		t.Errorf("console mounts no Secret payflow-console: %v", secrets)
	}
}
