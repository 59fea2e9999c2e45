package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelOptions configure a Sentinel set-up. Zero values mean the defaults.
type SentinelOptions struct {
	// MasterName is the name the sentinels monitor. Defaults to "payflow",
	// the deployment's REDIS_MASTER_NAME.
	MasterName string
	// Password is requirepass (and masterauth) of both data nodes; empty
	// means none.
	Password string
	// SentinelPassword is requirepass of the sentinels, as the Bitnami
	// chart sets with auth.sentinel; empty means none.
	SentinelPassword string
	// DownAfter is the sentinels' down-after-milliseconds: how long the
	// primary must be unreachable before it is considered down; a promotion
	// follows about 1.3 s later. Defaults to 3 s: short for tests (the
	// deployment uses 5 s), long enough that a primary stalled by a loaded
	// test machine (a fork for a replica's sync, an fsync) is not failed over
	// by mistake, which 1 s did under go test -race of several packages.
	DownAfter time.Duration
	// FailoverTimeout is the sentinels' failover-timeout. Defaults to 5 s.
	// A sentinel does not start another failover of the same primary within
	// twice this of its last one, so a second kill soon after a first is
	// promoted up to 10 s later.
	FailoverTimeout time.Duration
	// Persist turns the data nodes' append-only file on (fsync always).
	Persist bool
}

// Sentinel defaults.
const (
	SentinelMasterNameDefault      = "payflow"
	SentinelDownAfterDefault       = 3 * time.Second
	SentinelFailoverTimeoutDefault = 5 * time.Second
	sentinelQuorum                 = 2
	sentinelCount                  = 3
	sentinelSetupTimeout           = 30 * time.Second
)

func (o SentinelOptions) withDefaults() SentinelOptions {
	if o.MasterName == "" {
		o.MasterName = SentinelMasterNameDefault
	}
	if o.DownAfter <= 0 {
		o.DownAfter = SentinelDownAfterDefault
	}
	if o.FailoverTimeout <= 0 {
		o.FailoverTimeout = SentinelFailoverTimeoutDefault
	}
	return o
}

// Sentinel is a Redis primary, one replica and three sentinels, every one
// a real redis-server process on a free loopback port (the sentinels run
// with --sentinel), as a production Redis with Sentinel is laid out. The
// primary can be killed with SIGKILL, the promotion of the replica waited
// for, and the old primary brought back as a replica of the new one.
//
// Clients connect as the worker does: REDIS_ADDRS = SentinelAddrs(),
// REDIS_MASTER_NAME = MasterName().
type Sentinel struct {
	opts      SentinelOptions
	nodes     []*Redis // data nodes; which one is primary changes with failovers
	sentinels []*Redis
}

// StartSentinel starts a Sentinel set-up for a test; t.Cleanup stops it.
func StartSentinel(t testing.TB, opts SentinelOptions) *Sentinel {
	t.Helper()
	s, err := NewSentinel(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// NewSentinel starts a Sentinel set-up outside a test (the chaos run),
// keeping its files under dir. It returns once the replica is in sync and
// every sentinel knows the primary, the replica and the other sentinels.
// The caller calls Close.
func NewSentinel(dir string, opts SentinelOptions) (*Sentinel, error) {
	opts = opts.withDefaults()
	for _, p := range []string{opts.Password, opts.SentinelPassword, opts.MasterName} {
		if strings.ContainsAny(p, " \t\r\n\"'\\") {
			return nil, errors.New("sentinel harness: names and passwords must not contain spaces, quotes or backslashes")
		}
	}
	var err error
	// A port taken by someone else between choosing and binding fails a
	// start: try again with fresh ports, as NewCluster does.
	for attempt := range 3 {
		var s *Sentinel
		if s, err = newSentinel(filepath.Join(dir, fmt.Sprintf("try%d", attempt)), opts); err == nil {
			return s, nil
		}
	}
	return nil, err
}

func newSentinel(dir string, opts SentinelOptions) (*Sentinel, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ports, err := freePorts(2 + sentinelCount)
	if err != nil {
		return nil, err
	}
	s := &Sentinel{opts: opts}
	primaryAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	for i := range 2 {
		r := &Redis{port: ports[i], dir: filepath.Join(dir, fmt.Sprintf("node%d", i)), persist: opts.Persist, password: opts.Password}
		r.args = s.dataArgs("")
		if i > 0 {
			r.args = s.dataArgs(primaryAddr)
		}
		if err := os.MkdirAll(r.dir, 0o700); err != nil {
			return nil, err
		}
		if err := r.start(); err != nil {
			s.Close()
			return nil, fmt.Errorf("sentinel harness: data node %d: %w", i, err)
		}
		s.nodes = append(s.nodes, r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), sentinelSetupTimeout)
	defer cancel()
	if err := s.waitReplicaLinked(ctx, s.nodes[1]); err != nil {
		s.Close()
		return nil, err
	}
	for i := range sentinelCount {
		r := &Redis{port: ports[2+i], dir: filepath.Join(dir, fmt.Sprintf("sentinel%d", i)), password: opts.SentinelPassword}
		if err := os.MkdirAll(r.dir, 0o700); err != nil {
			return nil, err
		}
		r.conf = filepath.Join(r.dir, "sentinel.conf")
		if err := os.WriteFile(r.conf, []byte(s.sentinelConf(ports[0])), 0o600); err != nil {
			return nil, err
		}
		if err := r.start(); err != nil {
			s.Close()
			return nil, fmt.Errorf("sentinel harness: sentinel %d: %w", i, err)
		}
		s.sentinels = append(s.sentinels, r)
	}
	if err := s.waitTopology(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// dataArgs are a data node's arguments: its password, and replicaof when
// primary is set.
func (s *Sentinel) dataArgs(primary string) []string {
	// The default 5 s delay before a diskless full sync would slow every
	// start and rejoin.
	args := []string{"--repl-diskless-sync-delay", "0"}
	if s.opts.Password != "" {
		args = append(args, "--requirepass", s.opts.Password, "--masterauth", s.opts.Password)
	}
	if primary != "" {
		host, port, _ := net.SplitHostPort(primary)
		args = append(args, "--replicaof", host, port)
	}
	return args
}

func (s *Sentinel) sentinelConf(primaryPort int) string {
	o := s.opts
	var b strings.Builder
	fmt.Fprintf(&b, "sentinel monitor %s 127.0.0.1 %d %d\n", o.MasterName, primaryPort, sentinelQuorum)
	fmt.Fprintf(&b, "sentinel down-after-milliseconds %s %d\n", o.MasterName, o.DownAfter.Milliseconds())
	fmt.Fprintf(&b, "sentinel failover-timeout %s %d\n", o.MasterName, o.FailoverTimeout.Milliseconds())
	fmt.Fprintf(&b, "sentinel parallel-syncs %s 1\n", o.MasterName)
	if o.Password != "" {
		fmt.Fprintf(&b, "sentinel auth-pass %s %s\n", o.MasterName, o.Password)
	}
	if o.SentinelPassword != "" {
		// Sentinels also authenticate to each other with it.
		fmt.Fprintf(&b, "requirepass %s\n", o.SentinelPassword)
	}
	return b.String()
}

// MasterName is the name the sentinels monitor (REDIS_MASTER_NAME).
func (s *Sentinel) MasterName() string { return s.opts.MasterName }

// SentinelAddrs are the sentinels' host:port addresses (REDIS_ADDRS).
func (s *Sentinel) SentinelAddrs() []string {
	out := make([]string, len(s.sentinels))
	for i, r := range s.sentinels {
		out[i] = r.Addr()
	}
	return out
}

// Node returns data node i (0 or 1): for a test that acts on one node, such
// as delaying a replica. Which node is the primary changes with failovers:
// see Primary.
func (s *Sentinel) Node(i int) *Redis { return s.nodes[i] }

// NodeAddrs are the data nodes' addresses, in node order.
func (s *Sentinel) NodeAddrs() []string {
	return []string{s.nodes[0].Addr(), s.nodes[1].Addr()}
}

func (s *Sentinel) sentinelClient(r *Redis) *redis.SentinelClient {
	return redis.NewSentinelClient(&redis.Options{Addr: r.Addr(), Password: s.opts.SentinelPassword,
		DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second, MaxRetries: -1})
}

func (s *Sentinel) dataClient(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, Password: s.opts.Password,
		DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second, MaxRetries: -1})
}

// Primary returns the primary's address as the sentinels agree on it, and
// the index of its data node.
func (s *Sentinel) Primary(ctx context.Context) (string, int, error) {
	var addrs []string
	for _, sen := range s.sentinels {
		c := s.sentinelClient(sen)
		a, err := c.GetMasterAddrByName(ctx, s.opts.MasterName).Result()
		c.Close()
		if err != nil {
			return "", -1, fmt.Errorf("sentinel %s: %w", sen.Addr(), err)
		}
		addrs = append(addrs, net.JoinHostPort(a[0], a[1]))
	}
	for _, a := range addrs[1:] {
		if a != addrs[0] {
			return "", -1, fmt.Errorf("sentinels disagree on the primary: %v", addrs)
		}
	}
	for i, n := range s.nodes {
		if n.Addr() == addrs[0] {
			return addrs[0], i, nil
		}
	}
	return "", -1, fmt.Errorf("sentinels name %s, which is no data node", addrs[0])
}

// KillPrimary SIGKILLs the current primary's process, as a node loss would,
// and returns its address and node index.
func (s *Sentinel) KillPrimary(ctx context.Context) (string, int, error) {
	addr, i, err := s.Primary(ctx)
	if err != nil {
		return "", -1, err
	}
	s.nodes[i].Stop()
	return addr, i, nil
}

// WaitForPromotion waits until every sentinel names a primary other than
// old and that node answers as a master, and returns its address.
func (s *Sentinel) WaitForPromotion(ctx context.Context, old string) (string, error) {
	var last error
	for {
		addr, _, err := s.Primary(ctx)
		if err == nil && addr == old {
			err = fmt.Errorf("sentinels still name %s", old)
		}
		if err == nil {
			err = s.isMaster(ctx, addr)
		}
		if err == nil {
			return addr, nil
		}
		last = err
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("no promotion: %w (last: %w)", ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *Sentinel) isMaster(ctx context.Context, addr string) error {
	c := s.dataClient(addr)
	defer c.Close()
	role, err := c.Do(ctx, "ROLE").Slice()
	if err != nil {
		return fmt.Errorf("%s: ROLE: %w", addr, err)
	}
	if len(role) == 0 || role[0] != "master" {
		return fmt.Errorf("%s is %v, not master", addr, role)
	}
	return nil
}

// Rejoin starts data node i again, on its port and directory, as a replica
// of the current primary (as the Bitnami chart's start script does: it asks
// the sentinels who the primary is), and waits until it is in sync and the
// sentinels count it as a healthy replica.
func (s *Sentinel) Rejoin(ctx context.Context, i int) error {
	primary, pi, err := s.Primary(ctx)
	if err != nil {
		return err
	}
	if pi == i {
		return fmt.Errorf("node %d is the primary", i)
	}
	n := s.nodes[i]
	n.Stop()
	n.mu.Lock()
	n.args = s.dataArgs(primary)
	n.mu.Unlock()
	var startErr error
	for range 50 {
		if startErr = n.start(); startErr == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if startErr != nil {
		return fmt.Errorf("rejoin node %d: %w", i, startErr)
	}
	if err := s.waitReplicaLinked(ctx, n); err != nil {
		return err
	}
	return s.waitTopology(ctx)
}

// waitReplicaLinked waits until r reports its link to the primary up.
func (s *Sentinel) waitReplicaLinked(ctx context.Context, r *Redis) error {
	c := s.dataClient(r.Addr())
	defer c.Close()
	var last string
	for {
		info, err := c.Info(ctx, "replication").Result()
		if err == nil && strings.Contains(info, "master_link_status:up") {
			return nil
		}
		last = fmt.Sprint(err, " ", info)
		select {
		case <-ctx.Done():
			return fmt.Errorf("replica %s not in sync: %w (last: %s)", r.Addr(), ctx.Err(), strings.TrimSpace(last))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitTopology waits until every sentinel sees the primary up, one replica
// up and the two other sentinels, so that a failover can follow.
func (s *Sentinel) waitTopology(ctx context.Context) error {
	var last error
	for {
		if last = s.topologyReady(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("sentinels not ready: %w (last: %w)", ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *Sentinel) topologyReady(ctx context.Context) error {
	for _, sen := range s.sentinels {
		c := s.sentinelClient(sen)
		m, err := c.Master(ctx, s.opts.MasterName).Result()
		if err != nil {
			c.Close()
			return fmt.Errorf("sentinel %s: %w", sen.Addr(), err)
		}
		if flags := m["flags"]; flags != "master" {
			c.Close()
			return fmt.Errorf("sentinel %s: primary flags %q", sen.Addr(), flags)
		}
		if m["num-other-sentinels"] != strconv.Itoa(sentinelCount-1) {
			c.Close()
			return fmt.Errorf("sentinel %s knows %s other sentinels", sen.Addr(), m["num-other-sentinels"])
		}
		replicas, err := c.Replicas(ctx, s.opts.MasterName).Result()
		c.Close()
		if err != nil {
			return fmt.Errorf("sentinel %s: replicas: %w", sen.Addr(), err)
		}
		healthy := 0
		for _, r := range replicas {
			if r["flags"] == "slave" && r["master-link-status"] == "ok" {
				healthy++
			}
		}
		if healthy < len(s.nodes)-1 {
			return fmt.Errorf("sentinel %s: %d healthy replicas of %d: %v", sen.Addr(), healthy, len(s.nodes)-1, replicas)
		}
	}
	return nil
}

// Close stops every process. Safe to call twice.
func (s *Sentinel) Close() {
	for _, r := range s.sentinels {
		r.Stop()
	}
	for _, r := range s.nodes {
		r.Stop()
	}
}

// Password is the data nodes' requirepass (REDIS_PASSWORD); empty: none.
func (s *Sentinel) Password() string { return s.opts.Password }

// SentinelPassword is the sentinels' requirepass (REDIS_SENTINEL_PASSWORD);
// empty: none.
func (s *Sentinel) SentinelPassword() string { return s.opts.SentinelPassword }
