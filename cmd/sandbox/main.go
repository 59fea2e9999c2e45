// Command sandbox serves a local stand-in for TTC's Payment Gateway and for
// CyberSource, so that the seed's flow, the tests and the demo never reach the
// real hosts. It prints its URLs, the API key and where it wrote its CA
// certificate as shell export lines.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/ttcpay/payflow/internal/sandbox"
)

// version is stamped at build time (scripts/build.sh).
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, nil); err != nil {
		fmt.Fprintln(os.Stderr, "sandbox:", err)
		os.Exit(1)
	}
}

// integratorsFlag collects -integrator name=key[:merchant,merchant...].
type integratorsFlag map[string]sandbox.Integrator

func (f integratorsFlag) String() string { return "" }

func (f integratorsFlag) Set(v string) error {
	name, rest, ok := strings.Cut(v, "=")
	if !ok || name == "" || rest == "" {
		return errors.New("want name=apikey[:merchant1,merchant2]")
	}
	key, merchants, _ := strings.Cut(rest, ":")
	in := sandbox.Integrator{APIKey: key}
	if merchants != "" {
		in.Merchants = strings.Split(merchants, ",")
	}
	f[name] = in
	return nil
}

// run starts the sandbox and blocks until ctx is done. ready, when not nil,
// receives the running server (for tests).
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer, ready chan<- *sandbox.Server) error {
	fs := flag.NewFlagSet("sandbox", flag.ContinueOnError)
	fs.SetOutput(stdout)
	envOr := func(k, d string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return d
	}
	ttcAddr := fs.String("ttc-addr", envOr("SANDBOX_TTC_ADDR", "127.0.0.1:8081"), "TTC gateway and admin listen address (env SANDBOX_TTC_ADDR)")
	cybsAddr := fs.String("cybs-addr", envOr("SANDBOX_CYBS_ADDR", "127.0.0.1:8443"), "CyberSource (TLS) listen address (env SANDBOX_CYBS_ADDR)")
	lifetime := fs.Duration("token-lifetime", 0, "access token lifetime (default 899s; env SANDBOX_TOKEN_LIFETIME)")
	faultsFile := fs.String("faults", envOr("SANDBOX_FAULTS_FILE", ""), "JSON file with the faults in force at start (env SANDBOX_FAULTS_FILE)")
	caOut := fs.String("ca-out", envOr("SANDBOX_CA_OUT", ""), "where to write the CA certificate (default: a temporary directory)")
	seed := fs.Uint64("seed", 0, "seed for the fault dice (0: random)")
	integrators := integratorsFlag{}
	fs.Var(integrators, "integrator", "integrator as name=apikey[:merchant,...] (repeatable; default costco with a random key)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *lifetime == 0 {
		if v := getenv("SANDBOX_TOKEN_LIFETIME"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("SANDBOX_TOKEN_LIFETIME: %w", err)
			}
			*lifetime = d
		}
	}
	cfg := sandbox.Config{Integrators: integrators, TokenLifetime: *lifetime, Seed: *seed}
	if *faultsFile != "" {
		b, err := os.ReadFile(*faultsFile)
		if err != nil {
			return fmt.Errorf("faults: %w", err)
		}
		if cfg.Faults, err = sandbox.ParseFaults(b); err != nil {
			return fmt.Errorf("faults %s: %w", *faultsFile, err)
		}
	}
	srv, err := sandbox.Listen(cfg, *ttcAddr, *cybsAddr)
	if err != nil {
		return err
	}
	defer srv.Close()

	if *caOut == "" {
		dir, err := os.MkdirTemp("", "payflow-sandbox-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		*caOut = filepath.Join(dir, "sandbox-ca.pem")
	}
	if err := os.WriteFile(*caOut, srv.CACertPEM(), 0o644); err != nil {
		return fmt.Errorf("write CA certificate: %w", err)
	}

	fmt.Fprintf(stdout, "# payflow sandbox %s: TTC gateway over http, CyberSource over https with client certificates\n", version)
	fmt.Fprintf(stdout, "#   token:    POST %s/cybersource/token/{integrator}   (x-api-key)\n", srv.TTCURL)
	fmt.Fprintf(stdout, "#   payments: POST %s/pts/v2/payments   (Bearer + --cert/--key from the token response)\n", srv.CybsURL)
	fmt.Fprintf(stdout, "#   callback: POST %s/cybersource/oauth/callback   (x-api-key)\n", srv.TTCURL)
	fmt.Fprintf(stdout, "#   ledger:   GET %s/sandbox/ledger   faults: POST %s/sandbox/faults\n", srv.TTCURL, srv.TTCURL)
	fmt.Fprintf(stdout, "export SANDBOX_TTC_URL=%s\n", srv.TTCURL)
	fmt.Fprintf(stdout, "export SANDBOX_CYBS_URL=%s\n", srv.CybsURL)
	fmt.Fprintf(stdout, "export SANDBOX_CA_FILE=%s\n", *caOut)
	names := make([]string, 0, len(integrators))
	for n := range srv.IntegratorNames() {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(stdout, "export SANDBOX_API_KEY_%s=%s\n", strings.ToUpper(n), srv.APIKey(n))
	}
	if ready != nil {
		ready <- srv
	}
	<-ctx.Done()
	return nil
}
