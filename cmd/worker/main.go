// Command worker runs the payment pipeline's consumers: role "payments"
// charges intents exactly once; role "callbacks" tells TTC. Configuration
// comes from the environment (see the README); SIGTERM drains.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/ttcpay/payflow/internal/worker"
)

// version is stamped at build time (scripts/build.sh).
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

// run loads the configuration, starts the worker and blocks until ctx ends
// and the drain is over.
func run(ctx context.Context, _ []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := worker.LoadConfig(getenv)
	if err != nil {
		return err
	}
	level, err := zerolog.ParseLevel(cfg.LogLevel)
	if err != nil {
		return fmt.Errorf("LOG_LEVEL: %w", err)
	}
	log := zerolog.New(stdout).Level(level).With().Timestamp().Str("service", "payflow-worker").Str("version", version).Logger()
	cfg.Version = version
	w, err := worker.New(ctx, cfg, log, worker.Hooks{})
	if err != nil {
		return err
	}
	return w.Run(ctx)
}
