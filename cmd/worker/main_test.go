package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestRunReportsConfigProblems(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), nil, func(string) string { return "" }, &out)
	if err == nil || !strings.HasPrefix(err.Error(), "configuration:") {
		t.Fatalf("%v", err)
	}
}

// TestHelp: `worker --help` prints the environment variables with their
// defaults and exits 0; any other argument is refused.
func TestHelp(t *testing.T) {
	for _, arg := range []string{"--help", "-h", "help"} {
		var out bytes.Buffer
		if err := run(context.Background(), []string{arg}, func(string) string { return "" }, &out); err != nil {
			t.Fatalf("%s: %v", arg, err)
		}
		for _, want := range []string{"Usage: worker", "NATS_URL", "nats://127.0.0.1:4222", "REDIS_MIN_REPLICAS", "FINGERPRINT_KEYS(_FILE)", "DRAIN_TIMEOUT", "35s", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"} {
			if !strings.Contains(out.String(), want) {
				t.Fatalf("%s: the help lacks %q:\n%s", arg, want, out.String())
			}
		}
	}
	err := run(context.Background(), []string{"--verbose"}, func(string) string { return "" }, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "--help") {
		t.Fatalf("an unknown argument: %v", err)
	}
}
