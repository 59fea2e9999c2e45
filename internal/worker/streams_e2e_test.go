package worker_test

import (
	"context"
	"strings"
	"testing"

	"github.com/ttcpay/payflow/internal/sandbox"
	"github.com/ttcpay/payflow/internal/streams"
	"github.com/ttcpay/payflow/internal/systemtest"
	"github.com/ttcpay/payflow/internal/worker"
)

// TestWorkerKeepsStreamSettings: a worker started with another
// MAX_QUEUED_INTENTS than the running ones logs the difference and leaves
// the shared intents stream as it is.
func TestWorkerKeepsStreamSettings(t *testing.T) {
	e := systemtest.New(t, sandbox.Config{}, false)
	e.Start(e.Vars(map[string]string{"MAX_QUEUED_INTENTS": "1000"}), worker.TestConfig{})
	e.Start(e.Vars(map[string]string{"MAX_QUEUED_INTENTS": "2000"}), worker.TestConfig{})
	st, err := e.JS.Stream(context.Background(), streams.StreamIntents)
	if err != nil {
		t.Fatal(err)
	}
	if n := st.CachedInfo().Config.MaxMsgs; n != 1000 {
		t.Fatalf("%s MaxMsgs %d, want the first worker's 1000", streams.StreamIntents, n)
	}
	var warned bool
	for _, line := range strings.Split(e.Logs.String(), "\n") {
		if strings.Contains(line, `"stream":"PAYMENT_INTENTS"`) && strings.Contains(line, `"setting":"max_msgs"`) &&
			strings.Contains(line, `"have":"1000"`) && strings.Contains(line, `"want":"2000"`) && strings.Contains(line, `"level":"warn"`) {
			warned = true
		}
	}
	if !warned {
		t.Fatalf("no warning about max_msgs in the logs:\n%s", e.Logs.String())
	}
}
