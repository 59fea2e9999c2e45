package publish_test

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ttcpay/payflow/internal/harness"
	"github.com/ttcpay/payflow/internal/intent"
	"github.com/ttcpay/payflow/internal/publish"
	"github.com/ttcpay/payflow/internal/streams"
)

const good = `{"version":1,"intentId":"a-1","integrator":"costco","merchantId":"m","bookingId":"B","reference":"R","amount":"1.00","currency":"USD","capture":true,"card":{"number":"4111111111111111","expirationMonth":"12","expirationYear":"2031"},"billTo":{"firstName":"J","lastName":"D","address1":"1","locality":"x","administrativeArea":"CA","postalCode":"1","country":"US","email":"a@b.c"}}`

var now = time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)

func TestReadFormats(t *testing.T) {
	bad := strings.Replace(good, `"1.00"`, `"1.001"`, 1)
	cases := []struct {
		name, in string
		lines    []int
		errs     int
	}{
		{"JSONLines", good + "\n\n" + bad + "\n" + good + "\n", []int{1, 3, 4}, 1},
		{"Array", "[\n  " + good + ",\n  " + bad + "\n]", []int{2, 3}, 1},
		{"PrettyObjects", "{\n \"version\": 1\n}\n" + good, []int{1, 4}, 1},
		{"BrokenJSON", good + "\n{\"version\":", []int{1, 2}, 1},
		// What the worker refuses is refused here too, wherever it sits.
		{"DuplicateKeyLine", good + "\n" + strings.Replace(good, `"amount":"1.00"`, `"amount":"1.00","amount":"999.00"`, 1) + "\n", []int{1, 2}, 1},
		{"CaseVariantInArray", "[\n  " + good + ",\n  " + strings.Replace(good, `"amount"`, `"Amount"`, 1) + "\n]", []int{2, 3}, 1},
		{"DuplicateKeyPretty", "{\n \"version\": 1,\n \"version\": 1\n}\n" + good, []int{1, 5}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			items, err := publish.Read(strings.NewReader(tc.in), now)
			if err != nil {
				t.Fatal(err)
			}
			var lines []int
			errs := 0
			for _, it := range items {
				lines = append(lines, it.Line)
				if it.Err != nil {
					errs++
				}
			}
			if len(lines) != len(tc.lines) || errs != tc.errs {
				t.Fatalf("lines %v errors %d, want %v and %d", lines, errs, tc.lines, tc.errs)
			}
			for i := range lines {
				if lines[i] != tc.lines[i] {
					t.Fatalf("lines %v, want %v", lines, tc.lines)
				}
			}
		})
	}
}

// TestPublishDuplicateIsAnError: a Duplicate ack means JetStream dropped
// the message (another with the same Nats-Msg-Id is in the stream's
// duplicate window), so Publish reports it as an error naming the intent
// (issue 12 break 3), on a real JetStream.
func TestPublishDuplicateIsAnError(t *testing.T) {
	ctx := context.Background()
	nc, err := nats.Connect(harness.StartNATS(t).URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	if err := streams.Ensure(ctx, js, streams.Config{}); err != nil {
		t.Fatal(err)
	}
	in, err := intent.Decode([]byte(good), now)
	if err != nil {
		t.Fatal(err)
	}
	first, err := publish.Publish(ctx, js, in, []byte(good), nil)
	if err != nil || first.Duplicate {
		t.Fatalf("first publish: %v %+v", err, first)
	}
	other := []byte(strings.Replace(good, `"1.00"`, `"999.00"`, 1)) // same intentId, other body
	ack, err := publish.Publish(ctx, js, in, other, nil)
	var dup *publish.DuplicateError
	if !errors.As(err, &dup) || ack != nil {
		t.Fatalf("duplicate publish: ack %+v, error %v", ack, err)
	}
	if err.Error() != "already accepted: intentId a-1" || dup.IntentID != "a-1" || dup.Sequence != first.Sequence {
		t.Fatalf("%q %+v (first seq %d)", err, dup, first.Sequence)
	}
	s, _ := js.Stream(ctx, streams.StreamIntents)
	if info, _ := s.Info(ctx); info.State.Msgs != 1 {
		t.Fatalf("%d messages in the stream", info.State.Msgs)
	}
}

// FuzzRead: an intents file of any content is read without panicking;
// every item is either a valid intent or carries an error, on a line that
// exists in the input.
func FuzzRead(f *testing.F) {
	f.Add(good + "\n" + good)
	f.Add("[" + good + "]")
	f.Add("{\n}\n[1,2]\n")
	f.Add(strings.Replace(good, `"amount":"1.00"`, `"amount":"1.00","amount":"999.00"`, 1) + "\n" + good)
	f.Add("[" + strings.Replace(good, `"amount"`, `"AMOUNT"`, 1) + "," + good + "]")
	f.Add(good + " x\n")
	f.Add(strings.Replace(good, `"version":1`, `"version":4111111111111111`, 1))
	digits := regexp.MustCompile(`\d{12,}`)
	f.Fuzz(func(t *testing.T, in string) {
		items, err := publish.Read(strings.NewReader(in), now)
		if err != nil {
			return
		}
		maxLine := bytes.Count([]byte(in), []byte("\n")) + 1
		for _, it := range items {
			if it.Err != nil && digits.MatchString(it.Err.Error()) {
				t.Fatalf("error quotes digits: %v", it.Err)
			}
			if (it.Intent == nil) == (it.Err == nil) {
				t.Fatalf("item with intent %v and error %v", it.Intent, it.Err)
			}
			if it.Line < 1 || it.Line > maxLine {
				t.Fatalf("line %d outside 1..%d", it.Line, maxLine)
			}
		}
	})
}
