package workerproc_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ttcpay/payflow/internal/sandbox"
	"github.com/ttcpay/payflow/internal/workerproc"
)

// TestMain lets this test binary be its own sandbox child, as the bench's
// main does.
func TestMain(m *testing.M) {
	if workerproc.IsChild() {
		if err := workerproc.RunChild(context.Background()); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestSandboxProcess(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	spec := workerproc.SandboxSpec{
		Integrators: map[string]sandbox.Integrator{"costco": {APIKey: "k-test"}},
		Faults:      sandbox.Faults{CutAfterChargeRate: 0.25},
		CAFile:      filepath.Join(dir, "ca.pem"),
	}
	sb, err := workerproc.StartSandbox(ctx, spec, filepath.Join(dir, "sandbox.log"))
	if err != nil {
		t.Fatal(err)
	}
	pid := sb.Pid()
	if pid == 0 || pid == os.Getpid() {
		t.Fatalf("sandbox pid %d (ours %d): not a process of its own", pid, os.Getpid())
	}
	b, err := os.ReadFile(spec.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	if blk, _ := pem.Decode(b); blk == nil {
		t.Fatal("CA file holds no PEM block")
	} else if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
		t.Fatalf("CA file: %v", err)
	}

	// The spec's faults crossed to the process; SetFaults replaces them.
	got, err := sb.Admin.Faults(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.CutAfterChargeRate != 0.25 {
		t.Fatalf("faults in the process: %+v", got)
	}
	if err := sb.Admin.SetFaults(ctx, sandbox.Faults{TimeoutAfterChargeRate: 0.5}); err != nil {
		t.Fatal(err)
	}
	if got, err = sb.Admin.Faults(ctx); err != nil || got.TimeoutAfterChargeRate != 0.5 || got.CutAfterChargeRate != 0 {
		t.Fatalf("after SetFaults: %+v, %v", got, err)
	}
	if err := sb.Admin.SetFaults(ctx, sandbox.Faults{CutAfterChargeRate: 2}); err == nil {
		t.Fatal("invalid faults accepted")
	}

	charges, callbacks, err := sb.Admin.Counts(ctx)
	if err != nil || charges != 0 || callbacks != 0 {
		t.Fatalf("counts %d, %d, %v", charges, callbacks, err)
	}
	l, err := sb.Admin.Ledger(ctx)
	if err != nil || len(l.Charges) != 0 || l.TokenRequests == nil {
		t.Fatalf("ledger %+v, %v", l, err)
	}

	sb.Close()
	if sb.Pid() != 0 {
		t.Fatal("pid after Close")
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Fatalf("process %d still runs after Close", pid)
	}
	if _, _, err := sb.Admin.Counts(ctx); err == nil {
		t.Fatal("admin still answers after Close")
	}
}
