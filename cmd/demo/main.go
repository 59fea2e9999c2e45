// Command demo shows the whole system on one machine with only Go: it
// starts an embedded NATS server with JetStream, the TTC/CyberSource
// sandbox, and a worker (both roles); publishes the example intents from
// examples/demo-intents.jsonl; and prints each outcome, the callbacks TTC
// received and the dead letters. It picks free ports and never calls the
// real TTC or CyberSource.
//
// Redis: REDIS_URL if set; otherwise an in-process Redis emulator
// (miniredis) holds the idempotency records and the credential cache is
// memory-only.
//
// It runs on internal/rig in named phases: start, publish, settle, report
// (no faults are injected).
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/ttcpay/payflow/internal/deadletter"
	"github.com/ttcpay/payflow/internal/intent"
	"github.com/ttcpay/payflow/internal/publish"
	"github.com/ttcpay/payflow/internal/rig"
	"github.com/ttcpay/payflow/internal/worker"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stdout)
	file := fs.String("f", "examples/demo-intents.jsonl", "intents to publish, one JSON object per line")
	timeout := fs.Duration("timeout", 60*time.Second, "how long to wait for every outcome")
	if err := fs.Parse(args); err != nil {
		return err
	}
	data, err := os.ReadFile(*file)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "payflow-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	say := func(format string, a ...any) { fmt.Fprintf(stdout, format+"\n", a...) }
	d := &demo{say: say, out: stdout}
	defer d.close()
	return rig.RunPhases(ctx, io.Discard,
		rig.Phase{Name: rig.PhaseStart, Run: func(ctx context.Context) error { return d.start(ctx, dir, getenv("REDIS_URL")) }},
		rig.Phase{Name: rig.PhasePublish, Run: func(ctx context.Context) error { return d.publish(ctx, *file, data) }},
		// No faults are injected: the demo shows the ordinary outcomes.
		rig.Phase{Name: rig.PhaseSettle, Run: func(ctx context.Context) error { return d.settle(ctx, *timeout) }},
		rig.Phase{Name: rig.PhaseReport, Run: d.report},
	)
}

type demo struct {
	say     func(string, ...any)
	out     io.Writer
	r       *rig.Rig
	w       *rig.Worker
	logFile *os.File
	waiter  *publish.Waiter
	wanted  map[string]bool
	order   []string
	got     map[string]intent.Result
	timeout time.Duration
}

func (d *demo) close() {
	if d.waiter != nil {
		d.waiter.Stop()
	}
	if d.r != nil {
		d.r.Close()
	}
	if d.logFile != nil {
		_ = d.logFile.Close()
	}
}

// start: NATS with JetStream, the sandbox (TTC and CyberSource), Redis
// (redisURL, or the in-process emulator) and a worker with both roles.
func (d *demo) start(ctx context.Context, dir, redisURL string) error {
	o := rig.Options{Dir: dir, Redis: rig.RedisEmulated, APIKey: "demo-" + rig.RandomB64(12)}
	if redisURL != "" {
		o.Redis, o.RedisURL = rig.RedisURL, redisURL
	}
	r, err := rig.Start(ctx, o)
	if err != nil {
		return err
	}
	d.r = r
	d.say("NATS JetStream   %s", r.NATSURL)
	d.say("sandbox TTC      %s", r.SB.TTCURL)
	d.say("sandbox CyberSource %s (mTLS)", r.SB.CybsURL)
	if redisURL == "" {
		d.say("Redis            in-process emulator (set REDIS_URL to use a real one); credential cache: memory")
	} else {
		d.say("Redis            %s", redisURL)
	}
	if d.logFile, err = os.Create(filepath.Join(dir, "worker.log")); err != nil {
		return err
	}
	vars := r.WorkerEnv(map[string]string{"RESOLVE_DELAY": "2s", "LOG_LEVEL": "info"})
	if d.w, err = r.StartWorker(ctx, vars, worker.TestConfig{}, d.logFile); err != nil {
		return err
	}
	d.say("worker           roles payments,callbacks; its JSON log goes to a temporary file")
	d.waiter, err = publish.NewWaiter(ctx, r.JS, time.Time{})
	return err
}

// publish publishes every line as it is, invalid ones included: the worker
// must dead-letter those, never charge them.
func (d *demo) publish(ctx context.Context, file string, data []byte) error {
	d.say("\npublishing %s", file)
	d.wanted = map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var head struct{ IntentID, MerchantID string }
		if err := json.Unmarshal(line, &head); err != nil || head.IntentID == "" || head.MerchantID == "" {
			return fmt.Errorf("%s: every demo line needs intentId and merchantId", file)
		}
		if err := d.r.PublishMsg(ctx, rig.RawMsg(head.IntentID, head.MerchantID, append([]byte(nil), line...)), 5*time.Second); err != nil {
			return err
		}
		d.wanted[head.IntentID] = true
		d.order = append(d.order, head.IntentID)
	}
	return nil
}

// settle waits for an outcome of every intent, or timeout.
func (d *demo) settle(ctx context.Context, timeout time.Duration) error {
	wait, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d.got, d.timeout = d.waiter.Wait(wait, d.wanted), timeout
	return nil
}

func (d *demo) report(ctx context.Context) error {
	say, stdout, got, order, wanted := d.say, d.out, d.got, d.order, d.wanted
	sb := d.r.SB
	say("\noutcomes (payments.results.*):")
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  INTENT\tSTATUS\tAMOUNT\tCYBERSOURCE ID\tREASON")
	authorized := 0
	for _, id := range order {
		r, ok := got[id]
		if !ok {
			fmt.Fprintf(tw, "  %s\t(no result)\t\t\t\n", id)
			continue
		}
		if r.Authorized() {
			authorized++
		}
		amount := r.AuthorizedAmount
		if amount == "" {
			amount = r.Amount
		}
		reason := r.Reason
		if len(reason) > 70 {
			reason = reason[:70] + "…"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s %s\t%s\t%s\n", id, r.Status, amount, r.Currency, r.CyberSourceID, reason)
	}
	tw.Flush()

	deadline := time.Now().Add(20 * time.Second)
	for len(sb.Ledger().Callbacks) < authorized && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	l := sb.Ledger()
	say("\ncallbacks TTC received (sandbox ledger):")
	for _, c := range l.Callbacks {
		say("  transaction %s  booking %-8s %s %s  (%d delivery)", c.TransactionID, c.BookingID, c.Amount, c.Currency, c.Count)
	}
	say("\ncharges at CyberSource (sandbox ledger):")
	for _, c := range l.Charges {
		state := "live"
		if !c.Live {
			state = "not live"
		}
		say("  %s  ref %-14s %-26s %s %s  capture=%v  %s", c.ID, c.Reference, c.Status, c.Amount, c.Currency, c.Capture, state)
	}
	say("  TTC token requests: %d (one per merchant, shared by every payment)", len(l.TokenRequests))

	dl, err := deadletter.List(ctx, d.r.JS, deadletter.Filter{})
	if err != nil {
		return err
	}
	say("\ndead letters (payments.dlq.*):")
	for _, e := range dl {
		say("  seq %d  %s/%s  intent %s: %s", e.Seq, e.Kind, e.Class, e.IntentID, e.Reason)
	}

	if _, err := d.w.Stop(); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	missing := len(wanted) - len(got)
	if missing > 0 {
		return fmt.Errorf("%d intents have no outcome after %s", missing, d.timeout)
	}
	if len(l.Callbacks) < authorized {
		return fmt.Errorf("TTC received %d callbacks for %d authorized intents", len(l.Callbacks), authorized)
	}
	say("\ndemo finished: %d intents, %d authorized with their callbacks, %d dead letters", len(order), authorized, len(dl))
	return nil
}
