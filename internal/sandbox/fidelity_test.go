package sandbox_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ttcpay/payflow/internal/sandbox"
)

// These tests read the ledger and set the faults through the admin routes,
// as the other tools do, with the test's own reading of the JSON names.

type jsonCharge struct {
	ID              string `json:"id"`
	TransactionID   string `json:"transactionId"`
	Reference       string `json:"reference"`
	MerchantID      string `json:"merchantId"`
	Status          string `json:"status"`
	Amount          string `json:"amount"`
	CapturedAmount  string `json:"capturedAmount"`
	ReversedAmount  string `json:"reversedAmount"`
	VoidedAmount    string `json:"voidedAmount"`
	RefundedAmount  string `json:"refundedAmount"`
	Reversed        bool   `json:"reversed"`
	Voided          bool   `json:"voided"`
	Settled         bool   `json:"settled"`
	Live            bool   `json:"live"`
	Answered        string `json:"answered"`
	Held            bool   `json:"held"`
	MissedByTimeout bool   `json:"missedByTimeout"`
}

type jsonFollowUp struct {
	ID            string `json:"id"`
	Kind          string `json:"kind"`
	PaymentID     string `json:"paymentId"`
	MerchantID    string `json:"merchantId"`
	TransactionID string `json:"transactionId"`
	Amount        string `json:"amount"`
	Voided        bool   `json:"voided"`
	Answered      string `json:"answered"`
}

type jsonTimeout struct {
	Kind          string `json:"kind"`
	MerchantID    string `json:"merchantId"`
	TransactionID string `json:"transactionId"`
	Found         bool   `json:"found"`
	InFlight      bool   `json:"inFlight"`
	Status        string `json:"status"`
}

type jsonDuplicate struct {
	Endpoint      string `json:"endpoint"`
	MerchantID    string `json:"merchantId"`
	TransactionID string `json:"transactionId"`
}

type jsonCross struct {
	Endpoint        string `json:"endpoint"`
	MerchantID      string `json:"merchantId"`
	OwnerMerchantID string `json:"ownerMerchantId"`
	PaymentID       string `json:"paymentId"`
	TransactionID   string `json:"transactionId"`
}

type jsonInFlight struct {
	MerchantID    string `json:"merchantId"`
	TransactionID string `json:"transactionId"`
}

type jsonLedger struct {
	Charges           []jsonCharge    `json:"charges"`
	FollowUps         []jsonFollowUp  `json:"followUps"`
	TimeoutReversals  []jsonTimeout   `json:"timeoutReversals"`
	DuplicateRequests []jsonDuplicate `json:"duplicateRequests"`
	CrossMerchant     []jsonCross     `json:"crossMerchant"`
	InFlight          []jsonInFlight  `json:"inFlight"`
}

func readLedger(t *testing.T, srv *sandbox.Server) jsonLedger {
	t.Helper()
	resp, err := http.Get(srv.TTCURL + "/sandbox/ledger")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var l jsonLedger
	if err := json.NewDecoder(resp.Body).Decode(&l); err != nil {
		t.Fatal(err)
	}
	return l
}

func (l jsonLedger) charge(t *testing.T, txn string) jsonCharge {
	t.Helper()
	for _, c := range l.Charges {
		if c.TransactionID == txn {
			return c
		}
	}
	t.Fatalf("no charge with transactionId %s in %+v", txn, l.Charges)
	return jsonCharge{}
}

func setFaults(t *testing.T, srv *sandbox.Server, body string) {
	t.Helper()
	st, b := post(t, http.DefaultClient, srv.TTCURL+"/sandbox/faults", nil, body)
	if st != 200 {
		t.Fatalf("faults %s: %d %s", body, st, b)
	}
}

func sessionFor(t *testing.T, srv *sandbox.Server, merchant string) *session {
	t.Helper()
	tr := token(t, srv, "costco", apiKey, merchant)
	return &session{srv: srv, client: mtlsClient(t, srv, pair(t, tr)), bearer: map[string]string{"Authorization": "Bearer " + tr.AccessToken}}
}

// clock is a settable clock for the settlement tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

const (
	amount10  = `{"orderInformation":{"amountDetails":{"totalAmount":"10.00","currency":"USD"}}}`
	reversal  = `{"reversalInformation":{"amountDetails":{"totalAmount":"10.00","currency":"USD"},"reason":"r"}}`
	voidBody  = `{"clientReferenceInformation":{"code":"v"}}`
	badJSON   = `{"clientReferenceInformation":`
	usd10     = `"orderInformation":{"amountDetails":{"totalAmount":"10.00","currency":"USD"}}`
	usd10Rev  = `"reversalInformation":{"amountDetails":{"totalAmount":"10.00","currency":"USD"},"reason":"timeout"}`
	refDollar = `"clientReferenceInformation":{"code":"x","transactionId":"`
)

func withTxn(txn, rest string) string {
	if rest == "" {
		return `{` + refDollar + txn + `"}}`
	}
	return `{` + refDollar + txn + `"},` + rest + `}`
}

func timeoutReversal(txn string) string { return withTxn(txn, usd10Rev) }
func timeoutVoid(txn string) string     { return withTxn(txn, "") }

// TestChargedThen502: the amount triggers 2001.00 and 2002.00 record a live
// charge, then answer 502 with their reason.
func TestChargedThen502(t *testing.T) {
	srv := start(t, sandbox.Config{})
	s := newSession(t, srv)
	for _, tc := range []struct{ amount, reason, txn string }{
		{"2001.00", "SERVER_TIMEOUT", "late-1"},
		{"2002.00", "SERVICE_TIMEOUT", "late-2"},
	} {
		t.Run(tc.amount, func(t *testing.T) {
			st, m := s.pay(t, payment("4111111111111111", tc.amount, tc.txn, false))
			if st != 502 || m["status"] != "SERVER_ERROR" || m["reason"] != tc.reason {
				t.Fatalf("got %d %v, want 502 SERVER_ERROR/%s", st, m, tc.reason)
			}
			if _, ok := m["id"]; ok {
				t.Fatalf("a 502 carries no id: %v", m)
			}
			c := readLedger(t, srv).charge(t, tc.txn)
			if !c.Live || c.Status != "AUTHORIZED" || c.Answered != "502" {
				t.Fatalf("charge behind the 502: %+v", c)
			}
		})
	}
}

// TestTimeoutRequestsAreScopedToMerchant: a timeout reversal or void sent by
// merchant B for a transactionId of merchant A is answered as for an unknown
// transaction, leaves A's payments alone, and is flagged in the ledger.
func TestTimeoutRequestsAreScopedToMerchant(t *testing.T) {
	srv := start(t, sandbox.Config{})
	a := sessionFor(t, srv, "merchant_a")
	b := sessionFor(t, srv, "merchant_b")
	if st, m := a.pay(t, payment("4111111111111111", "10.00", "a-auth", false)); st != 201 {
		t.Fatalf("auth %d %v", st, m)
	}
	if st, m := a.pay(t, payment("4111111111111111", "10.00", "a-sale", true)); st != 201 {
		t.Fatalf("sale %d %v", st, m)
	}
	st, m := a.pay(t, payment("4111111111111111", "10.00", "a-auth2", false))
	if st != 201 {
		t.Fatalf("auth %d %v", st, m)
	}
	if st, m := a.call(t, "/pts/v2/payments/"+m["id"].(string)+"/captures", withTxn("a-cap", usd10)); st != 201 {
		t.Fatalf("capture %d %v", st, m)
	}

	for _, tc := range []struct{ name, path, body, details string }{
		{"TimeoutReversalOfAuth", "/pts/v2/reversals", timeoutReversal("a-auth"), "reversalAmountDetails"},
		{"TimeoutVoidOfSale", "/pts/v2/voids", timeoutVoid("a-sale"), "voidAmountDetails"},
		{"TimeoutVoidOfCapture", "/pts/v2/voids", timeoutVoid("a-cap"), "voidAmountDetails"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, m := b.call(t, tc.path, tc.body)
			if st != 201 {
				t.Fatalf("merchant B: %d %v, want the 201 for an unknown original", st, m)
			}
			d, _ := m[tc.details].(map[string]any)
			pi, _ := m["processorInformation"].(map[string]any)
			if d["originalTransactionAmount"] == nil || pi["responseCode"] == nil {
				t.Fatalf("merchant B got an answer about A's transaction: %v", m)
			}
		})
	}
	l := readLedger(t, srv)
	for _, txn := range []string{"a-auth", "a-sale", "a-auth2"} {
		if c := l.charge(t, txn); !c.Live || c.Reversed || c.Voided {
			t.Fatalf("A's %s touched by B: %+v", txn, c)
		}
	}
	if c := l.charge(t, "a-auth2"); c.CapturedAmount != "10.00" {
		t.Fatalf("A's capture voided by B: %+v", c)
	}
	for _, tr := range l.TimeoutReversals {
		if tr.Found {
			t.Fatalf("B's timeout request found A's transaction: %+v", tr)
		}
	}
	if len(l.CrossMerchant) != 3 {
		t.Fatalf("cross-merchant requests %+v, want 3", l.CrossMerchant)
	}
	for _, x := range l.CrossMerchant {
		if x.MerchantID != "merchant_b" || x.OwnerMerchantID != "merchant_a" || x.TransactionID == "" {
			t.Fatalf("cross-merchant record %+v", x)
		}
	}
	// A's own transactionIds are not spent by B's requests.
	if st, m := a.call(t, "/pts/v2/reversals", timeoutReversal("a-auth")); st != 201 || m["status"] != "REVERSED" {
		t.Fatalf("A's own timeout reversal: %d %v", st, m)
	}
	if st, m := a.call(t, "/pts/v2/voids", timeoutVoid("a-sale")); st != 201 || m["status"] != "VOIDED" {
		t.Fatalf("A's own timeout void: %d %v", st, m)
	}
	// transactionIds are per merchant: B may use one that A used.
	if st, m := b.pay(t, payment("4111111111111111", "10.00", "a-auth2", false)); st != 201 {
		t.Fatalf("B's own payment with a transactionId A used: %d %v", st, m)
	}
}

// TestFollowUpOfAnotherMerchant: B naming A's payment id is refused as an
// unknown payment, with a reason of the endpoint's documented set, changes
// nothing, and is flagged.
func TestFollowUpOfAnotherMerchant(t *testing.T) {
	srv := start(t, sandbox.Config{})
	a := sessionFor(t, srv, "merchant_a")
	b := sessionFor(t, srv, "merchant_b")
	_, m := a.pay(t, payment("4111111111111111", "10.00", "a-sale", true))
	sale := m["id"].(string)
	_, m = a.pay(t, payment("4111111111111111", "10.00", "a-auth", false))
	auth := m["id"].(string)
	for _, tc := range []struct{ op, id, body string }{
		{"captures", auth, amount10}, {"reversals", auth, reversal}, {"voids", sale, voidBody}, {"refunds", sale, amount10},
	} {
		st, m := b.call(t, "/pts/v2/payments/"+tc.id+"/"+tc.op, tc.body)
		if st != 400 || !slices.Contains(documented[tc.op], m["reason"].(string)) {
			t.Errorf("B's %s on A's payment: %d %v", tc.op, st, m)
		}
	}
	l := readLedger(t, srv)
	if c := l.charge(t, "a-sale"); !c.Live || c.Voided || c.RefundedAmount != "" {
		t.Fatalf("A's sale touched: %+v", c)
	}
	if c := l.charge(t, "a-auth"); !c.Live || c.Reversed || c.CapturedAmount != "" {
		t.Fatalf("A's auth touched: %+v", c)
	}
	if len(l.CrossMerchant) != 4 || len(l.FollowUps) != 0 {
		t.Fatalf("cross-merchant %+v follow-ups %+v", l.CrossMerchant, l.FollowUps)
	}
}

// documented is each endpoint's 400 reason enum, from CyberSource's REST SDK
// models (PtsV2Payments*Post400Response).
var documented = map[string][]string{
	"payments":        {"MISSING_FIELD", "INVALID_DATA", "DUPLICATE_REQUEST", "INVALID_CARD", "CARD_TYPE_NOT_ACCEPTED", "INVALID_MERCHANT_CONFIGURATION", "PROCESSOR_UNAVAILABLE", "INVALID_AMOUNT", "INVALID_CARD_TYPE", "INVALID_PAYMENT_ID", "DEBIT_CARD_USEAGE_EXCEEDD_LIMIT"},
	"captures":        {"MISSING_FIELD", "INVALID_DATA", "DUPLICATE_REQUEST", "INVALID_MERCHANT_CONFIGURATION", "EXCEEDS_AUTH_AMOUNT", "AUTH_ALREADY_REVERSED", "TRANSACTION_ALREADY_SETTLED", "INVALID_AMOUNT", "MISSING_AUTH", "TRANSACTION_ALREADY_REVERSED_OR_SETTLED"},
	"reversals":       {"MISSING_FIELD", "INVALID_DATA", "DUPLICATE_REQUEST", "INVALID_MERCHANT_CONFIGURATION", "PROCESSOR_UNAVAILABLE", "AUTH_ALREADY_REVERSED", "TRANSACTION_ALREADY_SETTLED", "INVALID_AMOUNT", "MISSING_AUTH", "TRANSACTION_ALREADY_REVERSED_OR_SETTLED"},
	"voids":           {"MISSING_FIELD", "INVALID_DATA", "DUPLICATE_REQUEST", "INVALID_MERCHANT_CONFIGURATION", "NOT_VOIDABLE", "NOT_SUPPORTED"},
	"refunds":         {"MISSING_FIELD", "INVALID_DATA", "DUPLICATE_REQUEST", "INVALID_CARD", "INVALID_MERCHANT_CONFIGURATION", "INVALID_AMOUNT", "CAPTURE_ALREADY_VOIDED", "ACCOUNT_NOT_ALLOWED_CREDIT"},
	"timeoutReversal": nil, // same as reversals
	"timeoutVoid":     nil, // same as voids
}

func init() {
	documented["timeoutReversal"] = documented["reversals"]
	documented["timeoutVoid"] = documented["voids"]
}

// TestRefusalsUseDocumentedReasons drives every refusal the sandbox makes
// and checks each answer against its endpoint's documented reasons, and the
// specific reason where CyberSource's spec names one.
func TestRefusalsUseDocumentedReasons(t *testing.T) {
	srv := start(t, sandbox.Config{})
	s := newSession(t, srv)
	pay := func(card, amount, txn string, capture bool) string {
		t.Helper()
		st, m := s.pay(t, payment(card, amount, txn, capture))
		if st != 201 {
			t.Fatalf("payment %s: %d %v", txn, st, m)
		}
		return m["id"].(string)
	}
	declined := pay("4000000000000002", "10.00", "r-declined", false)
	auth := pay("4111111111111111", "10.00", "r-auth", false)
	reversed := pay("4111111111111111", "10.00", "r-reversed", false)
	if st, m := s.call(t, "/pts/v2/payments/"+reversed+"/reversals", reversal); st != 201 {
		t.Fatalf("reversal %d %v", st, m)
	}
	voided := pay("4111111111111111", "10.00", "r-voided", true)
	if st, m := s.call(t, "/pts/v2/payments/"+voided+"/voids", voidBody); st != 201 {
		t.Fatalf("void %d %v", st, m)
	}
	tvoided := pay("4111111111111111", "10.00", "r-tvoided", true)
	if st, m := s.call(t, "/pts/v2/voids", timeoutVoid("r-tvoided")); st != 201 {
		t.Fatalf("timeout void %d %v", st, m)
	}
	refunded := pay("4111111111111111", "10.00", "r-refunded", true)
	if st, m := s.call(t, "/pts/v2/payments/"+refunded+"/refunds", withTxn("r-refund", usd10)); st != 201 {
		t.Fatalf("refund %d %v", st, m)
	}
	sale := pay("4111111111111111", "10.00", "r-sale", true)
	if st, m := s.call(t, "/pts/v2/reversals", timeoutReversal("r-spent")); st != 201 {
		t.Fatalf("timeout reversal %d %v", st, m)
	}
	p := func(id, op string) string { return "/pts/v2/payments/" + id + "/" + op }

	cases := []struct {
		name, endpoint, path, body, want string // want "" = any documented reason
	}{
		{"PaymentBadJSON", "payments", "/pts/v2/payments", badJSON, "INVALID_DATA"},
		{"PaymentDuplicate", "payments", "/pts/v2/payments", payment("4111111111111111", "10.00", "r-auth", false), "DUPLICATE_REQUEST"},
		{"PaymentSpentByTimeoutReversal", "payments", "/pts/v2/payments", payment("4111111111111111", "10.00", "r-spent", false), "DUPLICATE_REQUEST"},
		{"PaymentAmountTrigger", "payments", "/pts/v2/payments", payment("4111111111111111", "4000.00", "r-4000", false), "INVALID_AMOUNT"},

		{"CaptureBadJSON", "captures", p(auth, "captures"), badJSON, "INVALID_DATA"},
		{"CaptureUnknownID", "captures", p("123", "captures"), amount10, ""},
		{"CaptureDeclined", "captures", p(declined, "captures"), amount10, ""},
		{"CaptureReversed", "captures", p(reversed, "captures"), amount10, ""},
		{"CaptureMissingAmount", "captures", p(auth, "captures"), `{}`, "MISSING_FIELD"},
		{"CaptureBadAmount", "captures", p(auth, "captures"), `{"orderInformation":{"amountDetails":{"totalAmount":"x","currency":"USD"}}}`, ""},
		{"CaptureOverAuth", "captures", p(auth, "captures"), `{"orderInformation":{"amountDetails":{"totalAmount":"11.00","currency":"USD"}}}`, "EXCEEDS_AUTH_AMOUNT"},
		{"CaptureDuplicate", "captures", p(auth, "captures"), withTxn("r-auth", usd10), "DUPLICATE_REQUEST"},

		{"ReversalBadJSON", "reversals", p(auth, "reversals"), badJSON, "INVALID_DATA"},
		{"ReversalUnknownID", "reversals", p("123", "reversals"), reversal, ""},
		{"ReversalDeclined", "reversals", p(declined, "reversals"), reversal, ""},
		{"ReversalReversed", "reversals", p(reversed, "reversals"), reversal, "AUTH_ALREADY_REVERSED"},
		{"ReversalOfSale", "reversals", p(sale, "reversals"), reversal, ""},
		{"ReversalMissingAmount", "reversals", p(auth, "reversals"), `{}`, "MISSING_FIELD"},
		{"ReversalOverAuth", "reversals", p(auth, "reversals"), `{"reversalInformation":{"amountDetails":{"totalAmount":"11.00"}}}`, "INVALID_AMOUNT"},
		{"ReversalDuplicate", "reversals", p(auth, "reversals"), withTxn("r-sale", usd10Rev), "DUPLICATE_REQUEST"},

		{"VoidBadJSON", "voids", p(sale, "voids"), badJSON, "INVALID_DATA"},
		{"VoidUnknownID", "voids", p("123", "voids"), voidBody, ""},
		{"VoidDeclined", "voids", p(declined, "voids"), voidBody, ""},
		{"VoidOfAuthorization", "voids", p(auth, "voids"), voidBody, ""},
		{"VoidVoided", "voids", p(voided, "voids"), voidBody, "NOT_VOIDABLE"},
		{"VoidTimeoutVoided", "voids", p(tvoided, "voids"), voidBody, "NOT_VOIDABLE"},
		{"VoidRefunded", "voids", p(refunded, "voids"), voidBody, ""},
		{"VoidDuplicate", "voids", p(sale, "voids"), withTxn("r-auth", ""), "DUPLICATE_REQUEST"},

		{"RefundBadJSON", "refunds", p(sale, "refunds"), badJSON, "INVALID_DATA"},
		{"RefundUnknownID", "refunds", p("123", "refunds"), amount10, ""},
		{"RefundDeclined", "refunds", p(declined, "refunds"), amount10, ""},
		{"RefundOfAuthorization", "refunds", p(auth, "refunds"), amount10, ""},
		{"RefundVoided", "refunds", p(voided, "refunds"), amount10, "CAPTURE_ALREADY_VOIDED"},
		{"RefundTimeoutVoided", "refunds", p(tvoided, "refunds"), amount10, "CAPTURE_ALREADY_VOIDED"},
		{"RefundMissingAmount", "refunds", p(sale, "refunds"), `{}`, "MISSING_FIELD"},
		{"RefundOverCapture", "refunds", p(sale, "refunds"), `{"orderInformation":{"amountDetails":{"totalAmount":"10.01","currency":"USD"}}}`, "INVALID_AMOUNT"},
		{"RefundDuplicate", "refunds", p(sale, "refunds"), withTxn("r-refund", usd10), "DUPLICATE_REQUEST"},

		{"TimeoutReversalBadJSON", "timeoutReversal", "/pts/v2/reversals", badJSON, "INVALID_DATA"},
		{"TimeoutReversalNoTxn", "timeoutReversal", "/pts/v2/reversals", `{` + usd10Rev + `}`, "MISSING_FIELD"},
		{"TimeoutReversalNoAmount", "timeoutReversal", "/pts/v2/reversals", timeoutVoid("r-auth"), "MISSING_FIELD"},
		{"TimeoutReversalOfSale", "timeoutReversal", "/pts/v2/reversals", timeoutReversal("r-sale"), ""},
		{"TimeoutReversalReversed", "timeoutReversal", "/pts/v2/reversals", timeoutReversal("r-reversed"), "AUTH_ALREADY_REVERSED"},

		{"TimeoutVoidBadJSON", "timeoutVoid", "/pts/v2/voids", badJSON, "INVALID_DATA"},
		{"TimeoutVoidNoTxn", "timeoutVoid", "/pts/v2/voids", voidBody, "MISSING_FIELD"},
		{"TimeoutVoidOfAuthorization", "timeoutVoid", "/pts/v2/voids", timeoutVoid("r-auth"), "NOT_SUPPORTED"},
		{"TimeoutVoidVoided", "timeoutVoid", "/pts/v2/voids", timeoutVoid("r-voided"), "NOT_VOIDABLE"},
		{"TimeoutVoidTimeoutVoided", "timeoutVoid", "/pts/v2/voids", timeoutVoid("r-tvoided"), "NOT_VOIDABLE"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, m := s.call(t, tc.path, tc.body)
			reason, _ := m["reason"].(string)
			if st != 400 || m["status"] != "INVALID_REQUEST" {
				t.Fatalf("got %d %v, want a 400", st, m)
			}
			if !slices.Contains(documented[tc.endpoint], reason) {
				t.Fatalf("reason %s is not documented for %s %v", reason, tc.endpoint, documented[tc.endpoint])
			}
			if tc.want != "" && reason != tc.want {
				t.Fatalf("reason %s, want %s", reason, tc.want)
			}
		})
	}
	l := readLedger(t, srv)
	if c := l.charge(t, "r-voided"); c.RefundedAmount != "" || !c.Voided || c.Live {
		t.Fatalf("voided sale after the refusals: %+v", c)
	}
	if c := l.charge(t, "r-auth"); c.CapturedAmount != "" || c.ReversedAmount != "" || !c.Live {
		t.Fatalf("authorization after the refusals: %+v", c)
	}
}

// TestSettlement: with settleAfter, a captured sale or capture older than it
// is settled: voids answer NOT_VOIDABLE, a timeout reversal of the captured
// authorization TRANSACTION_ALREADY_SETTLED, and refunds still work.
func TestSettlement(t *testing.T) {
	clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	srv := start(t, sandbox.Config{Now: clk.Now, TokenLifetime: 1000 * time.Hour})
	s := newSession(t, srv)
	setFaults(t, srv, `{"settleAfter":"1h"}`)
	pay := func(txn string, capture bool) string {
		t.Helper()
		st, m := s.pay(t, payment("4111111111111111", "10.00", txn, capture))
		if st != 201 {
			t.Fatalf("payment %s: %d %v", txn, st, m)
		}
		return m["id"].(string)
	}
	settledSale := pay("st-sale", true)
	settledSale2 := pay("st-sale2", true)
	auth := pay("st-auth", false)
	if st, m := s.call(t, "/pts/v2/payments/"+auth+"/captures", withTxn("st-cap", usd10)); st != 201 {
		t.Fatalf("capture %d %v", st, m)
	}
	clk.Advance(59 * time.Minute)
	young := pay("st-young", true)
	if l := readLedger(t, srv); l.charge(t, "st-sale").Settled {
		t.Fatal("settled before settleAfter")
	}
	clk.Advance(2 * time.Minute) // the first four are 61 min old, the young sale 2 min

	for _, tc := range []struct{ name, path, body, want string }{
		{"VoidSettledSale", "/pts/v2/payments/" + settledSale + "/voids", voidBody, "NOT_VOIDABLE"},
		{"TimeoutVoidSettledSale", "/pts/v2/voids", timeoutVoid("st-sale2"), "NOT_VOIDABLE"},
		{"TimeoutVoidSettledCapture", "/pts/v2/voids", timeoutVoid("st-cap"), "NOT_VOIDABLE"},
		{"VoidSettledCapturedAuth", "/pts/v2/payments/" + auth + "/voids", voidBody, "NOT_VOIDABLE"},
		{"TimeoutReversalSettledAuth", "/pts/v2/reversals", timeoutReversal("st-auth"), "TRANSACTION_ALREADY_SETTLED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, m := s.call(t, tc.path, tc.body)
			if st != 400 || m["reason"] != tc.want {
				t.Fatalf("got %d %v, want 400 %s", st, m, tc.want)
			}
		})
	}
	// The reason CyberSource's reversal and capture endpoints use for the
	// same condition, settable so that workers are tested against both.
	setFaults(t, srv, `{"settleAfter":"1h","settledVoidReason":"TRANSACTION_ALREADY_REVERSED_OR_SETTLED"}`)
	if st, m := s.call(t, "/pts/v2/voids", timeoutVoid("st-sale2")); st != 400 || m["reason"] != "TRANSACTION_ALREADY_REVERSED_OR_SETTLED" {
		t.Fatalf("timeout void of a settled sale with settledVoidReason: %d %v", st, m)
	}
	if st, _ := post(t, http.DefaultClient, srv.TTCURL+"/sandbox/faults", nil, `{"settledVoidReason":"CANCELLED"}`); st == 200 {
		t.Fatal("an unknown settledVoidReason was accepted")
	}
	setFaults(t, srv, `{"settleAfter":"1h"}`)
	if st, m := s.call(t, "/pts/v2/payments/"+settledSale+"/refunds", amount10); st != 201 {
		t.Fatalf("refund of a settled sale: %d %v", st, m)
	}
	if st, m := s.call(t, "/pts/v2/payments/"+young+"/voids", voidBody); st != 201 || m["status"] != "VOIDED" {
		t.Fatalf("void of an unsettled sale: %d %v", st, m)
	}
	_ = settledSale2
	l := readLedger(t, srv)
	for _, txn := range []string{"st-sale", "st-sale2", "st-auth"} {
		if c := l.charge(t, txn); !c.Settled || !c.Live || c.Voided {
			t.Fatalf("%s: %+v", txn, c)
		}
	}
	if c := l.charge(t, "st-young"); c.Settled || !c.Voided || c.VoidedAmount != "10.00" {
		t.Fatalf("young sale: %+v", c)
	}

	// settleAfter 0 (the default): nothing ever settles.
	setFaults(t, srv, `{}`)
	never := pay("st-never", true)
	clk.Advance(500 * time.Hour)
	if st, m := s.call(t, "/pts/v2/payments/"+never+"/voids", voidBody); st != 201 {
		t.Fatalf("void without settlement: %d %v", st, m)
	}
}

// TestDuplicateRequestsInLedger: a reused transactionId is refused with
// DUPLICATE_REQUEST, recorded in the ledger, and creates nothing.
func TestDuplicateRequestsInLedger(t *testing.T) {
	srv := start(t, sandbox.Config{})
	s := sessionFor(t, srv, "merchant_a")
	st, m := s.pay(t, payment("4111111111111111", "10.00", "d-1", false))
	if st != 201 {
		t.Fatalf("%d %v", st, m)
	}
	id := m["id"].(string)
	if st, m := s.call(t, "/pts/v2/reversals", timeoutReversal("d-lost")); st != 201 {
		t.Fatalf("%d %v", st, m)
	}
	for _, tc := range []struct{ name, path, body string }{
		{"PaymentReusingPayment", "/pts/v2/payments", payment("4111111111111111", "10.00", "d-1", false)},
		{"PaymentReusingSpent", "/pts/v2/payments", payment("4111111111111111", "10.00", "d-lost", false)},
		{"CaptureReusingPayment", "/pts/v2/payments/" + id + "/captures", withTxn("d-1", usd10)},
	} {
		if st, m := s.call(t, tc.path, tc.body); st != 400 || m["reason"] != "DUPLICATE_REQUEST" {
			t.Fatalf("%s: %d %v", tc.name, st, m)
		}
	}
	l := readLedger(t, srv)
	if len(l.Charges) != 1 || l.Charges[0].CapturedAmount != "" || len(l.FollowUps) != 0 {
		t.Fatalf("a reused transactionId created something: %+v %+v", l.Charges, l.FollowUps)
	}
	want := []jsonDuplicate{
		{"payments", "merchant_a", "d-1"}, {"payments", "merchant_a", "d-lost"}, {"captures", "merchant_a", "d-1"},
	}
	if !slices.Equal(l.DuplicateRequests, want) {
		t.Fatalf("duplicate requests %+v, want %+v", l.DuplicateRequests, want)
	}
}

// TestHoldInFlight: a payment held "received but not processed" is not found
// by a timeout reversal sent meanwhile (the documented not-found answer),
// and then completes as a live charge: the danger CyberSource's 60 s wait
// exists for. A reuse of its transactionId during the hold is a duplicate.
func TestHoldInFlight(t *testing.T) {
	srv := start(t, sandbox.Config{})
	s := sessionFor(t, srv, "merchant_a")
	setFaults(t, srv, `{"holdInFlight":{"for":"4s","amount":"77.00"}}`)

	type answer struct {
		st int
		m  map[string]any
	}
	done := make(chan answer, 1)
	go func() { // no t.Fatal off the test goroutine
		req, _ := http.NewRequest(http.MethodPost, srv.CybsURL+"/pts/v2/payments",
			strings.NewReader(payment("4111111111111111", "77.00", "h-1", false)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", s.bearer["Authorization"])
		resp, err := s.client.Do(req)
		if err != nil {
			done <- answer{0, map[string]any{"error": err.Error()}}
			return
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		done <- answer{resp.StatusCode, m}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l := readLedger(t, srv)
		if len(l.InFlight) == 1 {
			if f := l.InFlight[0]; f.MerchantID != "merchant_a" || f.TransactionID != "h-1" {
				t.Fatalf("in flight %+v", f)
			}
			break
		}
		if len(l.Charges) > 0 || time.Now().After(deadline) {
			t.Fatalf("the payment was not held: %+v", l)
		}
		time.Sleep(20 * time.Millisecond)
	}
	st, m := s.call(t, "/pts/v2/reversals", timeoutReversal("h-1"))
	rd, _ := m["reversalAmountDetails"].(map[string]any)
	pi, _ := m["processorInformation"].(map[string]any)
	if st != 201 || rd["originalTransactionAmount"] == nil || pi["responseCode"] == nil || rd["reversedAmount"] != nil {
		t.Fatalf("timeout reversal during the hold: %d %v", st, m)
	}
	if st, m := s.pay(t, payment("4111111111111111", "77.00", "h-1", false)); st != 400 || m["reason"] != "DUPLICATE_REQUEST" {
		t.Fatalf("reuse during the hold: %d %v", st, m)
	}
	a := <-done
	if a.st != 201 || a.m["status"] != "AUTHORIZED" {
		t.Fatalf("held payment: %d %v", a.st, a.m)
	}
	l := readLedger(t, srv)
	c := l.charge(t, "h-1")
	if !c.Live || !c.Held || !c.MissedByTimeout || len(l.Charges) != 1 || len(l.InFlight) != 0 {
		t.Fatalf("after the hold: %+v in flight %+v", l.Charges, l.InFlight)
	}
	if len(l.TimeoutReversals) != 1 || l.TimeoutReversals[0].Found || !l.TimeoutReversals[0].InFlight ||
		l.TimeoutReversals[0].MerchantID != "merchant_a" {
		t.Fatalf("timeout reversals %+v", l.TimeoutReversals)
	}
	// A payment that the trigger does not match is not held.
	if st, m := s.pay(t, payment("4111111111111111", "10.00", "h-2", false)); st != 201 {
		t.Fatalf("%d %v", st, m)
	}
	if c := readLedger(t, srv).charge(t, "h-2"); c.Held || c.MissedByTimeout {
		t.Fatalf("unmatched payment %+v", c)
	}
}

// TestHoldInFlightThenLostAnswer: the hold combines with the faults that lose
// the answer: the charge is recorded after the hold, then cut.
func TestHoldInFlightThenLostAnswer(t *testing.T) {
	srv := start(t, sandbox.Config{})
	s := newSession(t, srv)
	setFaults(t, srv, `{"holdInFlight":{"for":"100ms","rate":1},"timeoutAfterChargeRate":1}`)
	st, m := s.pay(t, payment("4111111111111111", "10.00", "hl-1", true))
	if st != 502 || m["reason"] != "SERVER_TIMEOUT" {
		t.Fatalf("%d %v", st, m)
	}
	if c := readLedger(t, srv).charge(t, "hl-1"); !c.Live || !c.Held || c.Answered != "502" {
		t.Fatalf("%+v", c)
	}
}

// TestLedgerFollowUps: every follow-up is in the ledger with its merchant and
// transactionId, and a timeout void of one marks it voided.
func TestLedgerFollowUps(t *testing.T) {
	srv := start(t, sandbox.Config{})
	s := sessionFor(t, srv, "merchant_a")
	_, m := s.pay(t, payment("4111111111111111", "100.00", "f-auth", false))
	auth := m["id"].(string)
	_, m = s.pay(t, payment("4111111111111111", "50.00", "f-sale", true))
	sale := m["id"].(string)
	for _, c := range []struct{ path, body string }{
		{"/pts/v2/payments/" + auth + "/captures", withTxn("f-cap", `"orderInformation":{"amountDetails":{"totalAmount":"60.00","currency":"USD"}}`)},
		{"/pts/v2/payments/" + auth + "/reversals", withTxn("f-rev", `"reversalInformation":{"amountDetails":{"totalAmount":"40.00"}}`)},
		{"/pts/v2/payments/" + sale + "/refunds", `{"orderInformation":{"amountDetails":{"totalAmount":"20.00","currency":"USD"}}}`},
	} {
		if st, m := s.call(t, c.path, c.body); st != 201 {
			t.Fatalf("%s: %d %v", c.path, st, m)
		}
	}
	if st, m := s.call(t, "/pts/v2/voids", timeoutVoid("f-cap")); st != 201 || m["status"] != "VOIDED" {
		t.Fatalf("timeout void of the capture: %d %v", st, m)
	}
	l := readLedger(t, srv)
	want := []jsonFollowUp{
		{Kind: "capture", PaymentID: auth, MerchantID: "merchant_a", TransactionID: "f-cap", Amount: "60.00", Voided: true, Answered: "201"},
		{Kind: "reversal", PaymentID: auth, MerchantID: "merchant_a", TransactionID: "f-rev", Amount: "40.00", Answered: "201"},
		{Kind: "refund", PaymentID: sale, MerchantID: "merchant_a", Amount: "20.00", Answered: "201"},
	}
	if len(l.FollowUps) != len(want) {
		t.Fatalf("follow-ups %+v", l.FollowUps)
	}
	for i, f := range l.FollowUps {
		if f.ID == "" {
			t.Fatalf("follow-up without id: %+v", f)
		}
		f.ID = ""
		if f != want[i] {
			t.Fatalf("follow-up %d: %+v, want %+v", i, f, want[i])
		}
	}
	if c := l.charge(t, "f-auth"); c.CapturedAmount != "" || c.ReversedAmount != "40.00" || c.VoidedAmount != "60.00" || !c.Live {
		t.Fatalf("authorization %+v", c)
	}
	if c := l.charge(t, "f-sale"); c.RefundedAmount != "20.00" || c.MerchantID != "merchant_a" || c.Reference != "REF-f-sale" {
		t.Fatalf("sale %+v", c)
	}
}

// TestMITOnAnotherMerchantsChain: an MIT that names the network transaction
// id of another merchant's charge is flagged (CyberSource cannot tell, the
// ledger can).
func TestMITOnAnotherMerchantsChain(t *testing.T) {
	srv := start(t, sandbox.Config{})
	a := sessionFor(t, srv, "merchant_a")
	b := sessionFor(t, srv, "merchant_b")
	_, m := a.pay(t, payment("4111111111111111", "10.00", "c-root", false))
	ntid := m["processorInformation"].(map[string]any)["networkTransactionId"].(string)
	mit := strings.Replace(payment("4111111111111111", "10.00", "c-mit", false), `"processingInformation":{`,
		`"processingInformation":{"commerceIndicator":"recurring","authorizationOptions":{"initiator":{"type":"merchant","storedCredentialUsed":true,"merchantInitiatedTransaction":{"reason":"7","previousTransactionId":"`+ntid+`"}}},`, 1)
	if st, m := a.pay(t, strings.Replace(mit, "c-mit", "c-mit-a", -1)); st != 201 {
		t.Fatalf("A's MIT: %d %v", st, m)
	}
	if n := len(readLedger(t, srv).CrossMerchant); n != 0 {
		t.Fatalf("A's own MIT flagged %d times", n)
	}
	if st, m := b.pay(t, mit); st != 201 {
		t.Fatalf("B's MIT: %d %v", st, m)
	}
	l := readLedger(t, srv)
	if len(l.CrossMerchant) != 1 || l.CrossMerchant[0].MerchantID != "merchant_b" || l.CrossMerchant[0].OwnerMerchantID != "merchant_a" {
		t.Fatalf("cross-merchant %+v", l.CrossMerchant)
	}
}

// TestFaultsValidation: the new knobs are checked like the old ones.
func TestFaultsValidation(t *testing.T) {
	srv := start(t, sandbox.Config{})
	for _, body := range []string{
		`{"settleAfter":"-1s"}`,
		`{"holdInFlight":{"rate":1}}`,
		`{"holdInFlight":{"for":"1s"}}`,
		`{"holdInFlight":{"for":"1s","rate":2}}`,
		`{"holdInFlight":{"for":"1s","amount":"ten"}}`,
		`{"holdInFlight":{"for":"-1s","rate":1}}`,
	} {
		if st, b := post(t, http.DefaultClient, srv.TTCURL+"/sandbox/faults", nil, body); st != 400 {
			t.Errorf("%s accepted: %d %s", body, st, b)
		}
	}
	setFaults(t, srv, `{"settleAfter":"90s","holdInFlight":{"for":"2s","rate":0.5,"amount":"77.00"}}`)
	resp, err := http.Get(srv.TTCURL + "/sandbox/faults")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var f map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&f); err != nil {
		t.Fatal(err)
	}
	h, _ := f["holdInFlight"].(map[string]any)
	if f["settleAfter"] != "1m30s" || h["for"] != "2s" || h["rate"] != 0.5 || h["amount"] != "77.00" {
		t.Fatalf("faults read back %v", f)
	}
}
