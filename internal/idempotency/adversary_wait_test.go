package idempotency_test

// Adversarial review (branch adversary): the WAIT guard on a real primary
// and replica (passes: Redis holds), and the in-memory twin that the
// simulation uses, which does not (fails: the model is weaker than Redis,
// so a simulation run can report a record loss that Redis would refuse).

import (
	"context"
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ttcpay/payflow/internal/harness"
	"github.com/ttcpay/payflow/internal/idempotency"
)

// TestAdversaryDoneServedBeforeReplicated (passes on redis-server 7.0.15):
// with MinReplicas 1, a Finish whose write the stalled replica never
// acknowledged fails with ErrNotReplicated, and so do a retried Finish and
// another pod's Claim on a fresh connection: WAIT on that connection does
// not answer at once. This was the suspicion; Redis refutes it. The twin
// does not behave the same (TestAdversaryMemoryServesUnreplicatedDone).
func TestAdversaryDoneServedBeforeReplicated(t *testing.T) {
	primary := harness.StartRedis(t)
	replicaPort := harness.FreePort(t)
	replica := exec.Command("redis-server", "--port", strconv.Itoa(replicaPort), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--dir", t.TempDir(), "--replicaof", "127.0.0.1", strings.Split(primary.Addr(), ":")[1])
	if err := replica.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = replica.Process.Signal(syscall.SIGCONT)
		_ = replica.Process.Kill()
		_, _ = replica.Process.Wait()
	})
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: primary.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, _ := rdb.Info(ctx, "replication").Result()
		if strings.Contains(info, "connected_slaves:1") && strings.Contains(info, "state=online") {
			// Online is not yet acknowledging: wait until WAIT answers 1.
			if n, _ := rdb.Do(ctx, "WAIT", 1, 200).Int(); n == 1 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica never came online: %s", info)
		}
		time.Sleep(50 * time.Millisecond)
	}
	opts := idempotency.Options{MinReplicas: 1, ReplicaTimeout: 300 * time.Millisecond}
	podA := idempotency.New(rdb, opts)
	c, err := podA.Claim(ctx, "i1", "fp", "owner-a", time.Minute)
	if err != nil || c.State != idempotency.Claimed {
		t.Fatalf("claim with the replica up: %+v %v", c, err)
	}

	// The replica stalls (a network partition, a stopped VM).
	if err := replica.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	out := idempotency.Outcome{Result: []byte(`{"status":"AUTHORIZED"}`)}
	if err := podA.Finish(ctx, c.Attempt, out); !errors.Is(err, idempotency.ErrNotReplicated) {
		t.Fatalf("finish while the replica is stalled: %v; want ErrNotReplicated", err)
	}

	// Another connection: a pooled connection of the same pod under load,
	// or another pod (a redelivery's claim).
	other := redis.NewClient(&redis.Options{Addr: primary.Addr()})
	t.Cleanup(func() { _ = other.Close() })
	podB := idempotency.New(other, opts)
	retryErr := podB.Finish(ctx, c.Attempt, out)
	claim, claimErr := podB.Claim(ctx, "i1", "fp", "owner-b", time.Minute)
	t.Logf("retried Finish on another connection: %v; Claim on it: state %d, err %v", retryErr, claim.State, claimErr)
	if retryErr == nil {
		t.Errorf("a retried Finish succeeded although the replica never acknowledged the done state")
	}
	if claimErr == nil && claim.State == idempotency.Done {
		t.Errorf("a Claim served the unreplicated done state as final (the redelivery re-emits the result and acks)")
	}
}

// TestAdversaryMemoryServesUnreplicatedDone: the simulation's twin of the
// store. A Finish that the replica did not acknowledge fails with
// ErrNotReplicated, but the retried Finish (payment.finish tries three
// times) returns nil, and a Claim answers Done with no error, without
// modelling WAIT: on Redis both fail (TestAdversaryDoneServedBeforeReplicated).
// In the simulation the pod then publishes and acks, the failover rolls the
// record back to "charging", and the record is left with no message
// (failover-with-wait seed 7 under checkAdversary's "no intent is left
// unresolved"): a break of the model, not of the Lua.
func TestAdversaryMemoryServesUnreplicatedDone(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	m := idempotency.NewMemory(func() time.Time { return now }, 0)
	m.MinReplicas = 1
	down := false
	m.ReplicaDown = func(string) bool { return down }
	ctx := context.Background()
	c, err := m.Claim(ctx, "i1", "fp", "owner-a", time.Minute)
	if err != nil || c.State != idempotency.Claimed {
		t.Fatalf("claim: %+v %v", c, err)
	}
	down = true
	out := idempotency.Outcome{Result: []byte(`{"status":"AUTHORIZED"}`)}
	if err := m.Finish(ctx, c.Attempt, out); !errors.Is(err, idempotency.ErrNotReplicated) {
		t.Fatalf("finish: %v; want ErrNotReplicated", err)
	}
	retryErr := m.Finish(ctx, c.Attempt, out)
	claim, claimErr := m.Claim(ctx, "i1", "fp", "owner-b", time.Minute)
	if retryErr == nil {
		t.Errorf("twin: a retried Finish succeeded although the replica never acknowledged the done state (Redis: ErrNotReplicated)")
	}
	if claimErr == nil && claim.State == idempotency.Done {
		t.Errorf("twin: a Claim served the unreplicated done state as final (Redis: ErrNotReplicated)")
	}
}
