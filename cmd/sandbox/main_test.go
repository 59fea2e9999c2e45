package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ttcpay/payflow/internal/sandbox"
)

// TestSeedCurlFlow runs the integration guide's three curl commands, with the
// guide's JSON bodies, against cmd/sandbox: 200, 201, 200, then one live
// charge and one callback in the ledger.
func TestSeedCurlFlow(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is not installed: the README's test command installs it")
	}
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	ready := make(chan *sandbox.Server, 1)
	done := make(chan error, 1)
	args := []string{"-ttc-addr", "127.0.0.1:0", "-cybs-addr", "127.0.0.1:0", "-ca-out", t.TempDir() + "/ca.pem"}
	go func() { done <- run(ctx, args, func(string) string { return "" }, &out, ready) }()
	var srv *sandbox.Server
	select {
	case srv = <-ready:
	case err := <-done:
		t.Fatalf("sandbox exited: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("sandbox not ready")
	}
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()

	env := os.Environ()
	sc := bufio.NewScanner(bytes.NewReader(out.Bytes()))
	for sc.Scan() {
		if kv, ok := strings.CutPrefix(sc.Text(), "export "); ok {
			env = append(env, kv)
		}
	}
	cmd := exec.Command("bash", "../../scripts/seed-flow.sh")
	cmd.Env = env
	got, err := cmd.CombinedOutput()
	t.Logf("%s", got)
	if err != nil {
		t.Fatalf("seed flow: %v", err)
	}
	for _, want := range []string{"token: 200", "payment: 201", "callback: 200"} {
		if !strings.Contains(string(got), want) {
			t.Fatalf("missing %q", want)
		}
	}
	l := srv.Ledger()
	live := 0
	for _, c := range l.Charges {
		if c.Live {
			live++
		}
	}
	if live != 1 || len(l.Callbacks) != 1 || l.Callbacks[0].Count != 1 {
		t.Fatalf("ledger: %d live charges, callbacks %+v", live, l.Callbacks)
	}
	if l.Charges[0].Reference != "TTUSAS_123456" || l.Charges[0].Amount != "102.21" || !l.Charges[0].TokenCreated {
		t.Fatalf("charge %+v", l.Charges[0])
	}
}

// TestFaultsFileAtStart: every fault knob, the old and the new, is read from
// the -faults file and served back by GET /sandbox/faults.
func TestFaultsFileAtStart(t *testing.T) {
	dir := t.TempDir()
	faults := `{"latency":{"payments":{"fixed":"1ms"}},"errors":{"callback":{"rate":0.5,"status":500}},
	"cutAfterChargeRate":0.1,"timeoutAfterChargeRate":0.2,"cutAfterFollowUpRate":0.3,
	"outages":[{"endpoint":"token","for":"1s"}],
	"settleAfter":"2m","holdInFlight":{"for":"1s","rate":0.25,"amount":"77.00"}}`
	if err := os.WriteFile(dir+"/faults.json", []byte(faults), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan *sandbox.Server, 1)
	done := make(chan error, 1)
	args := []string{"-ttc-addr", "127.0.0.1:0", "-cybs-addr", "127.0.0.1:0", "-ca-out", dir + "/ca.pem", "-faults", dir + "/faults.json"}
	go func() { done <- run(ctx, args, func(string) string { return "" }, io.Discard, ready) }()
	var srv *sandbox.Server
	select {
	case srv = <-ready:
	case err := <-done:
		t.Fatalf("sandbox exited: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("sandbox not ready")
	}
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	resp, err := http.Get(srv.TTCURL + "/sandbox/faults")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var f map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&f); err != nil {
		t.Fatal(err)
	}
	h, _ := f["holdInFlight"].(map[string]any)
	if f["settleAfter"] != "2m0s" || h["for"] != "1s" || h["rate"] != 0.25 || h["amount"] != "77.00" ||
		f["cutAfterChargeRate"] != 0.1 || f["timeoutAfterChargeRate"] != 0.2 || f["cutAfterFollowUpRate"] != 0.3 ||
		f["latency"] == nil || f["errors"] == nil || f["outages"] == nil {
		t.Fatalf("faults at start %v", f)
	}
}
