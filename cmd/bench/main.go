// Command bench measures, in one run on one machine, and prints a markdown
// table plus JSON:
//
//	(a) the raw JetStream two-hop limit: publish → consume → publish →
//	    consume → ack with no other work, same stream settings and
//	    concurrency as the worker;
//	(b) the full pipeline with a zero-latency sandbox: payments/s from
//	    intent published to TTC callback received, p50/p99, ratio to (a);
//	(c) CyberSource at 300 ms with C payments in flight: payments/s and
//	    its ratio to C / 0.3 s;
//	(d) four worker processes: TTC token requests and TLS handshakes to
//	    CyberSource per 10,000 payments (the guide's flow makes one of each
//	    per payment);
//	(e) a worker's peak RSS with 1,000 payments in flight;
//	(f) the latency a payment adds at a steady rate (half of (b)'s), with
//	    CyberSource at 0 and 300 ms: intent published → result published
//	    and → TTC callback received, p50/p99/p99.9, the sandbox's latency
//	    subtracted;
//	(h) the latency of a claim (the record write before a charge) against
//	    a Redis primary with one replica, without and with
//	    REDIS_MIN_REPLICAS=1 (WAIT for the replica): p50 and p99.
//
// Each measurement runs on a fresh rig (internal/rig) in named phases:
// start, publish, settle, report. Workers run as separate processes (this
// binary re-executed).
package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/ttcpay/payflow/internal/harness"
	"github.com/ttcpay/payflow/internal/idempotency"
	"github.com/ttcpay/payflow/internal/rig"
	"github.com/ttcpay/payflow/internal/sandbox"
	"github.com/ttcpay/payflow/internal/streams"
	"github.com/ttcpay/payflow/internal/workerproc"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if workerproc.IsChild() {
		if err := workerproc.RunChild(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "worker:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// Results is the JSON the run writes.
type Results struct {
	Machine string `json:"machine"`
	Cores   int    `json:"cores"`
	When    string `json:"when"`

	RawMsgsPerSec float64 `json:"rawJetStreamTwoHopMsgsPerSec"`
	// RawR3MsgsPerSec: (a) with R3 streams on a three-node cluster whose
	// nodes share this machine's cores.
	RawR3MsgsPerSec float64 `json:"rawJetStreamTwoHopR3MsgsPerSec"`

	PipelinePerSec float64 `json:"pipelinePaymentsPerSec"`
	PipelineP50ms  float64 `json:"pipelineP50ms"`
	PipelineP99ms  float64 `json:"pipelineP99ms"`
	PipelineRatio  float64 `json:"pipelineToRawRatio"`
	// The worker's and the sandbox process's CPU seconds per 1,000
	// payments during (b).
	PipelineWorkerCPUPer1k  float64 `json:"pipelineWorkerCpuSecondsPer1k"`
	PipelineSandboxCPUPer1k float64 `json:"pipelineSandboxCpuSecondsPer1k"`

	Slow []SlowRun `json:"slow"`

	FourWorkersPayments       int     `json:"fourWorkersPayments"`
	TokenRequestsPer10k       float64 `json:"tokenRequestsPer10k"`
	TLSHandshakesPer10k       float64 `json:"tlsHandshakesPer10k"`
	FourWorkersPaymentsPerSec float64 `json:"fourWorkersPaymentsPerSec"`

	// Memory: peak RSS at 0, 250, 500 and 1,000 in flight, and the line
	// through them (least squares): base MiB and KiB per payment.
	Memory              []MemoryPoint `json:"memory"`
	MemoryBaseMiB       float64       `json:"memoryBaseMiB"`
	MemoryKiBPerPayment float64       `json:"memoryKiBPerInFlightPayment"`
	PeakInFlight        int           `json:"peakInFlight"`
	PeakRSSMiB          float64       `json:"peakRssMiB"`
	// MemLimit is the GOMEMLIMIT of the last (e) run (1,000 in flight
	// again, the worker's soft memory limit set), and MemLimitPeakRSSMiB
	// its peak RSS.
	MemLimit           string  `json:"memLimit,omitempty"`
	MemLimitPeakRSSMiB float64 `json:"memLimitPeakRssMiB,omitempty"`

	Steady []Steady `json:"steady"`
	Cost   Cost     `json:"cost"`

	ClaimsPerSetting int     `json:"claimsPerSetting"`
	ClaimP50ms       float64 `json:"claimP50ms"`
	ClaimP99ms       float64 `json:"claimP99ms"`
	ClaimWaitP50ms   float64 `json:"claimMinReplicas1P50ms"`
	ClaimWaitP99ms   float64 `json:"claimMinReplicas1P99ms"`
}

// envFlag collects -worker-env NAME=value.
type envFlag map[string]string

func (f envFlag) String() string { return "" }

func (f envFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want NAME=value")
	}
	f[k] = val
	return nil
}

// MemoryPoint is one (e) measurement.
type MemoryPoint struct {
	InFlight     int     `json:"inFlight"`
	PeakInFlight int     `json:"peakInFlightSeen"`
	PeakRSSMiB   float64 `json:"peakRssMiB"`
}

// fitMemory is the least-squares line through the points: RSS = base +
// slope × in flight.
func fitMemory(pts []MemoryPoint) (baseMiB, kibPer float64) {
	var n, sx, sy, sxx, sxy float64
	for _, p := range pts {
		x, y := float64(p.PeakInFlight), p.PeakRSSMiB
		n, sx, sy, sxx, sxy = n+1, sx+x, sy+y, sxx+x*x, sxy+x*y
	}
	if d := n*sxx - sx*sx; n >= 2 && d != 0 {
		slope := (n*sxy - sx*sy) / d
		return (sy - slope*sx) / n, slope * 1024
	}
	return 0, 0
}

// SlowRun is one (c) measurement: C payments in flight against a 300 ms
// CyberSource.
type SlowRun struct {
	InFlight int     `json:"inFlight"`
	PerSec   float64 `json:"paymentsPerSec"`
	Ideal    float64 `json:"idealPerSec"`
	Ratio    float64 `json:"ratio"`
	// MeanInFlight is the worker's payflow_in_flight{role="payments"},
	// averaged over samples while the backlog lasted: C if the pull keeps
	// every slot busy.
	MeanInFlight float64 `json:"meanInFlight"`
	// CycleMs is C / payments per second: how long a slot takes per
	// payment (300 ms is the sandbox's part).
	CycleMs float64 `json:"cycleMs"`
	// ChargeMs is the worker's mean CyberSource call, connection pool
	// waits and TLS handshakes included; CycleMs - ChargeMs is the rest
	// of a payment (Redis, publishes, ack, waiting for a CPU).
	ChargeMs      float64 `json:"chargeMs"`
	TLSHandshakes float64 `json:"tlsHandshakes"`
	// WorkerCPUPer1k: the worker's CPU seconds per 1,000 payments.
	WorkerCPUPer1k float64 `json:"workerCpuSecondsPer1k"`
}

type bench struct {
	dir string
	out io.Writer
	// env is added to every worker's environment (-worker-env).
	env map[string]string
	// dump, when set, is the prefix of the files (f) writes its samples to.
	dump string
	r    *rig.Rig // the current measurement's
	// sandboxInProcess runs the sandbox in the bench's process instead of
	// its own (-sandbox-in-process).
	sandboxInProcess bool
	js               jetstream.JetStream
	logSeq           int
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(out)
	n := fs.Int("n", 5000, "messages / payments for (a) and (b)")
	slowCs := fs.String("inflight", "64,256,1024", "payments in flight for (c), comma-separated: one run each")
	fourN := fs.Int("four", 10000, "payments for (d)")
	claims := fs.Int("claims", 2000, "claims per setting for (h)")
	rate := fs.Float64("rate", 0, "intents per second for (f) (0: half of (b)'s payments/s in this run, or 1000 without (b))")
	dumpLat := fs.String("dump-latency", "", "(f): write each intent's publish offset and added latency to the TTC callback (ms, tab-separated) to this file prefix")
	steadyFor := fs.Duration("steady", time.Minute, "how long (f) publishes at its steady rate, per CyberSource latency")
	only := fs.String("only", "", "run only these measurements (letters, e.g. \"f\" or \"ab\")")
	jsonOut := fs.String("json", "bench.json", "where to write the JSON")
	profile := fs.String("profile", "", "write the worker's CPU profile during (b) to this file")
	workerEnv := envFlag{}
	fs.Var(workerEnv, "worker-env", "NAME=value added to every worker's environment (repeatable), e.g. GOMEMLIMIT=80MiB")
	costN := fs.Int("cost-n", 2000, "payments for (g)")
	memLimit := fs.String("memlimit", "64MiB", "(e): GOMEMLIMIT of a fifth run at 1,000 in flight (empty: none)")
	heapProfile := fs.String("heap-profile", "", "write the worker's heap profile at 1,000 in flight during (e) to this file")
	steadyProfile := fs.String("steady-profile", "", "(f): write the worker's CPU profile (10 s, from 5 s into the steady publishing) to this file prefix, one per CyberSource latency")
	keep := fs.Bool("keep", false, "keep the run directory (worker, sandbox and server logs) and print where it is")
	sandboxInProcess := fs.Bool("sandbox-in-process", false, "run the sandbox in the bench's own process (as before), not in a process of its own")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "payflow-bench-")
	if err != nil {
		return err
	}
	if *keep {
		fmt.Fprintf(out, "# run directory (kept): %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	b := &bench{dir: dir, out: out, dump: *dumpLat, env: workerEnv, sandboxInProcess: *sandboxInProcess}
	defer b.close()
	res := Results{Machine: runtime.GOOS + "/" + runtime.GOARCH, Cores: runtime.NumCPU(), When: time.Now().UTC().Format(time.RFC3339)}
	say := func(format string, a ...any) { fmt.Fprintf(out, "# "+format+"\n", a...) }
	want := func(m string) bool { return *only == "" || strings.Contains(*only, m) }

	if want("a") {
		say("(a) raw JetStream two-hop, %d messages", *n)
		if err := b.fresh(ctx, sandbox.Config{}); err != nil {
			return err
		}
		if res.RawMsgsPerSec, err = b.raw(ctx, *n, 1); err != nil {
			return fmt.Errorf("(a): %w", err)
		}
	}
	if want("i") {
		say("(i) raw JetStream two-hop, R3 streams on a three-node cluster (all on this machine), %d messages", *n)
		if err := b.freshWith(ctx, rig.Options{NATS: rig.NATSCluster}); err != nil {
			return err
		}
		if res.RawR3MsgsPerSec, err = b.raw(ctx, *n, 3); err != nil {
			return fmt.Errorf("(i): %w", err)
		}
		say("(i) %.0f msgs/s", res.RawR3MsgsPerSec)
	}
	if want("b") {
		say("(b) full pipeline, zero-latency sandbox, %d payments", *n)
		p, err := b.pipeline(ctx, pipelineSpec{n: *n, workers: 1, profile: *profile})
		if err != nil {
			return fmt.Errorf("(b): %w", err)
		}
		res.PipelinePerSec, res.PipelineP50ms, res.PipelineP99ms = p.perSec, p.p50, p.p99
		res.PipelineWorkerCPUPer1k, res.PipelineSandboxCPUPer1k = p.cpuPer1k, p.sandboxCPUPer1k
		if res.RawMsgsPerSec > 0 {
			res.PipelineRatio = p.perSec / res.RawMsgsPerSec
		}
	}
	if want("c") {
		for _, f := range strings.Split(*slowCs, ",") {
			c, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || c < 1 {
				return fmt.Errorf("-inflight: %q is not a count", f)
			}
			say("(c) CyberSource at 300 ms, %d in flight", c)
			p, err := b.pipeline(ctx, pipelineSpec{n: c * 20, workers: 1, latency: 300 * time.Millisecond, sampleInFlight: c,
				env: map[string]string{"PAYMENTS_CONCURRENCY": strconv.Itoa(c)}})
			if err != nil {
				return fmt.Errorf("(c) at %d: %w", c, err)
			}
			run := SlowRun{InFlight: c, PerSec: p.chargesPerSec, Ideal: float64(c) / 0.3, MeanInFlight: p.meanInFlight,
				ChargeMs: p.chargeMs, TLSHandshakes: p.workerHandshakes, WorkerCPUPer1k: p.cpuPer1k}
			run.Ratio = run.PerSec / run.Ideal
			run.CycleMs = float64(c) / run.PerSec * 1000
			say("(c) %d in flight: %.1f payments/s of %.1f (%.3f); mean in flight %.1f; %.0f ms per payment per slot, of which the CyberSource call %.0f ms; %.0f TLS handshakes; worker CPU %.2f s per 1,000",
				c, run.PerSec, run.Ideal, run.Ratio, run.MeanInFlight, run.CycleMs, run.ChargeMs, run.TLSHandshakes, run.WorkerCPUPer1k)
			res.Slow = append(res.Slow, run)
		}
	}
	if want("d") {
		say("(d) four worker processes, %d payments", *fourN)
		p, err := b.pipeline(ctx, pipelineSpec{n: *fourN, workers: 4})
		if err != nil {
			return fmt.Errorf("(d): %w", err)
		}
		res.FourWorkersPayments = *fourN
		res.TokenRequestsPer10k = float64(p.tokenRequests) * 10000 / float64(*fourN)
		res.TLSHandshakesPer10k = float64(p.handshakes) * 10000 / float64(*fourN)
		res.FourWorkersPaymentsPerSec = p.perSec
	}
	if want("e") {
		for _, k := range []int{0, 250, 500, 1000} {
			say("(e) peak RSS with %d payments in flight", k)
			spec := pipelineSpec{n: k, workers: 1, latency: 4 * time.Second, measureRSS: true,
				env: map[string]string{"PAYMENTS_CONCURRENCY": strconv.Itoa(max(k, 1)), "ACK_WAIT": "30s"}}
			if k == 1000 && *heapProfile != "" {
				spec.heapProfile = *heapProfile
			}
			p, err := b.pipeline(ctx, spec)
			if err != nil {
				return fmt.Errorf("(e) at %d: %w", k, err)
			}
			say("(e) %d in flight (peak seen %d): peak RSS %.1f MiB", k, p.peakInFlight, p.peakRSSMiB)
			res.Memory = append(res.Memory, MemoryPoint{InFlight: k, PeakInFlight: p.peakInFlight, PeakRSSMiB: p.peakRSSMiB})
			if k == 1000 {
				res.PeakInFlight, res.PeakRSSMiB = p.peakInFlight, p.peakRSSMiB
			}
		}
		res.MemoryBaseMiB, res.MemoryKiBPerPayment = fitMemory(res.Memory)
		if *memLimit != "" {
			say("(e) peak RSS with 1000 payments in flight, GOMEMLIMIT=%s", *memLimit)
			p, err := b.pipeline(ctx, pipelineSpec{n: 1000, workers: 1, latency: 4 * time.Second, measureRSS: true,
				env: map[string]string{"PAYMENTS_CONCURRENCY": "1000", "ACK_WAIT": "30s", "GOMEMLIMIT": *memLimit}})
			if err != nil {
				return fmt.Errorf("(e) with GOMEMLIMIT: %w", err)
			}
			say("(e) 1000 in flight, GOMEMLIMIT=%s (peak seen %d): peak RSS %.1f MiB", *memLimit, p.peakInFlight, p.peakRSSMiB)
			res.MemLimit, res.MemLimitPeakRSSMiB = *memLimit, p.peakRSSMiB
		}
	}
	if want("f") {
		r := *rate
		if r == 0 {
			r = cmp.Or(res.PipelinePerSec/2, 1000)
		}
		for _, lat := range []time.Duration{0, 300 * time.Millisecond} {
			// Enough slots for the payments a latency keeps in flight
			// (rate × latency), twice over; the default below that.
			conc := max(32, int(r*lat.Seconds()*2))
			say("(f) steady %.0f intents/s for %s, CyberSource latency %s, PAYMENTS_CONCURRENCY=%d", r, *steadyFor, lat, conc)
			n := int(r * steadyFor.Seconds())
			spec := pipelineSpec{n: n, workers: 1, latency: lat, rate: r,
				env: map[string]string{"PAYMENTS_CONCURRENCY": strconv.Itoa(conc)}}
			if *steadyProfile != "" {
				spec.profile, spec.profileAfter, spec.profileFor = fmt.Sprintf("%s-%dms.pprof", *steadyProfile, lat.Milliseconds()), 5*time.Second, 10*time.Second
			}
			p, err := b.pipeline(ctx, spec)
			if err != nil {
				return fmt.Errorf("(f) at %s: %w", lat, err)
			}
			st := p.steady
			st.Rate, st.Seconds, st.CybsLatencyMs, st.Concurrency, st.WorkerCPUPer1k = r, steadyFor.Seconds(), float64(lat)/float64(time.Millisecond), conc, p.cpuPer1k
			st.AchievedRate, st.SandboxCPUPer1k = p.publishedPerSec, p.sandboxCPUPer1k
			say("(f) %s: added latency → result p50 %.1f p99 %.1f p99.9 %.1f ms; → TTC callback p50 %.1f p99 %.1f p99.9 %.1f ms (%d intents, published at %.0f/s); worker CPU %.2f s per 1,000",
				lat, st.ResultP50ms, st.ResultP99ms, st.ResultP999ms, st.CallbackP50ms, st.CallbackP99ms, st.CallbackP999ms, st.Samples, st.AchievedRate, st.WorkerCPUPer1k)
			say("(f) %s: %d stalls of the bench process over 5 ms (longest %.0f ms); %d callbacks over 10 ms added, %.0f%% of them across a stall",
				lat, st.Stalls, st.StallMaxMs, st.SlowCallbacks, st.SlowDuringStall*100)
			res.Steady = append(res.Steady, st)
		}
	}
	if want("g") {
		say("(g) cost per payment, %d payments, one worker, zero-latency sandbox", *costN)
		// Twice: without MONITOR for the CPU figures (MONITOR costs Redis
		// CPU of its own), then with it for the round trips.
		p, err := b.pipeline(ctx, pipelineSpec{n: *costN, workers: 1, cost: true})
		if err != nil {
			return fmt.Errorf("(g): %w", err)
		}
		mon, err := b.pipeline(ctx, pipelineSpec{n: *costN, workers: 1, cost: true, monitor: true})
		if err != nil {
			return fmt.Errorf("(g) with MONITOR: %w", err)
		}
		p.cost.RedisClientCommands = mon.cost.RedisClientCommands
		res.Cost = p.cost
		say("(g) CPU per 1,000 payments: worker %.3f s, Redis %.3f s, sandbox %.3f s, bench process (NATS, publisher) %.3f s: a ceiling of %.0f payments/s on %d cores; per payment %.2f Redis commands from the client, %.1f Redis commands executed, %.2f JetStream API calls, %.1f NATS messages in",
			p.cost.WorkerCPUPer1k, p.cost.RedisCPUPer1k, p.cost.SandboxCPUPer1k, p.cost.BenchCPUPer1k, p.cost.CeilingPerSec, runtime.NumCPU(), p.cost.RedisClientCommands, p.cost.RedisCommands, p.cost.JSAPICalls, p.cost.NATSMsgsIn)
	}
	if want("h") {
		say("(h) claim latency, primary + one replica, %d claims without and with REDIS_MIN_REPLICAS=1", *claims)
		if err := b.claimLatency(ctx, *claims, &res); err != nil {
			return fmt.Errorf("(h): %w", err)
		}
	}

	fmt.Fprintf(out, "\n| measure | figure |\n|---|---|\n")
	fmt.Fprintf(out, "| (a) raw JetStream two-hop (publish→consume→publish→consume→ack) | %.0f msgs/s |\n", res.RawMsgsPerSec)
	if res.RawR3MsgsPerSec > 0 {
		fmt.Fprintf(out, "| (i) the same with R3 streams, three-node cluster on the same cores | %.0f msgs/s |\n", res.RawR3MsgsPerSec)
	}
	fmt.Fprintf(out, "| (b) full pipeline, zero-latency sandbox, intent → TTC callback | %.0f payments/s, p50 %.0f ms, p99 %.0f ms, %.2f of (a); CPU per 1,000: worker %.2f s, sandbox %.2f s |\n",
		res.PipelinePerSec, res.PipelineP50ms, res.PipelineP99ms, res.PipelineRatio, res.PipelineWorkerCPUPer1k, res.PipelineSandboxCPUPer1k)
	for _, c := range res.Slow {
		fmt.Fprintf(out, "| (c) CyberSource at 300 ms, %d in flight | %.1f payments/s of an ideal %.1f (%.2f); mean in flight %.0f, %.0f ms per payment per slot |\n",
			c.InFlight, c.PerSec, c.Ideal, c.Ratio, c.MeanInFlight, c.CycleMs)
	}
	fmt.Fprintf(out, "| (d) 4 worker processes, per 10,000 payments | %.1f TTC token requests, %.1f TLS handshakes (the guide's flow: 10,000 of each); %.0f payments/s |\n", res.TokenRequestsPer10k, res.TLSHandshakesPer10k, res.FourWorkersPaymentsPerSec)
	for _, m := range res.Memory {
		fmt.Fprintf(out, "| (e) worker peak RSS, %d payments in flight | %.1f MiB |\n", m.PeakInFlight, m.PeakRSSMiB)
	}
	if res.MemLimit != "" {
		fmt.Fprintf(out, "| (e) worker peak RSS, 1000 payments in flight, GOMEMLIMIT=%s | %.1f MiB |\n", res.MemLimit, res.MemLimitPeakRSSMiB)
	}
	fmt.Fprintf(out, "| (e) the line through them | %.1f MiB + %.1f KiB per payment in flight |\n", res.MemoryBaseMiB, res.MemoryKiBPerPayment)
	for _, st := range res.Steady {
		fmt.Fprintf(out, "| (f) added latency at a steady %.0f intents/s for %.0f s, CyberSource at %.0f ms (subtracted), PAYMENTS_CONCURRENCY=%d | → result p50 %.1f ms, p99 %.1f ms, p99.9 %.1f ms; → TTC callback p50 %.1f ms, p99 %.1f ms, p99.9 %.1f ms |\n",
			st.Rate, st.Seconds, st.CybsLatencyMs, st.Concurrency, st.ResultP50ms, st.ResultP99ms, st.ResultP999ms, st.CallbackP50ms, st.CallbackP99ms, st.CallbackP999ms)
	}
	if c := res.Cost; c.Payments > 0 {
		names := slices.Sorted(maps.Keys(c.ByCommand))
		var by []string
		for _, k := range names {
			by = append(by, fmt.Sprintf("%s %.2f", k, c.ByCommand[k]))
		}
		fmt.Fprintf(out, "| (g) cost per payment (%d payments, 1 worker) | CPU per 1,000: worker %.3f s, Redis %.3f s, sandbox %.3f s, bench process (NATS, publisher) %.3f s, so at most %.0f payments/s on these cores; %.2f Redis commands from the client, %.1f Redis commands executed (%s); %.2f JetStream API calls; %.1f NATS messages in |\n",
			c.Payments, c.WorkerCPUPer1k, c.RedisCPUPer1k, c.SandboxCPUPer1k, c.BenchCPUPer1k, c.CeilingPerSec, c.RedisClientCommands, c.RedisCommands, strings.Join(by, ", "), c.JSAPICalls, c.NATSMsgsIn)
	}
	fmt.Fprintf(out, "| (h) claim latency, primary + 1 replica, %d claims each | REDIS_MIN_REPLICAS=0: p50 %.3f ms, p99 %.3f ms; =1: p50 %.3f ms, p99 %.3f ms (added: p50 +%.3f ms, p99 +%.3f ms) |\n",
		res.ClaimsPerSetting, res.ClaimP50ms, res.ClaimP99ms, res.ClaimWaitP50ms, res.ClaimWaitP99ms, res.ClaimWaitP50ms-res.ClaimP50ms, res.ClaimWaitP99ms-res.ClaimP99ms)
	fmt.Fprintf(out, "\n%d cores, %s\n", res.Cores, res.Machine)
	j, _ := json.MarshalIndent(res, "", "  ")
	fmt.Fprintf(out, "\n%s\n", j)
	if *jsonOut != "" {
		return os.WriteFile(*jsonOut, append(j, '\n'), 0o644)
	}
	return nil
}

// fresh replaces the rig: each measurement gets a fresh NATS, Redis and
// sandbox, so that none inherits another's backlog.
func (b *bench) fresh(ctx context.Context, sb sandbox.Config) error {
	return b.freshWith(ctx, rig.Options{Sandbox: sb})
}

// freshWith is fresh with the rig's other options (a NATS cluster).
func (b *bench) freshWith(ctx context.Context, o rig.Options) error {
	b.close()
	b.logSeq++
	o.Dir, o.APIKey, o.SandboxProcess = filepath.Join(b.dir, fmt.Sprintf("run-%d", b.logSeq)), "bench-"+rig.RandomB64(9), !b.sandboxInProcess
	r, err := rig.Start(ctx, o)
	if err != nil {
		return err
	}
	b.r, b.js = r, r.JS
	return nil
}

func (b *bench) close() {
	if b.r != nil {
		b.r.Close()
		b.r = nil
	}
}

// raw measures publish → consume → publish → consume → ack with the
// worker's stream settings and concurrency (32 payments, 16 callbacks).
func (b *bench) raw(ctx context.Context, n, replicas int) (float64, error) {
	cfgs := streams.Config{Replicas: replicas}.Configs()
	a, c := cfgs[0], cfgs[1] // intents and callbacks settings
	a.Name, a.Subjects = "RAW_A", []string{"raw.a.*"}
	c.Name, c.Subjects = "RAW_B", []string{"raw.b.*"}
	for _, sc := range []jetstream.StreamConfig{a, c} {
		if _, err := b.js.CreateStream(ctx, sc); err != nil {
			return 0, err
		}
	}
	payload := make([]byte, 700) // about an intent's size
	for i := range payload {
		payload[i] = 'x'
	}
	consA, err := b.js.CreateOrUpdateConsumer(ctx, "RAW_A", streams.ConsumerConfig("a", time.Minute, 4000))
	if err != nil {
		return 0, err
	}
	consB, err := b.js.CreateOrUpdateConsumer(ctx, "RAW_B", streams.ConsumerConfig("b", time.Minute, 4000))
	if err != nil {
		return 0, err
	}
	var wg sync.WaitGroup
	done := make(chan struct{})
	var mu sync.Mutex
	acked := 0
	hop := func(cons jetstream.Consumer, conc int, next func(jetstream.Msg)) {
		it, _ := cons.Messages(jetstream.PullMaxMessages(conc))
		sem := make(chan struct{}, conc)
		go func() { <-done; it.Stop() }()
		for {
			sem <- struct{}{}
			m, err := it.Next()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				next(m)
			}()
		}
	}
	start := time.Now()
	go hop(consA, 32, func(m jetstream.Msg) {
		out := nats.NewMsg("raw.b.m")
		out.Data = m.Data()
		if _, err := b.js.PublishMsg(ctx, out); err == nil {
			_ = m.Ack()
		}
	})
	finished := make(chan struct{})
	go hop(consB, 16, func(m jetstream.Msg) {
		_ = m.Ack()
		mu.Lock()
		acked++
		if acked == n {
			close(finished)
		}
		mu.Unlock()
	})
	for i := range n {
		m := nats.NewMsg("raw.a.m")
		m.Data = payload
		m.Header.Set(nats.MsgIdHdr, "raw-"+strconv.Itoa(i))
		if _, err := b.js.PublishMsgAsync(m); err != nil {
			return 0, err
		}
	}
	select {
	case <-finished:
	case <-time.After(5 * time.Minute):
		return 0, fmt.Errorf("only %d of %d made both hops", acked, n)
	}
	el := time.Since(start)
	close(done)
	return float64(n) / el.Seconds(), nil
}

type pipelineSpec struct {
	n, workers int
	latency    time.Duration
	env        map[string]string
	measureRSS bool
	// profile: fetch the worker's CPU profile to this file, for
	// profileFor (default 4 s) from profileAfter after the workers are
	// ready.
	profile                  string
	profileAfter, profileFor time.Duration
	// sampleInFlight: sample the worker's in-flight gauge while more
	// than this many payments are still to be charged.
	sampleInFlight int
	// cost: count Redis commands (INFO commandstats), Redis round trips
	// (MONITOR: commands from clients, not from scripts), JetStream API
	// calls and NATS messages into the server during the run.
	cost bool
	// monitor: with cost, count round trips through MONITOR.
	monitor bool
	// heapProfile: fetch the worker's heap profile to this file once all
	// n payments are in flight.
	heapProfile string
	// rate > 0 publishes at this steady rate (intents per second) instead
	// of all at once, and the report measures each intent's added latency.
	rate float64
}

type pipelineResult struct {
	perSec, chargesPerSec, p50, p99 float64
	tokenRequests, handshakes       int
	peakInFlight                    int
	peakRSSMiB                      float64
	meanInFlight                    float64
	// chargeMs: the worker's mean CyberSource call (payflow_charge_seconds),
	// pool waits and TLS included; workerHandshakes its own count.
	chargeMs         float64
	workerHandshakes float64
	// steady: the added latencies of a steady-rate run.
	steady Steady
	// cpuPer1k: the first worker's CPU seconds (user + system, its own
	// rusage) per 1,000 payments, from publish to the last callback;
	// sandboxCPUPer1k the same of the sandbox's process (0 when it runs in
	// the bench's).
	cpuPer1k, sandboxCPUPer1k float64
	// publishedPerSec: the rate the publish phase achieved.
	publishedPerSec float64
	cost            Cost
}

// Cost is (g): what one payment costs, measured over a run of zero-latency
// payments with one worker.
type Cost struct {
	Payments int `json:"payments"`
	// WorkerCPUPer1k: the worker's own CPU seconds (rusage) per 1,000.
	WorkerCPUPer1k float64 `json:"workerCpuSecondsPer1k"`
	// RedisCPUPer1k: redis-server's used_cpu_user + used_cpu_sys per 1,000.
	RedisCPUPer1k float64 `json:"redisCpuSecondsPer1k"`
	// SandboxCPUPer1k: the sandbox process's CPU seconds per 1,000 (TTC
	// and CyberSource's share, 0 with -sandbox-in-process).
	SandboxCPUPer1k float64 `json:"sandboxCpuSecondsPer1k"`
	// BenchCPUPer1k: the bench process's own: the embedded NATS server,
	// the publisher and the bench's polling.
	BenchCPUPer1k float64 `json:"benchCpuSecondsPer1k"`
	// CeilingPerSec: the cores divided by the CPU all of them take per
	// payment: what this machine could carry if nothing else ran on it
	// and no core ever idled.
	CeilingPerSec float64 `json:"ceilingPaymentsPerSec"`
	// RedisClientCommands: commands sent by clients (MONITOR lines not
	// from a script), per payment. Commands sent in one pipeline count
	// each, so this is an upper bound on round trips.
	RedisClientCommands float64 `json:"redisClientCommandsPerPayment"`
	// RedisCommands: every command executed, scripts' included
	// (INFO commandstats), per payment; ByCommand breaks it down.
	RedisCommands float64            `json:"redisCommandsPerPayment"`
	ByCommand     map[string]float64 `json:"redisCommandsByName"`
	// JSAPICalls: JetStream API requests ($JS.API.>, jsz) per payment.
	JSAPICalls float64 `json:"jetStreamApiCallsPerPayment"`
	// NATSMsgsIn: messages clients sent to the NATS server (publishes,
	// acks, pull requests, API calls), per payment.
	NATSMsgsIn float64 `json:"natsMessagesInPerPayment"`
}

// costMeter measures a Cost from just before publishing to the last
// callback.
type costMeter struct {
	rdb         *redis.Client
	mon         net.Conn
	fromClients chan int
	api0, in0   uint64
	redisCPU0   float64
}

func (b *bench) startCost(ctx context.Context, monitor bool) (*costMeter, error) {
	opt, err := redis.ParseURL(b.r.RedisURL)
	if err != nil {
		return nil, err
	}
	m := &costMeter{rdb: redis.NewClient(opt), fromClients: make(chan int, 1)}
	if err := m.rdb.ConfigResetStat(ctx).Err(); err != nil {
		return nil, err
	}
	if m.redisCPU0, err = redisCPU(ctx, m.rdb); err != nil {
		return nil, err
	}
	if !monitor {
		m.fromClients <- 0
	} else if err := m.monitor(opt.Addr); err != nil {
		return nil, err
	}
	js, err := b.r.NATS.Server.Jsz(nil)
	if err != nil {
		return nil, err
	}
	vz, err := b.r.NATS.Server.Varz(nil)
	if err != nil {
		return nil, err
	}
	m.api0, m.in0 = js.API.Total, uint64(vz.InMsgs)
	return m, nil
}

// monitor counts, through MONITOR, the commands clients send (not those a
// script runs).
func (m *costMeter) monitor(addr string) error {
	var err error
	if m.mon, err = net.Dial("tcp", addr); err != nil {
		return err
	}
	if _, err := m.mon.Write([]byte("MONITOR\r\n")); err != nil {
		return err
	}
	rd := bufio.NewReader(m.mon)
	if l, err := rd.ReadString('\n'); err != nil || !strings.HasPrefix(l, "+OK") {
		return fmt.Errorf("MONITOR: %q %v", l, err)
	}
	go func() {
		n := 0
		for {
			l, err := rd.ReadString('\n')
			if err != nil {
				m.fromClients <- n
				return
			}
			// +<time> [<db> <client address>|lua] "command" ...
			if !strings.Contains(l, " lua] ") && !strings.Contains(l, `"MONITOR"`) {
				n++
			}
		}
	}()
	return nil
}

func (m *costMeter) finish(ctx context.Context, b *bench, n int) (Cost, error) {
	defer m.rdb.Close()
	c := Cost{Payments: n, ByCommand: map[string]float64{}}
	info, err := m.rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return c, err
	}
	cpu, err := redisCPU(ctx, m.rdb)
	if err != nil {
		return c, err
	}
	c.RedisCPUPer1k = (cpu - m.redisCPU0) * 1000 / float64(n)
	// Let MONITOR's stream catch up with the last commands, then close it.
	if m.mon != nil {
		time.Sleep(200 * time.Millisecond)
		_ = m.mon.Close()
	}
	c.RedisClientCommands = float64(<-m.fromClients) / float64(n)
	for _, l := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(l), ":")
		name, isCmd := strings.CutPrefix(name, "cmdstat_")
		if !ok || !isCmd || name == "info" || name == "monitor" || strings.HasPrefix(name, "config") {
			continue
		}
		calls, _, _ := strings.Cut(strings.TrimPrefix(rest, "calls="), ",")
		if v, err := strconv.ParseFloat(calls, 64); err == nil {
			c.ByCommand[name] = v / float64(n)
			c.RedisCommands += v / float64(n)
		}
	}
	js, err := b.r.NATS.Server.Jsz(nil)
	if err != nil {
		return c, err
	}
	vz, err := b.r.NATS.Server.Varz(nil)
	if err != nil {
		return c, err
	}
	c.JSAPICalls = float64(js.API.Total-m.api0) / float64(n)
	c.NATSMsgsIn = float64(uint64(vz.InMsgs)-m.in0) / float64(n)
	return c, nil
}

// redisCPU is redis-server's CPU seconds so far (INFO cpu).
func redisCPU(ctx context.Context, rdb *redis.Client) (float64, error) {
	info, err := rdb.Info(ctx, "cpu").Result()
	if err != nil {
		return 0, err
	}
	var sum float64
	for _, l := range strings.Split(info, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(l), ":")
		if k == "used_cpu_user" || k == "used_cpu_sys" {
			f, _ := strconv.ParseFloat(v, 64)
			sum += f
		}
	}
	return sum, nil
}

// stall is one late wake-up of the probe: it slept from at for want but
// woke late by late.
type stall struct {
	at   time.Time
	late time.Duration
}

// probeStalls sleeps 1 ms at a time until stop is closed and returns the
// wake-ups more than 5 ms late.
func probeStalls(stop <-chan struct{}) []stall {
	var out []stall
	for {
		select {
		case <-stop:
			return out
		default:
		}
		t0 := time.Now()
		time.Sleep(time.Millisecond)
		if late := time.Since(t0) - time.Millisecond; late > 5*time.Millisecond {
			out = append(out, stall{at: t0, late: late})
		}
	}
}

// pipeline runs workers as processes against a sandbox and publishes n
// approved intents, measuring intent published → TTC callback received,
// in phases: start, publish, settle, report.
func (b *bench) pipeline(ctx context.Context, s pipelineSpec) (pipelineResult, error) {
	var res pipelineResult
	var procs []*workerproc.Proc
	var addrs []string
	sent := make(map[string]time.Time, s.n)
	profDone := make(chan error, 1)
	profDone <- nil
	var start time.Time
	var cpu0, sbCPU0, benchCPU0 float64
	var samples, sampled float64
	stalls, stopProbe := make(chan []stall, 1), make(chan struct{})
	var meter *costMeter
	err := rig.RunPhases(ctx, b.out,
		rig.Phase{Name: rig.PhaseStart, Run: func(ctx context.Context) error {
			faults := sandbox.Faults{}
			if s.latency > 0 {
				faults.Latency = map[string]sandbox.Latency{sandbox.EndpointPayments: {Fixed: sandbox.Duration(s.latency)}}
			}
			if err := b.fresh(ctx, sandbox.Config{Faults: faults}); err != nil {
				return err
			}
			tuning := map[string]string{"LOG_LEVEL": "warn"}
			if s.profile != "" || s.heapProfile != "" {
				tuning["ENABLE_PPROF"] = "true"
			}
			for i := range s.workers {
				port, err := harness.FreePortE()
				if err != nil {
					return err
				}
				addr := fmt.Sprintf("127.0.0.1:%d", port)
				p, err := b.r.StartProc(fmt.Sprintf("worker-%d-%d", b.logSeq, i), b.r.WorkerEnv(tuning, s.env, b.env, map[string]string{"HTTP_ADDR": addr}))
				if err != nil {
					return err
				}
				procs, addrs = append(procs, p), append(addrs, addr)
			}
			for _, a := range addrs {
				if err := rig.WaitReady(ctx, a, 30*time.Second); err != nil {
					return err
				}
			}
			if s.profile != "" {
				<-profDone
				go func() {
					time.Sleep(s.profileAfter)
					profDone <- fetchProfile(addrs[0], s.profile, cmp.Or(s.profileFor, 4*time.Second))
				}()
			}
			return nil
		}},
		// Publish, remembering when each booking was published.
		rig.Phase{Name: rig.PhasePublish, Run: func(ctx context.Context) error {
			if s.rate > 0 {
				go func() { stalls <- probeStalls(stopProbe) }()
			}
			if s.cost {
				var err error
				if meter, err = b.startCost(ctx, s.monitor); err != nil {
					return fmt.Errorf("cost: %w", err)
				}
			}
			cpu0, benchCPU0 = cpuSeconds(procs[0].Pid()), cpuSeconds(os.Getpid())
			if b.r.SBProc != nil {
				sbCPU0 = cpuSeconds(b.r.SBProc.Pid())
			}
			start = time.Now()
			for i := range s.n {
				if s.rate > 0 {
					if d := time.Until(start.Add(time.Duration(float64(i) / s.rate * float64(time.Second)))); d > 0 {
						time.Sleep(d)
					}
				}
				in := rig.NewIntent(fmt.Sprintf("bench-%d-%07d", b.logSeq, i), "4111111111111111", "10.00", true)
				in.MerchantID, in.BookingID = "bench_m", fmt.Sprintf("BB%07d", i)
				in.Reference = "BENCH_" + in.BookingID
				sent[in.BookingID] = time.Now()
				if _, err := b.js.PublishMsgAsync(rig.IntentMsg(in)); err != nil {
					return err
				}
				// Stay under the client's cap on unacknowledged async
				// publishes (4,000).
				if i%2000 == 1999 {
					select {
					case <-b.js.PublishAsyncComplete():
					case <-time.After(time.Minute):
						return fmt.Errorf("publishes not acknowledged")
					}
				}
			}
			res.publishedPerSec = float64(s.n) / time.Since(start).Seconds()
			select {
			case <-b.js.PublishAsyncComplete():
				return nil
			case <-time.After(time.Minute):
				return fmt.Errorf("publishes not acknowledged")
			}
		}},
		// Wait for every callback, sampling in-flight and RSS for (e).
		rig.Phase{Name: rig.PhaseSettle, Run: func(ctx context.Context) error {
			deadline := time.Now().Add(10 * time.Minute)
			var lastCharge time.Time
			for {
				charges, callbacks, err := b.r.Counts(ctx)
				if err != nil {
					return err
				}
				if charges == s.n && lastCharge.IsZero() {
					lastCharge = time.Now()
				}
				if s.sampleInFlight > 0 && charges < s.n-s.sampleInFlight && !start.IsZero() && time.Since(start) > time.Second {
					if f, err := inFlight(addrs[0]); err == nil {
						samples, sampled = samples+float64(f), sampled+1
					}
				}
				if s.measureRSS {
					if f, err := inFlight(addrs[0]); err == nil && f > res.peakInFlight {
						res.peakInFlight = f
						if f == s.n && s.heapProfile != "" {
							// After a collection, so that it holds what is
							// live now; the text form ends with MemStats.
							if err := fetchPprof(addrs[0], "heap?gc=1", s.heapProfile); err != nil {
								return err
							}
							if err := fetchPprof(addrs[0], "heap?gc=1&debug=1", s.heapProfile+".txt"); err != nil {
								return err
							}
						}
					}
					if r := rssMiB(procs[0].Pid()); r > res.peakRSSMiB {
						res.peakRSSMiB = r
					}
				}
				if callbacks == s.n {
					if s.heapProfile != "" {
						// Everything allocated since the start (alloc_space).
						if err := fetchPprof(addrs[0], "heap", s.heapProfile+".end"); err != nil {
							return err
						}
					}
					el := time.Since(start)
					res.perSec = float64(s.n) / el.Seconds()
					if lastCharge.IsZero() {
						lastCharge = time.Now()
					}
					res.chargesPerSec = float64(s.n) / lastCharge.Sub(start).Seconds()
					res.cpuPer1k = (cpuSeconds(procs[0].Pid()) - cpu0) * 1000 / float64(s.n)
					if b.r.SBProc != nil {
						res.sandboxCPUPer1k = (cpuSeconds(b.r.SBProc.Pid()) - sbCPU0) * 1000 / float64(s.n)
					}
					if meter != nil {
						var err error
						if res.cost, err = meter.finish(ctx, b, s.n); err != nil {
							return fmt.Errorf("cost: %w", err)
						}
						res.cost.WorkerCPUPer1k, res.cost.SandboxCPUPer1k = res.cpuPer1k, res.sandboxCPUPer1k
						res.cost.BenchCPUPer1k = (cpuSeconds(os.Getpid()) - benchCPU0) * 1000 / float64(s.n)
						if total := res.cost.WorkerCPUPer1k + res.cost.RedisCPUPer1k + res.cost.SandboxCPUPer1k + res.cost.BenchCPUPer1k; total > 0 {
							res.cost.CeilingPerSec = float64(runtime.NumCPU()) * 1000 / total
						}
					}
					if sampled > 0 {
						res.meanInFlight = samples / sampled
					}
					if m, err := scrape(addrs[0], "payflow_charge_seconds_sum", "payflow_charge_seconds_count", "payflow_cybersource_tls_handshakes_total"); err == nil && m["payflow_charge_seconds_count"] > 0 {
						res.chargeMs = m["payflow_charge_seconds_sum"] / m["payflow_charge_seconds_count"] * 1000
						res.workerHandshakes = m["payflow_cybersource_tls_handshakes_total"]
					}
					return nil
				}
				if time.Now().After(deadline) || ctx.Err() != nil {
					return fmt.Errorf("%d of %d callbacks after 10 min", callbacks, s.n)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}},
		rig.Phase{Name: rig.PhaseReport, Run: func(ctx context.Context) error {
			l, err := b.r.LedgerE(ctx)
			if err != nil {
				return err
			}
			var lat []float64
			for _, c := range l.Callbacks {
				if t0, ok := sent[c.BookingID]; ok {
					lat = append(lat, float64(c.First.Sub(t0))/float64(time.Millisecond))
				}
			}
			res.p50, res.p99 = percentile(lat, 50), percentile(lat, 99)
			if s.rate > 0 {
				var err error
				close(stopProbe)
				if res.steady, err = b.steadyLatencies(ctx, l, sent, start, s.latency, <-stalls); err != nil {
					return err
				}
			}
			res.tokenRequests, res.handshakes = len(l.TokenRequests), l.TLSHandshakes
			return nil
		}},
	)
	for _, p := range procs {
		p.Terminate()
	}
	time.Sleep(300 * time.Millisecond)
	if perr := <-profDone; err == nil {
		err = perr
	}
	return res, err
}

// Steady is one steady-rate run: intent published → result published and
// → TTC callback received, the sandbox's CyberSource latency subtracted, in
// ms.
type Steady struct {
	Rate           float64 `json:"rate"`
	Seconds        float64 `json:"seconds"`
	CybsLatencyMs  float64 `json:"cybsLatencyMs"`
	Concurrency    int     `json:"paymentsConcurrency"`
	Samples        int     `json:"samples"`
	ResultP50ms    float64 `json:"resultAddedP50ms"`
	ResultP99ms    float64 `json:"resultAddedP99ms"`
	ResultP999ms   float64 `json:"resultAddedP999ms"`
	CallbackP50ms  float64 `json:"callbackAddedP50ms"`
	CallbackP99ms  float64 `json:"callbackAddedP99ms"`
	CallbackP999ms float64 `json:"callbackAddedP999ms"`
	WorkerCPUPer1k float64 `json:"workerCpuSecondsPer1k"`
	// SandboxCPUPer1k: the sandbox process's (0 with -sandbox-in-process).
	SandboxCPUPer1k float64 `json:"sandboxCpuSecondsPer1k"`
	AchievedRate    float64 `json:"achievedRate"`
	// Stalls: a probe in the bench process (which also runs NATS and the
	// sandbox) sleeps 1 ms in a loop; a wake-up more than 5 ms late is a
	// stall of the machine, not of the pipeline. StallMaxMs is the
	// longest; SlowDuringStall the share of callbacks over 10 ms added
	// whose span held a stall.
	Stalls          int     `json:"stalls"`
	StallMaxMs      float64 `json:"stallMaxMs"`
	SlowCallbacks   int     `json:"slowCallbacks"`
	SlowDuringStall float64 `json:"slowDuringStall"`
}

// steadyWarmup: intents published in the first second are left out (the
// connections to CyberSource are being opened then).
const steadyWarmup = time.Second

// steadyLatencies reads the results stream and the sandbox's callbacks and
// computes the added latencies of a steady run.
func (b *bench) steadyLatencies(ctx context.Context, l sandbox.Ledger, sent map[string]time.Time, start time.Time, sbLatency time.Duration, stalls []stall) (Steady, error) {
	var st Steady
	keep := func(t0 time.Time) bool { return t0.Sub(start) >= steadyWarmup }
	ms := func(d time.Duration) float64 { return float64(d-sbLatency) / float64(time.Millisecond) }
	var cb, rs []float64
	var dump strings.Builder
	for _, c := range l.Callbacks {
		if t0, ok := sent[c.BookingID]; ok && keep(t0) {
			cb = append(cb, ms(c.First.Sub(t0)))
			if a := cb[len(cb)-1]; a > 10 {
				st.SlowCallbacks++
				if slices.ContainsFunc(stalls, func(x stall) bool { return !x.at.Before(t0.Add(-x.late)) && x.at.Before(c.First) }) {
					st.SlowDuringStall++
				}
			}
			fmt.Fprintf(&dump, "%.1f\t%.2f\n", float64(t0.Sub(start))/float64(time.Millisecond), cb[len(cb)-1])
		}
	}
	if b.dump != "" {
		if err := os.WriteFile(fmt.Sprintf("%s-%d.tsv", b.dump, b.logSeq), []byte(dump.String()), 0o644); err != nil {
			return st, err
		}
	}
	msgs, err := b.r.ResultsReader.Read(ctx)
	if err != nil {
		return st, fmt.Errorf("results: %w", err)
	}
	for _, m := range msgs {
		var r struct {
			BookingID string `json:"bookingId"`
		}
		md, err := m.Metadata()
		if err != nil || json.Unmarshal(m.Data(), &r) != nil {
			continue
		}
		if t0, ok := sent[r.BookingID]; ok && keep(t0) {
			rs = append(rs, ms(md.Timestamp.Sub(t0)))
		}
	}
	st.Samples = len(cb)
	if st.SlowCallbacks > 0 {
		st.SlowDuringStall /= float64(st.SlowCallbacks)
	}
	st.Stalls = len(stalls)
	for _, x := range stalls {
		st.StallMaxMs = max(st.StallMaxMs, float64(x.late)/float64(time.Millisecond))
	}
	st.ResultP50ms, st.ResultP99ms, st.ResultP999ms = percentile(rs, 50), percentile(rs, 99), percentileF(rs, 99.9)
	st.CallbackP50ms, st.CallbackP99ms, st.CallbackP999ms = percentile(cb, 50), percentile(cb, 99), percentileF(cb, 99.9)
	return st, nil
}

// percentileF is percentile for fractional p.
func percentileF(samples []float64, p float64) float64 {
	if len(samples) == 0 {
		return 0
	}
	slices.Sort(samples)
	return samples[min(len(samples)-1, int(float64(len(samples))*p/100))]
}

// percentile of samples (sorted in place): the p-th, nearest rank.
func percentile(samples []float64, p int) float64 {
	if len(samples) == 0 {
		return 0
	}
	slices.Sort(samples)
	return samples[min(len(samples)-1, len(samples)*p/100)]
}

func fetchProfile(addr, path string, d time.Duration) error {
	return fetchPprof(addr, fmt.Sprintf("profile?seconds=%d", int(d.Seconds())), path)
}

// fetchPprof writes a worker's /debug/pprof/<what> to path.
func fetchPprof(addr, what, path string) error {
	resp, err := http.Get("http://" + addr + "/debug/pprof/" + what)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}

func waitReady(ctx context.Context, addr string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + addr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("worker %s not ready", addr)
}

// inFlight reads payflow_in_flight{role="payments"} from a worker.
func inFlight(addr string) (int, error) {
	m, err := scrape(addr, `payflow_in_flight{role="payments"}`)
	if err != nil {
		return 0, err
	}
	v, ok := m[`payflow_in_flight{role="payments"}`]
	if !ok {
		return 0, fmt.Errorf("no in-flight gauge")
	}
	return int(v), nil
}

// scrape reads the samples named (series name with labels, exactly as
// exposed) from a worker's /metrics.
func scrape(addr string, names ...string) (map[string]float64, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if !ok || !slices.Contains(names, name) {
			continue
		}
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			out[name] = f
		}
	}
	return out, sc.Err()
}

// cpuSeconds is a process's user + system CPU time from /proc/<pid>/stat
// (its own rusage: children and other processes are not in it).
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces): state is the
	// first, utime the 12th, stime the 13th.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / clockTicks
}

// clockTicks is USER_HZ, 100 on Linux for every architecture Go supports.
const clockTicks = 100

// rssMiB is a process's peak resident set (VmHWM) in MiB.
func rssMiB(pid int) float64 {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}

// claimLatency measures (f): claims (the record write that must precede a
// charge) one at a time through the sentinels, as the worker connects, on a
// primary with one replica; with REDIS_MIN_REPLICAS=0 and =1 (the claim
// then waits for the replica's acknowledgement, WAIT), interleaved in
// blocks of 100 so that both see the same machine. Phases: start, settle
// (the claims), report.
func (b *bench) claimLatency(ctx context.Context, n int, res *Results) error {
	var s *harness.Sentinel
	var client redis.UniversalClient
	lat := map[int][]float64{}
	defer func() {
		if client != nil {
			client.Close()
		}
		if s != nil {
			s.Close()
		}
	}()
	return rig.RunPhases(ctx, b.out,
		rig.Phase{Name: rig.PhaseStart, Run: func(ctx context.Context) error {
			b.close()
			var err error
			if s, err = harness.NewSentinel(filepath.Join(b.dir, "sentinel"), harness.SentinelOptions{}); err != nil {
				return err
			}
			// The worker's client settings (internal/worker redisClient).
			client = redis.NewUniversalClient(&redis.UniversalOptions{Addrs: s.SentinelAddrs(), MasterName: s.MasterName(),
				DialTimeout: 2 * time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second, MaxRetries: 1})
			return client.Ping(ctx).Err()
		}},
		rig.Phase{Name: rig.PhaseSettle, Run: func(ctx context.Context) error {
			stores := map[int]*idempotency.Store{
				0: idempotency.New(client, idempotency.Options{}),
				1: idempotency.New(client, idempotency.Options{MinReplicas: 1}),
			}
			const block, warm = 100, 100
			seq := 0
			claim := func(m int, record bool) error {
				seq++
				id := fmt.Sprintf("claim-bench-%d-%07d", m, seq)
				t0 := time.Now()
				c, err := stores[m].Claim(ctx, id, "fp", idempotency.NewOwner(), 15*time.Second)
				el := time.Since(t0)
				if err != nil {
					return err
				}
				if c.State != idempotency.Claimed {
					return fmt.Errorf("claim %s: state %d", id, c.State)
				}
				if record {
					lat[m] = append(lat[m], float64(el)/float64(time.Millisecond))
				}
				return nil
			}
			for i := range warm {
				if err := claim(i%2, false); err != nil {
					return err
				}
			}
			for done := 0; done < n; done += block {
				for _, m := range []int{0, 1} {
					for range min(block, n-done) {
						if err := claim(m, true); err != nil {
							return err
						}
					}
				}
			}
			return nil
		}},
		rig.Phase{Name: rig.PhaseReport, Run: func(context.Context) error {
			res.ClaimsPerSetting = len(lat[0])
			res.ClaimP50ms, res.ClaimP99ms = percentile(lat[0], 50), percentile(lat[0], 99)
			res.ClaimWaitP50ms, res.ClaimWaitP99ms = percentile(lat[1], 50), percentile(lat[1], 99)
			fmt.Fprintf(b.out, "# claims: REDIS_MIN_REPLICAS=0 p50 %.3f ms p99 %.3f ms; =1 p50 %.3f ms p99 %.3f ms\n",
				res.ClaimP50ms, res.ClaimP99ms, res.ClaimWaitP50ms, res.ClaimWaitP99ms)
			return nil
		}},
	)
}
