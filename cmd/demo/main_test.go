package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestDemo runs the README's first command end to end (with the in-process
// Redis emulator, as on a machine with only Go).
func TestDemo(t *testing.T) {
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := run(ctx, []string{"-f", "../../examples/demo-intents.jsonl"}, func(string) string { return "" }, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"demo-sale-1          AUTHORIZED", "demo-declined-1      DECLINED", "demo-partial-1       PARTIAL_AUTHORIZED",
		"demo-invalid-luhn    INVALID", "intents/invalid", "demo finished: 7 intents, 4 authorized with their callbacks, 2 dead letters",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(out.String(), "4111111111111111") {
		t.Error("the demo prints a card number")
	}
}
