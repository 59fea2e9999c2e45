package consume

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// progressMsg counts InProgress calls; the rest of jetstream.Msg is not used.
type progressMsg struct {
	jetstream.Msg
	n atomic.Int64
}

func (m *progressMsg) InProgress() error { m.n.Add(1); return nil }

// TestKeepAlive: InProgress is sent again and again while the work lasts,
// and never after stop.
func TestKeepAlive(t *testing.T) {
	m := &progressMsg{}
	stop := keepAlive(m, 5*time.Millisecond)
	for deadline := time.Now().Add(30 * time.Second); m.n.Load() < 3; {
		if time.Now().After(deadline) {
			t.Fatalf("%d InProgress after 30 s, want at least 3", m.n.Load())
		}
		time.Sleep(time.Millisecond)
	}
	stop()
	after := m.n.Load()
	time.Sleep(50 * time.Millisecond)
	if got := m.n.Load(); got != after {
		t.Fatalf("%d InProgress after stop", got-after)
	}
}
