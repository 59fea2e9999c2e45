package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ttcpay/payflow/internal/intent"
	"github.com/ttcpay/payflow/internal/sandbox"
	"github.com/ttcpay/payflow/internal/streams"
	"github.com/ttcpay/payflow/internal/systemtest"
	"github.com/ttcpay/payflow/internal/worker"
)

var update = flag.Bool("update", false, "rewrite golden files")

func runCLI(t *testing.T, natsURL string, stdin string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	env := map[string]string{"NATS_URL": natsURL}
	err := run(context.Background(), args, func(k string) string { return env[k] }, strings.NewReader(stdin), &out)
	return out.String(), err
}

func code(err error) int {
	var e *exitErr
	if errors.As(err, &e) {
		return e.code
	}
	if err != nil {
		return exitError
	}
	return exitOK
}

// TestRenderSeedGolden: render of the guide's example intent is the guide's
// request body plus what the worker adds (transactionId, the card type code)
// with the card number masked.
func TestRenderSeedGolden(t *testing.T) {
	out, err := runCLI(t, "", "", "render", "-f", "testdata/seed-intent.json", "--solution-id", "ttctestpartner")
	if err != nil {
		t.Fatal(err)
	}
	golden := "testdata/seed-render.golden"
	if *update {
		_ = os.WriteFile(golden, []byte(out), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if out != string(want) {
		t.Fatalf("render differs from %s:\n%s", golden, out)
	}
	// Structurally: the seed's body, exactly, once the additions are taken out.
	var got, seed map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	seedBytes, _ := os.ReadFile("testdata/seed-request.json")
	_ = json.Unmarshal(seedBytes, &seed)
	cri := got["clientReferenceInformation"].(map[string]any)
	if cri["transactionId"] != intent.TransactionID("C253535-1", 1) {
		t.Fatalf("transactionId %v", cri["transactionId"])
	}
	delete(cri, "transactionId")
	card := got["paymentInformation"].(map[string]any)["card"].(map[string]any)
	if card["type"] != "001" || card["number"] != "****1111" {
		t.Fatalf("card %v", card)
	}
	delete(card, "type")
	card["number"] = "4111111111111111"
	if !reflect.DeepEqual(got, seed) {
		g, _ := json.MarshalIndent(got, "", "  ")
		t.Fatalf("render is not the seed's body:\n%s", g)
	}
}

func TestPublishBadLineNothingPublished(t *testing.T) {
	e := systemtest.New(t, sandbox.Config{}, false)
	if err := streams.Ensure(context.Background(), e.JS, streams.Config{}); err != nil {
		t.Fatal(err)
	}
	good := func(id string) string {
		b, _ := json.Marshal(systemtest.NewIntent(id, "4111111111111111", "5.00", true))
		return string(b)
	}
	bad := strings.Replace(good("b-2"), `"amount":"5.00"`, `"amount":"5.001"`, 1)
	file := good("b-1") + "\n" + bad + "\n" + good("b-3") + "\n"
	out, err := runCLI(t, e.NATSURL, file, "publish")
	if code(err) != exitBadInput {
		t.Fatalf("exit %d (%v)\n%s", code(err), err, out)
	}
	if !strings.Contains(out, "line 2: invalid intent: amount") {
		t.Fatalf("the bad line is not reported with its number:\n%s", out)
	}
	s, _ := e.JS.Stream(context.Background(), streams.StreamIntents)
	if info, _ := s.Info(context.Background()); info.State.Msgs != 0 {
		t.Fatalf("%d intents published from a file with a bad line", info.State.Msgs)
	}
	// --skip-invalid publishes the two good ones.
	out, err = runCLI(t, e.NATSURL, file, "publish", "--skip-invalid")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if info, _ := s.Info(context.Background()); info.State.Msgs != 2 {
		t.Fatalf("%d published with --skip-invalid, want 2", info.State.Msgs)
	}
}

func TestPublishWaitTable(t *testing.T) {
	e := systemtest.New(t, sandbox.Config{}, false)
	e.Start(e.Vars(nil), worker.Hooks{})
	ok, _ := json.Marshal(systemtest.NewIntent("w-ok", "4111111111111111", "5.00", true))
	no, _ := json.Marshal(systemtest.NewIntent("w-no", "4000000000000002", "5.00", true))
	out, err := runCLI(t, e.NATSURL, string(ok)+"\n"+string(no)+"\n", "publish", "--wait", "--timeout", "20s")
	if code(err) != exitFailed || !strings.Contains(out, "w-ok") || !strings.Contains(out, "AUTHORIZED") ||
		!strings.Contains(out, "DECLINED") || !strings.Contains(out, "PROCESSOR_DECLINED") {
		t.Fatalf("exit %d:\n%s", code(err), out)
	}
	// Published again: already settled, its result is found again.
	out, err = runCLI(t, e.NATSURL, string(ok)+"\n", "publish", "--wait", "--timeout", "20s")
	if err != nil || !strings.Contains(out, "duplicate") {
		t.Fatalf("republish: %v\n%s", err, out)
	}
}

// TestReplayAfterOutage: intents dead-lettered while CyberSource was down are
// replayed and charged once; a second replay charges nothing new.
func TestReplayAfterOutage(t *testing.T) {
	e := systemtest.New(t, sandbox.Config{Faults: sandbox.Faults{Outages: []sandbox.Outage{{Endpoint: "payments", For: sandbox.Duration(time.Hour)}}}}, false)
	e.Start(e.Vars(map[string]string{"PAYMENT_RETRY_BUDGET": "3s"}), worker.Hooks{})
	const n = 3
	for i := range n {
		e.Publish(systemtest.NewIntent(fmt.Sprintf("out-%d", i), "4111111111111111", "8.00", i%2 == 0))
	}
	e.WaitFor("dead letters", 60*time.Second, func() bool { return len(e.DeadLetters()) == n })
	out, err := runCLI(t, e.NATSURL, "", "dlq", "list", "--class", "exhausted")
	if err != nil || strings.Count(out, "exhausted") != n {
		t.Fatalf("dlq list: %v\n%s", err, out)
	}
	if l := e.SB.Ledger(); len(l.LiveCharges()) != 0 {
		t.Fatalf("live charges during the outage: %v", l.LiveCharges())
	}
	_ = e.SB.SetFaults(sandbox.Faults{})

	out, err = runCLI(t, e.NATSURL, "", "dlq", "replay", "--dry-run")
	if err != nil || !strings.Contains(out, fmt.Sprintf("%d dead letters would be replayed", n)) {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	out, err = runCLI(t, e.NATSURL, "", "dlq", "replay", "--kind", "intents")
	if err != nil || !strings.Contains(out, fmt.Sprintf("replayed %d of %d", n, n)) {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	e.WaitFor("charged", 30*time.Second, func() bool {
		res := e.Results()
		for i := range n {
			if !res[fmt.Sprintf("out-%d", i)].Authorized() {
				return false
			}
		}
		return true
	})
	before := len(e.SB.Ledger().Charges)
	out, err = runCLI(t, e.NATSURL, "", "dlq", "replay")
	if err != nil || !strings.Contains(out, "replayed 0 of 0") {
		t.Fatalf("second replay: %v\n%s", err, out)
	}
	time.Sleep(time.Second)
	l := e.SB.Ledger()
	if len(l.Charges) != before || len(l.LiveCharges()) != n {
		t.Fatalf("charges %d→%d, live %v", before, len(l.Charges), l.LiveCharges())
	}
	for ref, c := range l.LiveCharges() {
		if c != 1 {
			t.Errorf("%s: %d live charges", ref, c)
		}
	}
	e.WaitFor("callbacks", 20*time.Second, func() bool { return len(e.SB.Ledger().Callbacks) == n })
}

func TestDLQShowMasksCard(t *testing.T) {
	e := systemtest.New(t, sandbox.Config{}, false)
	e.Start(e.Vars(nil), worker.Hooks{})
	b, _ := json.Marshal(systemtest.NewIntent("mask-1", "4111111111111112", "5.00", true)) // fails Luhn
	e.PublishRaw("mask-1", "ttc_ttusas_m", b)
	e.WaitFor("dead letter", 15*time.Second, func() bool { return len(e.DeadLetters()) == 1 })
	md, _ := e.DeadLetters()[0].Metadata()
	out, err := runCLI(t, e.NATSURL, "", "dlq", "show", fmt.Sprint(md.Sequence.Stream))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "4111111111111112") || !strings.Contains(out, "****1112") || strings.Contains(out, `"123"`) ||
		!strings.Contains(out, "Payflow-Dlq-Class: invalid") {
		t.Fatalf("show:\n%s", out)
	}
}

func TestLoadReports(t *testing.T) {
	e := systemtest.New(t, sandbox.Config{}, false)
	e.Start(e.Vars(nil), worker.Hooks{})
	out, err := runCLI(t, e.NATSURL, "", "load", "--count", "60", "--rate", "0", "--merchants", "3", "--decline-ratio", "0.25", "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var rep LoadReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if rep.Results != 60 || rep.Authorized+rep.Declined != 60 || rep.P50ms <= 0 || rep.Throughput <= 0 {
		t.Fatalf("%+v", rep)
	}
}

func TestUsage(t *testing.T) {
	out, err := runCLI(t, "", "", "publish", "--help")
	if !errors.Is(err, flag.ErrHelp) || !strings.Contains(out, "-wait") {
		t.Fatalf("%v\n%s", err, out)
	}
	if _, err := runCLI(t, "", "", "frobnicate"); code(err) != exitError {
		t.Fatal(err)
	}
}
