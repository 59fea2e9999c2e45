//go:build race

package payment_test

// raceEnabled: the race detector slows the simulation about tenfold; under
// -race it runs a reduced set of seeds (the test command runs the full CI
// set without -race).
const raceEnabled = true
