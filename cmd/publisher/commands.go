package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
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
	"github.com/ttcpay/payflow/internal/deadletter"
	"github.com/ttcpay/payflow/internal/inspect"
	"github.com/ttcpay/payflow/internal/intent"
	"github.com/ttcpay/payflow/internal/payment"
	"github.com/ttcpay/payflow/internal/publish"
	"github.com/ttcpay/payflow/internal/tracing"
)

func cmdPublish(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout io.Writer) error {
	fs, url := flags("publish", "validate intents (JSON, JSON array or JSON lines) and publish them with Nats-Msg-Id = intentId", getenv, stdout)
	file := fs.String("f", "-", "intents file, or - for standard input")
	wait := fs.Bool("wait", false, "wait for each intent's result and print a table")
	timeout := fs.Duration("timeout", 2*time.Minute, "with --wait, how long to wait for all results (more than the workers' RESOLVE_DELAY, so that an unknown outcome can resolve)")
	redisURL := fs.String("redis-url", getenv("REDIS_URL"), "with --wait, the Redis of the intent records (env REDIS_URL): an intent without a result is then shown as resolving an unknown outcome, with its next step, rather than as missing")
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
	nc, js, err := connect(*url, getenv)
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
			return withCode(exitError, "NATS %s: %v", natsServer(nc, *url), err)
		}
		defer waiter.Stop()
	}
	wanted := map[string]bool{}
	var order []string
	var dups []error
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
		var dup *publish.DuplicateError
		switch {
		case errors.As(err, &dup):
			// JetStream dropped it: say so, publish the rest, fail at the end.
			fmt.Fprintf(stdout, "line %d: %v (JetStream dropped it as a duplicate of %s seq %d)\n", it.Line, dup, dup.Stream, dup.Sequence)
			dups = append(dups, dup)
		case err != nil:
			return withCode(exitError, "line %d: NATS %s: %v", it.Line, natsServer(nc, *url), err)
		default:
			fmt.Fprintf(stdout, "published %s to %s seq %d\n", it.Intent.IntentID, ack.Stream, ack.Sequence)
		}
		if !wanted[it.Intent.IntentID] {
			order = append(order, it.Intent.IntentID)
		}
		wanted[it.Intent.IntentID] = true
	}
	if !*wait {
		return duplicatesError(dups)
	}
	wctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	got := waiter.Wait(wctx, wanted)
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INTENT\tSTATUS\tCYBERSOURCE ID\tAMOUNT\tREASON")
	failed, missing, resolving := 0, 0, 0
	var insp *inspect.Inspector
	if len(got) < len(order) && *redisURL != "" {
		f := &inspectFlags{redisURL: redisURL, resolveDelay: new(time.Duration)}
		*f.resolveDelay = inspect.ResolveDelayDefault
		if d, err := time.ParseDuration(getenv("RESOLVE_DELAY")); err == nil && d > 0 {
			*f.resolveDelay = d
		}
		rec, closeRec, err := f.records(getenv)
		if err == nil && rec != nil {
			defer closeRec()
			insp = inspect.New(js, rec, inspect.Options{ResolveDelay: *f.resolveDelay})
		}
	}
	for _, id := range order {
		r, ok := got[id]
		if !ok {
			if insp != nil {
				if st, err := insp.Intent(ctx, id); err == nil && !st.UnknownSince.IsZero() {
					resolving++
					fmt.Fprintf(tw, "%s\tresolving (unknown outcome)\t\t\tnext: %s at %s; follow it with: publisher intent show %s\n", id, st.Next.What, when(st.Next.At, time.Now()), id)
					continue
				}
			}
			missing++
			fmt.Fprintf(tw, "%s\t(no result after %s)\t\t\tpublisher intent show %s (with REDIS_URL) tells where it is\n", id, *timeout, id)
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
	case len(dups) > 0:
		return duplicatesError(dups)
	case missing > 0:
		return withCode(exitTimeout, "%d intents have no result after %s", missing, *timeout)
	case failed > 0:
		return withCode(exitFailed, "%d intents did not end authorized", failed)
	case resolving > 0:
		return withCode(exitResolving, "%d intents are resolving an unknown outcome (not failed: their result follows the timeout reversal or void)", resolving)
	}
	return nil
}

// duplicatesError is the error of a publish some of whose intents were
// dropped as duplicates (nil if none was), naming the first few.
func duplicatesError(dups []error) error {
	if len(dups) == 0 {
		return nil
	}
	const show = 5
	err := errors.Join(dups[:min(len(dups), show)]...)
	if len(dups) > show {
		err = fmt.Errorf("%w\nand %d more", err, len(dups)-show)
	}
	return &exitErr{code: exitBadInput, err: err}
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
		req := payment.PaymentRequest(it.Intent, *attempt, *solution, "")
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

// dlqFlags are the filter flags shared by dlq list, replay and purge.
type dlqFlags struct {
	fs                           *flag.FlagSet
	url                          *string
	kind, merchant, class, since *string
	seqs                         *seqList
	getenv                       func(string) string
}

// seqList is a repeatable --seq.
type seqList []uint64

func (s *seqList) String() string { return fmt.Sprint([]uint64(*s)) }

func (s *seqList) Set(v string) error {
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n == 0 {
		return fmt.Errorf("%q is not a sequence number", v)
	}
	*s = append(*s, n)
	return nil
}

func classNames() string {
	names := make([]string, len(deadletter.Classes))
	for i, c := range deadletter.Classes {
		names[i] = string(c)
	}
	return strings.Join(names, ", ")
}

func newDLQFlags(name, summary string, getenv func(string) string, stdout io.Writer) *dlqFlags {
	fs, url := flags(name, summary, getenv, stdout)
	d := &dlqFlags{
		fs: fs, url: url, getenv: getenv, seqs: &seqList{},
		kind:     fs.String("kind", "", "intents or callbacks (default both)"),
		merchant: fs.String("merchant", "", "only this merchantId"),
		class:    fs.String("class", "", "only this class: "+classNames()),
		since:    fs.String("since", "", "only dead letters since a duration ago (1h) or a time (RFC 3339)"),
	}
	fs.Var(d.seqs, "seq", "only the dead letter with this sequence (repeatable)")
	return d
}

func (d *dlqFlags) filter() (deadletter.Filter, error) {
	f := deadletter.Filter{Kind: *d.kind, Merchant: *d.merchant, Class: *d.class, Seqs: *d.seqs}
	if err := f.Validate(); err != nil {
		return f, withCode(exitError, "%v", err)
	}
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
func (d *dlqFlags) open(args []string) (deadletter.Filter, *nats.Conn, jetstream.JetStream, error) {
	if err := parse(d.fs, args); err != nil {
		return deadletter.Filter{}, nil, nil, err
	}
	if d.fs.NArg() > 0 {
		return deadletter.Filter{}, nil, nil, withCode(exitError, "unexpected argument %q (use --seq N for one letter)", d.fs.Arg(0))
	}
	f, err := d.filter()
	if err != nil {
		return f, nil, nil, err
	}
	nc, js, err := connect(*d.url, d.getenv)
	return f, nc, js, err
}

// letterJSON is a dead letter in dlq list --json (no payload).
type letterJSON struct {
	Seq         uint64    `json:"seq"`
	Time        time.Time `json:"time"`
	Kind        string    `json:"kind"`
	Class       string    `json:"class"`
	IntentID    string    `json:"intentId,omitempty"`
	MerchantID  string    `json:"merchantId"`
	Deliveries  uint64    `json:"deliveries"`
	Attempt     int       `json:"attempt,omitempty"`
	Reason      string    `json:"reason"`
	Subject     string    `json:"originalSubject"`
	NoReplay    string    `json:"noReplay,omitempty"`
	CardRemoved string    `json:"cardRemoved,omitempty"`
}

func toJSON(l deadletter.Letter) letterJSON {
	return letterJSON{Seq: l.Seq, Time: l.Time.UTC(), Kind: string(l.Kind), Class: string(l.Class), IntentID: l.IntentID, MerchantID: l.MerchantID,
		Deliveries: l.Deliveries, Attempt: l.Attempt, Reason: l.Reason, Subject: l.OriginalSubject, NoReplay: l.NoReplay, CardRemoved: l.CardRemoved}
}

// printLetters is the table of dlq list and the dry runs.
func printLetters(w io.Writer, entries []deadletter.Letter) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tKIND\tCLASS\tINTENT\tMERCHANT\tREASON")
	for _, e := range entries {
		reason := e.Reason
		if len(reason) > 100 {
			reason = reason[:100] + "…"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.Time.UTC().Format(time.RFC3339), e.Kind, e.Class, e.IntentID, e.MerchantID, reason)
	}
	tw.Flush()
}

func cmdDLQList(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	d := newDLQFlags("dlq list", "list dead letters", getenv, stdout)
	asJSON := d.fs.Bool("json", false, "print JSON (one array; no payloads)")
	f, nc, js, err := d.open(args)
	if err != nil {
		return err
	}
	defer nc.Close()
	entries, err := deadletter.List(ctx, js, f)
	if err != nil {
		return withCode(exitError, "NATS %s: %v", natsServer(nc, *d.url), err)
	}
	if *asJSON {
		out := make([]letterJSON, len(entries))
		for i, e := range entries {
			out[i] = toJSON(e)
		}
		return writeJSON(stdout, out)
	}
	printLetters(stdout, entries)
	fmt.Fprintf(stdout, "%d dead letters\n", len(entries))
	return nil
}

func cmdDLQShow(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs, url := flags("dlq show", "show one dead letter: headers and payload, card data masked; for a replayed one, when it was replayed and what became of it", getenv, stdout)
	f := addInspectFlags(fs, getenv)
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
	nc, js, err := connect(*url, getenv)
	if err != nil {
		return err
	}
	defer nc.Close()
	e, err := deadletter.Show(ctx, js, seq)
	if errors.Is(err, deadletter.ErrNoLetter) {
		return showReplayed(ctx, js, f, getenv, seq, stdout)
	}
	if err != nil {
		return withCode(exitError, "NATS %s: %v", natsServer(nc, *url), err)
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
	fmt.Fprintf(stdout, "\n%s\n", deadletter.MaskedPayload(e.Data))
	return nil
}

// showReplayed tells what became of a letter that is no longer there.
func showReplayed(ctx context.Context, js jetstream.JetStream, f *inspectFlags, getenv func(string) string, seq uint64, stdout io.Writer) error {
	notes, err := deadletter.Replays(ctx, js, "", seq, "")
	if err != nil {
		return withCode(exitError, "replay notes: %v", err)
	}
	if len(notes) == 0 {
		return withCode(exitError, "dead letter %d: not in the dead-letter stream and never replayed (purged, expired, or never a dead letter)", seq)
	}
	r := notes[len(notes)-1]
	fmt.Fprintf(stdout, "dead letter %d (%s, %s, intent %s of %s, dead-lettered %s) was replayed at %s to %s\n",
		seq, r.Kind, r.Class, r.IntentID, r.MerchantID, r.LetterTime.Format(time.RFC3339), r.At.Format(time.RFC3339), r.To)
	if r.IntentID == "" {
		return nil
	}
	rec, closeRec, err := f.records(getenv)
	if err != nil {
		return err
	}
	defer closeRec()
	var recs inspect.Records
	if rec != nil {
		recs = rec
	}
	st, err := inspect.New(js, recs, inspect.Options{ResolveDelay: *f.resolveDelay}).Intent(ctx, r.IntentID)
	if err != nil {
		return withCode(exitError, "%v", err)
	}
	fmt.Fprintf(stdout, "what became of it: %s\n", outcomeLine(st))
	fmt.Fprintf(stdout, "(publisher intent show %s tells the whole story)\n", r.IntentID)
	return nil
}

// outcomeLine sums an intent's story up in one line.
func outcomeLine(st inspect.IntentStory) string {
	var last *inspect.PublishedResult
	for i := range st.Results {
		last = &st.Results[i]
	}
	switch {
	case st.Outcome != nil && st.State == "ended":
		s := "ended " + st.Outcome.Status
		if st.Outcome.Reason != "" {
			s += ": " + st.Outcome.Reason
		}
		return s
	case st.Known:
		return st.State + "; next: " + st.Next.What
	case last != nil:
		s := "result " + last.Status
		if last.Reason != "" {
			s += ": " + last.Reason
		}
		return s
	}
	return "no record or result yet (not yet processed, or no --redis-url to read the record)"
}

func cmdDLQReplay(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	d := newDLQFlags("dlq replay", "republish dead letters to their original subject, removing each once the republish is acknowledged", getenv, stdout)
	dry := d.fs.Bool("dry-run", false, "only list what would be replayed")
	rate := d.fs.Float64("rate", 0, "replay at most this many letters per second (0: no limit)")
	wait := d.fs.Duration("wait", 0, "after replaying, wait up to this long for each replayed intent's result and print it")
	f, nc, js, err := d.open(args)
	if err != nil {
		return err
	}
	defer nc.Close()
	if *rate < 0 {
		return withCode(exitError, "--rate must be ≥ 0")
	}
	var waiter *publish.Waiter
	if *wait > 0 && !*dry {
		if waiter, err = publish.NewWaiter(ctx, js, time.Time{}); err != nil {
			return withCode(exitError, "NATS %s: %v", natsServer(nc, *d.url), err)
		}
		defer waiter.Stop()
	}
	tty := isTerminal(stdout)
	wanted := map[string]bool{}
	var order []string
	sum, err := deadletter.ReplayWith(ctx, js, f, deadletter.ReplayOptions{DryRun: *dry, Rate: *rate}, func(done, total int, e deadletter.Letter, err error) {
		if err != nil {
			fmt.Fprintf(stdout, "\nseq %d (%s): %v\n", e.Seq, e.IntentID, err)
		} else if e.Kind == deadletter.KindIntents && e.IntentID != "" && !wanted[e.IntentID] {
			wanted[e.IntentID] = true
			order = append(order, e.IntentID)
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
		return withCode(exitError, "NATS %s: %v", natsServer(nc, *d.url), err)
	}
	if sum.DryRun {
		printLetters(stdout, sum.Letters)
		fmt.Fprintf(stdout, "dry run: %d dead letters would be replayed\n", sum.Matched)
		return nil
	}
	fmt.Fprintf(stdout, "replayed %d of %d dead letters, %d failed\n", sum.Replayed, sum.Matched, sum.Failed)
	if sum.NotesFailed > 0 {
		fmt.Fprintf(stdout, "warning: %d replays left no replay note (dlq show will not find them): may this user publish to %s>?\n", sum.NotesFailed, deadletter.ReplayedPrefix)
	}
	if waiter != nil && len(order) > 0 {
		wctx, cancel := context.WithTimeout(ctx, *wait)
		defer cancel()
		got := waiter.Wait(wctx, wanted)
		tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "INTENT\tOUTCOME\tCYBERSOURCE ID\tREASON")
		for _, id := range order {
			r, ok := got[id]
			if !ok {
				fmt.Fprintf(tw, "%s\t(no result after %s)\t\tpublisher intent show %s\n", id, *wait, id)
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", id, r.Status, r.CyberSourceID, r.Reason)
		}
		tw.Flush()
	}
	if sum.Failed > 0 {
		return withCode(exitPartial, "%d dead letters could not be replayed", sum.Failed)
	}
	return nil
}

func cmdDLQPurge(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout io.Writer) error {
	d := newDLQFlags("dlq purge", "delete dead letters for good (with the same filters as list; asks first unless --yes)", getenv, stdout)
	dry := d.fs.Bool("dry-run", false, "only list what would be deleted")
	yes := d.fs.Bool("yes", false, "do not ask for confirmation")
	f, nc, js, err := d.open(args)
	if err != nil {
		return err
	}
	defer nc.Close()
	letters, err := deadletter.List(ctx, js, f)
	if err != nil {
		return withCode(exitError, "NATS %s: %v", natsServer(nc, *d.url), err)
	}
	printLetters(stdout, letters)
	if *dry {
		fmt.Fprintf(stdout, "dry run: %d dead letters would be deleted\n", len(letters))
		return nil
	}
	if len(letters) == 0 {
		fmt.Fprintln(stdout, "no dead letters match: nothing deleted")
		return nil
	}
	if !*yes {
		fmt.Fprintf(stdout, "delete these %d dead letters for good? type yes: ", len(letters))
		line, _ := bufio.NewReader(stdin).ReadString('\n')
		if strings.TrimSpace(line) != "yes" {
			return withCode(exitError, "not confirmed: nothing deleted")
		}
	}
	// Delete exactly what was listed and confirmed, not what matches now.
	seqs := make([]uint64, len(letters))
	for i, l := range letters {
		seqs[i] = l.Seq
	}
	f.Seqs = seqs
	deleted, err := deadletter.Purge(ctx, js, f)
	fmt.Fprintf(stdout, "deleted %d of %d dead letters\n", len(deleted), len(letters))
	if err != nil {
		return withCode(exitPartial, "NATS %s: %v", natsServer(nc, *d.url), err)
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
