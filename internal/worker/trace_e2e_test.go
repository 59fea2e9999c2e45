package worker_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/ttcpay/payflow/internal/sandbox"
	"github.com/ttcpay/payflow/internal/streams"
	"github.com/ttcpay/payflow/internal/systemtest"
	"github.com/ttcpay/payflow/internal/tracing"
	"github.com/ttcpay/payflow/internal/worker"
)

// TestTraceContextCarried: an upstream trace (W3C traceparent on the intent)
// continues through the payment span, the CyberSource call, the result and
// callback messages, the callback span and the TTC call.
func TestTraceContextCarried(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tr := tracing.New(sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp)))
	e := systemtest.New(t, sandbox.Config{}, false)
	e.Start(e.Vars(nil), worker.TestConfig{Tracing: tr})

	ctx, upstream := tr.Start(context.Background(), "upstream")
	traceID := upstream.SpanContext().TraceID().String()
	b, _ := json.Marshal(systemtest.NewIntent("traced-1", "4111111111111111", "20.00", true))
	m := nats.NewMsg(streams.Intents("ttc_ttusas_m"))
	m.Data = b
	m.Header.Set(nats.MsgIdHdr, "traced-1")
	tr.ToMsg(ctx, m)
	upstream.End()
	if !strings.Contains(m.Header.Get("traceparent"), traceID) {
		t.Fatalf("no traceparent on the intent: %v", m.Header)
	}
	if _, err := e.JS.PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	e.WaitFor("callback", 15*time.Second, func() bool { return len(e.SB.Ledger().Callbacks) == 1 })
	l := e.SB.Ledger()
	if !strings.Contains(l.Charges[0].TraceParent, traceID) {
		t.Errorf("CyberSource got traceparent %q, want trace %s", l.Charges[0].TraceParent, traceID)
	}
	if !strings.Contains(l.Callbacks[0].TraceParent, traceID) {
		t.Errorf("TTC got traceparent %q, want trace %s", l.Callbacks[0].TraceParent, traceID)
	}
	s, _ := e.JS.Stream(context.Background(), streams.StreamResults)
	res, err := s.GetLastMsgForSubject(context.Background(), streams.Results("ttc_ttusas_m"))
	if err != nil || !strings.Contains(res.Header.Get("traceparent"), traceID) {
		t.Errorf("result message traceparent %q (%v)", res.Header.Get("traceparent"), err)
	}
	names := map[string]bool{}
	for _, sp := range exp.GetSpans() {
		if sp.SpanContext.TraceID().String() == traceID {
			names[sp.Name] = true
		}
	}
	for _, want := range []string{"upstream", "payflow.payment", "payflow.callback"} {
		if !names[want] {
			t.Errorf("no %s span in trace %s (have %v)", want, traceID, names)
		}
	}
}

func TestTracingOffByDefault(t *testing.T) {
	tr, err := tracing.Setup(context.Background(), func(string) string { return "" }, "x")
	if err != nil {
		t.Fatal(err)
	}
	ctx, span := tr.Start(context.Background(), "s")
	defer span.End()
	m := nats.NewMsg("x")
	tr.ToMsg(ctx, m)
	if m.Header.Get("traceparent") != "" || span.IsRecording() {
		t.Fatal("tracing is on without OTEL_TRACES_EXPORTER")
	}
	if _, err := tracing.Setup(context.Background(), func(k string) string {
		if k == "OTEL_TRACES_EXPORTER" {
			return "zipkin"
		}
		return ""
	}, "x"); err == nil {
		t.Fatal("unsupported exporter accepted")
	}
}
