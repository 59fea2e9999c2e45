package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ttcpay/payflow/internal/intent"
	"github.com/ttcpay/payflow/internal/publish"
	"github.com/ttcpay/payflow/internal/streams"
)

// LoadReport is what load prints (and, with --json, writes as JSON).
type LoadReport struct {
	Count      int     `json:"count"`
	Merchants  int     `json:"merchants"`
	TargetRate float64 `json:"targetRate"`
	// Published counts the publishes JetStream acknowledged as new
	// messages; Refused those it refused (stream full, no stream, ...),
	// Duplicates those it dropped as duplicates.
	Published      int     `json:"published"`
	Refused        int     `json:"refused"`
	Duplicates     int     `json:"duplicates"`
	FirstRefusal   string  `json:"firstRefusal,omitempty"`
	PublishSeconds float64 `json:"publishSeconds"`
	Results        int     `json:"results"`
	Authorized     int     `json:"authorized"`
	Declined       int     `json:"declined"`
	Other          int     `json:"other"`
	Seconds        float64 `json:"seconds"`
	Throughput     float64 `json:"throughputPerSecond"`
	P50ms          float64 `json:"p50ms"`
	P90ms          float64 `json:"p90ms"`
	P99ms          float64 `json:"p99ms"`
	MaxMs          float64 `json:"maxMs"`
}

func cmdLoad(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs, url := flags("load", "publish generated intents with sandbox test cards and report throughput and publish→result latency", getenv, stdout)
	count := fs.Int("count", 1000, "intents to publish")
	rate := fs.Float64("rate", 100, "intents per second (0: as fast as possible)")
	merchants := fs.Int("merchants", 1, "spread over this many merchants (load_m01, load_m02, ...)")
	declines := fs.Float64("decline-ratio", 0, "fraction of intents that use a declining test card")
	integrator := fs.String("integrator", "costco", "integrator of the generated intents")
	timeout := fs.Duration("timeout", 5*time.Minute, "how long to wait for the results")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *count < 1 || *merchants < 1 || *declines < 0 || *declines > 1 || *rate < 0 {
		return withCode(exitError, "--count and --merchants must be ≥ 1, --rate ≥ 0, --decline-ratio in 0..1")
	}
	nc, js, err := connect(*url, getenv)
	if err != nil {
		return err
	}
	defer nc.Close()
	rep, err := runLoad(ctx, js, loadSpec{count: *count, rate: *rate, merchants: *merchants, declines: *declines, integrator: *integrator, timeout: *timeout})
	if err != nil {
		return withCode(exitError, "NATS %s: %v", natsServer(nc, *url), err)
	}
	if *asJSON {
		b, _ := json.MarshalIndent(rep, "", "  ")
		fmt.Fprintf(stdout, "%s\n", b)
	} else {
		fmt.Fprintf(stdout, "published %d of %d intents over %d merchants in %.2fs (target %.0f/s)", rep.Published, rep.Count, rep.Merchants, rep.PublishSeconds, rep.TargetRate)
		if rep.Refused > 0 || rep.Duplicates > 0 {
			fmt.Fprintf(stdout, "; %d refused by JetStream, %d dropped as duplicates", rep.Refused, rep.Duplicates)
			if rep.FirstRefusal != "" {
				fmt.Fprintf(stdout, " (first refusal: %s)", rep.FirstRefusal)
			}
		}
		fmt.Fprintln(stdout)
		fmt.Fprintf(stdout, "results: %d in %.2fs (%d authorized, %d declined, %d other): %.1f payments/s\n",
			rep.Results, rep.Seconds, rep.Authorized, rep.Declined, rep.Other, rep.Throughput)
		fmt.Fprintf(stdout, "latency publish→result: p50 %.1fms  p90 %.1fms  p99 %.1fms  max %.1fms\n", rep.P50ms, rep.P90ms, rep.P99ms, rep.MaxMs)
	}
	if rep.Refused > 0 || rep.Duplicates > 0 {
		return withCode(exitError, "NATS %s: %d of %d publishes refused, %d dropped as duplicates", natsServer(nc, *url), rep.Refused, rep.Count, rep.Duplicates)
	}
	if rep.Results < rep.Published {
		return withCode(exitTimeout, "%d results missing after %s", rep.Published-rep.Results, *timeout)
	}
	return nil
}

type loadSpec struct {
	count, merchants int
	rate, declines   float64
	integrator       string
	timeout          time.Duration
}

// runLoad publishes the generated intents and measures publish→result.
func runLoad(ctx context.Context, js jetstream.JetStream, s loadSpec) (LoadReport, error) {
	rep := LoadReport{Count: s.count, Merchants: s.merchants, TargetRate: s.rate}
	waiter, err := publish.NewWaiter(ctx, js, time.Time{})
	if err != nil {
		return rep, err
	}
	defer waiter.Stop()
	run := fmt.Sprintf("%x", rand.Uint32())
	var mu sync.Mutex
	sent := make(map[string]time.Time, s.count)
	latencies := make([]time.Duration, 0, s.count)
	var last time.Time
	done, stop := make(chan struct{}), make(chan struct{})
	var acked atomic.Bool // every ack is in: sent holds only what JetStream took
	go func() {
		defer close(done)
		for {
			select {
			case r := <-waiter.Results():
				mu.Lock()
				t0, ok := sent[r.IntentID]
				if ok {
					delete(sent, r.IntentID)
					latencies = append(latencies, time.Since(t0))
					last = time.Now()
					switch {
					case r.Authorized():
						rep.Authorized++
					case r.Status == "DECLINED":
						rep.Declined++
					default:
						rep.Other++
					}
				}
				n := len(latencies)
				left := len(sent)
				mu.Unlock()
				if n == s.count || (acked.Load() && left == 0) {
					return
				}
			case <-stop:
				return
			case <-ctx.Done():
				return
			}
		}
	}()

	start := time.Now()
	var interval time.Duration
	if s.rate > 0 {
		interval = time.Duration(float64(time.Second) / s.rate)
	}
	capture := true
	type pending struct {
		id string
		f  jetstream.PubAckFuture
	}
	futures := make([]pending, 0, s.count)
	for i := range s.count {
		if interval > 0 {
			if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
				time.Sleep(d)
			}
		}
		card := "4111111111111111"
		if rand.Float64() < s.declines {
			card = "4000000000000002"
		}
		in := &intent.Intent{
			Version: 1, IntentID: fmt.Sprintf("load-%s-%06d", run, i), Integrator: s.integrator,
			MerchantID: fmt.Sprintf("load_m%02d", i%s.merchants+1), BookingID: fmt.Sprintf("LB%06d", i),
			Reference: fmt.Sprintf("LOAD_%s_%06d", run, i), Amount: "10.00", Currency: "USD", Capture: &capture,
			Card:   &intent.Card{Number: card, ExpirationMonth: "12", ExpirationYear: "2031"},
			BillTo: &intent.BillTo{FirstName: "Load", LastName: "Test", Address1: "1 Market St", Locality: "san francisco", AdministrativeArea: "CA", PostalCode: "94105", Country: "US", Email: "load@example.com"},
		}
		b, _ := json.Marshal(in)
		m := nats.NewMsg(streams.Intents(in.MerchantID))
		m.Data = b
		m.Header.Set(nats.MsgIdHdr, in.IntentID)
		mu.Lock()
		sent[in.IntentID] = time.Now()
		mu.Unlock()
		f, err := js.PublishMsgAsync(m)
		if err != nil {
			return rep, fmt.Errorf("publish: %w", err)
		}
		futures = append(futures, pending{id: in.IntentID, f: f})
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		return rep, fmt.Errorf("publishes not acknowledged after 30s")
	}
	// Count what JetStream took: a refused or duplicate publish gives no
	// result, so it is not waited for.
	for _, p := range futures {
		var ack *jetstream.PubAck
		var err error
		select {
		case ack = <-p.f.Ok():
		case err = <-p.f.Err():
		}
		drop := true
		switch {
		case err != nil:
			rep.Refused++
			if rep.FirstRefusal == "" {
				rep.FirstRefusal = err.Error()
			}
		case ack.Duplicate:
			rep.Duplicates++
		default:
			rep.Published++
			drop = false
		}
		if drop {
			mu.Lock()
			delete(sent, p.id)
			mu.Unlock()
		}
	}
	acked.Store(true)
	mu.Lock()
	if len(sent) == 0 {
		close(stop)
	}
	mu.Unlock()
	rep.PublishSeconds = time.Since(start).Seconds()
	select {
	case <-done:
	case <-time.After(s.timeout):
	case <-ctx.Done():
	}
	mu.Lock()
	defer mu.Unlock()
	rep.Results = len(latencies)
	if !last.IsZero() {
		rep.Seconds = last.Sub(start).Seconds()
		rep.Throughput = float64(rep.Results) / rep.Seconds
	}
	slices.Sort(latencies)
	pct := func(p float64) float64 {
		if len(latencies) == 0 {
			return 0
		}
		return float64(latencies[min(len(latencies)-1, int(p*float64(len(latencies))))]) / float64(time.Millisecond)
	}
	rep.P50ms, rep.P90ms, rep.P99ms = pct(0.50), pct(0.90), pct(0.99)
	if len(latencies) > 0 {
		rep.MaxMs = float64(latencies[len(latencies)-1]) / float64(time.Millisecond)
	}
	return rep, nil
}
