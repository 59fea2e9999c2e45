// Command chaos runs the whole system under the faults production will see
// and checks the invariants from the sandbox ledger and the streams:
// at least three worker processes killed with SIGKILL at random and
// restarted, CyberSource answering 502 after charging and cutting
// connections after charging, TTC callbacks failing 20% of the time plus one
// outage, Redis as Sentinel (primary, replica, three sentinels; the workers
// wait for one replica on every guard write, REDIS_MIN_REPLICAS=1) whose
// primary is SIGKILLed, failed over and brought back as a replica (twice in
// the full run), and a NATS node restart in a three-node cluster with R3
// streams. It exits non-zero on any violation.
//
// It runs in named phases (internal/rig): start, publish (which goes on
// during inject), inject, settle, report.
//
//	go run ./cmd/chaos            full run: 10,000 intents over several minutes
//	go run ./cmd/chaos -short     CI variant: 1,000 intents, a few minutes
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ttcpay/payflow/internal/rig"
	"github.com/ttcpay/payflow/internal/sandbox"
	"github.com/ttcpay/payflow/internal/workerproc"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if workerproc.IsChild() {
		// A worker process of the run (the same binary, re-executed).
		if err := workerproc.RunChild(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "worker:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
}

type plan struct {
	intents, workers      int
	publishFor, killEvery time.Duration
	settle                time.Duration
	callbackOutage        time.Duration
	// primaryKills: when (from the start) the Redis primary is SIGKILLed;
	// each is failed over and the old primary rejoins before the next.
	primaryKills []time.Duration
	natsRestart  time.Duration
}

// tuning is the workers' environment beyond where things are: chaos-sized
// timeouts, and a replica acknowledgement on every guard write.
var tuning = map[string]string{
	"CYBS_TIMEOUT": "5s", "CHARGE_LEASE": "20s", "RESOLVE_DELAY": "2s", "ACK_WAIT": "10s",
	"CALLBACK_RETRY_MAX": "5s", "DRAIN_TIMEOUT": "8s", "LOG_LEVEL": "info", "PAYMENTS_CONCURRENCY": "32",
	"REDIS_MIN_REPLICAS": "1",
}

// notReplicatedLog is the worker's log message for a guard write that
// fewer than REDIS_MIN_REPLICAS replicas acknowledged.
const notReplicatedLog = "not acknowledged by enough Redis replicas"

type chaos struct {
	p      plan
	out    io.Writer
	r      *rig.Rig
	faults sandbox.Faults
	procs  []*workerproc.Proc
	ids    []string
	start  time.Time

	published   atomic.Int64
	pubErr      chan error
	pubFinished chan struct{}

	kills, failovers, natsRestarts int
	rep                            *rig.Report
}

func (c *chaos) say(format string, a ...any) {
	fmt.Fprintf(c.out, "%s  %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, a...))
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.SetOutput(out)
	short := fs.Bool("short", false, "the CI variant: 1,000 intents, one primary kill")
	n := fs.Int("intents", 0, "intents to publish (default 10,000; 1,000 with -short)")
	workers := fs.Int("workers", 3, "worker processes")
	keep := fs.Bool("keep", false, "keep the run's directory (logs) afterwards")
	if err := fs.Parse(args); err != nil {
		return err
	}
	p := plan{intents: 10_000, workers: *workers, publishFor: 4 * time.Minute, killEvery: 12 * time.Second,
		settle: 8 * time.Minute, callbackOutage: 60 * time.Second}
	p.primaryKills = []time.Duration{p.publishFor * 3 / 10, p.publishFor * 8 / 10}
	p.natsRestart = p.publishFor * 6 / 10
	if *short {
		p = plan{intents: 1000, workers: *workers, publishFor: 75 * time.Second, killEvery: 6 * time.Second,
			settle: 100 * time.Second, callbackOutage: 60 * time.Second}
		p.primaryKills = []time.Duration{p.publishFor * 3 / 10}
		p.natsRestart = p.publishFor * 6 / 10
	}
	if *n > 0 {
		p.intents = *n
	}
	if p.workers < 3 {
		return errors.New("at least 3 workers")
	}
	dir, err := os.MkdirTemp("", "payflow-chaos-")
	if err != nil {
		return err
	}
	if *keep {
		fmt.Fprintf(out, "run directory: %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	c := &chaos{p: p, out: out, pubErr: make(chan error, 1), pubFinished: make(chan struct{})}
	c.faults = sandbox.Faults{
		TimeoutAfterChargeRate: 0.05,
		CutAfterChargeRate:     0.02,
		Errors:                 map[string]sandbox.ErrorFault{sandbox.EndpointCallback: {Rate: 0.2, Status: 500}},
	}
	defer func() {
		if c.r != nil {
			c.r.Close()
		}
	}()
	return rig.RunPhases(ctx, out,
		rig.Phase{Name: rig.PhaseStart, Run: func(ctx context.Context) error { return c.startPhase(ctx, dir) }},
		rig.Phase{Name: rig.PhasePublish, Run: c.publishPhase},
		rig.Phase{Name: rig.PhaseInject, Run: c.injectPhase},
		rig.Phase{Name: rig.PhaseSettle, Run: c.settlePhase},
		rig.Phase{Name: rig.PhaseReport, Run: c.reportPhase},
	)
}

func (c *chaos) startPhase(ctx context.Context, dir string) error {
	r, err := rig.Start(ctx, rig.Options{Dir: dir, NATS: rig.NATSCluster, Redis: rig.RedisSentinel,
		APIKey: "chaos-" + rig.RandomB64(9), Sandbox: sandbox.Config{Faults: c.faults}})
	if err != nil {
		return err
	}
	c.r = r
	env := r.WorkerEnv(tuning)
	for i := range c.p.workers {
		p, err := r.StartProc(fmt.Sprintf("worker-%d", i+1), env)
		if err != nil {
			return err
		}
		c.procs = append(c.procs, p)
	}
	c.say("cluster %s, Redis Sentinel (primary, replica, sentinels %s), sandbox %s; %d workers started (REDIS_MIN_REPLICAS=1)",
		r.NATSURL, strings.Join(r.Sentinel.SentinelAddrs(), ","), r.SB.TTCURL, c.p.workers)
	return r.WaitStreams(ctx, 60*time.Second)
}

// publishPhase starts publishing at an even pace over publishFor; it goes
// on during inject, which ends when it has finished.
func (c *chaos) publishPhase(ctx context.Context) error {
	runID := fmt.Sprintf("%x", mrand.Uint32())
	c.ids = make([]string, c.p.intents)
	c.start = time.Now()
	go func() {
		interval := c.p.publishFor / time.Duration(c.p.intents)
		for i := range c.p.intents {
			if d := time.Until(c.start.Add(time.Duration(i) * interval)); d > 0 {
				time.Sleep(d)
			}
			card := "4111111111111111"
			if i%10 == 0 {
				card = "4000000000000002" // 10% declines
			}
			in := rig.NewIntent(fmt.Sprintf("chaos-%s-%05d", runID, i), card, "25.00", i%3 != 0) // a third authorize-only
			in.MerchantID = fmt.Sprintf("chaos_m%d", i%3+1)
			in.BookingID, in.Reference = fmt.Sprintf("CB%05d", i), fmt.Sprintf("CH_%s_%05d", runID, i)
			c.ids[i] = in.IntentID
			// Through the NATS node restart.
			if err := c.r.Publish(ctx, in, 30*time.Second); err != nil {
				c.pubErr <- fmt.Errorf("publish %s: %w", in.IntentID, err)
				return
			}
			c.published.Add(1)
		}
		close(c.pubFinished)
	}()
	return nil
}

type event struct {
	at   time.Duration
	name string
	do   func(ctx context.Context) error
}

func (c *chaos) injectPhase(ctx context.Context) error {
	events := []event{{c.p.publishFor / 5, "callback outage", func(context.Context) error {
		f := c.faults
		f.Outages = []sandbox.Outage{{Endpoint: sandbox.EndpointCallback, For: sandbox.Duration(c.p.callbackOutage)}}
		return c.r.SB.SetFaults(f)
	}}}
	for _, at := range c.p.primaryKills {
		events = append(events, event{at, "Redis primary SIGKILL", c.failover})
	}
	events = append(events, event{c.p.natsRestart, "NATS node restart", func(context.Context) error {
		k := mrand.IntN(3)
		c.r.Cluster.Stop(k)
		time.Sleep(5 * time.Second)
		c.natsRestarts++
		return c.r.Cluster.Restart(k)
	}})
	sort.SliceStable(events, func(i, j int) bool { return events[i].at < events[j].at })

	nextKill := c.start.Add(c.p.killEvery)
	chaosUntil := c.start.Add(c.p.publishFor)
	for {
		select {
		case err := <-c.pubErr:
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		now := time.Now()
		for len(events) > 0 && now.Sub(c.start) >= events[0].at {
			ev := events[0]
			events = events[1:]
			c.say("%s (published %d)", ev.name, c.published.Load())
			if err := ev.do(ctx); err != nil {
				return fmt.Errorf("%s: %w", ev.name, err)
			}
		}
		if now.After(nextKill) && now.Before(chaosUntil) {
			w := c.procs[mrand.IntN(len(c.procs))]
			w.Kill()
			c.kills++
			c.say("SIGKILL %s (published %d)", w.Name, c.published.Load())
			time.Sleep(time.Duration(500+mrand.IntN(2000)) * time.Millisecond)
			if err := w.Start(); err != nil {
				return err
			}
			nextKill = time.Now().Add(c.p.killEvery/2 + time.Duration(mrand.Int64N(int64(c.p.killEvery))))
		}
		select {
		case <-c.pubFinished:
			if len(events) == 0 {
				c.say("published %d intents in %s; %d worker kills, %d Redis failovers, %d NATS node restarts",
					c.p.intents, time.Since(c.start).Round(time.Second), c.kills, c.failovers, c.natsRestarts)
				return nil
			}
		default:
		}
	}
}

// failover SIGKILLs the Redis primary, waits until the sentinels promoted
// the replica, and brings the old primary back as a replica (as its pod
// would restart). While it is away the workers' guard writes find no
// replica to acknowledge them: intents wait, nothing is charged.
func (c *chaos) failover(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	s := c.r.Sentinel
	old, node, err := s.KillPrimary(ctx)
	if err != nil {
		return err
	}
	killed := time.Now()
	primary, err := s.WaitForPromotion(ctx, old)
	if err != nil {
		return err
	}
	promoted := time.Since(killed)
	time.Sleep(2 * time.Second) // the old primary's pod restarting
	if err := s.Rejoin(ctx, node); err != nil {
		return err
	}
	c.failovers++
	c.say("Redis: %s promoted %s after the kill, old primary %s rejoined as a replica %s after the kill",
		primary, promoted.Round(100*time.Millisecond), old, time.Since(killed).Round(100*time.Millisecond))
	return nil
}

// settlePhase waits until every intent has a terminal outcome and every
// live charge its callback, or the settle time is spent.
func (c *chaos) settlePhase(ctx context.Context) error {
	settleBy := time.Now().Add(c.p.settle)
	for {
		rep, err := c.r.Check(ctx, c.ids)
		if err != nil {
			return err
		}
		c.rep = rep
		if rep.Violations() == 0 || time.Now().After(settleBy) {
			return nil
		}
		c.say("settling: %d without an outcome, %d live charges without a callback", rep.NoOutcome, rep.LiveNoCallback)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(3 * time.Second):
		}
	}
}

func (c *chaos) reportPhase(context.Context) error {
	r, out := c.rep, c.out
	fmt.Fprintf(out, "\nchaos report (%s)\n", time.Since(c.start).Round(time.Second))
	fmt.Fprintf(out, "  intents %d: authorized %d, declined %d, dead-lettered %d, without outcome %d\n", r.Intents, r.Authorized, r.Declined, r.DeadLettered, r.NoOutcome)
	classes := make([]string, 0, len(r.DLQByClass))
	for k, n := range r.DLQByClass {
		classes = append(classes, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(classes)
	fmt.Fprintf(out, "  dead letters by class: %s\n", strings.Join(classes, " "))
	fmt.Fprintf(out, "  CyberSource charges %d: live %d, reversed or voided %d; timeout reversals/voids %d; DUPLICATE_REQUEST refusals %d\n", r.ChargesTotal, r.LiveCharges, r.ReversedOrVoided, r.TimeoutReversals, r.DuplicateRequests)
	fmt.Fprintf(out, "  TTC callbacks: %d transactions told, %d duplicate deliveries; token requests %d\n", r.CallbacksDelivered, r.DuplicateCallbacks, r.TokenRequests)
	fmt.Fprintf(out, "  guard writes not acknowledged by a replica (retried): %d\n", c.countLogLines(notReplicatedLog))
	fmt.Fprintf(out, "  faults survived: %d worker SIGKILLs, %d Redis primary failovers (SIGKILL, promotion, rejoin), %d NATS node restarts\n", c.kills, c.failovers, c.natsRestarts)
	fmt.Fprintf(out, "  violations: double charges %d, intents without outcome %d, live charges without callback %d, live charges without an authorized result %d, authorized results without a live charge %d, overlapping token requests %d\n",
		r.DoubleCharged, r.NoOutcome, r.LiveNoCallback, r.OrphanLive, r.AuthorizedNotLive, r.OverlappingTokenRequests)
	for _, e := range r.Examples {
		fmt.Fprintf(out, "    %s\n", e)
	}
	if v := r.Violations(); v > 0 {
		return fmt.Errorf("%d invariant violations", v)
	}
	fmt.Fprintln(out, "  all invariants hold")
	return nil
}

// countLogLines counts the workers' log lines that contain s.
func (c *chaos) countLogLines(s string) int {
	n := 0
	for _, p := range c.procs {
		b, err := os.ReadFile(filepath.Clean(p.LogPath))
		if err == nil {
			n += strings.Count(string(b), s)
		}
	}
	return n
}
