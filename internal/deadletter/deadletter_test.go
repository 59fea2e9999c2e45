package deadletter_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ttcpay/payflow/internal/deadletter"
	"github.com/ttcpay/payflow/internal/harness"
	"github.com/ttcpay/payflow/internal/streams"
)

const pan, cvv = "4111111111111111", "737"

// TestMaskedPayloadEverySpelling: `dlq show` never prints a card number or
// a CVV, whatever spelling, escape or truncation the stored payload has
// (letters written before payloads were scrubbed, or by an older worker).
func TestMaskedPayloadEverySpelling(t *testing.T) {
	cases := map[string]string{
		"Canonical":         `{"card":{"number":"4111111111111111","expirationMonth":"12","expirationYear":"2031","securityCode":"737"}}`,
		"CaseVariants":      `{"Card":{"Number":"4111111111111111","SecurityCode":"737"}}`,
		"UpperCase":         `{"CARD":{"NUMBER":"4111111111111111","SECURITYCODE":"737"}}`,
		"LongS":             "{\"card\":{\"number\":\"4111111111111111\",\"\u017fecurityCode\":\"737\"}}",
		"EscapedName":       `{"card":{"number":"4111111111111111","securityCod\u0065":"737"}}`,
		"EscapedDigits":     `{"card":{"number":"\u0034111111111111111","securityCode":"737"}}`,
		"DuplicateCVV":      `{"card":{"number":"4111111111111111","securityCode":"000","securityCode":"737"}}`,
		"CVVAsNumber":       `{"card":{"number":"4111111111111111","securityCode":737}}`,
		"OtherCVVNames":     `{"card":{"number":"4111111111111111","cvv":"737","CVV2":"737","cvc":"737","security_code":"737"}}`,
		"Truncated":         `{"intentId":"x","card":{"number":"4111111111111111","securityCode":"737"`,
		"TruncatedInNumber": `{"intentId":"x","card":{"number":"4111111111111111`,
		"TruncatedInCVV":    `{"card":{"number":"4111111111111111","securityCode":"737`,
		"TruncatedEscape":   `{"card":{"number":"\u0034111111111111111`,
		"VersionNumber":     `{"version":4111111111111111,"intentId":"x"}`,
		"Spaced":            `{"card":{"number":"4111 1111 1111 1111","securityCode":"737"}}`,
		"Dashed":            `{"note":"4111-1111-1111-1111"}`,
		"InName":            `{"4111111111111111":"x"}`,
		"NotJSON":           `card 4111111111111111 cvv 737`,
		"Array":             `[{"card":{"number":"4111111111111111","securityCode":"737"}}]`,
		"InvalidUTF8":       "{\"card\":{\"number\":\"4111111111111111\",\"securityCode\":\"737\"},\"x\":\"\xff\"}",
		"TrailingData":      `{"card":{"number":"5555555555554444"}} {"card":{"number":"4111111111111111","securityCode":"737"}}`,
	}
	for name, payload := range cases {
		t.Run(name, func(t *testing.T) {
			out := deadletter.MaskedPayload([]byte(payload))
			if strings.Contains(out, pan) || strings.Contains(out, "5555555555554444") || strings.Contains(strings.ReplaceAll(out, " ", ""), "41111111") ||
				strings.Contains(out, "1111 1111") || strings.Contains(out, "1111-1111") {
				t.Errorf("card number shown:\n%s", out)
			}
			if strings.Contains(out, cvv) {
				t.Errorf("CVV shown:\n%s", out)
			}
			if !strings.Contains(out, "1111") && !strings.Contains(out, "4444") && name != "TruncatedEscape" {
				t.Errorf("the last four digits are not kept:\n%s", out)
			}
		})
	}
}

// TestRawTextJoinsEscapedSeparators: in raw text (a truncated or broken
// payload), a card number whose groups are joined by JSON escapes of
// separators (\u0020, \/, \t, or a mix with plain ones) is masked as
// one: the escape is a separator, not the end of the run.
func TestRawTextJoinsEscapedSeparators(t *testing.T) {
	for name, payload := range map[string]string{
		"EscapedSpaces":  `{"card":{"number":"4111\u00201111\u00201111\u00201111`,
		"UpperU":         `{"card":{"number":"4111\U00201111\U00201111\U00201111`,
		"EscapedSlashes": `{"card":{"number":"4111\/1111\/1111\/1111`,
		"EscapedTabs":    `{"card":{"number":"4111\t1111\t1111\t1111`,
		"EscapedNBSP":    `{"card":{"number":"4111\u00a01111\u00A01111\u00a01111`,
		"Mixed":          `{"card":{"number":"4111 \u002d 1111 \u002D 1111 - 1111`,
		"EscapedDigits":  `{"card":{"number":"\u0034111\u00201111\u00201111\u00201111`,
		"NotJSON":        `card 4111\u00201111\u00201111\u00201111 cvv 737`,
	} {
		t.Run(name, func(t *testing.T) {
			out := deadletter.MaskedPayload([]byte(payload))
			if strings.Contains(out, "4111") || strings.Contains(out, "1111\\u0020") || strings.Contains(out, cvv) {
				t.Errorf("card number shown:\n%s", out)
			}
			if !strings.Contains(out, "****1111") {
				t.Errorf("not masked as one number with its last four:\n%s", out)
			}
		})
	}
	// A list whose items are separated by an escaped comma is no card.
	if out := deadletter.MaskedPayload([]byte(`{"ids":"1004\u002c1005\u002c1006\u002c1007`)); !strings.Contains(out, "1004") {
		t.Errorf("a list was masked: %s", out)
	}
}

// TestReplayOnlyToItsOwnSubject: a dead letter is replayed only to an
// original subject under payments.intents. (an intent's letter) or
// payments.callbacks. (a callback job's) whose merchant token is the
// letter's merchant; anything else is refused and stays in the dead-letter
// stream. A forged `config` letter cannot put a callback job on
// PAYMENT_CALLBACKS, nor anything on results or dead letters.
func TestReplayOnlyToItsOwnSubject(t *testing.T) {
	n := harness.StartNATS(t)
	nc, err := nats.Connect(n.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := streams.Ensure(ctx, js, streams.Config{}); err != nil {
		t.Fatal(err)
	}
	forge := func(kind deadletter.Kind, merchant, original, intentID string) {
		t.Helper()
		l := deadletter.Letter{Kind: kind, Class: deadletter.ClassConfig, Reason: "forged", OriginalSubject: original,
			MerchantID: merchant, IntentID: intentID, Deliveries: 1, Data: []byte(`{"intentId":"` + intentID + `"}`)}
		if err := deadletter.Publish(ctx, js, l, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	// Refused.
	forge(deadletter.KindIntents, "m1", streams.Callbacks("m1"), "f-intent-to-callbacks")
	forge(deadletter.KindIntents, "m1", streams.Results("m1"), "f-results")
	forge(deadletter.KindIntents, "m1", streams.DLQIntentsPrefix+"m1", "f-dlq")
	forge(deadletter.KindIntents, "m1", streams.Intents("m2"), "f-other-merchant")
	forge(deadletter.KindIntents, "m1", streams.Intents("m1")+".x", "f-extra-token")
	forge(deadletter.KindIntents, "m1", "", "f-empty")
	forge(deadletter.KindCallbacks, "m1", streams.Intents("m1"), "f-callback-to-intents")
	forge(deadletter.KindIntents, streams.Unroutable, streams.IntentsPrefix+"*", "f-wildcard")
	refused := 8
	// Accepted.
	forge(deadletter.KindIntents, "m1", streams.Intents("m1"), "ok-intent")
	forge(deadletter.KindCallbacks, "m1", streams.Callbacks("m1"), "ok-callback")

	var errs []string
	sum, err := deadletter.Replay(ctx, js, deadletter.Filter{Class: string(deadletter.ClassConfig)}, false, func(_, _ int, l deadletter.Letter, err error) {
		if err != nil {
			errs = append(errs, l.IntentID+": "+err.Error())
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("refusals:\n%s", strings.Join(errs, "\n"))
	if sum.Replayed != 2 || sum.Failed != refused {
		t.Fatalf("replayed %d, failed %d; want 2 replayed and %d refused", sum.Replayed, sum.Failed, refused)
	}
	for stream, want := range map[string]uint64{streams.StreamIntents: 1, streams.StreamCallbacks: 1, streams.StreamResults: 0, streams.StreamDLQ: uint64(refused) + 2} { // the refused letters and the 2 replay notes
		s, err := js.Stream(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		info, _ := s.Info(ctx)
		if info.State.Msgs != want {
			t.Errorf("%s holds %d messages, want %d", stream, info.State.Msgs, want)
		}
	}
	notes, err := deadletter.Replays(ctx, js, "m1", 0, "")
	if err != nil || len(notes) != 2 || notes[0].IntentID != "ok-intent" || notes[0].At.IsZero() || notes[0].To == "" {
		t.Fatalf("replay notes %+v, %v", notes, err)
	}
	if left, err := deadletter.List(ctx, js, deadletter.Filter{}); err != nil || len(left) != refused {
		t.Fatalf("List after the replay: %d letters (%v), want %d (replay notes are not letters)", len(left), err, refused)
	}
}
