// Package deadletter is the dead-letter stream's one letter type, written by
// both consumers and read by operators: the original payload (still
// encrypted where it was; a plaintext card sealed or removed and a CVV
// dropped by Scrubber before it is written) with headers that say why, on
// payments.dlq.<kind>.<merchant>. It lists, shows (card data masked) and
// replays letters to their own original subject (CheckReplay); idempotency
// makes a replay safe. The header names are defined here and nowhere else.
package deadletter

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ttcpay/payflow/internal/intent"
	"github.com/ttcpay/payflow/internal/redact"
	"github.com/ttcpay/payflow/internal/streams"
)

// Class says why a message was dead-lettered.
type Class string

// The classes of the design brief.
const (
	ClassInvalid        Class = "invalid"         // the intent is malformed; never charged
	ClassRejected       Class = "rejected"        // CyberSource (400) or TTC (400) refused it
	ClassExhausted      Class = "exhausted"       // the retry budget is spent
	ClassConfig         Class = "config"          // a configuration problem outlived its budget (TTC 403/404, no API key)
	ClassUnknownOutcome Class = "unknown-outcome" // a charge whose outcome could not be settled: needs a person
	ClassConflict       Class = "conflict"        // the intentId belongs to another intent (fingerprint differs); never charged
)

// Classes lists every class.
var Classes = []Class{ClassInvalid, ClassRejected, ClassExhausted, ClassConfig, ClassUnknownOutcome, ClassConflict}

// Kind is what was dead-lettered.
type Kind string

// Kinds.
const (
	KindIntents   Kind = "intents"
	KindCallbacks Kind = "callbacks"
)

// Header names of a dead letter (besides the standard Nats-Msg-Id).
const (
	HeaderClass   = "Payflow-Dlq-Class"
	HeaderReason  = "Payflow-Dlq-Reason"
	HeaderSubject = "Payflow-Dlq-Original-Subject"
	// HeaderDeliveries is how many times JetStream delivered the message
	// before it was dead-lettered (the header keeps its first name).
	HeaderDeliveries = "Payflow-Dlq-Attempts"
	HeaderTime       = "Payflow-Dlq-Time"
	HeaderKind       = "Payflow-Dlq-Kind"
	HeaderIntentID   = "Payflow-Intent-Id"
	HeaderMerchant   = "Payflow-Merchant-Id"
	// HeaderReplayedFrom is set on a replayed message: the dead letter's
	// sequence it came from.
	HeaderReplayedFrom = "Payflow-Replayed-From"
	// HeaderCardRemoved marks a letter whose plaintext card was removed
	// (no dead-letter card key): it holds CardRemovedReason with the
	// card's brand and last four digits. Replay refuses such a letter.
	HeaderCardRemoved = "Payflow-Dlq-Card-Removed"
	// HeaderNoReplay marks a letter a replay must not republish, with the
	// reason (an intent refused for its Nats-Msg-Id: upstream republishes
	// it under its own id, and a replay would charge it a second time).
	HeaderNoReplay = "Payflow-Dlq-No-Replay"
	// HeaderAttempt is the payment attempt whose outcome the letter
	// reports (absent when nothing was claimed).
	HeaderAttempt = "Payflow-Dlq-Attempt"
	// HeaderReplayedAttempt is set on a replayed message: the letter's
	// HeaderAttempt. The worker reopens an intent for a replay only while
	// its record is still ended by that attempt.
	HeaderReplayedAttempt = "Payflow-Replayed-Attempt"
)

// MaxReason caps the reason header.
const MaxReason = 1000

// Letter is one dead letter.
type Letter struct {
	Kind            Kind
	Class           Class
	Reason          string
	OriginalSubject string
	MerchantID      string
	IntentID        string // may be empty (bad JSON)
	Deliveries      uint64 // JetStream deliveries of the message (HeaderDeliveries)
	Data            []byte
	// DedupID makes a re-sent dead letter (after a crash) a duplicate.
	DedupID string
	// CardRemoved, when set, is the HeaderCardRemoved value: the payload's
	// plaintext card was removed (see Scrubber), so the letter cannot be
	// replayed.
	CardRemoved string
	// NoReplay, when set, is the HeaderNoReplay value: why the letter must
	// not be replayed.
	NoReplay string
	// Attempt is the payment attempt whose outcome the letter reports (0:
	// none was claimed).
	Attempt int

	// Set when read back from the stream.
	Seq    uint64
	Time   time.Time // when it was dead-lettered
	Header nats.Header
	// StoredSubject is the subject the letter was read from (List).
	StoredSubject string
}

// Subject is where a letter goes.
func (l *Letter) Subject() string {
	if l.Kind == KindCallbacks {
		return streams.DLQCallbacksPrefix + l.MerchantID
	}
	return streams.DLQIntentsPrefix + l.MerchantID
}

// Msg is the letter as a NATS message, stamped with now.
func (l *Letter) Msg(now time.Time) *nats.Msg {
	reason := l.Reason
	if len(reason) > MaxReason {
		reason = reason[:MaxReason]
	}
	m := nats.NewMsg(l.Subject())
	m.Data = l.Data
	m.Header.Set(HeaderKind, string(l.Kind))
	m.Header.Set(HeaderClass, string(l.Class))
	m.Header.Set(HeaderReason, reason)
	m.Header.Set(HeaderSubject, l.OriginalSubject)
	m.Header.Set(HeaderDeliveries, strconv.FormatUint(l.Deliveries, 10))
	m.Header.Set(HeaderTime, now.UTC().Format(time.RFC3339Nano))
	m.Header.Set(HeaderMerchant, l.MerchantID)
	if l.IntentID != "" {
		m.Header.Set(HeaderIntentID, l.IntentID)
	}
	if l.DedupID != "" {
		m.Header.Set(nats.MsgIdHdr, "dlq:"+l.DedupID)
	}
	if l.CardRemoved != "" {
		m.Header.Set(HeaderCardRemoved, l.CardRemoved)
	}
	if l.NoReplay != "" {
		m.Header.Set(HeaderNoReplay, l.NoReplay)
	}
	if l.Attempt > 0 {
		m.Header.Set(HeaderAttempt, strconv.Itoa(l.Attempt))
	}
	return m
}

// Publisher is the part of JetStream a dead-letter writer needs.
type Publisher interface {
	PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
}

// Publish writes the letter and waits for the stream's ack.
func Publish(ctx context.Context, js Publisher, l Letter, now time.Time) error {
	if _, err := js.PublishMsg(ctx, l.Msg(now)); err != nil {
		return fmt.Errorf("dead letter to %s: %w", l.Subject(), err)
	}
	return nil
}

// FromHeaders reads a letter back from a stored message.
func FromHeaders(seq uint64, h nats.Header, data []byte) Letter {
	l := Letter{
		Kind: Kind(h.Get(HeaderKind)), Class: Class(h.Get(HeaderClass)), Reason: h.Get(HeaderReason),
		IntentID: h.Get(HeaderIntentID), MerchantID: h.Get(HeaderMerchant),
		OriginalSubject: h.Get(HeaderSubject), Data: data, Header: h, Seq: seq,
		CardRemoved: h.Get(HeaderCardRemoved), NoReplay: h.Get(HeaderNoReplay),
	}
	l.Attempt, _ = strconv.Atoi(h.Get(HeaderAttempt))
	l.Deliveries, _ = strconv.ParseUint(h.Get(HeaderDeliveries), 10, 64)
	l.Time, _ = time.Parse(time.RFC3339Nano, h.Get(HeaderTime))
	return l
}

// Filter selects dead letters; zero fields match everything.
type Filter struct {
	Kind     string // intents or callbacks
	Merchant string
	Class    string // one of Classes
	Since    time.Time
	// Seqs, when set, selects only these sequences.
	Seqs []uint64
	// IntentID, when set, selects only this intent's letters.
	IntentID string
}

// ErrBadFilter: a filter names a kind or class that does not exist.
var ErrBadFilter = errors.New("bad filter")

// Validate checks the kind and class against the known ones.
func (f Filter) Validate() error {
	if f.Kind != "" && f.Kind != string(KindIntents) && f.Kind != string(KindCallbacks) {
		return fmt.Errorf("%w: kind %q: want intents or callbacks", ErrBadFilter, f.Kind)
	}
	if f.Class != "" && !slices.Contains(Classes, Class(f.Class)) {
		names := make([]string, len(Classes))
		for i, c := range Classes {
			names[i] = string(c)
		}
		return fmt.Errorf("%w: class %q: want one of %s", ErrBadFilter, f.Class, strings.Join(names, ", "))
	}
	return nil
}

// subjects are the stream subjects the filter reads (never the replay log).
func (f Filter) subjects() []string {
	merchant := "*"
	if f.Merchant != "" {
		merchant = f.Merchant
	}
	if f.Kind != "" {
		return []string{streams.DLQPrefix + f.Kind + "." + merchant}
	}
	return []string{streams.DLQIntentsPrefix + merchant, streams.DLQCallbacksPrefix + merchant}
}

func (f Filter) match(l Letter) bool {
	return (f.Class == "" || string(l.Class) == f.Class) &&
		(f.IntentID == "" || l.IntentID == f.IntentID) &&
		(len(f.Seqs) == 0 || slices.Contains(f.Seqs, l.Seq))
}

// List returns the dead letters matching f, oldest first.
func List(ctx context.Context, js jetstream.JetStream, f Filter) ([]Letter, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	if len(f.Seqs) > 0 {
		return listSeqs(ctx, js, f)
	}
	s, err := js.Stream(ctx, streams.StreamDLQ)
	if err != nil {
		return nil, fmt.Errorf("dead-letter stream: %w", err)
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: f.subjects()}
	if !f.Since.IsZero() {
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		cfg.OptStartTime = &f.Since
	}
	c, err := s.OrderedConsumer(ctx, cfg)
	if err != nil {
		return nil, err
	}
	var out []Letter
	for {
		info := c.CachedInfo()
		if info != nil && info.NumPending == 0 && len(out) > 0 {
			break
		}
		batch, err := c.FetchNoWait(256)
		if err != nil {
			return nil, err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			var seq uint64
			if md, err := m.Metadata(); err == nil {
				seq = md.Sequence.Stream
			}
			l := FromHeaders(seq, m.Headers(), m.Data())
			l.StoredSubject = m.Subject()
			if f.match(l) {
				out = append(out, l)
			}
		}
		if n == 0 {
			break
		}
	}
	return out, nil
}

// listSeqs reads the letters f.Seqs names (in that order); a sequence that
// is not a dead letter of the filter's kind and merchant is an error
// (ErrNoLetter).
func listSeqs(ctx context.Context, js jetstream.JetStream, f Filter) ([]Letter, error) {
	var out []Letter
	for _, seq := range f.Seqs {
		l, err := Show(ctx, js, seq)
		if err != nil {
			return nil, err
		}
		in := false
		for _, subj := range f.subjects() {
			p, m, _ := strings.Cut(strings.TrimPrefix(subj, streams.DLQPrefix), ".")
			lp, lm, _ := strings.Cut(strings.TrimPrefix(l.StoredSubject, streams.DLQPrefix), ".")
			in = in || (p == "*" || p == lp) && (m == "*" || m == lm) && (lp == string(KindIntents) || lp == string(KindCallbacks))
		}
		if !in || !f.match(l) || (!f.Since.IsZero() && l.Time.Before(f.Since)) {
			return nil, fmt.Errorf("%w: %d does not match the filter", ErrNoLetter, seq)
		}
		out = append(out, l)
	}
	return out, nil
}

// ErrNoLetter: no dead letter with that sequence (it may have been
// replayed or purged: see Replays).
var ErrNoLetter = errors.New("no such dead letter")

// Show returns one dead letter by its stream sequence.
func Show(ctx context.Context, js jetstream.JetStream, seq uint64) (Letter, error) {
	s, err := js.Stream(ctx, streams.StreamDLQ)
	if err != nil {
		return Letter{}, fmt.Errorf("dead-letter stream: %w", err)
	}
	raw, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Letter{}, fmt.Errorf("%w: %d", ErrNoLetter, seq)
	}
	if err != nil {
		return Letter{}, fmt.Errorf("dead letter %d: %w", seq, err)
	}
	if strings.HasPrefix(raw.Subject, ReplayedPrefix) {
		return Letter{}, fmt.Errorf("%w: %d is a replay note, not a dead letter", ErrNoLetter, seq)
	}
	l := FromHeaders(raw.Sequence, raw.Header, raw.Data)
	l.StoredSubject = raw.Subject
	return l, nil
}

// Summary of a replay.
type Summary struct {
	Matched, Replayed, Failed int
	DryRun                    bool
	// Letters are the letters matched (all of them, dry run or not).
	Letters []Letter
	// NotesFailed counts replays whose replay note could not be written
	// (dlq show then cannot tell that letter's replay).
	NotesFailed int
}

// ReplayOptions tune ReplayWith.
type ReplayOptions struct {
	// DryRun matches and returns the letters without replaying them.
	DryRun bool
	// Rate limits replays per second (0: no limit).
	Rate float64
	// Now is the clock of the replay notes; defaults to time.Now.
	Now func() time.Time
}

// Replay is ReplayWith with only DryRun set.
func Replay(ctx context.Context, js jetstream.JetStream, f Filter, dryRun bool, progress func(done, total int, l Letter, err error)) (Summary, error) {
	return ReplayWith(ctx, js, f, ReplayOptions{DryRun: dryRun}, progress)
}

// ReplayWith republishes every dead letter matching f to its original
// subject (after CheckReplay), writes its replay note (RecordReplay) and
// deletes it from the dead-letter stream once the republish was
// acknowledged. progress, if set, is called after each one.
func ReplayWith(ctx context.Context, js jetstream.JetStream, f Filter, o ReplayOptions, progress func(done, total int, l Letter, err error)) (Summary, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	letters, err := List(ctx, js, f)
	if err != nil {
		return Summary{}, err
	}
	sum := Summary{Matched: len(letters), DryRun: o.DryRun, Letters: letters}
	if o.DryRun {
		return sum, nil
	}
	s, err := js.Stream(ctx, streams.StreamDLQ)
	if err != nil {
		return sum, err
	}
	var tick *time.Ticker
	if o.Rate > 0 {
		tick = time.NewTicker(time.Duration(float64(time.Second) / o.Rate))
		defer tick.Stop()
	}
	for i, l := range letters {
		if tick != nil && i > 0 {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return sum, ctx.Err()
			}
		}
		noted, err := replayOne(ctx, js, s, l, o.Now)
		if err != nil {
			sum.Failed++
		} else {
			sum.Replayed++
		}
		if !noted && err == nil {
			sum.NotesFailed++
		}
		if progress != nil {
			progress(i+1, len(letters), l, err)
		}
		if ctx.Err() != nil {
			return sum, ctx.Err()
		}
	}
	return sum, nil
}

// Purge deletes the dead letters matching f (all of them with a zero
// filter) and returns those it deleted; on an error, those deleted so far.
func Purge(ctx context.Context, js jetstream.JetStream, f Filter) ([]Letter, error) {
	letters, err := List(ctx, js, f)
	if err != nil {
		return nil, err
	}
	s, err := js.Stream(ctx, streams.StreamDLQ)
	if err != nil {
		return nil, err
	}
	for i, l := range letters {
		if err := s.DeleteMsg(ctx, l.Seq); err != nil {
			return letters[:i], fmt.Errorf("delete dead letter %d: %w", l.Seq, err)
		}
	}
	return letters, nil
}

// ReplayMsgID is the Nats-Msg-Id of a replayed letter: not the intent's own
// id, which JetStream would drop inside the duplicate window; one id per
// dead letter, so that a retried replay of the same letter is still
// deduplicated.
func ReplayMsgID(intentID string, seq uint64) string {
	return intentID + ":replay:" + strconv.FormatUint(seq, 10)
}

// CheckReplay says whether a letter may be replayed: it is not marked
// HeaderCardRemoved (refused with the header's reason, ErrCardRemoved), and
// it goes back where it came from. An intent's letter goes
// only to payments.intents.<m>, a callback job's only to
// payments.callbacks.<m>, where <m> is the letter's merchant (a valid
// merchantId) and the letter is stored on its own kind and merchant's
// dead-letter subject. Anything else (results, dead letters, another
// merchant, a wildcard) is a forged or damaged letter.
func CheckReplay(l Letter) error {
	if l.CardRemoved != "" {
		return removedError{l.CardRemoved}
	}
	if l.NoReplay != "" {
		return fmt.Errorf("%w: %s", ErrNotReplayable, l.NoReplay)
	}
	var prefix string
	switch l.Kind {
	case KindIntents:
		prefix = streams.IntentsPrefix
	case KindCallbacks:
		prefix = streams.CallbacksPrefix
	default:
		return fmt.Errorf("%w: kind %q is neither intents nor callbacks", ErrNotReplayable, redact.Digits(string(l.Kind)))
	}
	merchant, ok := strings.CutPrefix(l.OriginalSubject, prefix)
	switch {
	case l.OriginalSubject == "":
		return fmt.Errorf("%w: no original subject", ErrNotReplayable)
	case !ok:
		return fmt.Errorf("%w: original subject %q is not under %s (a letter of %s)", ErrNotReplayable, redact.Digits(l.OriginalSubject), prefix, l.Kind)
	case !intent.ValidMerchantID(merchant):
		return fmt.Errorf("%w: original subject %q names no merchant", ErrNotReplayable, redact.Digits(l.OriginalSubject))
	case merchant != l.MerchantID:
		return fmt.Errorf("%w: original subject %q is not the letter's merchant %q", ErrNotReplayable, redact.Digits(l.OriginalSubject), redact.Digits(l.MerchantID))
	case l.StoredSubject != "" && l.StoredSubject != l.Subject():
		return fmt.Errorf("%w: the letter is stored on %q, not on its kind and merchant's %q", ErrNotReplayable, redact.Digits(l.StoredSubject), redact.Digits(l.Subject()))
	}
	return nil
}

// ErrNotReplayable is Replay's refusal of a letter whose original subject
// is not its own (see CheckReplay).
var ErrNotReplayable = errors.New("not replayable")

// ReplayMsg is the message a replay of the letter (read back, with its
// Seq) republishes: its payload to its original subject, with
// ReplayMsgID, HeaderReplayedFrom and HeaderReplayedAttempt.
func (l Letter) ReplayMsg() *nats.Msg {
	m := nats.NewMsg(l.OriginalSubject)
	m.Data = l.Data
	if l.IntentID != "" {
		m.Header.Set(nats.MsgIdHdr, ReplayMsgID(l.IntentID, l.Seq))
	}
	m.Header.Set(HeaderReplayedFrom, strconv.FormatUint(l.Seq, 10))
	if l.IntentID != "" {
		// The intent's own id: a replayed letter the worker cannot decode
		// is dead-lettered again under it, not under the replay id.
		m.Header.Set(HeaderIntentID, l.IntentID)
	}
	if l.Attempt > 0 {
		m.Header.Set(HeaderReplayedAttempt, strconv.Itoa(l.Attempt))
	}
	return m
}

// replayOne republishes l, notes the replay and deletes the letter; noted
// says whether the replay note was written (a note that cannot be written
// does not stop the replay: the intent is what matters).
func replayOne(ctx context.Context, js jetstream.JetStream, s jetstream.Stream, l Letter, now func() time.Time) (noted bool, err error) {
	if err := CheckReplay(l); err != nil {
		return false, err
	}
	ack, err := js.PublishMsg(ctx, l.ReplayMsg())
	if err != nil {
		return false, fmt.Errorf("republish: %w", err)
	}
	noted = RecordReplay(ctx, js, l, ack, now()) == nil
	if err := s.DeleteMsg(ctx, l.Seq); err != nil {
		return noted, fmt.Errorf("republished, but the dead letter was not removed: %w", err)
	}
	return noted, nil
}
