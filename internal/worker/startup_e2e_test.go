package worker_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/rs/zerolog"

	"github.com/ttcpay/payflow/internal/harness"
	"github.com/ttcpay/payflow/internal/sandbox"
	"github.com/ttcpay/payflow/internal/systemtest"
	"github.com/ttcpay/payflow/internal/worker"
)

// TestStartUpWithoutNATS: a worker whose NATS is not there yet serves
// /healthz at once, says in /readyz what it waits for, logs each failed
// connection attempt with its error, becomes ready once NATS comes up, and
// a worker stopped while it waits says so and exits cleanly.
func TestStartUpWithoutNATS(t *testing.T) {
	e := systemtest.New(t, sandbox.Config{}, false)
	port := harness.FreePort(t)
	vars := e.Vars(map[string]string{"NATS_URL": fmt.Sprintf("nats://127.0.0.1:%d", port)})
	cfg, err := worker.ConfigFromEnv(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	logs := &systemtest.SyncBuffer{}
	addr := make(chan string, 1)
	cfg.Test.HTTPReady = func(a string) { addr <- a }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := worker.New(ctx, cfg, zerolog.New(logs))
	if err != nil {
		t.Fatalf("New with NATS down: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	a := <-addr

	if code, body := get(t, a, "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz while NATS is down: %d %s", code, body)
	}
	answer := waitingAnswer(t, a, "connection refused").Error()
	if !strings.Contains(answer, "waiting for NATS at nats://127.0.0.1:") || !strings.Contains(answer, "connection refused") {
		t.Fatalf("/readyz does not say what it waits for: %s", answer)
	}
	var tries int
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, `"NATS connection attempt failed; retrying"`) && strings.Contains(l, `"connectTry":`) && strings.Contains(l, `"error":`) {
			tries++
		}
	}
	if tries < 2 {
		t.Fatalf("%d failed connection attempts logged:\n%s", tries, logs.String())
	}

	// NATS comes up on the port: the worker connects, creates the streams
	// and becomes ready.
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	e.WaitFor("worker ready once NATS is up", 20*time.Second, func() bool {
		code, _ := get(t, a, "/readyz")
		return code == http.StatusOK
	})
	if !strings.Contains(logs.String(), `"NATS connected"`) {
		t.Fatalf("no line tells of the connection:\n%s", logs.String())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}

	t.Run("StoppedWhileWaiting", func(t *testing.T) {
		vars := e.Vars(map[string]string{"NATS_URL": fmt.Sprintf("nats://127.0.0.1:%d", harness.FreePort(t))})
		cfg, err := worker.ConfigFromEnv(func(k string) string { return vars[k] })
		if err != nil {
			t.Fatal(err)
		}
		logs := &systemtest.SyncBuffer{}
		addr := make(chan string, 1)
		cfg.Test.HTTPReady = func(a string) { addr <- a }
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		w, err := worker.New(ctx, cfg, zerolog.New(logs))
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }()
		_ = waitingAnswer(t, <-addr, "connection attempts failed")
		cancel() // SIGTERM
		if err := <-done; err != nil {
			t.Fatalf("a worker stopped while it waits for NATS: %v", err)
		}
		if !strings.Contains(logs.String(), `"stopped before the start-up was over; nothing was consumed"`) ||
			!strings.Contains(logs.String(), `"waitingFor":"NATS at nats://127.0.0.1:`) {
			t.Fatalf("the stop does not say what the worker waited for:\n%s", logs.String())
		}
	})
}

func get(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
