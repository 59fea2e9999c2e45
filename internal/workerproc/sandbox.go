package workerproc

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ttcpay/payflow/internal/sandbox"
)

const (
	sandboxArg = "__sandbox"
	// specEnv carries the SandboxSpec (JSON) to the child.
	specEnv = "PAYFLOW_SANDBOX_SPEC"
	// readyPrefix starts the one line the child prints once it listens.
	readyPrefix = "payflow-sandbox-ready "
)

// SandboxSpec configures a sandbox child.
type SandboxSpec struct {
	Integrators map[string]sandbox.Integrator `json:"integrators"`
	Faults      sandbox.Faults                `json:"faults"`
	// CAFile is where the child writes its CA certificate.
	CAFile string `json:"caFile"`
}

// Sandbox is a sandbox running in its own process (so that its TLS server
// does not share the caller's Go runtime), read and steered through Admin.
type Sandbox struct {
	TTCURL, CybsURL string
	Admin           sandbox.Admin

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// StartSandbox starts the sandbox child and waits until it listens. Its
// output goes to logPath.
func StartSandbox(ctx context.Context, spec SandboxSpec, logPath string) (*Sandbox, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	js, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, sandboxArg)
	cmd.Env = append(os.Environ(), specEnv+"="+string(js))
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	s := &Sandbox{cmd: cmd, done: make(chan struct{})}
	lines := make(chan string, 1)
	go func() {
		br := bufio.NewReader(out)
		line, _ := br.ReadString('\n')
		lines <- line
		_, _ = io.Copy(logf, br)
		_ = cmd.Wait()
		logf.Close()
		close(s.done)
	}()
	var line string
	select {
	case line = <-lines:
	case <-time.After(30 * time.Second):
		s.Close()
		return nil, errors.New("sandbox process: not listening after 30 s")
	case <-ctx.Done():
		s.Close()
		return nil, ctx.Err()
	}
	rest, ok := strings.CutPrefix(strings.TrimSpace(line), readyPrefix)
	ttcURL, cybsURL, ok2 := strings.Cut(rest, " ")
	if !ok || !ok2 {
		s.Close()
		return nil, fmt.Errorf("sandbox process: did not start (see %s): %q", logPath, line)
	}
	s.TTCURL, s.CybsURL = ttcURL, cybsURL
	s.Admin = sandbox.Admin{URL: ttcURL}
	return s, nil
}

// Pid is the sandbox process's id (0 once closed).
func (s *Sandbox) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Close stops the sandbox (SIGTERM, then SIGKILL after 5 s) and waits for it.
func (s *Sandbox) Close() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-s.done
	}
}

// runSandbox is the child: it serves a sandbox on two free loopback ports
// until ctx ends, after printing the ready line with both URLs.
func runSandbox(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	var spec SandboxSpec
	if err := json.Unmarshal([]byte(getenv(specEnv)), &spec); err != nil {
		return fmt.Errorf("%s: %w", specEnv, err)
	}
	srv, err := sandbox.Listen(sandbox.Config{Integrators: spec.Integrators, Faults: spec.Faults}, "127.0.0.1:0", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer srv.Close()
	if err := os.WriteFile(spec.CAFile, srv.CACertPEM(), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s%s %s\n", readyPrefix, srv.TTCURL, srv.CybsURL)
	<-ctx.Done()
	return nil
}
