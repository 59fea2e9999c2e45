package mutation

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// edit replaces From, which must occur exactly once in File, with To.
type edit struct{ File, From, To string }

// mutant is a change the tests in Packages (run with Run) must catch.
type mutant struct {
	Name     string
	Edits    []edit
	Packages []string
	Run      string
}

// gapMutants are the eight edits issue 19 found passing every test, as
// they apply to the code now (gap 3's and the Lua halves of gaps 1 and 2
// are in the Lua table too; here they are applied to both stores at once,
// which the conformance test, comparing the stores, cannot see).
func gapMutants() []mutant {
	idem, mem := "internal/idempotency/idempotency.go", "internal/idempotency/memory.go"
	return []mutant{
		{Name: "gap1/extend-without-owner-check", Edits: []edit{
			{idem, "if (s ~= 'charging' and s ~= 'resolving') or o ~= ARGV[1] or a ~= tonumber(ARGV[2]) then return 0 end\nredis.call('HSET', k, 'l', now + tonumber(ARGV[3]))",
				"if (s ~= 'charging' and s ~= 'resolving') or a ~= tonumber(ARGV[2]) then return 0 end\nredis.call('HSET', k, 'l', now + tonumber(ARGV[3]))"},
			{mem, "if !r.fenced(OpExtend, a) {", "if !Row(OpExtend).allows(r.s) || r.a != int64(a.N) {"},
		}, Packages: []string{"./internal/idempotency"}, Run: "^TestStaleHandlesAreRefused$"},
		{Name: "gap2/begin-resolve-without-attempt-check", Edits: []edit{
			{idem, "if s ~= 'unknown' or a ~= tonumber(ARGV[2]) then return {'conflict', 0} end", "if s ~= 'unknown' then return {'conflict', 0} end"},
			{mem, "if !r.fenced(OpBeginResolve, a) || r.a != int64(a.N) {", "if !r.fenced(OpBeginResolve, a) {"},
		}, Packages: []string{"./internal/idempotency"}, Run: "^TestStaleHandlesAreRefused$"},
		{Name: "gap3/finish-without-ttl", Edits: []edit{
			{idem, "  redis.call('HSETNX', k, 'p_void', 0)\nend\nredis.call('PEXPIRE', k, ARGV[4])\n", "  redis.call('HSETNX', k, 'p_void', 0)\nend\n"},
			{mem, "\tm.expire(key, m.retention)\n\treturn m.waited(OpFinish)", "\treturn m.waited(OpFinish)"},
		}, Packages: []string{"./internal/idempotency"}, Run: "^TestTransitionsRenewTheRetention$"},
		{Name: "gap4/resolve-without-delay", Edits: []edit{
			{"internal/payment/resolve.go", "p.store.BeginResolve(ctx, j.a, p.cfg.Lease, p.cfg.ResolveDelay)", "p.store.BeginResolve(ctx, j.a, p.cfg.Lease, 0)"},
		}, Packages: []string{"./internal/payment"}, Run: "^TestResolutionDecisions$"},
		{Name: "gap5/result-without-msg-id", Edits: []edit{
			{"internal/consume/payments.go", "\tif dec.ResultMsgID != \"\" {\n\t\tm.Header.Set(nats.MsgIdHdr, dec.ResultMsgID)\n\t}\n", ""},
		}, Packages: []string{"./internal/consume"}, Run: "^TestResultsAndCallbackJobs$"},
		{Name: "gap6/credential-type-quoted-raw", Edits: []edit{
			{"internal/intent/credential.go", `bad("credential.type", outside(c.Type)+" is not cit_store, cit_stored or mit")`, `bad("credential.type", fmt.Sprintf("%q", c.Type)+" is not cit_store, cit_stored or mit")`},
		}, Packages: []string{"./internal/intent"}, Run: "^TestErrorsNeverEchoInputDigits$"},
		{Name: "gap7/declined-gets-callback", Edits: []edit{
			{"internal/consume/payments.go", "\tif !r.Authorized() {\n\t\treturn nil\n\t}", "\tif !r.Authorized() && r.Status != \"DECLINED\" {\n\t\treturn nil\n\t}"},
		}, Packages: []string{"./internal/consume"}, Run: "^TestResultsAndCallbackJobs$"},
		{Name: "gap8/refresh-without-jitter", Edits: []edit{
			{"internal/tokencache/cache.go", "jitter := time.Duration(rand.Float64() * c.opts.RefreshJitter * float64(t.Lifetime))", "jitter := time.Duration(0 * rand.Float64() * c.opts.RefreshJitter * float64(t.Lifetime))"},
		}, Packages: []string{"./internal/tokencache"}, Run: "^TestRefreshJitterSpreadsMerchants$"},
	}
}

// moduleRoot is the module's directory (this package is two levels down).
func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found from %s: %v", root, err)
	}
	return root
}

// copyModule copies the module's sources (no .git, no bin) into dir.
func copyModule(t *testing.T, root, dir string) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			if rel == ".git" || rel == "bin" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dir, rel), 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// apply makes the mutant's edits in the copy at dir.
func apply(dir string, m mutant) error {
	for _, e := range m.Edits {
		p := filepath.Join(dir, e.File)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if n := strings.Count(string(b), e.From); n != 1 {
			return fmt.Errorf("%s: the text to replace occurs %d times in %s, want once (the table is out of date)", m.Name, n, e.File)
		}
		if err := os.WriteFile(p, []byte(strings.Replace(string(b), e.From, e.To, 1)), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// TestGapTableMatchesTheCode: every edit of the table still finds its text
// once (cheap; runs in the test command), so the table cannot silently
// stop mutating anything.
func TestGapTableMatchesTheCode(t *testing.T) {
	root := moduleRoot(t)
	for _, m := range gapMutants() {
		for _, e := range m.Edits {
			b, err := os.ReadFile(filepath.Join(root, e.File))
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(string(b), e.From); n != 1 {
				t.Errorf("%s: the text to replace occurs %d times in %s, want once", m.Name, n, e.File)
			}
		}
	}
}

// TestGapMutants applies each gap mutant to a copy of the module and
// requires its tests to fail (make mutation: PAYFLOW_MUTATION=all; each
// mutant compiles and runs its package's tests, tens of seconds).
func TestGapMutants(t *testing.T) {
	if os.Getenv("PAYFLOW_MUTATION") != "all" {
		t.Skip("make mutation runs it (PAYFLOW_MUTATION=all)")
	}
	root := moduleRoot(t)
	killed := 0
	for _, m := range gapMutants() {
		dir := t.TempDir()
		copyModule(t, root, dir)
		if err := apply(dir, m); err != nil {
			t.Errorf("%v", err)
			continue
		}
		args := append([]string{"test", "-count=1", "-run", m.Run}, m.Packages...)
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Errorf("%s survived: go %s passes with it", m.Name, strings.Join(args, " "))
			continue
		}
		if !strings.Contains(string(out), "--- FAIL") {
			t.Errorf("%s: the tests did not run: %v\n%s", m.Name, err, out)
			continue
		}
		killed++
		t.Logf("%-42s killed by go %s", m.Name, strings.Join(args, " "))
	}
	t.Logf("gap mutants: %d, killed %d", len(gapMutants()), killed)
}
