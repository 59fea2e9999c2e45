package payment_test

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"sort"

	"github.com/ttcpay/payflow/internal/deadletter"
	"github.com/ttcpay/payflow/internal/intent"
)

// violation is one broken invariant, with the ids whose trace explains it.
type violation struct {
	invariant string
	detail    string
	ids       []string
}

func (v violation) String() string { return v.invariant + ": " + v.detail }

// check compares what the system published with the CyberSource model's
// ledger, once the system is quiescent.
func (w *world) check(quiescent bool) []violation {
	var out []violation
	add := func(inv, detail string, ids ...string) { out = append(out, violation{inv, detail, ids}) }
	js, cs := w.js, w.cs

	if !quiescent {
		for _, m := range js.intents {
			if !m.deleted {
				add("nothing lost", fmt.Sprintf("intent %s still queued (delivered %d times) when the run stopped", intentIDOf(m), m.deliveries), intentIDOf(m))
			}
		}
	}
	for _, v := range cs.violations {
		add("no cross-merchant act", v)
	}

	type key struct{ merchant, id string }
	// Every result, in the order upstream takes them (upstreamOrder); dead
	// letters; callback jobs.
	results := map[key][]intent.Result{}
	for _, s := range js.results {
		var r intent.Result
		if json.Unmarshal(s.data, &r) == nil {
			k := key{merchantOfSubject(s.subject), r.IntentID}
			results[k] = append(results[k], r)
		}
	}
	for _, rs := range results {
		upstreamOrder(rs)
	}
	letters := map[key][]deadletter.Letter{}
	for _, s := range js.dlq {
		l := letterOf(s)
		k := key{l.MerchantID, l.IntentID}
		letters[k] = append(letters[k], l)
	}
	callbacks := map[key]int{}
	for _, s := range js.callback {
		var job intent.CallbackJob
		if json.Unmarshal(s.data, &job) == nil {
			callbacks[key{job.MerchantID, job.IntentID}]++
		}
	}
	hasLetter := func(k key, classes ...deadletter.Class) bool {
		for _, l := range letters[k] {
			for _, c := range classes {
				if l.Class == c {
					return true
				}
			}
		}
		return false
	}

	// Live charges and applied operations per intent, from the ledger.
	live := map[key][]*csCharge{}
	for _, c := range cs.charges {
		if c.live() {
			k := key{c.merchant, c.code}
			live[k] = append(live[k], c)
		}
	}
	applied := map[key][]*csFollow{}
	for _, f := range cs.follows {
		if !f.voided {
			k := key{f.merchant, f.code}
			applied[k] = append(applied[k], f)
		}
	}

	for _, sub := range w.up.subs {
		k := key{sub.merchant, sub.id}
		rs := results[k]
		var last *intent.Result
		if len(rs) > 0 {
			last = &rs[len(rs)-1]
		}
		if last == nil && len(letters[k]) == 0 {
			add("every intent ends with a result or a dead letter", fmt.Sprintf("%s/%s (%s): neither", sub.merchant, sub.id, sub.kind), sub.id)
		}
		if sub.malformed || sub.mismatched {
			for _, c := range cs.charges {
				if c.code == sub.id {
					add("malformed intents are never charged", fmt.Sprintf("%s (%s) charged %s", sub.id, sub.kind, amountOf(c.amount)), sub.id)
				}
			}
		}
		if n := len(live[k]); n > 1 {
			ids := []string{sub.id}
			for _, c := range live[k] {
				ids = append(ids, c.id)
			}
			add("at most one live charge per intent", fmt.Sprintf("%s/%s has %d live charges", sub.merchant, sub.id, n), ids...)
		}
		if sub.op != "" && len(applied[k]) > 1 {
			add("every operation applied at most once", fmt.Sprintf("%s/%s (%s) applied %d times", sub.merchant, sub.id, sub.kind, len(applied[k])), sub.id)
		}
		for _, c := range live[k] {
			known := last != nil && last.Authorized() && last.CyberSourceID == c.id
			if !known && !hasLetter(k, deadletter.ClassUnknownOutcome) {
				status := "none"
				if last != nil {
					status = last.Status
				}
				add("every live charge is reported", fmt.Sprintf("%s/%s: live charge %s (%s) but the last result is %s and no unknown-outcome dead letter",
					sub.merchant, sub.id, c.id, c.status, status), sub.id, c.id)
			}
		}
		for _, c := range cs.charges {
			if c.merchant == sub.merchant && c.code == sub.id && c.holdsAfterRefusal() &&
				!hasLetter(k, deadletter.ClassUnknownOutcome, deadletter.ClassExhausted) {
				add("authorizations behind a refusal are reversed", fmt.Sprintf("%s/%s: %s %s still holds %s", sub.merchant, sub.id, c.status, c.id, amountOf(c.authorized-c.reversed)), sub.id, c.id)
			}
		}
		for _, r := range rs {
			if r.Status == intent.StatusUnknownOutcome && !hasLetter(k, deadletter.ClassUnknownOutcome) {
				add("every unknown outcome reaches a person", fmt.Sprintf("%s/%s: UNKNOWN_OUTCOME result without an unknown-outcome dead letter", sub.merchant, sub.id), sub.id)
				break
			}
		}
		authorized := false
		for _, r := range rs {
			authorized = authorized || r.Authorized()
		}
		if authorized && callbacks[k] == 0 {
			add("every authorized intent gets a callback job", fmt.Sprintf("%s/%s", sub.merchant, sub.id), sub.id)
		}
		if !authorized && callbacks[k] > 0 {
			add("declined intents get no callback job", fmt.Sprintf("%s/%s has a callback job but no authorized result", sub.merchant, sub.id), sub.id)
		}
	}

	// Visa MITs must name the merchant's own series.
	stated := map[key]string{}
	for _, sub := range w.up.subs {
		if sub.statedRoot != "" {
			stated[key{sub.merchant, sub.id}] = sub.statedRoot
		}
	}
	for _, c := range cs.charges {
		if c.prev == "" {
			continue
		}
		if owner := cs.netOwner[c.prev]; owner != "" && owner != c.merchant && c.prev != stated[key{c.merchant, c.code}] {
			add("no cross-merchant act", fmt.Sprintf("%s's MIT %s was sent with %s's network transaction %s (upstream stated %s)",
				c.merchant, c.code, owner, c.prev, stated[key{c.merchant, c.code}]), c.code)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].invariant < out[j].invariant })
	return out
}

// upstreamOrder sorts one intent's results as upstream reads them: results
// may arrive out of order (a pod frozen after recording an attempt
// publishes after a later attempt's result), so upstream keeps the result
// with the highest attempt (the README's contract); within an attempt, the
// later arrival. The last result is the intent's outcome.
func upstreamOrder(rs []intent.Result) {
	slices.SortStableFunc(rs, func(a, b intent.Result) int { return cmp.Compare(a.Attempts, b.Attempts) })
}
