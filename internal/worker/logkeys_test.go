package worker_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestLogKeyConventions holds every log line of the module to the README's
// conventions ("Logs"): a duration is an integer of milliseconds under a
// key ending in "Ms" (zerolog's Dur writes a bare float of milliseconds,
// "age":13462.07, whose unit the reader must guess), and "attempt" is only
// the charge attempt, logged by the payment package (deliveries of a
// message are "delivery").
func TestLogKeyConventions(t *testing.T) {
	var (
		dur       = regexp.MustCompile(`\.Dur\("`)
		msKey     = regexp.MustCompile(`\.(\w+)\("(\w+Ms)",\s*([^)]*\))`)
		attempt   = regexp.MustCompile(`\.(Int|Int64|Uint64|Uint)\("attempt"`)
		checked   int
		root      = filepath.Join("..", "..")
		problems  []string
		attemptOK = filepath.Join("internal", "payment")
	)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		for i, line := range strings.Split(string(b), "\n") {
			if !strings.Contains(line, "Msg") && !strings.Contains(line, "log") && !strings.Contains(line, "ev.") {
				continue
			}
			checked++
			if dur.MatchString(line) {
				problems = append(problems, rel+":"+strconv.Itoa(i+1)+": Dur: log a duration as Int64(\"<name>Ms\", d.Milliseconds())")
			}
			for _, m := range msKey.FindAllStringSubmatch(line, -1) {
				if m[1] != "Int64" || !strings.Contains(m[3], "Milliseconds()") {
					problems = append(problems, rel+":"+strconv.Itoa(i+1)+": "+m[2]+" is not Int64(…Milliseconds())")
				}
			}
			if attempt.MatchString(line) && !strings.HasPrefix(rel, attemptOK) {
				problems = append(problems, rel+":"+strconv.Itoa(i+1)+": \"attempt\" outside the payment package: a message's delivery count is \"delivery\"")
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 100 {
		t.Fatalf("only %d log lines looked at: the walk is broken", checked)
	}
	for _, p := range problems {
		t.Error(p)
	}
}
