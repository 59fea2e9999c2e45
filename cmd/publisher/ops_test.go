package main

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ttcpay/payflow/internal/deadletter"
	"github.com/ttcpay/payflow/internal/harness"
	"github.com/ttcpay/payflow/internal/sandbox"
	"github.com/ttcpay/payflow/internal/streams"
	"github.com/ttcpay/payflow/internal/systemtest"
	"github.com/ttcpay/payflow/internal/worker"
)

// ops runs the CLI with NATS and Redis of the system.
func ops(t *testing.T, e *systemtest.Env, stdin string, args ...string) (string, error) {
	t.Helper()
	return runCLIEnv(t, map[string]string{"NATS_URL": e.NATSURL, "REDIS_URL": e.RedisURL, "RESOLVE_DELAY": "1s"}, stdin, args...)
}

func mustContain(t *testing.T, what, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Fatalf("%s: no %q in\n%s", what, w, out)
		}
	}
}

// TestOperatorStuckUnknownOutcome: a charge whose answer was lost and whose
// timeout reversal cannot be sent (CyberSource follow-ups are down) is
// found by status, told by intent show, and shown by publish --wait as
// resolving with its next step (exit 6), not as a failure.
func TestOperatorStuckUnknownOutcome(t *testing.T) {
	e := systemtest.New(t, sandbox.Config{Faults: sandbox.Faults{CutAfterChargeRate: 1,
		Outages: []sandbox.Outage{{Endpoint: sandbox.EndpointFollowUps, For: sandbox.Duration(time.Hour)}}}}, false)
	e.Start(e.Vars(nil), worker.TestConfig{})
	b, _ := json.Marshal(systemtest.NewIntent("op-unknown", "4111111111111111", "9.00", true))
	out, err := ops(t, e, string(b), "publish", "--wait", "--timeout", "4s")
	if code(err) != exitResolving {
		t.Fatalf("publish --wait: exit %d (%v), want %d\n%s", code(err), err, exitResolving, out)
	}
	mustContain(t, "publish --wait", out, "op-unknown", "resolving (unknown outcome)", "next: ", "publisher intent show op-unknown")
	status, err := ops(t, e, "", "status")
	if err != nil {
		t.Fatalf("%v\n%s", err, status)
	}
	if !regexp.MustCompile(`unknown outcomes (waiting to be resolved|being resolved now): 1; oldest op-unknown of ttc_ttusas_m \(attempt 1`).MatchString(status) {
		t.Fatalf("status does not show the unknown outcome:\n%s", status)
	}
	show, err := ops(t, e, "", "intent", "show", "op-unknown")
	if err != nil {
		t.Fatalf("%v\n%s", err, show)
	}
	mustContain(t, "intent show", show, "unknown outcome", "unknown since:", "#1 transactionId", "next:", "resolve", "(merchant ttc_ttusas_m)", "results published:\n  none")
	if !strings.Contains(show, "(in ") {
		t.Fatalf("intent show: the next step is not in the future\n%s", show)
	}
	t.Logf("publish --wait:\n%s\nstatus:\n%s\nintent show:\n%s", out, status, show)
}

// TestOperatorCallbackOutage: TTC's callback endpoint is down; status counts
// the callback waiting and intent show gives its failures, last error and
// next retry.
func TestOperatorCallbackOutage(t *testing.T) {
	e := systemtest.New(t, sandbox.Config{Faults: sandbox.Faults{Outages: []sandbox.Outage{{Endpoint: sandbox.EndpointCallback, For: sandbox.Duration(time.Hour)}}}}, false)
	e.Start(e.Vars(nil), worker.TestConfig{})
	e.Publish(systemtest.NewIntent("op-callback", "4111111111111111", "12.00", true))
	e.WaitFor("authorized", 20*time.Second, func() bool { return e.Results()["op-callback"].Authorized() })
	var show string
	e.WaitFor("a failed callback delivery", 30*time.Second, func() bool {
		show, _ = ops(t, e, "", "intent", "show", "op-callback")
		return strings.Contains(show, "next retry at")
	})
	mustContain(t, "intent show", show, "outcome:    AUTHORIZED", "TTC callback for", "not delivered yet", "failed deliveries", "last failure at", "HTTP 503")
	status, err := ops(t, e, "", "status")
	if err != nil {
		t.Fatalf("%v\n%s", err, status)
	}
	mustContain(t, "status", status, "TTC callbacks not yet delivered: 1", "oldest op-callback")
	t.Logf("status:\n%s\nintent show:\n%s", status, show)
}

// TestOperatorConfigDeadLetter: an intent of an integrator with no TTC API
// key ends as a config dead letter; status counts it by kind and class,
// intent show gives the letter and why; then the dead-letter tools: --class
// validated, list --json, dry runs that list, replay --seq --wait with the
// intent's outcome, dlq show of the replayed letter, purge with its prompt.
func TestOperatorConfigDeadLetter(t *testing.T) {
	e := systemtest.New(t, sandbox.Config{}, false)
	vars := dlqKeyVars(t) // the letters keep their cards (sealed), so they can be replayed
	vars["CONFIG_BUDGET"] = "1s"
	e.Start(e.Vars(vars), worker.TestConfig{})
	for _, id := range []string{"op-config", "op-config-2"} {
		in := systemtest.NewIntent(id, "4111111111111111", "5.00", true)
		in.Integrator = "walmart"
		e.Publish(in)
	}
	e.WaitFor("dead letters", 30*time.Second, func() bool { return len(e.DeadLetters()) == 2 })
	status, err := ops(t, e, "", "status")
	if err != nil {
		t.Fatalf("%v\n%s", err, status)
	}
	if !regexp.MustCompile(`(?m)^\s+intents\s+config\s+2\s`).MatchString(status) {
		t.Fatalf("status does not count the config dead letters:\n%s", status)
	}
	show, err := ops(t, e, "", "intent", "show", "op-config")
	if err != nil {
		t.Fatalf("%v\n%s", err, show)
	}
	mustContain(t, "intent show", show, "outcome:    FAILED", "intents config", "walmart", "ended with a config dead letter")
	t.Logf("status:\n%s\nintent show:\n%s", status, show)

	if out, err := ops(t, e, "", "dlq", "list", "--class", "unknown"); code(err) != exitError || !strings.Contains(err.Error(), "unknown-outcome") {
		t.Fatalf("--class unknown: %v\n%s", err, out)
	}
	out, err := ops(t, e, "", "dlq", "list", "--json")
	var letters []letterJSON
	if err != nil || json.Unmarshal([]byte(out), &letters) != nil || len(letters) != 2 || letters[0].Class != "config" {
		t.Fatalf("list --json: %v\n%s", err, out)
	}
	if letters[0].IntentID != "op-config" { // the one dead-lettered first
		letters[0], letters[1] = letters[1], letters[0]
	}
	if letters[0].IntentID != "op-config" || letters[1].IntentID != "op-config-2" {
		t.Fatalf("list --json: %+v", letters)
	}
	seq := fmt.Sprint(letters[0].Seq)
	out, err = ops(t, e, "", "dlq", "replay", "--dry-run", "--class", "config")
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, "replay --dry-run", out, "op-config ", "op-config-2 ", "2 dead letters would be replayed")
	out, err = ops(t, e, "", "dlq", "replay", "--seq", seq, "--rate", "5", "--wait", "20s")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	mustContain(t, "replay --seq --wait", out, "replayed 1 of 1", "op-config", "FAILED")
	out, err = ops(t, e, "", "dlq", "show", seq)
	if err != nil {
		t.Fatalf("dlq show of the replayed letter: %v\n%s", err, out)
	}
	mustContain(t, "dlq show (replayed)", out, "was replayed at", "what became of it:", "publisher intent show op-config")
	t.Logf("dlq show %s:\n%s", seq, out)

	// purge: a dry run lists, "no" deletes nothing, --yes deletes.
	out, err = ops(t, e, "", "dlq", "purge", "--dry-run", "--merchant", letters[1].MerchantID)
	if err != nil || !strings.Contains(out, "op-config-2") || !strings.Contains(out, "would be deleted") {
		t.Fatalf("purge --dry-run: %v\n%s", err, out)
	}
	if before := len(e.DeadLetters()); before < 2 {
		t.Fatalf("%d letters before purge", before)
	}
	out, err = ops(t, e, "no\n", "dlq", "purge", "--seq", fmt.Sprint(letters[1].Seq))
	if code(err) != exitError || !strings.Contains(out, "type yes") {
		t.Fatalf("purge without yes: %v\n%s", err, out)
	}
	if _, err := deadletter.Show(context.Background(), e.JS, letters[1].Seq); err != nil {
		t.Fatalf("an unconfirmed purge deleted the letter: %v", err)
	}
	out, err = ops(t, e, "", "dlq", "purge", "--seq", fmt.Sprint(letters[1].Seq), "--yes")
	if err != nil || !strings.Contains(out, "deleted 1 of 1") {
		t.Fatalf("purge --yes: %v\n%s", err, out)
	}
	if _, err := deadletter.Show(context.Background(), e.JS, letters[1].Seq); err == nil {
		t.Fatal("purged letter still there")
	}
}

// TestReplayKeepsIntentID: an invalid intent replayed twice is still
// dead-lettered under its own intentId, not "x:replay:N:replay:M".
func TestReplayKeepsIntentID(t *testing.T) {
	e := systemtest.New(t, sandbox.Config{}, false)
	e.Start(e.Vars(dlqKeyVars(t)), worker.TestConfig{})
	in := systemtest.NewIntent("bad-luhn", "4111111111111111", "5.00", true)
	in.Card = nil // no payment method: invalid, and nothing to mask, so it can be replayed
	b, _ := json.Marshal(in)
	e.PublishRaw("bad-luhn", "ttc_ttusas_m", b)
	var seen []uint64
	defer func() {
		if t.Failed() {
			t.Logf("results %+v", e.Results())
		}
	}()
	for round := range 3 {
		var l []deadletter.Letter
		e.WaitFor("dead letter", 20*time.Second, func() bool {
			l, _ = deadletter.List(context.Background(), e.JS, deadletter.Filter{})
			return len(l) == 1 && !slices.Contains(seen, l[0].Seq)
		})
		seen = append(seen, l[0].Seq)
		if l[0].IntentID != "bad-luhn" {
			t.Fatalf("round %d: dead letter of intent %q, want bad-luhn", round, l[0].IntentID)
		}
		if round == 2 {
			break
		}
		if out, err := ops(t, e, "", "dlq", "replay"); err != nil || !strings.Contains(out, "replayed 1 of 1") {
			t.Fatalf("%v\n%s", err, out)
		}
	}
}

// TestLoadCountsRefusedPublishes: with a stream that takes 20 messages,
// load says 20 were published and 30 refused, and fails.
func TestLoadCountsRefusedPublishes(t *testing.T) {
	n := harness.StartNATS(t)
	nc, err := nats.Connect(n.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	cfgs := streams.Config{MaxIntents: 20}.Configs()
	for _, c := range cfgs {
		if _, err := js.CreateOrUpdateStream(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	out, err := runCLI(t, n.URL(), "", "load", "--count", "50", "--rate", "0", "--timeout", "1s", "--json")
	if code(err) != exitError || !strings.Contains(err.Error(), "30 of 50 publishes refused") || !strings.Contains(err.Error(), n.URL()) {
		t.Fatalf("load: %v\n%s", err, out)
	}
	var rep LoadReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Published != 20 || rep.Refused != 30 || rep.FirstRefusal == "" {
		t.Fatalf("report %+v (%v)\n%s", rep, err, out)
	}
}

// TestErrorsNameTheServer: an error after connecting names the server.
func TestErrorsNameTheServer(t *testing.T) {
	n := harness.StartNATS(t) // no streams
	for _, args := range [][]string{{"dlq", "list"}, {"status"}} {
		out, err := runCLI(t, n.URL(), "", args...)
		if err == nil || !strings.Contains(err.Error(), "NATS "+n.URL()) {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
}
