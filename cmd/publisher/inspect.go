package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/ttcpay/payflow/internal/idempotency"
	"github.com/ttcpay/payflow/internal/inspect"
	"github.com/ttcpay/payflow/internal/redact"
)

// inspectFlags are the flags of status and intent show.
type inspectFlags struct {
	redisURL     *string
	resolveDelay *time.Duration
	scanLimit    *int
	asJSON       *bool
}

func addInspectFlags(fs interface {
	String(string, string, string) *string
	Duration(string, time.Duration, string) *time.Duration
	Int(string, int, string) *int
	Bool(string, bool, string) *bool
}, getenv func(string) string) *inspectFlags {
	rd := inspect.ResolveDelayDefault
	if d, err := time.ParseDuration(getenv("RESOLVE_DELAY")); err == nil && d > 0 {
		rd = d
	}
	return &inspectFlags{
		redisURL:     fs.String("redis-url", getenv("REDIS_URL"), "Redis of the intent records (env REDIS_URL; password REDIS_PASSWORD or REDIS_PASSWORD_FILE); without it only NATS is read"),
		resolveDelay: fs.Duration("resolve-delay", rd, "the workers' RESOLVE_DELAY (env RESOLVE_DELAY), to tell when an unknown outcome is resolved"),
		scanLimit:    fs.Int("scan-limit", inspect.ScanLimitDefault, "read at most this many intent records (status) or waiting callback jobs"),
		asJSON:       fs.Bool("json", false, "print JSON"),
	}
}

// records opens the intent records (nil, nil without a Redis URL).
// inspector connects to NATS (and, with --redis-url, to the records) and
// returns the read side with what it needs to close.
func (f *inspectFlags) inspector(url string, getenv func(string) string) (*inspect.Inspector, jetstream.JetStream, func(), error) {
	nc, js, err := connect(url, getenv)
	if err != nil {
		return nil, nil, nil, err
	}
	rec, closeRec, err := f.records(getenv)
	if err != nil {
		nc.Close()
		return nil, nil, nil, err
	}
	var r inspect.Records
	if rec != nil {
		r = rec
	}
	in := inspect.New(js, r, inspect.Options{ResolveDelay: *f.resolveDelay, ScanLimit: *f.scanLimit})
	return in, js, func() { closeRec(); nc.Close() }, nil
}

func (f *inspectFlags) records(getenv func(string) string) (*idempotency.Store, func(), error) {
	if *f.redisURL == "" {
		return nil, func() {}, nil
	}
	opt, err := redis.ParseURL(*f.redisURL)
	if err != nil {
		return nil, nil, withCode(exitError, "--redis-url %s: not a redis:// URL", redact.URL(*f.redisURL))
	}
	pw := getenv("REDIS_PASSWORD")
	if file := getenv("REDIS_PASSWORD_FILE"); file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, nil, withCode(exitError, "REDIS_PASSWORD_FILE: %v", err)
		}
		pw = strings.TrimSpace(string(b))
	}
	if pw != "" {
		opt.Password = pw
	}
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = 3*time.Second, 10*time.Second, 3*time.Second
	rdb := redis.NewClient(opt)
	return idempotency.New(rdb, idempotency.Options{}), func() { _ = rdb.Close() }, nil
}

func cmdStatus(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs, url := flags("status", "what is waiting: stream and consumer depth, unknown outcomes, callbacks in retry, dead letters, per merchant", getenv, stdout)
	f := addInspectFlags(fs, getenv)
	if err := parse(fs, args); err != nil {
		return err
	}
	in, _, done, err := f.inspector(*url, getenv)
	if err != nil {
		return err
	}
	defer done()
	rep, err := in.Status(ctx)
	if err != nil {
		return withCode(exitError, "NATS %s: %v", redact.URL(*url), err)
	}
	if *f.asJSON {
		return writeJSON(stdout, rep)
	}
	renderStatus(stdout, rep)
	return nil
}

func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return withCode(exitError, "%v", err)
	}
	fmt.Fprintf(w, "%s\n", b)
	return nil
}

func when(t time.Time, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := t.Sub(now).Round(time.Second)
	switch {
	case d > 0:
		return fmt.Sprintf("%s (in %s)", t.UTC().Format(time.RFC3339), d)
	case d < 0:
		return fmt.Sprintf("%s (%s ago)", t.UTC().Format(time.RFC3339), -d)
	}
	return t.UTC().Format(time.RFC3339) + " (now)"
}

func renderStatus(w io.Writer, rep inspect.StatusReport) {
	now := rep.At
	fmt.Fprintf(w, "payflow status at %s\n\n", now.Format(time.RFC3339))
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STREAM\tMESSAGES\tBYTES\tOLDEST")
	for _, s := range rep.Streams {
		oldest := "-"
		if !s.Oldest.IsZero() {
			oldest = s.OldestAge.String() + " ago"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", s.Name, s.Messages, s.Bytes, oldest)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CONSUMER\tNOT DELIVERED\tUNACKED\tREDELIVERED\tOLDEST UNACKED\tIDLE PULLS")
	for _, c := range rep.Consumers {
		oldest := "-"
		if !c.OldestUnacked.IsZero() {
			oldest = c.OldestUnackedAge.String() + " ago"
		}
		fmt.Fprintf(tw, "%s/%s\t%d\t%d\t%d\t%s\t%d\n", c.Stream, c.Name, c.Pending, c.AckPending, c.Redelivered, oldest, c.PullsWaiting)
	}
	tw.Flush()
	fmt.Fprintln(w)
	waiting := func(name string, wi inspect.WaitingIntents) {
		fmt.Fprintf(w, "%s: %d", name, wi.Count)
		if o := wi.Oldest; o != nil {
			fmt.Fprintf(w, "; oldest %s of %s (attempt %d, unknown for %s); next: %s at %s", o.IntentID, orStr(o.MerchantID, "?"), o.Attempt, o.Age, o.Next.What, when(o.Next.At, now))
		}
		fmt.Fprintln(w)
	}
	waiting("unknown outcomes waiting to be resolved", rep.Unknown)
	waiting("unknown outcomes being resolved now", rep.Resolving)
	fmt.Fprintf(w, "TTC callbacks not yet delivered: %d (%d failed at least once)", rep.Callbacks.Count, rep.Callbacks.InRetry)
	if o := rep.Callbacks.Oldest; o != nil {
		fmt.Fprintf(w, "; oldest %s of %s, waiting %s", o.IntentID, o.MerchantID, o.Age)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w)
	total := 0
	for _, d := range rep.DeadLetters {
		total += d.Count
	}
	fmt.Fprintf(w, "dead letters: %d\n", total)
	if total > 0 {
		tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  KIND\tCLASS\tCOUNT\tOLDEST\tOLDEST SEQ")
		for _, d := range rep.DeadLetters {
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\t%d\n", d.Kind, d.Class, d.Count, d.Oldest.Format(time.RFC3339), d.OldestSeq)
		}
		tw.Flush()
	}
	if len(rep.Merchants) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "MERCHANT\tINTENTS WAITING\tUNKNOWN OUTCOMES\tCALLBACKS WAITING\tDEAD LETTERS")
		for _, m := range rep.Merchants {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\n", m.MerchantID, m.Intents, m.UnknownOutcomes, m.Callbacks, m.DeadLetters)
		}
		tw.Flush()
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(w, "note: %s\n", p)
	}
}

func cmdIntent(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "show" {
		return withCode(exitError, "intent needs a subcommand: show ID")
	}
	fs, url := flags("intent show", "one intent's whole story: record, attempts, results, callback, dead letters, ledger, history", getenv, stdout)
	f := addInspectFlags(fs, getenv)
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return withCode(exitError, "intent show takes one intentId")
	}
	in, _, done, err := f.inspector(*url, getenv)
	if err != nil {
		return err
	}
	defer done()
	st, err := in.Intent(ctx, fs.Arg(0))
	if err != nil {
		return withCode(exitError, "%v", err)
	}
	if *f.asJSON {
		return writeJSON(stdout, st)
	}
	renderIntent(stdout, st, time.Now())
	return nil
}

func renderIntent(w io.Writer, st inspect.IntentStory, now time.Time) {
	fmt.Fprintf(w, "intent %s", st.IntentID)
	if st.MerchantID != "" {
		fmt.Fprintf(w, " (merchant %s)", st.MerchantID)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  state:      %s", st.State)
	if st.Attempt > 0 {
		fmt.Fprintf(w, ", attempt %d", st.Attempt)
	}
	fmt.Fprintln(w)
	if st.Worker != "" {
		fmt.Fprintf(w, "  held by:    worker %s until %s\n", st.Worker, when(st.LeaseUntil, now))
	}
	if !st.UnknownSince.IsZero() {
		fmt.Fprintf(w, "  unknown since: %s\n", when(st.UnknownSince, now))
	}
	fmt.Fprintf(w, "  next:       %s", st.Next.What)
	if !st.Next.At.IsZero() {
		fmt.Fprintf(w, " at %s", when(st.Next.At, now))
	}
	fmt.Fprintln(w)
	if o := st.Outcome; o != nil {
		fmt.Fprintf(w, "  outcome:    %s", o.Status)
		if o.Operation != "" {
			fmt.Fprintf(w, " (%s)", o.Operation)
		}
		if o.CyberSourceID != "" {
			fmt.Fprintf(w, ", CyberSource id %s", o.CyberSourceID)
		}
		if a := orStr(o.AuthorizedAmount, o.Amount); a != "" {
			fmt.Fprintf(w, ", %s %s", a, o.Currency)
		}
		if o.Reason != "" {
			fmt.Fprintf(w, ": %s", redact.CardNumbers(o.Reason))
		}
		fmt.Fprintln(w)
	}
	if st.ForgottenIn > 0 {
		fmt.Fprintf(w, "  record kept for another %s\n", st.ForgottenIn)
	}
	fmt.Fprintln(w, "attempts:")
	if len(st.Attempts) == 0 {
		fmt.Fprintln(w, "  none")
	}
	for _, a := range st.Attempts {
		fmt.Fprintf(w, "  #%d transactionId %s: %s\n", a.N, a.TransactionID, a.Outcome)
	}
	fmt.Fprintln(w, "results published:")
	if len(st.Results) == 0 {
		fmt.Fprintln(w, "  none")
	}
	for _, r := range st.Results {
		fmt.Fprintf(w, "  seq %d at %s: %s", r.Seq, r.Time.Format(time.RFC3339), r.Status)
		if r.CyberSourceID != "" {
			fmt.Fprintf(w, " %s", r.CyberSourceID)
		}
		if r.Reason != "" {
			fmt.Fprintf(w, " (%s)", r.Reason)
		}
		fmt.Fprintln(w)
	}
	if cb := st.Callback; cb != nil {
		fmt.Fprintf(w, "TTC callback for %s: ", cb.TransactionID)
		switch {
		case cb.Delivered:
			fmt.Fprint(w, "delivered")
		case cb.Waiting:
			fmt.Fprintf(w, "not delivered yet, waiting since %s", when(cb.WaitingSince, now))
		default:
			fmt.Fprint(w, "not delivered and no job waiting (see the dead letters)")
		}
		fmt.Fprintf(w, "; %d failed deliveries\n", cb.Failures)
		if cb.LastError != "" {
			fmt.Fprintf(w, "  last failure at %s: %s\n", cb.LastAt.Format(time.RFC3339), cb.LastError)
		}
		if !cb.NextRetry.IsZero() {
			fmt.Fprintf(w, "  next retry at %s\n", when(cb.NextRetry, now))
		}
	}
	fmt.Fprintln(w, "dead letters:")
	if len(st.DeadLetters) == 0 {
		fmt.Fprintln(w, "  none")
	}
	for _, l := range st.DeadLetters {
		fmt.Fprintf(w, "  seq %d at %s: %s %s", l.Seq, l.Time.Format(time.RFC3339), l.Kind, l.Class)
		if !l.ReplayedAt.IsZero() {
			fmt.Fprintf(w, ", replayed at %s to %s", l.ReplayedAt.Format(time.RFC3339), l.ReplayedTo)
		} else if l.Reason != "" {
			fmt.Fprintf(w, ": %s", l.Reason)
		}
		fmt.Fprintln(w)
	}
	if l := st.Ledger; l != nil {
		fmt.Fprintf(w, "settlement of payment %s (%s): authorized %s, captured %s, reversed %s, refunded %s", l.PaymentID, l.Currency, l.Authorized, l.Captured, l.Reversed, l.Refunded)
		if l.Voided {
			fmt.Fprint(w, ", voided")
		}
		fmt.Fprintln(w)
		for op, amt := range l.Operations {
			fmt.Fprintf(w, "  operation %s reserved %s\n", op, amt)
		}
	}
	fmt.Fprintln(w, "history:")
	if len(st.Events) == 0 {
		fmt.Fprintln(w, "  none recorded (an intent that went straight through records none)")
	}
	for _, e := range st.Events {
		a := ""
		if e.Attempt > 0 {
			a = fmt.Sprintf(" #%d", e.Attempt)
		}
		fmt.Fprintf(w, "  %s%s %s: %s\n", e.At.Format(time.RFC3339), a, e.Kind, e.Detail)
	}
	for _, p := range st.Problems {
		fmt.Fprintf(w, "note: %s\n", p)
	}
}

func orStr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
