// Command chaos runs the whole system under the faults production will see
// and checks the invariants from the sandbox ledger and the streams:
// at least three worker processes killed with SIGKILL at random and
// restarted, CyberSource answering 502 after charging and cutting
// connections after charging, TTC callbacks failing 20% of the time plus one
// outage, a Redis restart and a NATS node restart in a three-node cluster
// with R3 streams. It exits non-zero on any violation.
//
//	go run ./cmd/chaos            full run: 10,000 intents over several minutes
//	go run ./cmd/chaos -short     CI variant: 1,000 intents, a few minutes
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
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
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.SetOutput(out)
	short := fs.Bool("short", false, "the CI variant: 1,000 intents")
	n := fs.Int("intents", 0, "intents to publish (default 10,000; 1,000 with -short)")
	workers := fs.Int("workers", 3, "worker processes")
	keep := fs.Bool("keep", false, "keep the run's directory (logs) afterwards")
	if err := fs.Parse(args); err != nil {
		return err
	}
	p := plan{intents: 10_000, workers: *workers, publishFor: 4 * time.Minute, killEvery: 12 * time.Second,
		settle: 8 * time.Minute, callbackOutage: 60 * time.Second}
	if *short {
		p = plan{intents: 1000, workers: *workers, publishFor: 75 * time.Second, killEvery: 6 * time.Second,
			settle: 100 * time.Second, callbackOutage: 60 * time.Second}
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
	say := func(format string, a ...any) {
		fmt.Fprintf(out, "%s  %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, a...))
	}

	cluster, err := harness.NewCluster(filepath.Join(dir, "nats"), 3)
	if err != nil {
		return err
	}
	defer cluster.Shutdown()
	rdb, err := harness.NewRedis(filepath.Join(dir, "redis"), true)
	if err != nil {
		return err
	}
	defer rdb.Stop()
	faults := sandbox.Faults{
		TimeoutAfterChargeRate: 0.05,
		CutAfterChargeRate:     0.02,
		Errors:                 map[string]sandbox.ErrorFault{sandbox.EndpointCallback: {Rate: 0.2, Status: 500}},
	}
	apiKey := "chaos-" + randomB64(9)
	sb, err := sandbox.Listen(sandbox.Config{Integrators: map[string]sandbox.Integrator{"costco": {APIKey: apiKey}}, Faults: faults}, "127.0.0.1:0", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer sb.Close()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, sb.CACertPEM(), 0o600); err != nil {
		return err
	}
	env := append(os.Environ(),
		"NATS_URL="+cluster.URLs(), "REDIS_URL=redis://"+rdb.Addr(), "CACHE_ENCRYPTION_KEY="+randomB64(32),
		"TTC_BASE_URL="+sb.TTCURL, "TTC_API_KEYS=costco="+apiKey, "CYBS_BASE_URL="+sb.CybsURL, "CYBS_CA_FILE="+caFile,
		"CYBS_TIMEOUT=5s", "CHARGE_LEASE=20s", "RESOLVE_DELAY=2s", "ACK_WAIT=10s", "STREAM_REPLICAS=3",
		"CALLBACK_RETRY_MAX=5s", "DRAIN_TIMEOUT=5s", "HTTP_ADDR=127.0.0.1:0", "LOG_LEVEL=info", "PAYMENTS_CONCURRENCY=32")
	procs := make([]*workerproc.Proc, p.workers)
	for i := range procs {
		procs[i] = &workerproc.Proc{Name: fmt.Sprintf("worker-%d", i+1), Env: env, LogPath: filepath.Join(dir, fmt.Sprintf("worker-%d.log", i+1))}
		if err := procs[i].Start(); err != nil {
			return err
		}
	}
	defer func() {
		for _, w := range procs {
			w.Kill()
		}
	}()
	say("cluster %s, redis %s, sandbox %s; %d workers started", cluster.URLs(), rdb.Addr(), sb.TTCURL, p.workers)

	nc, err := nats.Connect(cluster.URLs(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	// The workers create the streams; wait for them.
	deadline := time.Now().Add(60 * time.Second)
	for streams.Check(ctx, js) != nil {
		if time.Now().After(deadline) {
			return errors.New("streams not created by the workers")
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Publish.
	run := fmt.Sprintf("%x", mrand.Uint32())
	ids := make([]string, p.intents)
	var published atomic.Int64
	pubErr := make(chan error, 1)
	pubFinished := make(chan struct{})
	start := time.Now()
	go func() {
		interval := p.publishFor / time.Duration(p.intents)
		capture := true
		for i := range p.intents {
			if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
				time.Sleep(d)
			}
			card := "4111111111111111"
			if i%10 == 0 {
				card = "4000000000000002" // 10% declines
			}
			cp := capture && i%3 != 0 // a third authorize-only
			in := &intent.Intent{Version: 1, IntentID: fmt.Sprintf("chaos-%s-%05d", run, i), Integrator: "costco",
				MerchantID: fmt.Sprintf("chaos_m%d", i%3+1), BookingID: fmt.Sprintf("CB%05d", i), Reference: fmt.Sprintf("CH_%s_%05d", run, i),
				Amount: "25.00", Currency: "USD", Capture: &cp,
				Card:   &intent.Card{Number: card, ExpirationMonth: "12", ExpirationYear: "2031"},
				BillTo: &intent.BillTo{FirstName: "C", LastName: "Haos", Address1: "1 Main", Locality: "x", AdministrativeArea: "CA", PostalCode: "94105", Country: "US", Email: "c@example.com"}}
			ids[i] = in.IntentID
			b, _ := json.Marshal(in)
			m := nats.NewMsg(streams.Intents(in.MerchantID))
			m.Data = b
			m.Header.Set(nats.MsgIdHdr, in.IntentID)
			var err error
			for range 120 { // through the NATS node restart
				pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				_, err = js.PublishMsg(pctx, m)
				cancel()
				if err == nil {
					break
				}
				time.Sleep(250 * time.Millisecond)
			}
			if err != nil {
				pubErr <- fmt.Errorf("publish %s: %w", in.IntentID, err)
				return
			}
			published.Add(1)
		}
		close(pubFinished)
	}()

	// Chaos.
	var kills, redisRestarts, natsRestarts int
	events := []struct {
		at   time.Duration
		name string
		do   func() error
	}{
		{p.publishFor / 5, "callback outage", func() error {
			f := faults
			f.Outages = []sandbox.Outage{{Endpoint: sandbox.EndpointCallback, For: sandbox.Duration(p.callbackOutage)}}
			return sb.SetFaults(f)
		}},
		{p.publishFor * 3 / 10, "redis restart", func() error {
			rdb.Stop()
			time.Sleep(2 * time.Second)
			redisRestarts++
			return rdb.Restart()
		}},
		{p.publishFor * 6 / 10, "nats node restart", func() error {
			k := mrand.IntN(3)
			cluster.Stop(k)
			time.Sleep(5 * time.Second)
			natsRestarts++
			return cluster.Restart(k)
		}},
	}
	nextKill := start.Add(p.killEvery)
	chaosUntil := start.Add(p.publishFor)
loop:
	for {
		select {
		case err := <-pubErr:
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		now := time.Now()
		for len(events) > 0 && now.Sub(start) >= events[0].at {
			ev := events[0]
			events = events[1:]
			say("%s (published %d)", ev.name, published.Load())
			if err := ev.do(); err != nil {
				return fmt.Errorf("%s: %w", ev.name, err)
			}
		}
		if now.After(nextKill) && now.Before(chaosUntil) {
			w := procs[mrand.IntN(len(procs))]
			w.Kill()
			kills++
			say("SIGKILL %s (published %d)", w.Name, published.Load())
			time.Sleep(time.Duration(500+mrand.IntN(2000)) * time.Millisecond)
			if err := w.Start(); err != nil {
				return err
			}
			nextKill = time.Now().Add(p.killEvery/2 + time.Duration(mrand.Int64N(int64(p.killEvery))))
		}
		select {
		case <-pubFinished:
			if len(events) == 0 {
				break loop
			}
		default:
		}
	}
	say("published %d intents in %s; %d kills, %d Redis restarts, %d NATS node restarts; settling", p.intents, time.Since(start).Round(time.Second), kills, redisRestarts, natsRestarts)

	// Settle: wait until every intent has a terminal outcome and every live
	// charge its callback, or the settle time is spent.
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	var rep *report
	settleBy := time.Now().Add(p.settle)
	for {
		rep, err = check(ctx, js, sb.Ledger(), want)
		if err != nil {
			return err
		}
		if rep.violations() == 0 || time.Now().After(settleBy) {
			break
		}
		say("settling: %d without an outcome, %d live charges without a callback", rep.noOutcome, rep.liveNoCallback)
		time.Sleep(3 * time.Second)
	}
	rep.kills, rep.redisRestarts, rep.natsRestarts, rep.elapsed = kills, redisRestarts, natsRestarts, time.Since(start)
	rep.print(out)
	if v := rep.violations(); v > 0 {
		return fmt.Errorf("%d invariant violations", v)
	}
	return nil
}

type report struct {
	intents, authorized, declined, deadLettered, noOutcome        int
	liveCharges, chargesTotal, reversedOrVoided, timeoutReversals int
	doubleCharged, liveNoCallback, orphanLive, authorizedNotLive  int
	callbacksDelivered, duplicateCallbacks                        int
	tokenRequests, overlappingTokenRequests                       int
	dlqByClass                                                    map[string]int
	examples                                                      []string
	kills, redisRestarts, natsRestarts                            int
	elapsed                                                       time.Duration
}

func (r *report) violations() int {
	return r.doubleCharged + r.noOutcome + r.liveNoCallback + r.orphanLive + r.authorizedNotLive + r.overlappingTokenRequests
}

func (r *report) note(format string, a ...any) {
	if len(r.examples) < 10 {
		r.examples = append(r.examples, fmt.Sprintf(format, a...))
	}
}

// check reads the results and dead letters and compares them with the
// sandbox ledger.
func check(ctx context.Context, js jetstream.JetStream, l sandbox.Ledger, want map[string]bool) (*report, error) {
	results, err := readAll(ctx, js, streams.StreamResults)
	if err != nil {
		return nil, err
	}
	dlqs, err := readAll(ctx, js, streams.StreamDLQ)
	if err != nil {
		return nil, err
	}
	latest := map[string]intent.Result{}
	for _, m := range results {
		var r intent.Result
		if json.Unmarshal(m.Data, &r) == nil && want[r.IntentID] {
			latest[r.IntentID] = r
		}
	}
	dead := map[string]string{}
	for _, m := range dlqs {
		id := m.Header.Get(streams.HeaderIntentID)
		if m.Header.Get(streams.HeaderDLQKind) == "intents" && want[id] && m.Header.Get(streams.HeaderDLQReason) != "" {
			dead[id] = m.Header.Get(streams.HeaderDLQClass)
		}
	}
	return evaluate(want, latest, dead, l), nil
}

// evaluate checks the invariants: the latest result per intent, the dead
// letters (with a reason) per intent, and the sandbox ledger.
func evaluate(want map[string]bool, latest map[string]intent.Result, dead map[string]string, l sandbox.Ledger) *report {
	rep := &report{intents: len(want), dlqByClass: map[string]int{}}
	byID := map[string]sandbox.Charge{}
	liveByRef := map[string]int{}
	for _, c := range l.Charges {
		byID[c.ID] = c
		rep.chargesTotal++
		if c.Live {
			rep.liveCharges++
			liveByRef[c.Reference]++
		} else if c.Reversed || c.Voided {
			rep.reversedOrVoided++
		}
	}
	for ref, n := range liveByRef {
		if n > 1 {
			rep.doubleCharged++
			rep.note("reference %s has %d live charges", ref, n)
		}
	}
	callbacks := map[string]int{}
	for _, c := range l.Callbacks {
		callbacks[c.TransactionID] = c.Count
		rep.callbacksDelivered++
		if c.Count > 1 {
			rep.duplicateCallbacks += c.Count - 1
		}
	}
	authorizedIDs := map[string]bool{}
	for id := range want {
		r, ok := latest[id]
		class, isDead := dead[id]
		switch {
		case ok && r.Authorized():
			rep.authorized++
			authorizedIDs[r.CyberSourceID] = true
			if !byID[r.CyberSourceID].Live {
				rep.authorizedNotLive++
				rep.note("%s: result %s but charge %s is not live", id, r.Status, r.CyberSourceID)
			}
		case ok && r.Status == "DECLINED":
			rep.declined++
		case isDead:
			rep.deadLettered++
			rep.dlqByClass[class]++
		default:
			rep.noOutcome++
			rep.note("%s: no terminal outcome (result %q)", id, r.Status)
		}
	}
	for _, c := range l.Charges {
		if !c.Live {
			continue
		}
		if callbacks[c.ID] == 0 {
			rep.liveNoCallback++
			rep.note("live charge %s (%s) has no callback", c.ID, c.Reference)
		}
		if !authorizedIDs[c.ID] {
			rep.orphanLive++
			rep.note("live charge %s (%s) belongs to no authorized result", c.ID, c.Reference)
		}
	}
	rep.timeoutReversals = len(l.TimeoutReversals)
	rep.tokenRequests = len(l.TokenRequests)
	rep.overlappingTokenRequests = l.OverlappingTokenRequests()
	return rep
}

func (r *report) print(out io.Writer) {
	fmt.Fprintf(out, "\nchaos report (%s)\n", r.elapsed.Round(time.Second))
	fmt.Fprintf(out, "  intents %d: authorized %d, declined %d, dead-lettered %d, without outcome %d\n", r.intents, r.authorized, r.declined, r.deadLettered, r.noOutcome)
	classes := make([]string, 0, len(r.dlqByClass))
	for c := range r.dlqByClass {
		classes = append(classes, fmt.Sprintf("%s=%d", c, r.dlqByClass[c]))
	}
	sort.Strings(classes)
	fmt.Fprintf(out, "  dead letters by class: %s\n", strings.Join(classes, " "))
	fmt.Fprintf(out, "  CyberSource charges %d: live %d, reversed or voided %d; timeout reversals/voids %d\n", r.chargesTotal, r.liveCharges, r.reversedOrVoided, r.timeoutReversals)
	fmt.Fprintf(out, "  TTC callbacks: %d transactions told, %d duplicate deliveries; token requests %d\n", r.callbacksDelivered, r.duplicateCallbacks, r.tokenRequests)
	fmt.Fprintf(out, "  faults survived: %d worker SIGKILLs, %d Redis restarts, %d NATS node restarts\n", r.kills, r.redisRestarts, r.natsRestarts)
	fmt.Fprintf(out, "  violations: double charges %d, intents without outcome %d, live charges without callback %d, live charges without an authorized result %d, authorized results without a live charge %d, overlapping token requests %d\n",
		r.doubleCharged, r.noOutcome, r.liveNoCallback, r.orphanLive, r.authorizedNotLive, r.overlappingTokenRequests)
	for _, e := range r.examples {
		fmt.Fprintf(out, "    %s\n", e)
	}
	if r.violations() == 0 {
		fmt.Fprintln(out, "  all invariants hold")
	}
}

func readAll(ctx context.Context, js jetstream.JetStream, stream string) ([]*jetstream.RawStreamMsg, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, err
	}
	var out []*jetstream.RawStreamMsg
	for uint64(len(out)) < info.State.Msgs {
		batch, err := c.Fetch(500, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return nil, err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			out = append(out, &jetstream.RawStreamMsg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
		}
		if n == 0 {
			break
		}
	}
	return out, nil
}

func randomB64(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}
