package idempotency

// Mutation testing of the Lua scripts (issue 19). Go mutation tools do not
// mutate Lua, so this table holds hand-written mutants of the scripts that
// guard money: each guard removed, each comparison flipped, each TTL
// dropped. TestLuaMutants runs this package's tests once per mutant, in a
// child process whose scripts carry the mutant (TestMain applies it), and
// requires each to be killed (some test fails) unless the table says why it
// is equivalent.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// envLuaMutant names the mutant a child test process applies.
const envLuaMutant = "PAYFLOW_LUA_MUTANT"

// envMutation=all runs the whole table (make mutation), =off none (while
// gremlins mutates the Go code); otherwise only the mutants marked CI run
// (seconds).
const envMutation = "PAYFLOW_MUTATION"

// luaScript is a script that guards money: its source and the variable the
// store runs it from.
type luaScript struct {
	src string
	run **redis.Script
}

func luaScripts() map[string]luaScript {
	return map[string]luaScript{
		"claim":         {claimLua, &claimScript},
		"reopen":        {reopenLua, &reopenScript},
		"beginResolve":  {beginResolveLua, &beginResolveScript},
		"advance":       {advanceLua, &advanceScript},
		"release":       {releaseLua, &releaseScript},
		"markUnknown":   {markUnknownLua, &markUnknownScript},
		"finish":        {finishLua, &finishScript},
		"extend":        {extendLua, &extendScript},
		"clearReversal": {clearReversalLua, &clearReversalScript},
		"markCallback":  {markCallbackLua, &markCallbackScript},
		"reserve":       {reserveLua, &reserveScript},
		"unreserve":     {unreserveLua, &unreserveScript},
		"advanceChain":  {advanceChainLua, &advanceChainScript},
	}
}

// luaMutant replaces From (which must occur exactly once in the script's
// own text, the shared prelude excluded) with To.
type luaMutant struct {
	Name, Script, From, To string
	// Equivalent, when set, says why no test can tell the mutant apart.
	Equivalent string
	// Timing, when set, says why the mutant differs only within one
	// millisecond of Redis's clock: a run may or may not land in it, so
	// either outcome is accepted (and reported).
	Timing string
	// CI: part of the fast subset the test command runs.
	CI bool
}

// Guards of fenced scripts, as the table's rows write them.
const (
	fencedGuard = "if (s ~= 'charging' and s ~= 'resolving') or o ~= ARGV[1] or a ~= tonumber(ARGV[2]) then return "
	renewTTL    = "redis.call('PEXPIRE', k, ARGV[3])\nreturn"
)

func luaMutants() []luaMutant {
	return []luaMutant{
		// claim
		{Name: "claim/no-fingerprint-check", Script: "claim", From: "if fpConflict(f, ARGV[4]) then return {'conflict'} end", To: ""},
		{Name: "claim/idle-not-claimable", Script: "claim", From: "if not s or s == 'idle' then", To: "if not s then"},
		{Name: "claim/no-ttl-on-claim", Script: "claim", From: "redis.call('PEXPIRE', k, ARGV[3])\n  return {'claimed'", To: "return {'claimed'"},
		{Name: "claim/live-lease-flipped", Script: "claim", From: "if l > now then", To: "if l < now then"},
		{Name: "claim/live-lease-boundary", Script: "claim", From: "if l > now then", To: "if l >= now then",
			Timing: "differs only when the lease ends in the very millisecond of the claim: no test can pin Redis's clock to it"},
		{Name: "claim/expired-unknown-since-now", Script: "claim", From: "'s', 'unknown', 'u', l, 'm', '1'", To: "'s', 'unknown', 'u', now, 'm', '1'"},
		{Name: "claim/expired-not-maybe-applied", Script: "claim", From: "'s', 'unknown', 'u', l, 'm', '1'", To: "'s', 'unknown', 'u', l"},
		{Name: "claim/expired-keeps-owner", Script: "claim", From: "redis.call('HDEL', k, 'o')", To: ""},
		{Name: "claim/expired-no-ttl", Script: "claim", From: "redis.call('HDEL', k, 'o')\n  redis.call('PEXPIRE', k, ARGV[3])", To: "redis.call('HDEL', k, 'o')"},
		// reopen
		{Name: "reopen/no-fingerprint-check", Script: "reopen", From: "if fpConflict(f, ARGV[4]) then return {'conflict'} end", To: ""},
		{Name: "reopen/not-done", Script: "reopen", From: "s ~= 'done' or ", To: "",
			Equivalent: "the letter class dc exists only on done records (Finish sets it; Reopen deletes it as it leaves done; no other transition writes it), so v[1] ~= ARGV[6] refuses every other state"},
		{Name: "reopen/no-attempt-check", Script: "reopen", From: "a ~= tonumber(ARGV[5]) or ", To: ""},
		{Name: "reopen/no-class-check", Script: "reopen", From: "v[1] ~= ARGV[6] or ", To: ""},
		{Name: "reopen/empty-class", Script: "reopen", From: "ARGV[6] == '' or ", To: "",
			Equivalent: "dc is never stored empty (Finish deletes it when the letter has no class), so v[1] ~= '' already refuses an empty class"},
		{Name: "reopen/reversal-or-ledger-ignored", Script: "reopen", From: " or v[2] or v[3] then", To: " then"},
		{Name: "reopen/keeps-old-result", Script: "reopen", From: "redis.call('HDEL', k, 'r', 'dc', 'dr')", To: ""},
		{Name: "reopen/no-ttl", Script: "reopen", From: "redis.call('PEXPIRE', k, ARGV[3])", To: ""},
		// beginResolve (issue 19 gap 2)
		{Name: "beginResolve/no-attempt-check", Script: "beginResolve", From: " or a ~= tonumber(ARGV[2])", To: "", CI: true},
		{Name: "beginResolve/any-state", Script: "beginResolve", From: "s ~= 'unknown' or ", To: ""},
		{Name: "beginResolve/no-delay", Script: "beginResolve", From: "local ready = u + tonumber(ARGV[4])", To: "local ready = u", CI: true},
		{Name: "beginResolve/too-early-flipped", Script: "beginResolve", From: "if now < ready then", To: "if now > ready then"},
		{Name: "beginResolve/too-early-boundary", Script: "beginResolve", From: "if now < ready then", To: "if now <= ready then",
			Timing: "differs only in the very millisecond the delay ends (a test that resolves with delay 0 in the millisecond the attempt turned unknown sees it, now and then)"},
		{Name: "beginResolve/no-ttl", Script: "beginResolve", From: "redis.call('PEXPIRE', k, ARGV[5])", To: ""},
		// advance
		{Name: "advance/no-owner-check", Script: "advance", From: "or o ~= ARGV[1] ", To: ""},
		{Name: "advance/no-attempt-check", Script: "advance", From: "or a ~= tonumber(ARGV[2]) ", To: ""},
		{Name: "advance/from-unknown", Script: "advance", From: "(s ~= 'charging' and s ~= 'resolving')", To: "(s == 'idle' or s == 'done')",
			Equivalent: "a missing or unknown record has no owner (o is deleted when a record turns unknown), so the owner check refuses it"},
		{Name: "advance/same-attempt", Script: "advance", From: "a = a + 1\n", To: ""},
		{Name: "advance/keeps-unknown-since", Script: "advance", From: "redis.call('HDEL', k, 'u')", To: ""},
		{Name: "advance/no-ttl", Script: "advance", From: "redis.call('PEXPIRE', k, ARGV[4])", To: ""},
		// release
		{Name: "release/no-owner-check", Script: "release", From: "or o ~= ARGV[1] ", To: ""},
		{Name: "release/no-attempt-check", Script: "release", From: "or a ~= tonumber(ARGV[2]) ", To: ""},
		{Name: "release/from-resolving", Script: "release", From: "if s ~= 'charging' or", To: "if (s ~= 'charging' and s ~= 'resolving') or"},
		{Name: "release/keeps-lease", Script: "release", From: "redis.call('HDEL', k, 'l', 'o')", To: ""},
		{Name: "release/no-ttl", Script: "release", From: renewTTL, To: "return"},
		// markUnknown
		{Name: "markUnknown/no-owner-check", Script: "markUnknown", From: "or o ~= ARGV[1] ", To: ""},
		{Name: "markUnknown/no-attempt-check", Script: "markUnknown", From: "or a ~= tonumber(ARGV[2]) ", To: ""},
		{Name: "markUnknown/not-maybe-applied", Script: "markUnknown", From: "'s', 'unknown', 'u', now, 'm', '1'", To: "'s', 'unknown', 'u', now"},
		{Name: "markUnknown/no-since", Script: "markUnknown", From: "'s', 'unknown', 'u', now, 'm', '1'", To: "'s', 'unknown', 'm', '1'"},
		{Name: "markUnknown/keeps-lease", Script: "markUnknown", From: "redis.call('HDEL', k, 'l', 'o')", To: ""},
		{Name: "markUnknown/no-ttl", Script: "markUnknown", From: renewTTL, To: "return"},
		// finish (issue 19 gap 3: the TTL)
		{Name: "finish/retry-any-owner", Script: "finish", From: "if s == 'done' and o == ARGV[1] and", To: "if s == 'done' and"},
		{Name: "finish/no-owner-check", Script: "finish", From: fencedGuard + "0 end", To: "if (s ~= 'charging' and s ~= 'resolving') or a ~= tonumber(ARGV[2]) then return 0 end"},
		{Name: "finish/no-attempt-check", Script: "finish", From: fencedGuard + "0 end", To: "if (s ~= 'charging' and s ~= 'resolving') or o ~= ARGV[1] then return 0 end"},
		{Name: "finish/from-unknown", Script: "finish", From: fencedGuard + "0 end", To: "if s == 'idle' or o ~= ARGV[1] or a ~= tonumber(ARGV[2]) then return 0 end",
			Equivalent: "a missing or unknown record has no owner (o is deleted when a record turns unknown), so the owner check refuses it; a done one is answered by the first line or refused by the attempt check"},
		{Name: "finish/keeps-lease", Script: "finish", From: "redis.call('HDEL', k, 'l', 'u')", To: ""},
		{Name: "finish/keeps-old-letter", Script: "finish", From: " else redis.call('HDEL', k, 'dc', 'dr') end", To: " end",
			Equivalent: "dc and dr exist only on done records (Reopen deletes them as it leaves done), so a charging or resolving record has none to keep"},
		{Name: "finish/no-reversal", Script: "finish", From: "if ARGV[12] ~= '' then redis.call('HSET', k, 'rv', ARGV[12]) end", To: ""},
		{Name: "finish/no-ledger", Script: "finish", From: "redis.call('HSETNX', k, 'p_id', ARGV[5])", To: ""},
		{Name: "finish/ledger-overwritten", Script: "finish", From: "redis.call('HSETNX', k, 'p_cap', ARGV[8])", To: "redis.call('HSET', k, 'p_cap', ARGV[8])",
			Equivalent: "Finish is the only writer of p_cap before the first settlement, and a finished record refuses a second Finish of another attempt; a retried Finish of the same attempt returns before it"},
		{Name: "finish/no-ttl", Script: "finish", From: "redis.call('PEXPIRE', k, ARGV[4])", To: "", CI: true},
		// extend (issue 19 gap 1)
		{Name: "extend/no-owner-check", Script: "extend", From: "or o ~= ARGV[1] ", To: "", CI: true},
		{Name: "extend/no-attempt-check", Script: "extend", From: "or a ~= tonumber(ARGV[2]) ", To: ""},
		{Name: "extend/lease-not-renewed", Script: "extend", From: "now + tonumber(ARGV[3])", To: "now"},
		{Name: "extend/no-ttl", Script: "extend", From: "redis.call('PEXPIRE', k, ARGV[4])", To: ""},
		// clearReversal, markCallback
		{Name: "clearReversal/any-payment", Script: "clearReversal", From: "if rv and string.sub(rv, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. '|' then", To: "if rv then"},
		{Name: "markCallback/recreates-expired", Script: "markCallback", From: "if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'cb', ARGV[1]) end", To: "redis.call('HSET', KEYS[1], 'cb', ARGV[1])"},
		// reserve, unreserve, advanceChain (the settlement ledger)
		{Name: "reserve/unknown-payment", Script: "reserve", From: "if not cur then return {-2, 0, ''} end", To: "if not cur then cur = '' end"},
		{Name: "reserve/other-merchant", Script: "reserve", From: "if m and m ~= ARGV[4] then return {-4, 0, ''} end", To: ""},
		{Name: "reserve/voided-not-refused", Script: "reserve", From: "if voided then return {-3, 0, cur} end", To: ""},
		{Name: "reserve/over-capture", Script: "reserve", From: "left = auth - cap - rev", To: "left = auth - cap"},
		{Name: "reserve/over-refund", Script: "reserve", From: "left = cap - ref", To: "left = cap"},
		{Name: "reserve/more-than-left", Script: "reserve", From: "amt > left", To: "amt > left + 1"},
		{Name: "reserve/zero-amount", Script: "reserve", From: "if amt <= 0 or", To: "if amt < 0 or"},
		{Name: "reserve/void-after-refund", Script: "reserve", From: "if cap == 0 or ref > 0 then", To: "if cap == 0 then"},
		{Name: "reserve/void-uncaptured", Script: "reserve", From: "if cap == 0 or ref > 0 then", To: "if ref > 0 then"},
		{Name: "reserve/again-reserves-twice", Script: "reserve", From: "if held then", To: "if false then"},
		{Name: "reserve/no-ttl", Script: "reserve", From: "redis.call('PEXPIRE', k, ARGV[6])\nreturn {1, amt, cur}", To: "return {1, amt, cur}"},
		{Name: "unreserve/no-holder-check", Script: "unreserve", From: "if who ~= ARGV[3] then return 0 end", To: "", CI: true},
		{Name: "unreserve/keeps-amount", Script: "unreserve", From: "redis.call('HINCRBY', k, field, -tonumber(amt))", To: ""},
		{Name: "unreserve/keeps-reservation", Script: "unreserve", From: "redis.call('HDEL', k, 'op:' .. ARGV[1])", To: ""},
		{Name: "advanceChain/moves-back", Script: "advanceChain", From: "if tonumber(ARGV[2]) >= at then", To: "if true then"},
		{Name: "advanceChain/no-ttl", Script: "advanceChain", From: "redis.call('PEXPIRE', KEYS[1], ARGV[3])", To: ""},
	}
}

// ownText is a script's text without the shared prelude and fingerprint
// functions, which are mutated (if at all) on their own.
func ownText(src string) string {
	return strings.TrimPrefix(strings.TrimPrefix(src, luaPrelude), luaFingerprint)
}

// applyLuaMutant replaces the script named by the mutant with its mutated
// text.
func applyLuaMutant(name string) error {
	for _, m := range luaMutants() {
		if m.Name != name {
			continue
		}
		sc, ok := luaScripts()[m.Script]
		if !ok {
			return fmt.Errorf("lua mutant %s: no script %q", name, m.Script)
		}
		own := ownText(sc.src)
		if n := strings.Count(own, m.From); n != 1 {
			return fmt.Errorf("lua mutant %s: %q occurs %d times in the %s script, want once (the table is out of date)", name, m.From, n, m.Script)
		}
		*sc.run = redis.NewScript(sc.src[:len(sc.src)-len(own)] + strings.Replace(own, m.From, m.To, 1))
		return nil
	}
	return fmt.Errorf("no lua mutant %q", name)
}

func TestMain(m *testing.M) {
	if name := os.Getenv(envLuaMutant); name != "" {
		if err := applyLuaMutant(name); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
	}
	os.Exit(m.Run())
}

// slowTests are left out of the mutant runs: they test replication (WAIT)
// and timing, not the scripts' logic, and take seconds each.
const slowTests = "^(TestLuaMutants|TestAdversaryDoneServedBeforeReplicated|TestGuardWritesWaitForReplicas)$"

var failedTest = regexp.MustCompile(`--- FAIL: (\S+)`)

// TestLuaMutants applies each Lua mutant in a child process and requires
// this package's tests to fail on it, unless the table says it is
// equivalent. The test command runs the CI subset; make mutation runs all
// (PAYFLOW_MUTATION=all).
func TestLuaMutants(t *testing.T) {
	if os.Getenv(envLuaMutant) != "" {
		t.Skip("a mutant's own run")
	}
	if os.Getenv(envMutation) == "off" {
		t.Skip("PAYFLOW_MUTATION=off (gremlins' runs of Go mutants: the Lua scripts are not what they mutate)")
	}
	all := os.Getenv(envMutation) == "all"
	var ran, killed, equivalent, timing int
	var survivors []string
	for _, m := range luaMutants() {
		sc, ok := luaScripts()[m.Script]
		if !ok {
			t.Errorf("%s: no script %q", m.Name, m.Script)
			continue
		}
		if n := strings.Count(ownText(sc.src), m.From); n != 1 {
			t.Errorf("%s: %q occurs %d times in the %s script, want once (the table is out of date)", m.Name, m.From, n, m.Script)
			continue
		}
		if !all && !m.CI {
			continue
		}
		ran++
		cmd := exec.Command(os.Args[0], "-test.count=1", "-test.failfast", "-test.skip="+slowTests)
		cmd.Env = append(os.Environ(), envLuaMutant+"="+m.Name)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		var exit *exec.ExitError
		if m.Timing != "" && (err == nil || errors.As(err, &exit) && exit.ExitCode() == 1) {
			timing++
			t.Logf("%-40s %s: timing-dependent, either outcome accepted: %s", m.Name, map[bool]string{true: "survived", false: "killed"}[err == nil], m.Timing)
			continue
		}
		switch {
		case err == nil:
			if m.Equivalent != "" {
				equivalent++
				t.Logf("%-40s survived: equivalent: %s", m.Name, m.Equivalent)
				continue
			}
			survivors = append(survivors, m.Name)
			t.Errorf("%s survived: no test fails with %q replaced by %q in the %s script", m.Name, m.From, m.To, m.Script)
		case errors.As(err, &exit) && exit.ExitCode() == 1:
			by := "?"
			if f := failedTest.FindStringSubmatch(out.String()); f != nil {
				by = f[1]
			}
			killed++
			if m.Equivalent != "" {
				t.Errorf("%s is marked equivalent but %s kills it: update the table", m.Name, by)
				continue
			}
			t.Logf("%-40s killed by %s", m.Name, by)
		default:
			t.Errorf("%s: the mutant's run did not complete: %v\n%s", m.Name, err, out.String())
		}
	}
	t.Logf("lua mutants: %d run, %d killed, %d equivalent, %d timing-dependent, %d survived %v (efficacy over the others %.0f%%)",
		ran, killed, equivalent, timing, len(survivors), survivors, 100*float64(killed)/float64(max(1, ran-equivalent-timing)))
}
