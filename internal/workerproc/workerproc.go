// Package workerproc runs workers (and, for the bench, the sandbox) as
// separate OS processes for the chaos and benchmark programs: the program
// re-executes itself with the argument "__worker" (or "__sandbox"), and that
// child runs a worker configured from its environment (or a sandbox).
package workerproc

import (
	"context"
	"os"
	"os/exec"
	"sync"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/ttcpay/payflow/internal/worker"
)

const childArg = "__worker"

// IsChild reports whether this process was started as a worker or sandbox
// child.
func IsChild() bool {
	return len(os.Args) > 1 && (os.Args[1] == childArg || os.Args[1] == sandboxArg)
}

// RunChild runs the worker (or the sandbox) of a child process until ctx
// ends.
func RunChild(ctx context.Context) error {
	if os.Args[1] == sandboxArg {
		return runSandbox(ctx, os.Getenv, os.Stdout)
	}
	cfg, err := worker.ConfigFromEnv(os.Getenv)
	if err != nil {
		return err
	}
	w, err := worker.New(ctx, cfg, zerolog.New(os.Stdout).With().Timestamp().Logger())
	if err != nil {
		return err
	}
	return w.Run(ctx)
}

// Proc is one worker process that can be killed and started again.
type Proc struct {
	Name    string
	Env     []string // the worker's environment
	LogPath string   // stdout and stderr are appended here

	mu  sync.Mutex
	cmd *exec.Cmd
}

// Start starts (or restarts) the process.
func (p *Proc) Start() error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	f, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(self, childArg)
	cmd.Env = p.Env
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return err
	}
	go func() { _ = cmd.Wait(); f.Close() }()
	p.cmd = cmd
	return nil
}

// Kill sends SIGKILL, as a crash would.
func (p *Proc) Kill() { p.signal(syscall.SIGKILL) }

// Terminate sends SIGTERM (a drain).
func (p *Proc) Terminate() { p.signal(syscall.SIGTERM) }

func (p *Proc) signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(sig)
		p.cmd = nil
	}
}

// Pid is the running process's id (0 when not running).
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}
