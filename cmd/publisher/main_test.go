package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ttcpay/payflow/internal/deadletter"
	"github.com/ttcpay/payflow/internal/harness"
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

// runCLIEnv is runCLI with an environment of its own.
func runCLIEnv(t *testing.T, env map[string]string, stdin string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
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
	e.Start(e.Vars(nil), worker.TestConfig{})
	ok, _ := json.Marshal(systemtest.NewIntent("w-ok", "4111111111111111", "5.00", true))
	no, _ := json.Marshal(systemtest.NewIntent("w-no", "4000000000000002", "5.00", true))
	out, err := runCLI(t, e.NATSURL, string(ok)+"\n"+string(no)+"\n", "publish", "--wait", "--timeout", "20s")
	if code(err) != exitFailed || !strings.Contains(out, "w-ok") || !strings.Contains(out, "AUTHORIZED") ||
		!strings.Contains(out, "DECLINED") || !strings.Contains(out, "PROCESSOR_DECLINED") {
		t.Fatalf("exit %d:\n%s", code(err), out)
	}
	// Published again: JetStream drops it (Duplicate ack), which is an
	// error; its earlier result is still found and shown.
	out, err = runCLI(t, e.NATSURL, string(ok)+"\n", "publish", "--wait", "--timeout", "20s")
	if code(err) != exitBadInput || !strings.Contains(err.Error(), "already accepted: intentId w-ok") ||
		!strings.Contains(out, "AUTHORIZED") {
		t.Fatalf("republish: exit %d (%v)\n%s", code(err), err, out)
	}
}

// TestPublishDuplicateIsAnError: a Duplicate publish ack means JetStream
// dropped the message; the CLI names each such intent and exits with the
// bad-input code, after publishing the rest (issue 12 break 3).
func TestPublishDuplicateIsAnError(t *testing.T) {
	e := systemtest.New(t, sandbox.Config{}, false)
	if err := streams.Ensure(context.Background(), e.JS, streams.Config{}); err != nil {
		t.Fatal(err)
	}
	intentJSON := func(id, amount string) string {
		b, _ := json.Marshal(systemtest.NewIntent(id, "4111111111111111", amount, true))
		return string(b)
	}
	out, err := runCLI(t, e.NATSURL, intentJSON("d-1", "5.00")+"\n", "publish")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// d-1 again with another amount (a reused intentId), then a new one.
	file := intentJSON("d-1", "99.00") + "\n" + intentJSON("d-2", "5.00") + "\n"
	out, err = runCLI(t, e.NATSURL, file, "publish")
	if code(err) != exitBadInput || !strings.Contains(err.Error(), "already accepted: intentId d-1") ||
		!strings.Contains(out, "line 1: already accepted: intentId d-1") || strings.Contains(out, "published d-1") ||
		!strings.Contains(out, "published d-2") {
		t.Fatalf("exit %d (%v)\n%s", code(err), err, out)
	}
	s, _ := e.JS.Stream(context.Background(), streams.StreamIntents)
	if info, _ := s.Info(context.Background()); info.State.Msgs != 2 {
		t.Fatalf("%d intents in the stream, want 2", info.State.Msgs)
	}
}

// TestReplayAfterOutage: intents dead-lettered while CyberSource was down are
// replayed and charged once; a second replay charges nothing new.
func TestReplayAfterOutage(t *testing.T) {
	e := systemtest.New(t, sandbox.Config{Faults: sandbox.Faults{Outages: []sandbox.Outage{{Endpoint: "payments", For: sandbox.Duration(time.Hour)}}}}, false)
	// The dead letters' cards are sealed to the dead-letter key, which the
	// worker holds, so that the replay can be charged.
	vars := dlqKeyVars(t)
	vars["PAYMENT_RETRY_BUDGET"] = "3s"
	e.Start(e.Vars(vars), worker.TestConfig{})
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
	e.Start(e.Vars(nil), worker.TestConfig{})
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

// TestDLQOldAndForgedLetters: `dlq show` masks a letter written before
// payloads were scrubbed (case-variant names, truncated JSON); `dlq replay`
// refuses a letter whose card was removed, naming why, and a forged
// `config` letter whose original subject is the callbacks stream; both stay
// dead letters and the command exits 5.
func TestDLQOldAndForgedLetters(t *testing.T) {
	n := harness.StartNATS(t)
	nc, err := nats.Connect(n.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if err := streams.Ensure(ctx, js, streams.Config{}); err != nil {
		t.Fatal(err)
	}
	letter := func(l deadletter.Letter) {
		t.Helper()
		l.Kind, l.Deliveries = cmp.Or(l.Kind, deadletter.KindIntents), 1
		if err := deadletter.Publish(ctx, js, l, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	letter(deadletter.Letter{Class: deadletter.ClassInvalid, MerchantID: "m1", IntentID: "old-1", OriginalSubject: streams.Intents("m1"),
		Data: []byte(`{"intentId":"old-1","Card":{"Number":"4111111111111111","SecurityCode":"737"},"card":{"number":"5555555555554444","securityCode":"321"`)})
	letter(deadletter.Letter{Class: deadletter.ClassExhausted, MerchantID: "m1", IntentID: "removed-1", OriginalSubject: streams.Intents("m1"),
		CardRemoved: deadletter.CardRemovedReason + " (visa ****1111)", Data: []byte(`{"intentId":"removed-1","card":{"number":"****1111"}}`)})
	letter(deadletter.Letter{Class: deadletter.ClassConfig, MerchantID: "m1", IntentID: "forged-1", OriginalSubject: streams.Callbacks("m1"),
		Data: []byte(`{"intentId":"forged-1","merchantId":"m1","cybersourceId":"1","amount":"1.00","currency":"USD"}`)})

	out, err := runCLI(t, n.URL(), "", "dlq", "show", "1")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"4111111111111111", "5555555555554444", "737", "321"} {
		if strings.Contains(out, s) {
			t.Errorf("dlq show prints %s:\n%s", s, out)
		}
	}
	if !strings.Contains(out, "****1111") || !strings.Contains(out, "****4444") {
		t.Errorf("dlq show does not keep the last four:\n%s", out)
	}

	out, err = runCLI(t, n.URL(), "", "dlq", "replay", "--class", "exhausted")
	if code(err) != exitPartial || !strings.Contains(out, "removed-1): card removed: republish from upstream (visa ****1111)") {
		t.Errorf("replay of a letter without its card: exit %d (%v)\n%s", code(err), err, out)
	}
	out, err = runCLI(t, n.URL(), "", "dlq", "replay", "--class", "config")
	if code(err) != exitPartial || !strings.Contains(out, "forged-1): not replayable: original subject") {
		t.Errorf("replay of a forged config letter: exit %d (%v)\n%s", code(err), err, out)
	}
	for name, want := range map[string]uint64{streams.StreamCallbacks: 0, streams.StreamIntents: 0, streams.StreamDLQ: 3} {
		s, _ := js.Stream(ctx, name)
		if info, _ := s.Info(ctx); info.State.Msgs != want {
			t.Errorf("%s holds %d messages, want %d", name, info.State.Msgs, want)
		}
	}
}

// TestPublisherWithNATSUsers: against nats-server with deploy/nats's
// users and TLS, the publisher logs in from the environment: upstream's
// user publishes and waits for results; it cannot list dead letters, which
// the operator's user can; without the CA (TLS) or a user nothing connects.
func TestPublisherWithNATSUsers(t *testing.T) {
	values, err := os.ReadFile("../../deploy/nats/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c := harness.StartChartNATS(t, values)
	dir := t.TempDir()
	env := func(user, inbox string) map[string]string {
		pw := filepath.Join(dir, user)
		if err := os.WriteFile(pw, []byte(c.Passwords[user]), 0o600); err != nil {
			t.Fatal(err)
		}
		return map[string]string{"NATS_URL": c.URL(), "NATS_USER": user, "NATS_PASSWORD_FILE": pw, "NATS_CA_FILE": c.TLS.CA, "NATS_INBOX_PREFIX": inbox}
	}
	upstream, operator := env("payflow-upstream", "_INBOX_upstream"), env("payflow-operator", "_INBOX_operator")
	e := systemtest.NewWithNATS(t, sandbox.Config{}, c.URL(), nats.UserInfo("payflow-operator", c.Passwords["payflow-operator"]), nats.RootCAs(c.TLS.CA),
		nats.CustomInboxPrefix("_INBOX_operator"))
	for _, role := range []string{"payments", "callbacks"} {
		w := env("payflow-"+role, "_INBOX_"+role)
		delete(w, "NATS_URL")
		w["WORKER_ROLES"] = role
		e.Start(e.Vars(w), worker.TestConfig{})
	}
	ok, _ := json.Marshal(systemtest.NewIntent("users-ok", "4111111111111111", "5.00", true))
	out, err := runCLIEnv(t, upstream, string(ok)+"\n", "publish", "--wait", "--timeout", "30s")
	if err != nil || !strings.Contains(out, "AUTHORIZED") {
		t.Fatalf("upstream publish --wait: %v\n%s", err, out)
	}
	if out, err := runCLIEnv(t, operator, "", "dlq", "list"); err != nil || !strings.Contains(out, "0 dead letters") {
		t.Fatalf("operator dlq list: %v\n%s", err, out)
	}
	// The operator's permissions let status and intent show read all they
	// need (the callbacks stream's jobs, the replay notes, results).
	operator["REDIS_URL"] = e.RedisURL
	for _, args := range [][]string{{"status"}, {"intent", "show", "users-ok"}} {
		out, err := runCLIEnv(t, operator, "", args...)
		if err != nil || strings.Contains(out, "note:") || strings.Contains(out, "ermission") {
			t.Fatalf("operator %v: %v\n%s", args, err, out)
		}
	}
	if out, err := runCLIEnv(t, upstream, "", "dlq", "list"); err == nil {
		t.Fatalf("upstream listed dead letters:\n%s", out)
	}
	noCA := maps.Clone(upstream)
	delete(noCA, "NATS_CA_FILE")
	if _, err := runCLIEnv(t, noCA, string(ok)+"\n", "publish"); code(err) != exitError {
		t.Fatalf("connected without the CA: %v", err)
	}
	noUser := maps.Clone(upstream)
	delete(noUser, "NATS_USER")
	delete(noUser, "NATS_PASSWORD_FILE")
	if _, err := runCLIEnv(t, noUser, string(ok)+"\n", "publish"); code(err) != exitError {
		t.Fatalf("connected without a user: %v", err)
	}
}

func TestLoadReports(t *testing.T) {
	e := systemtest.New(t, sandbox.Config{}, false)
	e.Start(e.Vars(nil), worker.TestConfig{})
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

// dlqKeyVars writes a dead-letter card key pair (kid dlq-1): the private
// key as CARD_DECRYPTION_KEYS_FILE, the public one as
// DLQ_CARD_PUBLIC_KEY_FILE.
func dlqKeyVars(t *testing.T) map[string]string {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	pub, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	dir := t.TempDir()
	keys, public := filepath.Join(dir, "card-keys.pem"), filepath.Join(dir, "dlq.pem")
	kid := map[string]string{"kid": "dlq-1"}
	if err := os.WriteFile(keys, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Headers: kid, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(public, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Headers: kid, Bytes: pub}), 0o600); err != nil {
		t.Fatal(err)
	}
	return map[string]string{"CARD_DECRYPTION_KEYS_FILE": keys, "DLQ_CARD_PUBLIC_KEY_FILE": public}
}
