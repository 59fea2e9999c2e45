package payment_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ttcpay/payflow/internal/deadletter"
	"github.com/ttcpay/payflow/internal/idempotency"
	"github.com/ttcpay/payflow/internal/intent"
	"github.com/ttcpay/payflow/internal/payment"
)

// Scenarios and checks added by the second adversarial review (branch
// adversary2).
//
// The pods of the original scenarios write dead letters through a nil
// scrubber: since the security merge every letter of a card payment has its
// card removed ("****1111"), and the quiescent replay (replayDeadLetters,
// which does not look at Payflow-Dlq-Card-Removed) republishes that: the
// worker answers INVALID under the replay's message id, so no payment letter
// is ever reopened in the simulation. The pods here seal cards to a
// dead-letter key their card keyring opens, as production with
// DLQ_CARD_PUBLIC_KEY does.
//
// adv2-eager-replay: an operator (or a replay job) runs `dlq replay` for
// every letter a few minutes after it appears, inside the duplicate
// window, during the faults: Replay republishes each letter (a replay
// Nats-Msg-Id, Payflow-Replayed-From) and deletes it from the DLQ, as
// deadletter.Replay does, refusing what CheckReplay refuses.
func adversary2Scenarios() []simConfig {
	eager := base("adv2-eager-replay", 20)
	eager.freeze, eager.crash = 0.02, 0.005
	eager.cybs = cybsFaults{processorUnavailable: 0.2, cut: 0.1, followCut: 0.2, settleAfter: 20 * time.Minute}
	eager.mix.settle = 0.8
	eager.setup = func(w *world) {
		w.eagerReplays(2*time.Minute, 8*time.Minute)
	}
	// adv2-fingerprint-key-rollout: FINGERPRINT_KEYS is being added by a
	// rolling update: pod-0 runs with the key, the other pods still without.
	// Lost answers make records unknown, and their redeliveries reach
	// either kind of pod.
	rollout := base("adv2-fingerprint-key-rollout", 10)
	rollout.cybs = cybsFaults{cut: 0.2, followCut: 0.1}
	rollout.setup = func(w *world) {
		w.rebuildPods(func(i int, c *payment.Config) {
			if i == 0 {
				c.FingerprintKeys = [][]byte{[]byte("0123456789abcdef0123456789abcdef")}
			}
		})
	}
	// adv2-eager-replay-reopen: the same eager operator, replaying only the
	// letters a replay reopens (rejected, exhausted, config), with more
	// freezes, crashes, lost acks and failovers. A redelivery of one replay
	// message reopens the intent again, and a pod frozen after recording
	// an earlier attempt's refusal publishes it after the newer attempt's
	// charge (seed 9).
	reopen := base("adv2-eager-replay-reopen", 80)
	reopen.freeze, reopen.crash, reopen.lostAck, reopen.redisErr = 0.04, 0.01, 0.02, 0.01
	reopen.failovers, reopen.notReplicated, reopen.failoverAtAck = 2, 0.02, 0.05
	reopen.cybs = eager.cybs
	reopen.mix.settle = 0.8
	reopen.setup = func(w *world) {
		w.eagerReplays(2*time.Minute, 8*time.Minute, deadletter.ClassRejected, deadletter.ClassExhausted, deadletter.ClassConfig)
	}
	return []simConfig{eager, rollout, reopen}
}

// eagerReplays: while the faults last, every letter (of classes, or of any
// class) is replayed between lo and hi after it was written, and deleted
// from the DLQ once republished.
func (w *world) eagerReplays(lo, hi time.Duration, classes ...deadletter.Class) {
	seq := uint64(1_000_000)
	seen := map[string]bool{} // letters already scheduled (by their Nats-Msg-Id and time)
	var tick func()
	tick = func() {
		for _, s := range w.js.dlq {
			key := s.msgID + "@" + s.at.String()
			if seen[key] {
				continue
			}
			seen[key] = true
			w.s.after(w.s.between(lo, hi), func() {
				for i, cur := range w.js.dlq {
					if cur.msgID != s.msgID || !cur.at.Equal(s.at) {
						continue
					}
					l := letterOf(cur)
					l.StoredSubject = cur.subject
					if len(classes) > 0 && !slices.Contains(classes, l.Class) {
						return
					}
					if err := deadletter.CheckReplay(l); err != nil || l.Kind != deadletter.KindIntents {
						return
					}
					seq++
					l.Seq = seq
					w.js.publish(l.ReplayMsg())
					w.js.dlq = append(w.js.dlq[:i:i], w.js.dlq[i+1:]...)
					w.s.logf("operator replays and deletes dead letter %d (%s %s)", seq, l.IntentID, l.Class)
					return
				}
			})
		}
		if w.faultsOn() {
			w.s.after(time.Minute, tick)
		}
	}
	w.s.after(time.Minute, tick)
}

// checkAdversary2: every intent whose record ended with a dead letter (a
// person must look: unknown-outcome, or a refusal to replay) still has that
// letter in the DLQ at the end.
func (w *world) checkAdversary2() []violation {
	var out []violation
	type key struct{ merchant, id, class string }
	letters := map[key]bool{}
	for _, s := range w.js.dlq {
		l := letterOf(s)
		letters[key{l.MerchantID, l.IntentID, string(l.Class)}] = true
	}
	last := map[string]intent.Result{}
	for _, s := range w.js.results {
		var r intent.Result
		if json.Unmarshal(s.data, &r) == nil {
			// Upstream keeps the highest attempt (upstreamOrder).
			if k := merchantOfSubject(s.subject) + "/" + r.IntentID; r.Attempts >= last[k].Attempts {
				last[k] = r
			}
		}
	}
	for _, sub := range w.up.subs {
		f := w.store.Fields(idempotency.Key(sub.id))
		if f["s"] != idempotency.StateDone || f["dc"] == "" {
			continue
		}
		var r intent.Result
		if json.Unmarshal([]byte(f["r"]), &r) != nil || r.MerchantID != sub.merchant {
			continue
		}
		if !letters[key{sub.merchant, sub.id, f["dc"]}] {
			out = append(out, violation{"a dead letter a person sees", fmt.Sprintf("%s/%s (%s): record done %s with a %q letter, last result %s, but no such letter is in the DLQ",
				sub.merchant, sub.id, sub.kind, r.Status, f["dc"], last[sub.merchant+"/"+sub.id].Status), []string{sub.id}})
		}
	}
	return out
}

// TestAdversary2SimulationReplaysCardPayments: a gap in the simulation,
// not in the worker. Its pods write dead letters through a nil scrubber
// (no dead-letter key), so since the security merge a card payment's
// letter holds "****1111" and is marked Payflow-Dlq-Card-Removed; the
// quiescent replay republishes it anyway, and the worker answers INVALID
// under the replay's message id. No scenario reopens a card payment's
// letter, so every check about reopened payments (adv-transient-refusal's
// "a live authorization is never followed by a refusal", the letter
// checks) runs on settlement operations only.
func TestAdversary2SimulationReplaysCardPayments(t *testing.T) {
	var sc simConfig
	for _, c := range scenarios() {
		if c.name == "adv-transient-refusal" {
			sc = c
		}
	}
	w, _ := runSim(sc, 1)
	invalid, reopened := 0, 0
	for _, s := range w.js.results {
		var r intent.Result
		if json.Unmarshal(s.data, &r) != nil {
			continue
		}
		switch {
		case r.Status == intent.StatusInvalid && strings.Contains(r.IntentID, ":replay:"):
			invalid++
		case r.Operation == "" && r.Attempts > 1 && r.Authorized():
			reopened++
		}
	}
	t.Logf("replays answered INVALID: %d; card payments authorized after attempt 1: %d", invalid, reopened)
	if invalid > 0 {
		t.Errorf("%d replays of card payments' dead letters were answered INVALID (their card was removed by the simulation's nil scrubber): the simulation never reopens a card payment", invalid)
	}
}
