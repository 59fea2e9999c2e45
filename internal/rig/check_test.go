package rig

import (
	"testing"

	"github.com/ttcpay/payflow/internal/intent"
	"github.com/ttcpay/payflow/internal/sandbox"
)

// TestEvaluateCatchesViolations: the checker reports each kind of violation.
func TestEvaluateCatchesViolations(t *testing.T) {
	want := map[string]bool{"a": true, "b": true, "c": true, "d": true}
	good := func() (map[string]intent.Result, map[string]string, sandbox.Ledger) {
		return map[string]intent.Result{
				"a": {IntentID: "a", Status: "AUTHORIZED", CyberSourceID: "1"},
				"b": {IntentID: "b", Status: "DECLINED", CyberSourceID: "2"},
				"c": {IntentID: "c", Status: intent.StatusInvalid},
			}, map[string]string{"c": "invalid", "d": "exhausted"}, sandbox.Ledger{
				Charges:   []sandbox.Charge{{ID: "1", Reference: "A", Live: true}, {ID: "2", Reference: "B"}, {ID: "9", Reference: "A", Reversed: true}},
				Callbacks: []sandbox.CallbackRecord{{TransactionID: "1", Count: 1}},
			}
	}
	res, dead, l := good()
	if r := Evaluate(want, res, dead, l); r.Violations() != 0 {
		t.Fatalf("clean run reported %d violations: %v", r.Violations(), r.Examples)
	}
	cases := map[string]func(res map[string]intent.Result, dead map[string]string, l *sandbox.Ledger){
		"DoubleCharge": func(_ map[string]intent.Result, _ map[string]string, l *sandbox.Ledger) {
			l.Charges = append(l.Charges, sandbox.Charge{ID: "3", Reference: "A", Live: true})
			l.Callbacks = append(l.Callbacks, sandbox.CallbackRecord{TransactionID: "3", Count: 1})
		},
		"LostIntent": func(_ map[string]intent.Result, dead map[string]string, _ *sandbox.Ledger) { delete(dead, "d") },
		"LiveChargeWithoutCallback": func(_ map[string]intent.Result, _ map[string]string, l *sandbox.Ledger) {
			l.Callbacks = nil
		},
		"OrphanLiveCharge": func(_ map[string]intent.Result, _ map[string]string, l *sandbox.Ledger) {
			l.Charges = append(l.Charges, sandbox.Charge{ID: "7", Reference: "Z", Live: true})
			l.Callbacks = append(l.Callbacks, sandbox.CallbackRecord{TransactionID: "7", Count: 1})
		},
		"AuthorizedButReversed": func(_ map[string]intent.Result, _ map[string]string, l *sandbox.Ledger) {
			l.Charges[0].Live = false
			l.Charges[0].Reversed = true
		},
		"OverlappingTokenRequests": func(_ map[string]intent.Result, _ map[string]string, l *sandbox.Ledger) {
			l.TokenRequests = []sandbox.TokenRequest{{Overlapped: true}, {Overlapped: true}}
		},
	}
	for name, spoil := range cases {
		t.Run(name, func(t *testing.T) {
			res, dead, l := good()
			spoil(res, dead, &l)
			if r := Evaluate(want, res, dead, l); r.Violations() == 0 {
				t.Fatal("not reported")
			}
		})
	}
}
