package worker_test

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ttcpay/payflow/internal/worker"
)

// TestEnvDocumented: the variables the worker reads (worker.EnvNames, by
// running LoadConfig), those `worker --help` prints (worker.EnvVars) and
// those the README's configuration table lists are the same set.
func TestEnvDocumented(t *testing.T) {
	read := worker.EnvNames()
	var help []string
	for _, v := range worker.EnvVars() {
		help = append(help, v.EnvVarNames()...)
	}
	table := readmeConfigTable(t)
	if len(read) < 40 || len(table) < 40 {
		t.Fatalf("%d variables read, %d in the README table: the parsing is broken", len(read), len(table))
	}
	for _, c := range []struct {
		what string
		have []string
	}{{"the README's configuration table", table}, {"worker --help", help}} {
		for _, n := range minus(read, c.have) {
			t.Errorf("the worker reads %s but %s does not list it", n, c.what)
		}
		for _, n := range minus(c.have, read) {
			t.Errorf("%s lists %s, which the worker does not read", c.what, n)
		}
	}
}

// readmeConfigTable is the variable names of the first column of the
// README's "### Configuration" table; "`X` / `_FILE`" stands for X and
// X_FILE.
func readmeConfigTable(t *testing.T) []string {
	t.Helper()
	_, rest, ok := strings.Cut(readme(t), "\n### Configuration\n")
	if !ok {
		t.Fatal("README: no ### Configuration")
	}
	tick := regexp.MustCompile("`([A-Z_]+)`")
	var names []string
	started := false
	for _, line := range strings.Split(rest, "\n") {
		if !strings.HasPrefix(line, "|") {
			if started {
				break
			}
			continue
		}
		started = true
		cells := strings.Split(line, "|")
		if len(cells) < 3 {
			continue
		}
		prev := ""
		for _, m := range tick.FindAllStringSubmatch(cells[1], -1) {
			n := m[1]
			if n == "_FILE" {
				n = prev + "_FILE"
			}
			names = append(names, n)
			prev = m[1]
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}
