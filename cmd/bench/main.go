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
//	(e) a worker's peak RSS with 1,000 payments in flight.
//
// Workers run as separate processes (this binary re-executed).
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
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

	"github.com/ttcpay/payflow/internal/harness"
	"github.com/ttcpay/payflow/internal/intent"
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

	PipelinePerSec float64 `json:"pipelinePaymentsPerSec"`
	PipelineP50ms  float64 `json:"pipelineP50ms"`
	PipelineP99ms  float64 `json:"pipelineP99ms"`
	PipelineRatio  float64 `json:"pipelineToRawRatio"`

	SlowInFlight int     `json:"slowInFlight"`
	SlowPerSec   float64 `json:"slowPaymentsPerSec"`
	SlowIdeal    float64 `json:"slowIdealPerSec"`
	SlowRatio    float64 `json:"slowRatio"`

	FourWorkersPayments       int     `json:"fourWorkersPayments"`
	TokenRequestsPer10k       float64 `json:"tokenRequestsPer10k"`
	TLSHandshakesPer10k       float64 `json:"tlsHandshakesPer10k"`
	FourWorkersPaymentsPerSec float64 `json:"fourWorkersPaymentsPerSec"`

	PeakInFlight int     `json:"peakInFlight"`
	PeakRSSMiB   float64 `json:"peakRssMiB"`
}

type bench struct {
	dir    string
	out    io.Writer
	nats   *harness.NATS
	redis  *harness.Redis
	nc     *nats.Conn
	js     jetstream.JetStream
	logSeq int
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(out)
	n := fs.Int("n", 5000, "messages / payments for (a) and (b)")
	slowC := fs.Int("inflight", 64, "payments in flight for (c)")
	fourN := fs.Int("four", 10000, "payments for (d)")
	jsonOut := fs.String("json", "bench.json", "where to write the JSON")
	profile := fs.String("profile", "", "write the worker's CPU profile during (b) to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "payflow-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b := &bench{dir: dir, out: out}
	res := Results{Machine: runtime.GOOS + "/" + runtime.GOARCH, Cores: runtime.NumCPU(), When: time.Now().UTC().Format(time.RFC3339)}
	say := func(format string, a ...any) { fmt.Fprintf(out, "# "+format+"\n", a...) }

	// Each measurement gets a fresh NATS and Redis, so that none inherits
	// another's backlog.
	fresh := func() error {
		b.close()
		var err error
		b.logSeq++
		if b.nats, err = harness.NewNATS(filepath.Join(dir, fmt.Sprintf("nats-%d", b.logSeq))); err != nil {
			return err
		}
		if b.redis, err = harness.NewRedis(filepath.Join(dir, fmt.Sprintf("redis-%d", b.logSeq)), false); err != nil {
			return err
		}
		if b.nc, err = nats.Connect(b.nats.URL()); err != nil {
			return err
		}
		b.js, err = jetstream.New(b.nc)
		return err
	}
	defer b.close()

	say("(a) raw JetStream two-hop, %d messages", *n)
	if err := fresh(); err != nil {
		return err
	}
	if res.RawMsgsPerSec, err = b.raw(ctx, *n); err != nil {
		return fmt.Errorf("(a): %w", err)
	}

	say("(b) full pipeline, zero-latency sandbox, %d payments", *n)
	if err := fresh(); err != nil {
		return err
	}
	p, err := b.pipeline(ctx, pipelineSpec{n: *n, workers: 1, profile: *profile})
	if err != nil {
		return fmt.Errorf("(b): %w", err)
	}
	res.PipelinePerSec, res.PipelineP50ms, res.PipelineP99ms = p.perSec, p.p50, p.p99
	res.PipelineRatio = p.perSec / res.RawMsgsPerSec

	say("(c) CyberSource at 300 ms, %d in flight", *slowC)
	if err := fresh(); err != nil {
		return err
	}
	p, err = b.pipeline(ctx, pipelineSpec{n: *slowC * 20, workers: 1, latency: 300 * time.Millisecond,
		env: []string{"PAYMENTS_CONCURRENCY=" + strconv.Itoa(*slowC)}})
	if err != nil {
		return fmt.Errorf("(c): %w", err)
	}
	res.SlowInFlight, res.SlowPerSec = *slowC, p.chargesPerSec
	res.SlowIdeal = float64(*slowC) / 0.3
	res.SlowRatio = p.chargesPerSec / res.SlowIdeal

	say("(d) four worker processes, %d payments", *fourN)
	if err := fresh(); err != nil {
		return err
	}
	p, err = b.pipeline(ctx, pipelineSpec{n: *fourN, workers: 4})
	if err != nil {
		return fmt.Errorf("(d): %w", err)
	}
	res.FourWorkersPayments = *fourN
	res.TokenRequestsPer10k = float64(p.tokenRequests) * 10000 / float64(*fourN)
	res.TLSHandshakesPer10k = float64(p.handshakes) * 10000 / float64(*fourN)
	res.FourWorkersPaymentsPerSec = p.perSec

	say("(e) peak RSS with 1,000 payments in flight")
	if err := fresh(); err != nil {
		return err
	}
	p, err = b.pipeline(ctx, pipelineSpec{n: 1000, workers: 1, latency: 4 * time.Second, measureRSS: true,
		env: []string{"PAYMENTS_CONCURRENCY=1000", "ACK_WAIT=30s"}})
	if err != nil {
		return fmt.Errorf("(e): %w", err)
	}
	res.PeakInFlight, res.PeakRSSMiB = p.peakInFlight, p.peakRSSMiB

	fmt.Fprintf(out, "\n| measure | figure |\n|---|---|\n")
	fmt.Fprintf(out, "| (a) raw JetStream two-hop (publish→consume→publish→consume→ack) | %.0f msgs/s |\n", res.RawMsgsPerSec)
	fmt.Fprintf(out, "| (b) full pipeline, zero-latency sandbox, intent → TTC callback | %.0f payments/s, p50 %.0f ms, p99 %.0f ms, %.2f of (a) |\n", res.PipelinePerSec, res.PipelineP50ms, res.PipelineP99ms, res.PipelineRatio)
	fmt.Fprintf(out, "| (c) CyberSource at 300 ms, %d in flight | %.1f payments/s of an ideal %.1f (%.2f) |\n", res.SlowInFlight, res.SlowPerSec, res.SlowIdeal, res.SlowRatio)
	fmt.Fprintf(out, "| (d) 4 worker processes, per 10,000 payments | %.1f TTC token requests, %.1f TLS handshakes (the guide's flow: 10,000 of each); %.0f payments/s |\n", res.TokenRequestsPer10k, res.TLSHandshakesPer10k, res.FourWorkersPaymentsPerSec)
	fmt.Fprintf(out, "| (e) worker peak RSS, %d payments in flight | %.1f MiB |\n", res.PeakInFlight, res.PeakRSSMiB)
	fmt.Fprintf(out, "\n%d cores, %s\n", res.Cores, res.Machine)
	j, _ := json.MarshalIndent(res, "", "  ")
	fmt.Fprintf(out, "\n%s\n", j)
	if *jsonOut != "" {
		return os.WriteFile(*jsonOut, append(j, '\n'), 0o644)
	}
	return nil
}

func (b *bench) close() {
	if b.nc != nil {
		b.nc.Close()
		b.nc = nil
	}
	if b.nats != nil {
		b.nats.Close()
		b.nats = nil
	}
	if b.redis != nil {
		b.redis.Stop()
		b.redis = nil
	}
}

// raw measures publish → consume → publish → consume → ack with the
// worker's stream settings and concurrency (32 payments, 16 callbacks).
func (b *bench) raw(ctx context.Context, n int) (float64, error) {
	cfgs := streams.Config{}.Configs()
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
	env        []string
	measureRSS bool
	profile    string
}

type pipelineResult struct {
	perSec, chargesPerSec, p50, p99 float64
	tokenRequests, handshakes       int
	peakInFlight                    int
	peakRSSMiB                      float64
}

// pipeline runs workers as processes against a sandbox and publishes n
// approved intents, measuring intent published → TTC callback received.
func (b *bench) pipeline(ctx context.Context, s pipelineSpec) (pipelineResult, error) {
	var res pipelineResult
	faults := sandbox.Faults{}
	if s.latency > 0 {
		faults.Latency = map[string]sandbox.Latency{sandbox.EndpointPayments: {Fixed: sandbox.Duration(s.latency)}}
	}
	key := "bench-" + randomB64(9)
	sb, err := sandbox.Listen(sandbox.Config{Integrators: map[string]sandbox.Integrator{"costco": {APIKey: key}}, Faults: faults}, "127.0.0.1:0", "127.0.0.1:0")
	if err != nil {
		return res, err
	}
	defer sb.Close()
	caFile := filepath.Join(b.dir, fmt.Sprintf("ca-%d.pem", b.logSeq))
	if err := os.WriteFile(caFile, sb.CACertPEM(), 0o600); err != nil {
		return res, err
	}
	env := append(os.Environ(), "NATS_URL="+b.nats.URL(), "REDIS_URL="+b.redis.URL(), "CACHE_ENCRYPTION_KEY="+randomB64(32),
		"TTC_BASE_URL="+sb.TTCURL, "TTC_API_KEYS=costco="+key, "CYBS_BASE_URL="+sb.CybsURL, "CYBS_CA_FILE="+caFile,
		"LOG_LEVEL=warn", "DRAIN_TIMEOUT=5s")
	env = append(env, s.env...)
	if s.profile != "" {
		env = append(env, "ENABLE_PPROF=true")
	}
	var procs []*workerproc.Proc
	addrs := make([]string, s.workers)
	for i := range s.workers {
		port, err := harness.FreePortE()
		if err != nil {
			return res, err
		}
		addrs[i] = fmt.Sprintf("127.0.0.1:%d", port)
		p := &workerproc.Proc{Name: fmt.Sprintf("w%d", i), Env: append(env, "HTTP_ADDR="+addrs[i]),
			LogPath: filepath.Join(b.dir, fmt.Sprintf("worker-%d-%d.log", b.logSeq, i))}
		if err := p.Start(); err != nil {
			return res, err
		}
		procs = append(procs, p)
	}
	defer func() {
		for _, p := range procs {
			p.Terminate()
		}
		time.Sleep(300 * time.Millisecond)
	}()
	for _, a := range addrs {
		if err := waitReady(ctx, a); err != nil {
			return res, err
		}
	}

	profDone := make(chan error, 1)
	if s.profile != "" {
		go func() { profDone <- fetchProfile(addrs[0], s.profile) }()
	} else {
		profDone <- nil
	}
	defer func() { <-profDone }()
	// Publish, remembering when each booking was published.
	sent := make(map[string]time.Time, s.n)
	capture := true
	start := time.Now()
	for i := range s.n {
		booking := fmt.Sprintf("BB%07d", i)
		in := &intent.Intent{Version: 1, IntentID: fmt.Sprintf("bench-%d-%07d", b.logSeq, i), Integrator: "costco",
			MerchantID: "bench_m", BookingID: booking, Reference: "BENCH_" + booking, Amount: "10.00", Currency: "USD", Capture: &capture,
			Card:   &intent.Card{Number: "4111111111111111", ExpirationMonth: "12", ExpirationYear: "2031"},
			BillTo: &intent.BillTo{FirstName: "B", LastName: "Ench", Address1: "1 Main", Locality: "x", AdministrativeArea: "CA", PostalCode: "94105", Country: "US", Email: "b@example.com"}}
		data, _ := json.Marshal(in)
		m := nats.NewMsg(streams.Intents(in.MerchantID))
		m.Data = data
		m.Header.Set(nats.MsgIdHdr, in.IntentID)
		sent[booking] = time.Now()
		if _, err := b.js.PublishMsgAsync(m); err != nil {
			return res, err
		}
	}
	select {
	case <-b.js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		return res, fmt.Errorf("publishes not acknowledged")
	}

	// Wait for every callback, sampling in-flight and RSS for (e).
	deadline := time.Now().Add(10 * time.Minute)
	var lastCharge time.Time
	for {
		charges, callbacks := sb.Counts()
		if charges == s.n && lastCharge.IsZero() {
			lastCharge = time.Now()
		}
		if s.measureRSS {
			if f, err := inFlight(addrs[0]); err == nil && f > res.peakInFlight {
				res.peakInFlight = f
			}
			if r := rssMiB(procs[0].Pid()); r > res.peakRSSMiB {
				res.peakRSSMiB = r
			}
		}
		if callbacks == s.n {
			el := time.Since(start)
			l := sb.Ledger()
			res.perSec = float64(s.n) / el.Seconds()
			if lastCharge.IsZero() {
				lastCharge = time.Now()
			}
			res.chargesPerSec = float64(s.n) / lastCharge.Sub(start).Seconds()
			var lat []float64
			for _, c := range l.Callbacks {
				if t0, ok := sent[c.BookingID]; ok {
					lat = append(lat, float64(c.First.Sub(t0))/float64(time.Millisecond))
				}
			}
			slices.Sort(lat)
			res.p50, res.p99 = lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)]
			res.tokenRequests, res.handshakes = len(l.TokenRequests), l.TLSHandshakes
			return res, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return res, fmt.Errorf("%d of %d callbacks after 10 min", callbacks, s.n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func fetchProfile(addr, path string) error {
	resp, err := http.Get("http://" + addr + "/debug/pprof/profile?seconds=4")
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
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), `payflow_in_flight{role="payments"} `); ok {
			f, err := strconv.ParseFloat(v, 64)
			return int(f), err
		}
	}
	return 0, fmt.Errorf("no in-flight gauge")
}

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

func randomB64(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}
