package rig

import (
	"context"
	"fmt"

	"github.com/ttcpay/payflow/internal/intent"
	"github.com/ttcpay/payflow/internal/sandbox"
)

// Report is what Check found: the outcome of each intent, the charges at
// CyberSource and the violations of the invariants, with up to ten
// examples.
type Report struct {
	Intents, Authorized, Declined, DeadLettered, NoOutcome        int
	LiveCharges, ChargesTotal, ReversedOrVoided, TimeoutReversals int
	DuplicateRequests                                             int
	DoubleCharged, LiveNoCallback, OrphanLive, AuthorizedNotLive  int
	CallbacksDelivered, DuplicateCallbacks                        int
	TokenRequests, OverlappingTokenRequests                       int
	DLQByClass                                                    map[string]int
	Examples                                                      []string
}

// Violations counts the broken invariants: an intent with two live charges,
// an intent without a terminal outcome, a live charge without its callback
// or without an authorized result, an authorized result whose charge is not
// live, overlapping token requests.
func (r *Report) Violations() int {
	return r.DoubleCharged + r.NoOutcome + r.LiveNoCallback + r.OrphanLive + r.AuthorizedNotLive + r.OverlappingTokenRequests
}

func (r *Report) note(format string, a ...any) {
	if len(r.Examples) < 10 {
		r.Examples = append(r.Examples, fmt.Sprintf(format, a...))
	}
}

// Check reads the results and dead letters and checks the intents ids
// against the sandbox ledger (Evaluate).
func (r *Rig) Check(ctx context.Context, ids []string) (*Report, error) {
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	latest, err := r.Results(ctx)
	if err != nil {
		return nil, err
	}
	dead, err := r.IntentDeadLetters(ctx)
	if err != nil {
		return nil, err
	}
	return Evaluate(want, latest, dead, r.Ledger()), nil
}

// Evaluate checks the invariants for the intents in want from the latest
// result per intent, the dead letters (intent → class) and the sandbox
// ledger, the ground truth. Every live charge of the ledger counts, so the
// ledger must hold only these intents' charges.
func Evaluate(want map[string]bool, latest map[string]intent.Result, dead map[string]string, l sandbox.Ledger) *Report {
	rep := &Report{Intents: len(want), DLQByClass: map[string]int{}}
	byID := map[string]sandbox.Charge{}
	liveByRef := map[string]int{}
	for _, c := range l.Charges {
		byID[c.ID] = c
		rep.ChargesTotal++
		if c.Live {
			rep.LiveCharges++
			liveByRef[c.Reference]++
		} else if c.Reversed || c.Voided {
			rep.ReversedOrVoided++
		}
	}
	for ref, n := range liveByRef {
		if n > 1 {
			rep.DoubleCharged++
			rep.note("reference %s has %d live charges", ref, n)
		}
	}
	callbacks := map[string]int{}
	for _, c := range l.Callbacks {
		callbacks[c.TransactionID] = c.Count
		rep.CallbacksDelivered++
		if c.Count > 1 {
			rep.DuplicateCallbacks += c.Count - 1
		}
	}
	authorizedIDs := map[string]bool{}
	for id := range want {
		r, ok := latest[id]
		class, isDead := dead[id]
		switch {
		case ok && r.Authorized():
			rep.Authorized++
			authorizedIDs[r.CyberSourceID] = true
			if !byID[r.CyberSourceID].Live {
				rep.AuthorizedNotLive++
				rep.note("%s: result %s but charge %s is not live", id, r.Status, r.CyberSourceID)
			}
		case ok && r.Status == "DECLINED":
			rep.Declined++
		case isDead:
			rep.DeadLettered++
			rep.DLQByClass[class]++
		default:
			rep.NoOutcome++
			rep.note("%s: no terminal outcome (result %q)", id, r.Status)
		}
	}
	for _, c := range l.Charges {
		if !c.Live {
			continue
		}
		if callbacks[c.ID] == 0 {
			rep.LiveNoCallback++
			rep.note("live charge %s (%s) has no callback", c.ID, c.Reference)
		}
		if !authorizedIDs[c.ID] {
			rep.OrphanLive++
			rep.note("live charge %s (%s) belongs to no authorized result", c.ID, c.Reference)
		}
	}
	rep.TimeoutReversals = len(l.TimeoutReversals)
	rep.DuplicateRequests = len(l.DuplicateRequests)
	rep.TokenRequests = len(l.TokenRequests)
	rep.OverlappingTokenRequests = l.OverlappingTokenRequests()
	return rep
}
