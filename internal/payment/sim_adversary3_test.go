package payment_test

import (
	"testing"
	"time"

	"github.com/ttcpay/payflow/internal/payment"
)

// Scenarios added by the third adversarial review (branch adversary3).
//
// adv3-replay-storm: an operator replays EVERY dead letter (any class)
// between 20 s and 3 min after it is written (inside the duplicate window,
// so re-emitted letters and replays race the original's redeliveries),
// while pods freeze, crash, lose acks, Redis errs and fails over, and
// CyberSource refuses transiently, loses answers of payments and
// follow-ups, and fails follow-ups with 502s.
//
// adv3-replay-storm-settle: the same with every payment settled, more
// lost follow-up answers and more freezes.
//
// adv3-fingerprint-rotation: FINGERPRINT_KEYS is rotated by a rolling
// update (pod-0 runs "new,old", the others "old") while answers are lost,
// so unknown records and their redeliveries cross both configurations.
func adversary3Scenarios() []simConfig {
	storm := base("adv3-replay-storm", 20)
	storm.freeze, storm.crash, storm.lostAck, storm.redisErr, storm.redisAmbiguous = 0.04, 0.01, 0.03, 0.02, 0.01
	storm.failovers, storm.notReplicated, storm.failoverAtAck = 2, 0.02, 0.05
	storm.publishErr = 0.02
	storm.cybs = cybsFaults{processorUnavailable: 0.2, cut: 0.1, notSent: 0.05, followCut: 0.2, follow502: 0.1, settleAfter: 20 * time.Minute, settleAltReason: 0.5}
	storm.mix = mixConfig{invalid: 0.03, conflict: 0.05, crossMerchant: 0.03, noToken: 0.05, mismatch: 0.02,
		rejected: 0.1, duplicate: 0.1, settle: 0.8, crossChain: 0.3, chain: 0.05}
	storm.setup = func(w *world) {
		w.eagerReplays(20*time.Second, 3*time.Minute)
	}

	rotation := base("adv3-fingerprint-rotation", 20)
	rotation.freeze = 0.02
	rotation.cybs = cybsFaults{cut: 0.2, followCut: 0.1}
	rotation.mix.conflict = 0.2
	keyOld, keyNew := []byte("0123456789abcdef0123456789abcdef"), []byte("fedcba9876543210fedcba9876543210")
	rotation.setup = func(w *world) {
		w.rebuildPods(func(i int, c *payment.Config) {
			c.FingerprintKeys = [][]byte{keyOld}
			if i == 0 {
				c.FingerprintKeys = [][]byte{keyNew, keyOld}
			}
		})
	}
	// adv3-replay-storm-settle: the storm with every payment settled and
	// more lost follow-up answers and freezes.
	settle := storm
	settle.name, settle.seeds = "adv3-replay-storm-settle", 10
	settle.mix.settle, settle.cybs.followCut, settle.freeze = 1, 0.3, 0.05
	return []simConfig{storm, rotation, settle}
}

// TestAdversary3ReplayOvertakesAFrozenRefusal: seed 108 of
// adv3-replay-storm (go test ./internal/payment -run TestSimulation
// -scenario adv3-replay-storm -seed 108 -simtrace). The consumer writes a
// decision's dead letter BEFORE its result. Pod-1's attempt 1 of m3's sale
// pay-0022 is refused (400 PROCESSOR_UNAVAILABLE, a documented refusal),
// recorded done with a "rejected" letter, and the letter is published;
// pod-1 then freezes for 2m33s before it publishes the REJECTED result.
// 74 s after the letter appeared the operator replays it: attempt 2 is
// reopened and AUTHORIZED (live charge, result published). Pod-1 thaws and
// publishes "pay-0022:1:REJECTED" (another message id, not a duplicate):
// upstream's last word on an intent whose card is charged is REJECTED
// (invariant 2: the visible outcome is false; upstream cancels an order
// that is paid). The attempt check of 8f9dbef does not help: the replay
// reports attempt 1, which the record still ended with. A letter a replay
// can reopen exists before the result of the attempt it reports is out.
func TestAdversary3ReplayOvertakesAFrozenRefusal(t *testing.T) {
	var sc simConfig
	for _, c := range adversary3Scenarios() {
		if c.name == "adv3-replay-storm" {
			sc = c
		}
	}
	_, vs := runSim(sc, 108)
	for _, v := range vs {
		t.Errorf("VIOLATION %s", v)
	}
}

// TestAdversary3SimRestReversalAppliedTwice: seed 384 of
// adv3-replay-storm. m1's capture-0055 (5.00 of the 8.56 partial
// authorization pay-0003) applies, its answer is lost, and its timeout void
// applies too (answer lost again): CyberSource has 8.56 left, the ledger
// still counts the 5.00 capture. reverse-0084 ("reverse the rest": 3.56 by
// the ledger) applies at CyberSource, its answer is lost; the resolution
// sends it again as a "full" reversal, and CyberSource, with 5.00 left,
// applies the 3.56 a second time (REVERSAL ...114 and ...142). Invariant
// 1: an operation applied twice (see
// TestAdversary3ResentRestReversalIsPartialAtCyberSource).
func TestAdversary3SimRestReversalAppliedTwice(t *testing.T) {
	var sc simConfig
	for _, c := range adversary3Scenarios() {
		if c.name == "adv3-replay-storm" {
			sc = c
		}
	}
	_, vs := runSim(sc, 384)
	for _, v := range vs {
		t.Errorf("VIOLATION %s", v)
	}
}

// TestAdversary3StaleReemitOvertakesReplay: seed 32 of
// adv3-replay-storm-settle (-scenario adv3-replay-storm-settle -seed 32
// -simtrace, intent pay-0056). Attempt 1 of m2's authorization is refused
// (400 PROCESSOR_UNAVAILABLE) and recorded done with a "rejected" letter;
// failovers and crashes make the message come back. Pod-0's delivery 4
// reads the done record (attempt 1), re-emits the letter, and freezes
// before it re-emits the REJECTED result. The operator replays one of the
// letters: attempt 2 is reopened and PARTIAL_AUTHORIZED (live, result
// published 12:33:13). Pod-0 thaws and publishes "pay-0056:1:REJECTED" at
// 12:34:36, more than the duplicate window after the last copy: upstream's
// last word on a charged intent is REJECTED (invariant 2). Unlike seed 108
// of adv3-replay-storm, the late publisher is a redelivery's RE-EMIT that
// read the record before the reopen: writing the result before the letter
// would not prevent it.
func TestAdversary3StaleReemitOvertakesReplay(t *testing.T) {
	var sc simConfig
	for _, c := range adversary3Scenarios() {
		if c.name == "adv3-replay-storm-settle" {
			sc = c
		}
	}
	_, vs := runSim(sc, 32)
	for _, v := range vs {
		t.Errorf("VIOLATION %s", v)
	}
}
