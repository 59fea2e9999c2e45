package main

import (
	"math"
	"os"
	"testing"
)

func TestFitMemory(t *testing.T) {
	for _, tc := range []struct {
		name            string
		pts             []MemoryPoint
		base, kibPerPay float64
	}{
		{"a line", []MemoryPoint{{PeakInFlight: 0, PeakRSSMiB: 30}, {PeakInFlight: 500, PeakRSSMiB: 80}, {PeakInFlight: 1000, PeakRSSMiB: 130}}, 30, 102.4},
		{"one point: no line", []MemoryPoint{{PeakInFlight: 10, PeakRSSMiB: 30}}, 0, 0},
		{"no spread: no line", []MemoryPoint{{PeakInFlight: 10, PeakRSSMiB: 30}, {PeakInFlight: 10, PeakRSSMiB: 40}}, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, slope := fitMemory(tc.pts)
			if math.Abs(base-tc.base) > 1e-9 || math.Abs(slope-tc.kibPerPay) > 1e-9 {
				t.Fatalf("base %v MiB, %v KiB per payment; want %v, %v", base, slope, tc.base, tc.kibPerPay)
			}
		})
	}
}

func TestPercentiles(t *testing.T) {
	s := make([]float64, 1000)
	for i := range s {
		s[i] = float64(1000 - i) // 1000..1
	}
	if p := percentile(s, 50); p != 501 {
		t.Errorf("p50 %v", p)
	}
	if p := percentileF(s, 99.9); p != 1000 {
		t.Errorf("p99.9 %v", p)
	}
	if p := percentileF(nil, 99.9); p != 0 {
		t.Errorf("empty: %v", p)
	}
}

// TestCPUSeconds reads this process's own /proc/<pid>/stat after burning
// some CPU.
func TestCPUSeconds(t *testing.T) {
	x := 0
	for i := range 200_000_000 {
		x += i
	}
	_ = x
	if c := cpuSeconds(os.Getpid()); c <= 0 {
		t.Fatalf("cpu %v s", c)
	}
	if c := cpuSeconds(0); c != 0 {
		t.Fatalf("no process: %v", c)
	}
}
