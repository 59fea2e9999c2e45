package rig

import (
	"context"
	"fmt"
	"io"
	"time"
)

// The phase names of a run (chaos, bench, demo): start the system, publish
// intents, inject faults, let it settle, report.
const (
	PhaseStart   = "start"
	PhasePublish = "publish"
	PhaseInject  = "inject"
	PhaseSettle  = "settle"
	PhaseReport  = "report"
)

// Phase is one named step of a run.
type Phase struct {
	Name string
	Run  func(ctx context.Context) error
}

// RunPhases runs the phases in order, printing "== name" before each and
// its duration after it, and stops at the first error, which it returns
// wrapped with the phase's name. A nil Run is skipped.
func RunPhases(ctx context.Context, out io.Writer, phases ...Phase) error {
	for _, p := range phases {
		if p.Run == nil {
			continue
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%s: %w", p.Name, err)
		}
		fmt.Fprintf(out, "%s  == %s\n", time.Now().UTC().Format("15:04:05"), p.Name)
		start := time.Now()
		if err := p.Run(ctx); err != nil {
			return fmt.Errorf("%s: %w", p.Name, err)
		}
		fmt.Fprintf(out, "%s  == %s done in %s\n", time.Now().UTC().Format("15:04:05"), p.Name, time.Since(start).Round(100*time.Millisecond))
	}
	return nil
}
