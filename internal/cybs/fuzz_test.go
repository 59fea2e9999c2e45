package cybs

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// FuzzErrorFromBody: any answer body CyberSource could send is classified
// without panicking; the class depends on the status alone.
func FuzzErrorFromBody(f *testing.F) {
	for _, b := range []string{
		`{"status":"INVALID_REQUEST","reason":"MISSING_FIELD","message":"m","details":[{"field":"a","reason":"MISSING_FIELD"}]}`,
		`{"response":{"rmsg":{"error":"ACCESS_TOKEN_EXPIRED","error_description":"x"}}}`,
		`{"response":{"rmsg":"Authentication Failed"}}`, `{"response":[1]}`, `<html>`, ``, `null`,
	} {
		f.Add(400, b)
		f.Add(401, b)
		f.Add(502, b)
	}
	f.Add(400, `{"status":"INVALID_REQUEST","reason":"R123456","message":"card 4111111111111111","details":[{"field":"f123456","reason":"x"}]}`)
	f.Fuzz(func(t *testing.T, status int, body string) {
		e := errorFromBody("authorize", status, []byte(body))
		if e.Outcome != classifyStatus(status) {
			t.Fatalf("status %d classified %v, body changed it to %v", status, classifyStatus(status), e.Outcome)
		}
		if len(e.Message) > MessageMax+len("…") {
			t.Fatalf("message not bounded: %d", len(e.Message))
		}
		if s := fmt.Sprint(e.Status, e.Reason, e.Message, e.Details); strings.Contains(s, "123456") {
			t.Fatalf("a digit run is echoed: %s", s)
		}
		_ = e.Error()
	})
}

// FuzzPaymentResponse: a 201 body decodes or fails cleanly, and the outcome
// of any status is one of the classes.
func FuzzPaymentResponse(f *testing.F) {
	f.Add(`{"id":"1","status":"AUTHORIZED","processorInformation":{"networkTransactionId":"1"},"tokenInformation":{"customer":{"id":"c"}}}`)
	f.Add(`{"id":"1","status":"SOMETHING_NEW"}`)
	f.Fuzz(func(t *testing.T, body string) {
		var r PaymentResponse
		if json.Unmarshal([]byte(body), &r) != nil {
			return
		}
		switch PaymentOutcome(r.Status) {
		case OutcomeApproved, OutcomeDeclined, OutcomeUnknown:
		default:
			t.Fatalf("status %q has no class", r.Status)
		}
		_, _, _ = r.NetworkTransactionID(), r.CardType(), strings.ToUpper(r.Reason())
		_ = r.HoldsAuthorization()
	})
}
