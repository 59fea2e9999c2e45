// Package harness starts the real servers that integration tests run against:
// an embedded NATS server with JetStream (single node or a three-node cluster)
// and a real redis-server process. Every server is fresh per test, listens on a
// free loopback port, keeps its data in the test's temporary directory and is
// shut down by t.Cleanup.
package harness

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Redis is a redis-server process owned by one test.
type Redis struct {
	t       testing.TB
	port    int
	dir     string
	persist bool
	// password is the server's requirepass: readiness pings send AUTH first.
	password string
	// conf, when set, is a configuration file given first on the command
	// line, and the server runs as a Sentinel (which rewrites that file).
	conf string
	// args are more command-line arguments (replication, requirepass).
	args []string
	// exited is closed when the running server's process has exited.
	exited chan struct{}

	mu  sync.Mutex
	cmd *exec.Cmd
}

// StartRedis starts redis-server on a free loopback port with persistence off.
// It fails the test with a clear message when redis-server is not installed:
// the README's test command installs it.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	return startRedis(t, false)
}

// StartPersistentRedis is StartRedis with an append-only file fsynced on
// every write, so that Stop (a kill) and Restart keep every acknowledged
// write, as a production Redis with AOF does.
func StartPersistentRedis(t testing.TB) *Redis {
	t.Helper()
	return startRedis(t, true)
}

func startRedis(t testing.TB, persist bool) *Redis {
	t.Helper()
	r, err := NewRedis(t.TempDir(), persist)
	if err != nil {
		t.Fatal(err)
	}
	r.t = t
	t.Cleanup(r.Stop)
	return r
}

// NewRedis starts redis-server outside a test (benchmarks, chaos runs),
// keeping its files in dir. The caller stops it.
func NewRedis(dir string, persist bool) (*Redis, error) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, fmt.Errorf("redis-server is not installed: run ./scripts/test.sh, which installs it, or apt-get install redis-server")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	r := &Redis{dir: dir, persist: persist}
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		r.port = port
		if lastErr = r.start(); lastErr == nil {
			return r, nil
		}
	}
	return nil, fmt.Errorf("start redis-server: %w", lastErr)
}

// Addr is host:port of the server.
func (r *Redis) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)) }

// URL is a redis:// URL for the server.
func (r *Redis) URL() string { return "redis://" + r.Addr() + "/0" }

func (r *Redis) start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	logPath := filepath.Join(r.dir, "redis.log")
	var args []string
	if r.conf != "" {
		args = append(args, r.conf, "--sentinel")
	}
	args = append(args,
		"--bind", "127.0.0.1",
		"--port", strconv.Itoa(r.port),
		"--dir", r.dir,
		"--logfile", logPath,
		"--daemonize", "no",
	)
	if r.conf == "" {
		args = append(args, "--save", "")
		if r.persist {
			args = append(args, "--appendonly", "yes", "--appendfsync", "always")
		} else {
			args = append(args, "--appendonly", "no")
		}
	}
	args = append(args, r.args...)
	cmd := exec.Command("redis-server", args...)
	// Its own process group, so that Stop also kills a child it forked
	// (BGSAVE, AOF rewrite), which would otherwise go on writing into a
	// directory the test is removing.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	exited := make(chan struct{})
	go func() { err := cmd.Wait(); close(exited); done <- err }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			b, _ := os.ReadFile(logPath)
			return fmt.Errorf("redis-server exited: %v: %s", err, tail(b, 400))
		default:
		}
		if pingAuth(r.Addr(), r.password) == nil {
			r.cmd, r.exited = cmd, exited
			go func() { <-done }() // reap when it exits later
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	return fmt.Errorf("redis-server on port %d not ready after 10s", r.port)
}

// Stop kills the server (as a crash would). Safe to call twice.
func (r *Redis) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return
	}
	_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL) // the group: the server and its children
	_ = r.cmd.Process.Kill()
	select {
	case <-r.exited:
	case <-time.After(5 * time.Second):
	}
	// Wait until the port is released so that a restart can bind it.
	for range 200 {
		if pingAuth(r.Addr(), r.password) != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.cmd = nil
}

// Restart starts the server again on the same port: empty, unless it was
// started persistent. In a test a failure fails the test.
func (r *Redis) Restart() error {
	r.Stop()
	var err error
	for range 50 {
		if err = r.start(); err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	err = fmt.Errorf("restart redis-server: %w", err)
	if r.t != nil {
		r.t.Fatal(err)
	}
	return err
}

// pingAuth sends AUTH (when password is set) and PING, and wants +PONG.
func pingAuth(addr, password string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	br := bufio.NewReader(c)
	if password != "" {
		auth := fmt.Sprintf("*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n", len(password), password)
		if _, err := c.Write([]byte(auth)); err != nil {
			return err
		}
		line, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		if line != "+OK\r\n" {
			return fmt.Errorf("AUTH refused: %q", strings.TrimSpace(line))
		}
	}
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := br.ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("unexpected reply %q", line)
	}
	return nil
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := freePort()
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	return p
}

// FreePortE is FreePort outside a test.
func FreePortE() (int, error) { return freePort() }

// freePorts returns n distinct free loopback ports: every listener stays
// open until all are chosen, so the OS cannot hand the same port out twice.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// Pause stops the server's process with SIGSTOP: it answers nothing and
// reads nothing until Resume, as a node stalled by its host would be (the
// kernel still accepts what peers send it, into its socket buffers).
func (r *Redis) Pause() error { return r.signal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (r *Redis) Resume() error { return r.signal(syscall.SIGCONT) }

func (r *Redis) signal(sig syscall.Signal) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return fmt.Errorf("redis-server on port %d is not running", r.port)
	}
	return r.cmd.Process.Signal(sig)
}
