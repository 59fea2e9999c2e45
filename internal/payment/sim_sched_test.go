package payment_test

import (
	"container/heap"
	"fmt"
	"math/rand"
	"runtime"
	"strings"
	"time"
)

// The simulation's scheduler: virtual time, and tasks that are goroutines of
// which exactly one runs at a time. A task runs until it yields (every call
// into a modelled collaborator yields); the scheduler then picks the next
// runnable task with the seeded PRNG, or advances virtual time to the next
// timer. One seed is therefore one exact interleaving.

type taskState int

const (
	runnable taskState = iota
	sleeping
	finished
)

type task struct {
	id      int
	name    string
	pod     *pod
	state   taskState
	wakeAt  time.Time
	wake    chan struct{}
	killed  bool
	onDeath func() // called when the task is killed (its message's lease starts)
	onExit  func() // called when the task's goroutine ends, killed or not
}

type timer struct {
	at  time.Time
	seq int
	fn  func()
}

type timerHeap []timer

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if h[i].at.Equal(h[j].at) {
		return h[i].seq < h[j].seq
	}
	return h[i].at.Before(h[j].at)
}
func (h timerHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)   { *h = append(*h, x.(timer)) }
func (h *timerHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

type scheduler struct {
	rng    *rand.Rand
	now    time.Time
	tasks  []*task
	timers timerHeap
	seq    int
	nextID int
	cur    *task
	back   chan *task
	trace  []event
	steps  int
	onIdle func() // called before picking a task: dispatch messages
	// nextDue is the next time a queued message becomes deliverable.
	nextDue func() (time.Time, bool)
	maxTime time.Time
}

func newScheduler(seed int64, start time.Time) *scheduler {
	return &scheduler{rng: rand.New(rand.NewSource(seed)), now: start, back: make(chan *task)}
}

// event is one line of the trace, formatted only when it is printed.
type event struct {
	at     time.Time
	who    string
	format string
	args   []any
}

func (e event) String() string {
	return fmt.Sprintf("%s %-22s %s", e.at.Format("15:04:05.000"), e.who, fmt.Sprintf(e.format, e.args...))
}

// logf adds a line to the event trace.
func (s *scheduler) logf(format string, args ...any) {
	who := "sched"
	if s.cur != nil {
		who = s.cur.name
	}
	s.trace = append(s.trace, event{at: s.now, who: who, format: format, args: args})
}

// at runs fn (on the scheduler) at virtual time t.
func (s *scheduler) at(t time.Time, fn func()) {
	s.seq++
	heap.Push(&s.timers, timer{at: t, seq: s.seq, fn: fn})
}

func (s *scheduler) after(d time.Duration, fn func()) { s.at(s.now.Add(d), fn) }

// spawn starts a task running fn.
func (s *scheduler) spawn(name string, p *pod, fn func(t *task)) *task {
	s.nextID++
	t := &task{id: s.nextID, name: name, pod: p, wake: make(chan struct{})}
	s.tasks = append(s.tasks, t)
	go func() {
		defer func() {
			t.state = finished
			if t.onExit != nil {
				t.onExit()
			}
			s.back <- t
		}()
		<-t.wake
		if !t.killed {
			fn(t)
		}
	}()
	return t
}

// yield hands control back to the scheduler; the task resumes when it is
// picked again. A killed task never resumes: it exits where it stands, as
// a crashed process does.
func (s *scheduler) yield(t *task) {
	if t.killed {
		runtime.Goexit()
	}
	s.back <- t
	<-t.wake
	if t.killed {
		runtime.Goexit()
	}
}

// sleep parks the task for d of virtual time.
func (s *scheduler) sleep(t *task, d time.Duration) {
	t.state, t.wakeAt = sleeping, s.now.Add(d)
	s.yield(t)
}

// kill ends a task at its next resumption.
func (s *scheduler) kill(t *task) {
	if t.killed || t.state == finished {
		return
	}
	t.killed = true
	t.state = runnable // it exits as soon as it is run
	if t.onDeath != nil {
		t.onDeath()
	}
}

func (s *scheduler) runTask(t *task) {
	s.cur = t
	s.steps++
	t.wake <- struct{}{}
	<-s.back
	s.cur = nil
}

// run drives the system until nothing is runnable and no timer is left, or
// virtual time passes maxTime. It returns false when it stopped at maxTime.
func (s *scheduler) run() bool {
	for {
		if s.onIdle != nil {
			s.onIdle()
		}
		var ready []*task
		live := s.tasks[:0]
		for _, t := range s.tasks {
			if t.state == finished {
				continue
			}
			live = append(live, t)
			if t.state == sleeping && !t.wakeAt.After(s.now) {
				t.state = runnable
			}
			if t.state == runnable && (t.killed || !t.pod.frozenAt(s.now)) {
				ready = append(ready, t)
			}
		}
		s.tasks = live
		if len(ready) > 0 {
			s.runTask(ready[s.rng.Intn(len(ready))])
			continue
		}
		next, ok := s.nextEvent()
		if !ok {
			return true
		}
		if next.After(s.maxTime) {
			return false
		}
		if next.After(s.now) {
			s.now = next
		}
		for s.timers.Len() > 0 && !s.timers[0].at.After(s.now) {
			tm := heap.Pop(&s.timers).(timer)
			tm.fn()
		}
	}
}

// shutdown kills every task left and lets each exit.
func (s *scheduler) shutdown() {
	for _, t := range s.tasks {
		if t.state != finished {
			s.kill(t)
			s.runTask(t)
		}
	}
	s.tasks = nil
}

// nextEvent is the earliest of the next timer, the next sleeping task's
// wake-up and the next end of a pod's freeze.
func (s *scheduler) nextEvent() (time.Time, bool) {
	var next time.Time
	ok := false
	consider := func(t time.Time) {
		if !ok || t.Before(next) {
			next, ok = t, true
		}
	}
	if s.timers.Len() > 0 {
		consider(s.timers[0].at)
	}
	if s.nextDue != nil {
		if t, due := s.nextDue(); due {
			consider(t)
		}
	}
	for _, t := range s.tasks {
		switch {
		case t.state == sleeping:
			consider(t.wakeAt)
		case t.state == runnable && t.pod.frozenAt(s.now):
			consider(t.pod.frozenUntil)
		}
	}
	return next, ok
}

// chance is true with probability p.
func (s *scheduler) chance(p float64) bool { return p > 0 && s.rng.Float64() < p }

// between is a uniform duration in [lo, hi).
func (s *scheduler) between(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(s.rng.Int63n(int64(hi-lo)))
}

// traceAbout returns the trace lines that mention any of the words, and
// the last n lines.
func (s *scheduler) traceAbout(words []string, n int) string {
	var b strings.Builder
	for _, e := range s.trace {
		l := e.String()
		for _, w := range words {
			if w != "" && strings.Contains(l, w) {
				b.WriteString("  " + l + "\n")
				break
			}
		}
	}
	if n > 0 {
		b.WriteString("  ... last events:\n")
		from := max(0, len(s.trace)-n)
		for _, e := range s.trace[from:] {
			b.WriteString("  " + e.String() + "\n")
		}
	}
	return b.String()
}
