package publish_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/ttcpay/payflow/internal/publish"
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

// FuzzRead: an intents file of any content is read without panicking;
// every item is either a valid intent or carries an error, on a line that
// exists in the input.
func FuzzRead(f *testing.F) {
	f.Add(good + "\n" + good)
	f.Add("[" + good + "]")
	f.Add("{\n}\n[1,2]\n")
	f.Fuzz(func(t *testing.T, in string) {
		items, err := publish.Read(strings.NewReader(in), now)
		if err != nil {
			return
		}
		maxLine := bytes.Count([]byte(in), []byte("\n")) + 1
		for _, it := range items {
			if (it.Intent == nil) == (it.Err == nil) {
				t.Fatalf("item with intent %v and error %v", it.Intent, it.Err)
			}
			if it.Line < 1 || it.Line > maxLine {
				t.Fatalf("line %d outside 1..%d", it.Line, maxLine)
			}
		}
	})
}
