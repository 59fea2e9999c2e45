package payment_test

import (
	"encoding/json"
	"fmt"

	"github.com/ttcpay/payflow/internal/cybs"
	"github.com/ttcpay/payflow/internal/deadletter"
	"github.com/ttcpay/payflow/internal/idempotency"
	"github.com/ttcpay/payflow/internal/intent"
)

// Scenarios and checks added by the adversarial review (branch adversary).
// Each scenario targets an interleaving the original scenarios reach rarely
// or never; each check closes a gap in world.check.

func adversaryScenarios() []simConfig {
	// A pod paused right before it sends a charge, past its lease (the lease
	// was checked, then the pod froze): the charge goes out while another pod
	// resolves the attempt, and CyberSource is slow to process it. The
	// original "stale-pod-after-lease" scenario has the same faults at lower
	// rates (freeze 0.03, slow 0.05) and 10 seeds.
	staleSlow := base("adv-stale-send-slow", 60)
	staleSlow.freeze = 0.05
	staleSlow.cybs = cybsFaults{slow: 0.3}

	// A transient, documented refusal (400 PROCESSOR_UNAVAILABLE) while pods
	// freeze and crash: the refused attempt is released, and its refusal is
	// published after the intent was charged by the next delivery.
	transient := base("adv-transient-refusal", 60)
	transient.freeze, transient.crash = 0.05, 0.01
	transient.cybs = cybsFaults{processorUnavailable: 0.3}

	// Partial captures followed by a reversal of the rest, whose answers are
	// lost: the reversal is sent again after its unknown outcome.
	rest := base("adv-reverse-rest-lost-answer", 30)
	rest.mix.settle = 1
	rest.cybs = cybsFaults{followCut: 0.5}

	// The same transient refusal with lost answers and no operator replay:
	// the stale ack of the released attempt removes the message while the
	// next attempt's outcome is unknown.
	orphan := base("adv-transient-refusal-lost-answer", 60)
	orphan.freeze, orphan.replay = 0.05, false
	orphan.cybs = cybsFaults{processorUnavailable: 0.3, cut: 0.3}

	return []simConfig{staleSlow, transient, rest, orphan}
}

// checkAdversary: invariants world.check does not look at.
//
//   - An operation that applied (CyberSource's ledger has it, not voided) is
//     not reported as refused: its last result says it applied, or it is
//     UNKNOWN_OUTCOME, or a person was told (unknown-outcome dead letter).
//   - An authorization that is live at the end is never followed by a
//     refusal (REJECTED, FAILED) of the same intent: upstream acting on the
//     later result would cancel an order whose card is charged.
func (w *world) checkAdversary() []violation {
	var out []violation
	add := func(inv, detail string, ids ...string) { out = append(out, violation{inv, detail, ids}) }
	type key struct{ merchant, id string }
	results := map[key][]intent.Result{}
	for _, s := range w.js.results {
		var r intent.Result
		if json.Unmarshal(s.data, &r) == nil {
			k := key{merchantOfSubject(s.subject), r.IntentID}
			results[k] = append(results[k], r)
		}
	}
	for _, rs := range results {
		upstreamOrder(rs)
	}
	told := map[key]bool{}
	for _, s := range w.js.dlq {
		if l := letterOf(s); l.Class == deadletter.ClassUnknownOutcome {
			told[key{l.MerchantID, l.IntentID}] = true
		}
	}
	appliedStatus := map[string]string{intent.OpCapture: intent.StatusCaptured, intent.OpRefund: intent.StatusRefunded,
		intent.OpReverse: intent.StatusReversed, intent.OpVoid: intent.StatusVoided}
	applied := map[key]int{}
	for _, f := range w.cs.follows {
		if !f.voided {
			applied[key{f.merchant, f.code}]++
		}
	}
	liveIDs := map[string]bool{}
	for _, c := range w.cs.charges {
		if c.live() {
			liveIDs[c.id] = true
		}
	}
	jobs := map[string]bool{} // CyberSource ids that have a callback job
	for _, s := range w.js.callback {
		var job intent.CallbackJob
		if json.Unmarshal(s.data, &job) == nil {
			jobs[job.TransactionID] = true
		}
	}
	for _, c := range w.cs.charges {
		if c.live() && (c.status == cybs.StatusAuthorized || c.status == cybs.StatusPartialAuthorized) && !jobs[c.id] && !told[key{c.merchant, c.code}] {
			add("every live authorization gets its own callback job", fmt.Sprintf("%s/%s: live charge %s has no callback job (jobs name other charges)", c.merchant, c.code, c.id), c.code, c.id)
		}
	}
	for _, sub := range w.up.subs {
		k := key{sub.merchant, sub.id}
		rs := results[k]
		// Once every message is gone, no record may wait for a delivery
		// that will never come (with WAIT on: without it, a failover may
		// roll a settled record back, which the scenarios model on purpose).
		if st := w.store.Fields(idempotency.Key(sub.id))["s"]; w.cfg.minReplicas > 0 && w.js.drained() &&
			(st == idempotency.StateCharging || st == idempotency.StateUnknown || st == idempotency.StateResolving) {
			add("no intent is left unresolved", fmt.Sprintf("%s/%s (%s): record %s with no message left to resolve it", sub.merchant, sub.id, sub.kind, st), sub.id)
		}
		if sub.op != "" && applied[k] > 0 && !told[k] {
			last := "none"
			if len(rs) > 0 {
				last = rs[len(rs)-1].Status
			}
			if last != appliedStatus[sub.op] && last != intent.StatusUnknownOutcome {
				add("an applied operation is reported applied", fmt.Sprintf("%s/%s (%s) applied at CyberSource, but its last result is %s and no unknown-outcome dead letter",
					sub.merchant, sub.id, sub.kind, last), sub.id)
			}
		}
		for i, r := range rs {
			if !r.Authorized() || !liveIDs[r.CyberSourceID] {
				continue
			}
			for _, later := range rs[i+1:] {
				if later.Status == intent.StatusRejected || later.Status == intent.StatusFailed {
					add("a live authorization is never followed by a refusal", fmt.Sprintf("%s/%s: %s (%s, live) then %s (%s)",
						sub.merchant, sub.id, r.Status, r.CyberSourceID, later.Status, later.Reason), sub.id, r.CyberSourceID)
					break
				}
			}
		}
	}
	return out
}

// drained: every intent message was acked (removed).
func (js *jsModel) drained() bool {
	for _, m := range js.intents {
		if !m.deleted {
			return false
		}
	}
	return true
}
