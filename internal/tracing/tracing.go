// Package tracing carries OpenTelemetry trace context (W3C traceparent)
// across NATS messages and outgoing HTTP calls, and exports spans when the
// standard OTEL_* variables ask for it. It is off by default: with
// OTEL_TRACES_EXPORTER unset (or "none") spans are not recorded, but an
// incoming traceparent is still passed on, so traces stay connected
// through this service.
package tracing

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Tracing is a tracer and the W3C propagator. The zero value is not usable;
// use Setup, Off or New.
type Tracing struct {
	tracer   trace.Tracer
	prop     propagation.TextMapPropagator
	shutdown func(context.Context) error
}

// Off records nothing but still passes trace context on.
func Off() *Tracing {
	return &Tracing{tracer: noop.NewTracerProvider().Tracer("payflow"), prop: propagation.TraceContext{},
		shutdown: func(context.Context) error { return nil }}
}

// New uses the given provider (tests pass one with an in-memory exporter).
func New(tp trace.TracerProvider) *Tracing {
	return &Tracing{tracer: tp.Tracer("payflow"), prop: propagation.TraceContext{}, shutdown: func(context.Context) error { return nil }}
}

// Setup reads OTEL_TRACES_EXPORTER: unset or "none" is Off; "otlp" exports
// over OTLP/HTTP, configured by the standard OTEL_EXPORTER_OTLP_* variables
// (endpoint, headers, timeout) and OTEL_SERVICE_NAME.
func Setup(ctx context.Context, getenv func(string) string, service string) (*Tracing, error) {
	switch exp := getenv("OTEL_TRACES_EXPORTER"); exp {
	case "", "none":
		return Off(), nil
	case "otlp":
		exporter, err := otlptracehttp.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("OTEL exporter: %w", err)
		}
		if s := getenv("OTEL_SERVICE_NAME"); s != "" {
			service = s
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter),
			sdktrace.WithResource(resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(service))))
		t := New(tp)
		t.shutdown = tp.Shutdown
		return t, nil
	default:
		return nil, fmt.Errorf("OTEL_TRACES_EXPORTER=%q: this service supports otlp or none", exp)
	}
}

// Shutdown flushes spans.
func (t *Tracing) Shutdown(ctx context.Context) error { return t.shutdown(ctx) }

// Start starts a span (non-recording when tracing is off).
func (t *Tracing) Start(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return t.tracer.Start(ctx, name, trace.WithAttributes(attrs...))
}

// FromMsg continues the trace context of a NATS message's headers.
func (t *Tracing) FromMsg(ctx context.Context, h nats.Header) context.Context {
	if h == nil {
		return ctx
	}
	return t.prop.Extract(ctx, natsCarrier(h))
}

// ToMsg writes the current trace context into a NATS message's headers,
// under the W3C names exactly ("traceparent", "tracestate"): NATS headers
// are case-sensitive.
func (t *Tracing) ToMsg(ctx context.Context, m *nats.Msg) {
	if m.Header == nil {
		m.Header = nats.Header{}
	}
	t.prop.Inject(ctx, natsCarrier(m.Header))
}

// natsCarrier writes keys as given and reads them case-insensitively.
type natsCarrier nats.Header

func (c natsCarrier) Get(key string) string {
	if v := nats.Header(c).Get(key); v != "" {
		return v
	}
	for k, vs := range c {
		if strings.EqualFold(k, key) && len(vs) > 0 {
			return vs[0]
		}
	}
	return ""
}

func (c natsCarrier) Set(key, value string) { nats.Header(c).Set(key, value) }

func (c natsCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// Inject writes the current trace context into HTTP headers (outgoing calls).
func (t *Tracing) Inject(ctx context.Context, h http.Header) {
	t.prop.Inject(ctx, propagation.HeaderCarrier(h))
}
