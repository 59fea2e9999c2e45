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
