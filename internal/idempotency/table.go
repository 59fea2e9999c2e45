package idempotency

// The record's state table: which transition applies from which state, and
// whether it is fenced on the caller's attempt handle (owner and attempt).
// The Lua scripts implement it on Redis, Memory implements it in process,
// and the conformance test drives both from this table and compares them.

// Record states, as stored in field "s" (a missing record is "").
const (
	StateNone      = ""
	StateIdle      = "idle"
	StateCharging  = "charging"
	StateUnknown   = "unknown"
	StateResolving = "resolving"
	StateDone      = "done"
)

// States lists every stored state.
var States = []string{StateNone, StateIdle, StateCharging, StateUnknown, StateResolving, StateDone}

// Transition is one row of the table.
type Transition struct {
	Op string
	// From: the states it moves the record from; in any other state it
	// refuses (ErrConflict for fenced operations).
	From []string
	// Fenced: owner and attempt must be the caller's.
	Fenced bool
	// To: the state after it ("" when it depends on the record, e.g. claim).
	To string
}

// Operations of the table.
const (
	OpClaim        = "claim"
	OpExtend       = "extend"
	OpRelease      = "release"
	OpAdvance      = "advance"
	OpMarkUnknown  = "markUnknown"
	OpBeginResolve = "beginResolve"
	OpFinish       = "finish"
	OpReopen       = "reopen"
)

// Table is the record's state machine.
var Table = []Transition{
	// claim: a missing or idle record is taken for a new attempt; a done
	// record answers with its result; a live lease answers busy; an expired
	// lease turns the record unknown (whatever was sent may have landed).
	{Op: OpClaim, From: []string{StateNone, StateIdle}, To: StateCharging},
	{Op: OpExtend, From: []string{StateCharging, StateResolving}, Fenced: true},
	{Op: OpRelease, From: []string{StateCharging}, Fenced: true, To: StateIdle},
	{Op: OpAdvance, From: []string{StateCharging, StateResolving}, Fenced: true, To: StateCharging},
	{Op: OpMarkUnknown, From: []string{StateCharging, StateResolving}, Fenced: true, To: StateUnknown},
	// beginResolve is fenced on the attempt only: any pod may take an
	// unknown attempt for resolution once the delay has passed.
	{Op: OpBeginResolve, From: []string{StateUnknown}, To: StateResolving},
	{Op: OpFinish, From: []string{StateCharging, StateResolving}, Fenced: true, To: StateDone},
	// reopen: a done record whose dead letter says nothing was charged
	// (the caller names the class it saw), with no authorization to reverse
	// and no ledger, is taken for a new attempt when an operator replays
	// that letter. Fenced on the attempt that finished it, not its owner.
	{Op: OpReopen, From: []string{StateDone}, To: StateCharging},
}

// Row returns the table's row of op.
func Row(op string) Transition {
	for _, t := range Table {
		if t.Op == op {
			return t
		}
	}
	panic("idempotency: no transition " + op)
}

// allows reports whether op applies to a record in state s.
func (t Transition) allows(s string) bool {
	for _, f := range t.From {
		if f == s {
			return true
		}
	}
	return false
}
