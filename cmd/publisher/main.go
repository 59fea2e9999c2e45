// Command publisher is the upstream and operator tool: publish intents,
// render the CyberSource request an intent becomes, inspect and replay dead
// letters, and generate load.
//
// Exit codes: 0 success; 1 usage, connection or I/O error; 2 bad input
// (nothing published), or publish: some intent was already accepted (a
// Duplicate ack: JetStream dropped it); 3 with --wait, some intent did not end authorized
// (declined, invalid, rejected, failed); 4 with --wait, some result did not
// arrive in time; 5 dlq replay: some dead letters could not be replayed;
// 6 with --wait, nothing failed but some intents are still resolving an
// unknown outcome (shown as "resolving (unknown outcome)" with their next
// step; needs REDIS_URL).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ttcpay/payflow/internal/natsconn"
	"github.com/ttcpay/payflow/internal/redact"
)

// Exit codes.
const (
	exitOK       = 0
	exitError    = 1
	exitBadInput = 2
	exitFailed   = 3
	exitTimeout  = 4
	exitPartial  = 5
	// exitResolving: with --wait, no intent failed, but some are still
	// resolving an unknown outcome (their result comes later).
	exitResolving = 6
)

// exitErr carries an exit code.
type exitErr struct {
	code int
	err  error
}

func (e *exitErr) Error() string { return e.err.Error() }
func (e *exitErr) Unwrap() error { return e.err }

func withCode(code int, format string, args ...any) error {
	return &exitErr{code: code, err: fmt.Errorf(format, args...)}
}

// version is stamped at build time (scripts/build.sh).
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout)
	if err == nil {
		return
	}
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(exitOK)
	}
	fmt.Fprintln(os.Stderr, "publisher:", err)
	var ee *exitErr
	if errors.As(err, &ee) {
		os.Exit(ee.code)
	}
	os.Exit(exitError)
}

const usage = `publisher: put payment intents on the queue and look after dead letters.

Usage:
  publisher publish [-f FILE|-] [--wait] [--timeout 60s] [--skip-invalid]
  publisher render  [-f FILE|-] [--solution-id ID]
  publisher status [--json]                      what waits: streams, consumers, unknown outcomes, callbacks, dead letters
  publisher intent show ID [--json]              one intent's story: record, attempts, results, callback, dead letters
  publisher dlq list   [--kind intents|callbacks] [--merchant M] [--class C] [--since 1h|RFC3339] [--seq N]... [--json]
  publisher dlq show   SEQ
  publisher dlq replay [filters] [--seq N]... [--dry-run] [--rate R] [--wait 2m]
  publisher dlq purge  [filters] [--seq N]... [--dry-run] [--yes]
  publisher console [--addr 127.0.0.1:8090]       the operator console in a browser (needs CONSOLE_TOKEN; see README)
  publisher load --count N --rate R [--merchants K] [--decline-ratio X] [--integrator NAME] [--timeout 5m] [--json]

status, intent show and dlq show read the intent records in Redis with --redis-url (default
$REDIS_URL; password REDIS_PASSWORD or REDIS_PASSWORD_FILE).

Every command that talks to NATS takes --nats-url (default $NATS_URL, else nats://127.0.0.1:4222).
Credentials and TLS come from the environment: NATS_USER with NATS_PASSWORD_FILE (or
NATS_PASSWORD), or NATS_CREDS_FILE; NATS_CA_FILE (the CA of the server's certificate; TLS);
NATS_INBOX_PREFIX (the inbox prefix the user may subscribe to, e.g. _INBOX_upstream).
Run "publisher COMMAND --help" for a command's flags.

Exit codes: 0 ok; 1 usage, connection or I/O error; 2 bad input, nothing published, or
(publish) an intent already accepted: JetStream dropped it as a duplicate; 3 (--wait) an intent
did not end authorized; 4 (--wait) a result did not arrive in time;
5 (dlq replay) some dead letters could not be replayed; 6 (--wait, with REDIS_URL) nothing
failed but some intents are resolving an unknown outcome.
`

// run is the whole program; main only maps its error to an exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout io.Writer) error {
	if len(args) > 0 && (args[0] == "version" || args[0] == "--version") {
		fmt.Fprintln(stdout, "publisher", version)
		return nil
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		if len(args) == 0 {
			return withCode(exitError, "no command")
		}
		return nil
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "publish":
		return cmdPublish(ctx, rest, getenv, stdin, stdout)
	case "render":
		return cmdRender(rest, getenv, stdin, stdout)
	case "dlq":
		if len(rest) == 0 {
			return withCode(exitError, "dlq needs a subcommand: list, show, replay or purge")
		}
		switch rest[0] {
		case "list":
			return cmdDLQList(ctx, rest[1:], getenv, stdout)
		case "show":
			return cmdDLQShow(ctx, rest[1:], getenv, stdout)
		case "replay":
			return cmdDLQReplay(ctx, rest[1:], getenv, stdout)
		case "purge":
			return cmdDLQPurge(ctx, rest[1:], getenv, stdin, stdout)
		}
		return withCode(exitError, "unknown dlq subcommand %q (want list, show, replay or purge)", rest[0])
	case "load":
		return cmdLoad(ctx, rest, getenv, stdout)
	case "status":
		return cmdStatus(ctx, rest, getenv, stdout)
	case "intent":
		return cmdIntent(ctx, rest, getenv, stdout)
	case "console":
		return cmdConsole(ctx, rest, getenv, stdout)
	}
	return withCode(exitError, "unknown command %q\n%s", cmd, usage)
}

// flags builds a FlagSet whose usage and errors go to stdout, with the
// NATS connection flag.
func flags(name, summary string, getenv func(string) string, stdout io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.Usage = func() {
		fmt.Fprintf(stdout, "publisher %s: %s\n\nFlags:\n", name, summary)
		fs.PrintDefaults()
	}
	def := getenv("NATS_URL")
	if def == "" {
		def = "nats://127.0.0.1:4222"
	}
	url := fs.String("nats-url", def, "NATS server URL(s), comma-separated (env NATS_URL)")
	return fs, url
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &exitErr{code: exitError, err: err}
	}
	return nil
}

// natsServer names the NATS server a connection talks to (the one it is
// connected to, else the URL it was given), for error messages.
func natsServer(nc *nats.Conn, url string) string {
	if nc != nil {
		if u := nc.ConnectedUrlRedacted(); u != "" {
			return u
		}
	}
	return redact.URL(url)
}

// connect connects with the credentials and TLS trust of the environment
// (natsconn: NATS_CREDS_FILE or NATS_USER + NATS_PASSWORD(_FILE),
// NATS_CA_FILE, NATS_INBOX_PREFIX).
func connect(url string, getenv func(string) string) (*nats.Conn, jetstream.JetStream, error) {
	auth, problems := natsconn.FromEnv(getenv)
	if problems = append(problems, auth.Check(url)...); len(problems) > 0 {
		return nil, nil, withCode(exitError, "%s", strings.Join(problems, "; "))
	}
	nc, err := nats.Connect(url, append(auth.Options(), nats.Name("payflow-publisher"), nats.Timeout(5*time.Second))...)
	if err != nil {
		return nil, nil, withCode(exitError, "NATS %s: %v", redact.URL(url), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, withCode(exitError, "NATS %s: JetStream: %v", natsServer(nc, url), err)
	}
	return nc, js, nil
}

// openInput opens -f FILE, or stdin for "-" or no file.
func openInput(path string, stdin io.Reader) (io.ReadCloser, error) {
	if path == "" || path == "-" {
		return io.NopCloser(stdin), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, withCode(exitError, "%v", err)
	}
	return f, nil
}
