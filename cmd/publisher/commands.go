package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"

	"github.com/ttcpay/payflow/internal/cardcrypt"
	"github.com/ttcpay/payflow/internal/deadletters"
	"github.com/ttcpay/payflow/internal/intent"
	"github.com/ttcpay/payflow/internal/publish"
	"github.com/ttcpay/payflow/internal/tracing"
)

func cmdPublish(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout io.Writer) error {
	fs, url := flags("publish", "validate intents (JSON, JSON array or JSON lines) and publish them with Nats-Msg-Id = intentId", getenv, stdout)
	file := fs.String("f", "-", "intents file, or - for standard input")
	wait := fs.Bool("wait", false, "wait for each intent's result and print a table")
	timeout := fs.Duration("timeout", 60*time.Second, "with --wait, how long to wait for all results")
	skip := fs.Bool("skip-invalid", false, "publish the valid intents of a file that has bad ones")
	encryptWith := fs.String("encrypt-with", "", "PEM RSA public key (or certificate) to encrypt each card with, as encryptedCard")
	kid := fs.String("kid", "", "key id for --encrypt-with (default: the PEM's kid header)")
	if err := parse(fs, args); err != nil {
		return err
	}
	var encrypt func(*intent.Intent) error
	if *encryptWith != "" {
		b, err := os.ReadFile(*encryptWith)
		if err != nil {
			return withCode(exitError, "%v", err)
		}
		pub, pemKid, err := cardcrypt.ParsePublicKey(b)
		if err != nil {
			return withCode(exitError, "--encrypt-with: %v", err)
		}
		k := cmp.Or(*kid, pemKid)
		if k == "" {
			return withCode(exitError, "--encrypt-with: give --kid (the PEM has no kid header)")
		}
		encrypt = func(in *intent.Intent) error {
			if in.Card == nil {
				return nil
			}
			jwe, err := cardcrypt.Encrypt(pub, k, *in.Card)
			if err != nil {
				return err
			}
			in.Card, in.EncryptedCard = nil, jwe
			return nil
		}
	}
	items, bad, err := readIntents(*file, stdin, stdout)
	if err != nil {
		return err
	}
	if len(items) == 0 {
		return withCode(exitBadInput, "no intents in the input")
	}
	if bad > 0 && !*skip {
		return withCode(exitBadInput, "%d of %d intents are invalid; nothing was published (use --skip-invalid to publish the rest)", bad, len(items))
	}
	nc, js, err := connect(*url)
	if err != nil {
		return err
	}
	defer nc.Close()
	tr, err := tracing.Setup(ctx, getenv, "payflow-publisher")
	if err != nil {
		return withCode(exitError, "%v", err)
	}
	defer tr.Shutdown(context.WithoutCancel(ctx))

	var waiter *publish.Waiter
	if *wait {
		// Results of intents settled earlier are re-emitted within the
		// duplicate window, so look back that far.
		waiter, err = publish.NewWaiter(ctx, js, time.Now().Add(-15*time.Minute))
		if err != nil {
			return withCode(exitError, "%v", err)
		}
		defer waiter.Stop()
	}
	wanted := map[string]bool{}
	var order []string
	for _, it := range items {
		if it.Err != nil {
			continue
		}
		if encrypt != nil && it.Intent.Card != nil {
			if err := encrypt(it.Intent); err != nil {
				return withCode(exitError, "line %d: encrypt: %v", it.Line, err)
			}
			it.Raw, _ = json.Marshal(it.Intent)
		}
		pctx, span := tr.Start(ctx, "payflow.publish", attribute.String("payflow.intent_id", it.Intent.IntentID))
		ack, err := publish.Publish(pctx, js, it.Intent, it.Raw, tr)
		span.End()
		if err != nil {
			return withCode(exitError, "line %d: %v", it.Line, err)
		}
		dup := ""
		if ack.Duplicate {
			dup = " (duplicate: already on the queue)"
		}
		fmt.Fprintf(stdout, "published %s to %s seq %d%s\n", it.Intent.IntentID, ack.Stream, ack.Sequence, dup)
		if !wanted[it.Intent.IntentID] {
			order = append(order, it.Intent.IntentID)
		}
		wanted[it.Intent.IntentID] = true
	}
	if !*wait {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	got := waiter.Wait(wctx, wanted)
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INTENT\tSTATUS\tCYBERSOURCE ID\tAMOUNT\tREASON")
	failed, missing := 0, 0
	for _, id := range order {
		r, ok := got[id]
		if !ok {
			missing++
			fmt.Fprintf(tw, "%s\t(no result after %s)\t\t\t\n", id, *timeout)
			continue
		}
		if !r.Authorized() {
			failed++
		}
		amount := r.AuthorizedAmount
		if amount == "" {
			amount = r.Amount
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s %s\t%s\n", id, r.Status, r.CyberSourceID, amount, r.Currency, r.Reason)
	}
	tw.Flush()
	switch {
	case missing > 0:
		return withCode(exitTimeout, "%d intents have no result after %s", missing, *timeout)
	case failed > 0:
		return withCode(exitFailed, "%d intents did not end authorized", failed)
	}
	return nil
}

func cmdRender(args []string, getenv func(string) string, stdin io.Reader, stdout io.Writer) error {
	fs, _ := flags("render", "print the exact CyberSource request body the worker sends for each intent (card number masked; no network)", getenv, stdout)
	file := fs.String("f", "-", "intents file, or - for standard input")
	solution := fs.String("solution-id", getenv("CYBS_SOLUTION_ID"), "partner solution id (env CYBS_SOLUTION_ID)")
	attempt := fs.Int("attempt", 1, "attempt number (changes the transactionId)")
	if err := parse(fs, args); err != nil {
		return err
	}
	items, bad, err := readIntents(*file, stdin, stdout)
	if err != nil {
		return err
	}
	for _, it := range items {
		if it.Err != nil {
			continue
		}
		req := it.Intent.PaymentRequest(*attempt, *solution)
		if c := req.PaymentInformation.Card; c != nil {
			c.Number = intent.MaskPAN(c.Number)
			if c.SecurityCode != "" {
				c.SecurityCode = "***"
			}
		}
		b, _ := json.MarshalIndent(req, "", "  ")
		fmt.Fprintf(stdout, "%s\n", b)
	}
	if bad > 0 {
		return withCode(exitBadInput, "%d of %d intents are invalid", bad, len(items))
	}
	return nil
}

// readIntents reads an intents file (or standard input) and reports every
// bad intent with its line number on stdout.
func readIntents(file string, stdin io.Reader, stdout io.Writer) ([]publish.Item, int, error) {
	in, err := openInput(file, stdin)
	if err != nil {
		return nil, 0, err
	}
	defer in.Close()
	items, err := publish.Read(in, time.Now())
	if err != nil {
		return nil, 0, withCode(exitError, "read: %v", err)
	}
	bad := 0
	for _, it := range items {
		if it.Err != nil {
			bad++
			fmt.Fprintf(stdout, "line %d: %v\n", it.Line, it.Err)
		}
	}
	return items, bad, nil
}

// dlqFlags are the filter flags shared by dlq list and dlq replay.
type dlqFlags struct {
	fs                           *flag.FlagSet
	url                          *string
	kind, merchant, class, since *string
}

func newDLQFlags(name, summary string, getenv func(string) string, stdout io.Writer) *dlqFlags {
	fs, url := flags(name, summary, getenv, stdout)
	return &dlqFlags{
		fs: fs, url: url,
		kind:     fs.String("kind", "", "intents or callbacks (default both)"),
		merchant: fs.String("merchant", "", "only this merchantId"),
		class:    fs.String("class", "", "only this class: invalid, rejected, exhausted, config, unknown-outcome"),
		since:    fs.String("since", "", "only dead letters since a duration ago (1h) or a time (RFC 3339)"),
	}
}

func (d *dlqFlags) filter() (deadletters.Filter, error) {
	f := deadletters.Filter{Kind: *d.kind, Merchant: *d.merchant, Class: *d.class}
	if *d.since == "" {
		return f, nil
	}
	if dur, err := time.ParseDuration(*d.since); err == nil {
		f.Since = time.Now().Add(-dur)
	} else if t, err := time.Parse(time.RFC3339, *d.since); err == nil {
		f.Since = t
	} else {
		return f, withCode(exitError, "--since %q: want a duration like 1h or an RFC 3339 time", *d.since)
	}
	return f, nil
}

// open parses the flags and connects.
func (d *dlqFlags) open(args []string) (deadletters.Filter, *nats.Conn, jetstream.JetStream, error) {
	if err := parse(d.fs, args); err != nil {
		return deadletters.Filter{}, nil, nil, err
	}
	f, err := d.filter()
	if err != nil {
		return f, nil, nil, err
	}
	nc, js, err := connect(*d.url)
	return f, nc, js, err
}

func cmdDLQList(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	d := newDLQFlags("dlq list", "list dead letters", getenv, stdout)
	f, nc, js, err := d.open(args)
	if err != nil {
		return err
	}
	defer nc.Close()
	entries, err := deadletters.List(ctx, js, f)
	if err != nil {
		return withCode(exitError, "%v", err)
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tKIND\tCLASS\tINTENT\tMERCHANT\tREASON")
	for _, e := range entries {
		reason := e.Reason
		if len(reason) > 100 {
			reason = reason[:100] + "…"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.Time.UTC().Format(time.RFC3339), e.Kind, e.Class, e.IntentID, e.Merchant, reason)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "%d dead letters\n", len(entries))
	return nil
}

func cmdDLQShow(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs, url := flags("dlq show", "show one dead letter: headers and payload, card data masked", getenv, stdout)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return withCode(exitError, "dlq show takes one sequence number")
	}
	seq, err := strconv.ParseUint(fs.Arg(0), 10, 64)
	if err != nil {
		return withCode(exitError, "sequence %q is not a number", fs.Arg(0))
	}
	nc, js, err := connect(*url)
	if err != nil {
		return err
	}
	defer nc.Close()
	e, err := deadletters.Show(ctx, js, seq)
	if err != nil {
		return withCode(exitError, "%v", err)
	}
	fmt.Fprintf(stdout, "sequence: %d\n", e.Seq)
	keys := make([]string, 0, len(e.Header))
	for k := range e.Header {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(stdout, "%s: %s\n", k, strings.Join(e.Header.Values(k), ", "))
	}
	fmt.Fprintf(stdout, "\n%s\n", deadletters.MaskedPayload(e.Data))
	return nil
}

func cmdDLQReplay(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	d := newDLQFlags("dlq replay", "republish dead letters to their original subject, removing each once the republish is acknowledged", getenv, stdout)
	dry := d.fs.Bool("dry-run", false, "only say what would be replayed")
	f, nc, js, err := d.open(args)
	if err != nil {
		return err
	}
	defer nc.Close()
	tty := isTerminal(stdout)
	sum, err := deadletters.Replay(ctx, js, f, *dry, func(done, total int, e deadletters.Entry, err error) {
		if err != nil {
			fmt.Fprintf(stdout, "\nseq %d (%s): %v\n", e.Seq, e.IntentID, err)
		}
		if tty {
			const width = 30
			n := done * width / max(total, 1)
			fmt.Fprintf(stdout, "\r[%s%s] %d/%d", strings.Repeat("#", n), strings.Repeat(" ", width-n), done, total)
			if done == total {
				fmt.Fprintln(stdout)
			}
		}
	})
	if err != nil {
		return withCode(exitError, "%v", err)
	}
	if sum.DryRun {
		fmt.Fprintf(stdout, "dry run: %d dead letters would be replayed\n", sum.Matched)
		return nil
	}
	fmt.Fprintf(stdout, "replayed %d of %d dead letters, %d failed\n", sum.Replayed, sum.Matched, sum.Failed)
	if sum.Failed > 0 {
		return withCode(exitPartial, "%d dead letters could not be replayed", sum.Failed)
	}
	return nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
