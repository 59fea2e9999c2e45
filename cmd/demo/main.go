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
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
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

	"github.com/alicebob/miniredis/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ttcpay/payflow/internal/deadletters"
	"github.com/ttcpay/payflow/internal/publish"
	"github.com/ttcpay/payflow/internal/sandbox"
	"github.com/ttcpay/payflow/internal/streams"
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
	var logFile *os.File
	defer func() {
		if logFile != nil {
			_ = logFile.Close()
		}
	}()
	say := func(format string, a ...any) { fmt.Fprintf(stdout, format+"\n", a...) }

	// NATS with JetStream, on a free port.
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true,
		StoreDir: filepath.Join(dir, "jetstream"), NoLog: true, NoSigs: true})
	if err != nil {
		return err
	}
	go ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		return fmt.Errorf("NATS did not start")
	}
	say("NATS JetStream   %s", ns.ClientURL())

	// The sandbox: TTC and CyberSource.
	apiKey := "demo-" + randomB64(12)
	sb, err := sandbox.Listen(sandbox.Config{Integrators: map[string]sandbox.Integrator{"costco": {APIKey: apiKey}}}, "127.0.0.1:0", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer sb.Close()
	caFile := filepath.Join(dir, "sandbox-ca.pem")
	if err := os.WriteFile(caFile, sb.CACertPEM(), 0o600); err != nil {
		return err
	}
	say("sandbox TTC      %s", sb.TTCURL)
	say("sandbox CyberSource %s (mTLS)", sb.CybsURL)

	// Redis.
	redisURL, tokenCache := getenv("REDIS_URL"), "redis"
	if redisURL == "" {
		mr, err := miniredis.Run()
		if err != nil {
			return err
		}
		defer mr.Close()
		redisURL, tokenCache = "redis://"+mr.Addr(), "memory"
		say("Redis            in-process emulator (set REDIS_URL to use a real one); credential cache: memory")
	} else {
		say("Redis            %s", redisURL)
	}

	// The worker, both roles.
	logPath := filepath.Join(dir, "worker.log")
	logFile, err = os.Create(logPath)
	if err != nil {
		return err
	}
	vars := map[string]string{
		"NATS_URL": ns.ClientURL(), "REDIS_URL": redisURL, "TOKEN_CACHE": tokenCache,
		"CACHE_ENCRYPTION_KEY": randomB64(32),
		"TTC_BASE_URL":         sb.TTCURL, "TTC_API_KEYS": "costco=" + apiKey,
		"CYBS_BASE_URL": sb.CybsURL, "CYBS_CA_FILE": caFile, "CYBS_SOLUTION_ID": "ttctestpartner",
		"RESOLVE_DELAY": "2s", "HTTP_ADDR": "127.0.0.1:0", "LOG_LEVEL": "info", "DRAIN_TIMEOUT": "5s",
	}
	cfg, err := worker.LoadConfig(func(k string) string { return vars[k] })
	if err != nil {
		return err
	}
	wctx, stopWorker := context.WithCancel(ctx)
	defer stopWorker()
	w, err := worker.New(wctx, cfg, zerolog.New(logFile).With().Timestamp().Logger(), worker.Hooks{})
	if err != nil {
		return err
	}
	workerDone := make(chan error, 1)
	go func() { workerDone <- w.Run(wctx) }()
	say("worker           roles payments,callbacks; its JSON log goes to a temporary file")

	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	waiter, err := publish.NewWaiter(ctx, js, time.Time{})
	if err != nil {
		return err
	}
	defer waiter.Stop()

	// Publish every line as it is, invalid ones included: the worker must
	// dead-letter those, never charge them.
	say("\npublishing %s", *file)
	wanted := map[string]bool{}
	var order []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var head struct{ IntentID, MerchantID string }
		if err := json.Unmarshal(line, &head); err != nil || head.IntentID == "" || head.MerchantID == "" {
			return fmt.Errorf("%s: every demo line needs intentId and merchantId", *file)
		}
		m := nats.NewMsg(streams.Intents(head.MerchantID))
		m.Data = append([]byte(nil), line...)
		m.Header.Set(nats.MsgIdHdr, head.IntentID)
		if _, err := js.PublishMsg(ctx, m); err != nil {
			return err
		}
		wanted[head.IntentID] = true
		order = append(order, head.IntentID)
	}

	wait, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	got := waiter.Wait(wait, wanted)
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

	dl, err := deadletters.List(ctx, js, deadletters.Filter{})
	if err != nil {
		return err
	}
	say("\ndead letters (payments.dlq.*):")
	for _, e := range dl {
		say("  seq %d  %s/%s  intent %s: %s", e.Seq, e.Kind, e.Class, e.IntentID, e.Reason)
	}

	stopWorker()
	<-workerDone
	missing := len(wanted) - len(got)
	if missing > 0 {
		return fmt.Errorf("%d intents have no outcome after %s", missing, *timeout)
	}
	if len(l.Callbacks) < authorized {
		return fmt.Errorf("TTC received %d callbacks for %d authorized intents", len(l.Callbacks), authorized)
	}
	say("\ndemo finished: %d intents, %d authorized with their callbacks, %d dead letters", len(order), authorized, len(dl))
	return nil
}

func randomB64(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}
