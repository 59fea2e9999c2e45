package harness

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATS is an embedded NATS server with JetStream owned by one test.
type NATS struct {
	Server *server.Server
}

// StartNATS starts a fresh single-node NATS server with JetStream on a random
// loopback port, storing into the test's temporary directory.
func StartNATS(t testing.TB) *NATS {
	t.Helper()
	opts := &server.Options{
		ServerName: "single",
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
		JetStream:  true,
		StoreDir:   t.TempDir(),
		NoLog:      true,
		NoSigs:     true,
		MaxPayload: 1 << 20,
	}
	s := startServer(t, opts)
	n := &NATS{Server: s}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return n
}

// URL is the client URL.
func (n *NATS) URL() string { return n.Server.ClientURL() }

func startServer(t testing.TB, opts *server.Options) *server.Server {
	t.Helper()
	s, err := newServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newServer(opts *server.Options) (*server.Server, error) {
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("nats server %s not ready", opts.ServerName)
	}
	return s, nil
}

// NewNATS starts a single JetStream server outside a test, storing in dir.
func NewNATS(dir string) (*NATS, error) {
	s, err := newServer(&server.Options{ServerName: "single", Host: "127.0.0.1", Port: server.RANDOM_PORT,
		JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true, MaxPayload: 1 << 20})
	if err != nil {
		return nil, err
	}
	return &NATS{Server: s}, nil
}

// Close shuts the server down.
func (n *NATS) Close() { n.Server.Shutdown(); n.Server.WaitForShutdown() }

// Cluster is a three-node (or n-node) embedded NATS cluster with JetStream,
// whose nodes can be stopped and restarted on the same ports and store.
type Cluster struct {
	t     testing.TB // nil outside tests
	mu    sync.Mutex
	opts  []*server.Options
	nodes []*server.Server
}

// StartCluster starts an n-node JetStream cluster on free loopback ports.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c, err := NewCluster(t.TempDir(), n)
	if err != nil {
		t.Fatal(err)
	}
	c.t = t
	t.Cleanup(c.Shutdown)
	return c
}

// NewCluster starts an n-node cluster outside a test, storing under dir.
// The caller shuts it down.
func NewCluster(base string, n int) (*Cluster, error) {
	// A port taken by someone else between choosing and binding fails a
	// node's start: try again with fresh ports.
	var err error
	for attempt := range 3 {
		var c *Cluster
		if c, err = newCluster(filepath.Join(base, fmt.Sprintf("try%d", attempt)), n); err == nil {
			return c, nil
		}
	}
	return nil, err
}

func newCluster(base string, n int) (*Cluster, error) {
	c := &Cluster{}
	ports, err := freePorts(2 * n)
	if err != nil {
		return nil, err
	}
	clientPorts, routePorts := ports[:n], ports[n:]
	routes := make([]string, n)
	for i := range n {
		routes[i] = fmt.Sprintf("nats://127.0.0.1:%d", routePorts[i])
	}
	for i := range n {
		c.opts = append(c.opts, &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       clientPorts[i],
			JetStream:  true,
			StoreDir:   filepath.Join(base, fmt.Sprintf("n%d", i+1)),
			NoLog:      true,
			NoSigs:     true,
			MaxPayload: 1 << 20,
			Cluster: server.ClusterOpts{
				Name: "payflow-test",
				Host: "127.0.0.1",
				Port: routePorts[i],
			},
			Routes: server.RoutesFromStr(strings.Join(routes, ",")),
		})
	}
	c.nodes = make([]*server.Server, n)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := server.NewServer(c.opts[i])
			if err != nil {
				errs[i] = err
				return
			}
			go s.Start()
			if !s.ReadyForConnections(15 * time.Second) {
				errs[i] = fmt.Errorf("node %d not ready", i+1)
			}
			c.nodes[i] = s
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			c.Shutdown()
			return nil, fmt.Errorf("cluster: %w", err)
		}
	}
	if err := c.waitForMeta(); err != nil {
		c.Shutdown()
		return nil, err
	}
	return c, nil
}

// URLs is a comma-separated list of every node's client URL.
func (c *Cluster) URLs() string {
	urls := make([]string, len(c.opts))
	for i, o := range c.opts {
		urls[i] = fmt.Sprintf("nats://127.0.0.1:%d", o.Port)
	}
	return strings.Join(urls, ",")
}

// Stop shuts node i (0-based) down.
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.nodes[i]; s != nil {
		s.Shutdown()
		s.WaitForShutdown()
		c.nodes[i] = nil
	}
}

// Restart starts node i again with its ports and store. In a test a
// failure fails the test.
func (c *Cluster) Restart(i int) error {
	c.Stop(i)
	s, err := newServer(c.opts[i])
	if err == nil {
		c.mu.Lock()
		c.nodes[i] = s
		c.mu.Unlock()
		err = c.waitForMeta()
	}
	if err != nil && c.t != nil {
		c.t.Fatal(err)
	}
	return err
}

// Shutdown stops every node.
func (c *Cluster) Shutdown() {
	for i := range c.nodes {
		c.Stop(i)
	}
}

// waitForMeta waits until the cluster is ready for work: the JetStream
// meta group has a leader that sees every running node as a current, online
// peer, every running node's meta state is current, and a stream replicated
// on every running node can be placed (a probe stream is created and
// deleted). A leader alone is not enough: right after a node starts or
// restarts the leader may still count it offline for placement, and an R3
// stream created then fails with "no suitable peers for placement, peer
// offline".
func (c *Cluster) waitForMeta() error {
	deadline := time.Now().Add(30 * time.Second)
	last := "no JetStream meta leader"
	for time.Now().Before(deadline) {
		if last = c.notReady(); last == "" {
			if last = c.probePlacement(); last == "" {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("cluster not ready after 30s: %s", last)
}

// probePlacementStream is created and deleted by probePlacement.
const probePlacementStream = "HARNESS_PLACEMENT_PROBE"

// probePlacement creates a stream with one replica per running node and
// deletes it; it says why that failed ("" when it worked).
func (c *Cluster) probePlacement() string {
	c.mu.Lock()
	var urls []string
	for i, s := range c.nodes {
		if s != nil {
			urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", c.opts[i].Port))
		}
	}
	c.mu.Unlock()
	nc, err := nats.Connect(strings.Join(urls, ","), nats.Timeout(time.Second))
	if err != nil {
		return "probe: " + err.Error()
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return "probe: " + err.Error()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: probePlacementStream, Subjects: []string{"harness.placement.probe"},
		Replicas: len(urls), Storage: jetstream.MemoryStorage}); err != nil {
		return "placement probe: " + err.Error()
	}
	if err := js.DeleteStream(ctx, probePlacementStream); err != nil {
		return "placement probe: delete: " + err.Error()
	}
	return ""
}

// notReady says why the cluster is not ready ("" when it is).
func (c *Cluster) notReady() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var leader *server.Server
	running := 0
	for _, s := range c.nodes {
		if s == nil {
			continue
		}
		running++
		if !s.JetStreamIsCurrent() {
			return s.Name() + " is not current"
		}
		if s.JetStreamIsLeader() {
			leader = s
		}
	}
	if leader == nil {
		return "no JetStream meta leader"
	}
	info, err := leader.Jsz(nil)
	if err != nil || info.Meta == nil {
		return fmt.Sprintf("leader %s: no meta information (%v)", leader.Name(), err)
	}
	current := 1 // the leader
	for _, p := range info.Meta.Replicas {
		if p.Current && !p.Offline {
			current++
		}
	}
	if current < running {
		return fmt.Sprintf("leader %s sees %d of %d running nodes current", leader.Name(), current, running)
	}
	return ""
}
