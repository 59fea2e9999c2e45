package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/ttcpay/payflow/internal/console"
)

// consoleConfig reads the console's environment: one message per problem.
func consoleConfig(getenv func(string) string) (console.Config, []string) {
	var c console.Config
	var problems []string
	c.Token = getenv("CONSOLE_TOKEN")
	if file := getenv("CONSOLE_TOKEN_FILE"); file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			problems = append(problems, fmt.Sprintf("CONSOLE_TOKEN_FILE: %v", err))
		}
		c.Token = strings.TrimSpace(string(b))
	}
	c.ProxyUserHeader = strings.TrimSpace(getenv("CONSOLE_AUTH_PROXY_HEADER"))
	if c.Token != "" && c.ProxyUserHeader != "" {
		problems = append(problems, "set CONSOLE_TOKEN or CONSOLE_AUTH_PROXY_HEADER, not both")
	}
	if v := getenv("CONSOLE_ALLOW_ACTIONS"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			problems = append(problems, fmt.Sprintf("CONSOLE_ALLOW_ACTIONS=%q: want true or false", v))
		}
		c.AllowActions = b
	}
	return c, problems
}

func cmdConsole(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs, url := flags("console", "the operator console: overview, intent search and dead letters in a browser (CONSOLE_TOKEN or CONSOLE_AUTH_PROXY_HEADER required)", getenv, stdout)
	f := addInspectFlags(fs, getenv)
	addr := fs.String("addr", cmp.Or(getenv("CONSOLE_ADDR"), "127.0.0.1:8090"), "listen address (env CONSOLE_ADDR); loopback unless set otherwise")
	refresh := fs.Duration("refresh", console.RefreshDefault, "how often the overview reloads")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, problems := consoleConfig(getenv)
	cfg.Refresh = *refresh
	if len(problems) > 0 {
		return withCode(exitError, "%s", strings.Join(problems, "; "))
	}
	log := zerolog.New(stdout).With().Timestamp().Str("service", "payflow-console").Str("version", version).Logger()
	in, js, done, err := f.inspector(*url, getenv)
	if err != nil {
		return err
	}
	defer done()
	srv, err := console.New(cfg, in, console.JetStreamLetters{JS: js}, log)
	if err != nil {
		return withCode(exitError, "%v", err)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return withCode(exitError, "console: %v", err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 2 * time.Minute, IdleTimeout: time.Minute}
	mode := "token"
	if cfg.ProxyUserHeader != "" {
		mode = "auth proxy (" + cfg.ProxyUserHeader + ")"
	}
	ev := log.Info()
	if host, _, _ := net.SplitHostPort(ln.Addr().String()); !net.ParseIP(host).IsLoopback() {
		ev = log.Warn().Str("exposed", "the console listens beyond loopback: keep it behind the cluster's network policy or auth proxy")
	}
	ev.Str("addr", ln.Addr().String()).Str("auth", mode).Bool("actions", cfg.AllowActions).Str("nats", natsServer(js.Conn(), *url)).
		Bool("redis", *f.redisURL != "").Msg("console listening on http://" + ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return withCode(exitError, "console: %v", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return withCode(exitError, "console shutdown: %v", err)
	}
	log.Info().Msg("console stopped")
	return nil
}
