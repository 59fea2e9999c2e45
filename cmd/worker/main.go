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
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) > 0 {
		if len(args) == 1 && (args[0] == "--help" || args[0] == "-help" || args[0] == "-h" || args[0] == "help") {
			return worker.WriteHelp(stdout)
		}
		return fmt.Errorf("unexpected argument %q: the worker is configured by environment variables only (worker --help lists them)", args[0])
	}
	cfg, err := worker.ConfigFromEnv(getenv)
	if err != nil {
		return err
	}
	cfg = cfg.WithDefaults()
	level, err := zerolog.ParseLevel(cfg.LogLevel)
	if err != nil {
		return fmt.Errorf("LOG_LEVEL: %w", err)
	}
	log := zerolog.New(stdout).Level(level).With().Timestamp().Str("service", "payflow-worker").Str("version", version).Logger()
	cfg.Version = version
	w, err := worker.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	return w.Run(ctx)
}
