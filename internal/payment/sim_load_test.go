package payment_test

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ttcpay/payflow/internal/deadletter"
	"github.com/ttcpay/payflow/internal/intent"
	"github.com/ttcpay/payflow/internal/streams"
)

// Test cards of the model (Luhn-valid Visa numbers; the model's outcome
// depends on the number) and the amount it refuses with a 400.
var (
	cardApproved      = "4111111111111111"
	cardDeclined      = luhnComplete("400000000000002")
	cardRiskDeclined  = luhnComplete("400000000000003")
	cardPendingReview = luhnComplete("400000000000004")
	cardPartial       = luhnComplete("400000000000005")
)

const (
	amountRejected  = "4000.00"
	merchantNoToken = "m-noref"
)

var merchants = []string{"m1", "m2", "m3"}

func luhnComplete(prefix string) string {
	for d := 0; d <= 9; d++ {
		n := prefix + strconv.Itoa(d)
		if intent.Luhn(n) {
			return n
		}
	}
	panic("no Luhn digit")
}

// submission is one intent as upstream sent it: what the checker expects
// an outcome for.
type submission struct {
	merchant, id, kind string
	op                 string // "" for payments
	target             string // the payment intent a settlement operation names
	statedRoot         string // an MIT's previousTransactionId as upstream stated it
	malformed          bool   // duplicate keys: must never be charged
	mismatched         bool   // published under another intent's Nats-Msg-Id: must never be charged
	data               []byte
}

type upstream struct {
	w     *world
	subs  []*submission
	byKey map[string]*submission // merchant/id
	n     int
}

func (u *upstream) key(merchant, id string) string { return merchant + "/" + id }

// publish sends an intent; a Duplicate ack means JetStream dropped it, and
// upstream knows (the publisher reports it): it is not an accepted intent.
func (u *upstream) publish(sub *submission, msgID string) {
	m := nats.NewMsg(streams.Intents(sub.merchant))
	m.Data = sub.data
	m.Header.Set(nats.MsgIdHdr, msgID)
	dup := u.w.js.publish(m)
	u.w.s.logf("upstream publishes %s/%s (%s) id=%s dup=%v", sub.merchant, sub.id, sub.kind, msgID, dup)
	if dup {
		return
	}
	if _, ok := u.byKey[u.key(sub.merchant, sub.id)]; !ok {
		u.byKey[u.key(sub.merchant, sub.id)] = sub
		u.subs = append(u.subs, sub)
	}
}

func (u *upstream) newID(prefix string) string {
	u.n++
	return fmt.Sprintf("%s-%04d", prefix, u.n)
}

func baseIntent(id, merchant, amount, card string, capture bool) *intent.Intent {
	return &intent.Intent{
		Version: 1, IntentID: id, Integrator: "costco", MerchantID: merchant, BookingID: "B-" + id, Reference: id,
		Amount: amount, Currency: "USD", Capture: &capture,
		Card:   &intent.Card{Number: card, ExpirationMonth: "12", ExpirationYear: "2031", SecurityCode: "123"},
		BillTo: &intent.BillTo{FirstName: "John", LastName: "Doe", Address1: "1 Market St", Locality: "san francisco", AdministrativeArea: "CA", PostalCode: "94105", Country: "US", Email: "test@cybs.com"},
	}
}

func opIntent(id, merchant, op, target, amount string) *intent.Intent {
	in := &intent.Intent{Version: 1, IntentID: id, Integrator: "costco", MerchantID: merchant, Reference: id, Operation: op, PaymentIntentID: target}
	if amount != "" {
		in.Amount, in.Currency = amount, "USD"
	}
	return in
}

func (u *upstream) submit(in *intent.Intent, kind string) *submission {
	b, _ := json.Marshal(in)
	sub := &submission{merchant: in.MerchantID, id: in.IntentID, kind: kind, op: in.Operation, target: in.PaymentIntentID, data: b}
	if in.Credential != nil && in.Credential.Type == intent.CredentialMIT {
		sub.statedRoot = in.Credential.PreviousTransactionID
	}
	u.publish(sub, in.IntentID)
	return sub
}

// resultOf is the latest result published for an intent on its merchant's
// subject (nil when none yet).
func (u *upstream) resultOf(merchant, id string) *intent.Result {
	var last *intent.Result
	for _, r := range u.w.js.results {
		if merchantOfSubject(r.subject) != merchant {
			continue
		}
		var res intent.Result
		if json.Unmarshal(r.data, &res) == nil && res.IntentID == id {
			last = &res
		}
	}
	return last
}

// schedule plans the whole workload of a seed.
func (u *upstream) schedule() {
	w := u.w
	cfg := w.cfg
	for i := 0; i < cfg.intents; i++ {
		at := w.s.between(0, cfg.publishOver)
		merchant := merchants[w.s.rng.Intn(len(merchants))]
		roll := w.s.rng.Float64()
		w.s.at(cfg.start.Add(at), u.planOne(merchant, roll))
	}
}

// planOne returns the publishing of one workload item.
func (u *upstream) planOne(merchant string, roll float64) func() {
	w := u.w
	mix := w.cfg.mix
	pick := func(cards ...string) string { return cards[w.s.rng.Intn(len(cards))] }
	amount := func() string { return fmt.Sprintf("%d.%02d", 10+w.s.rng.Intn(190), w.s.rng.Intn(100)) }
	later := func(lo, hi time.Duration, fn func()) { w.s.after(w.s.between(lo, hi), fn) }
	return func() {
		switch {
		case roll < mix.invalid:
			u.invalid(merchant)
		case roll < mix.invalid+mix.conflict:
			u.conflict(merchant)
		case roll < mix.invalid+mix.conflict+mix.crossMerchant:
			u.crossMerchant(merchant)
		case roll < mix.invalid+mix.conflict+mix.crossMerchant+mix.chain:
			u.chain(merchant)
		case roll < mix.invalid+mix.conflict+mix.crossMerchant+mix.chain+mix.noToken:
			u.submit(baseIntent(u.newID("cfg"), merchantNoToken, amount(), cardApproved, false), "config")
		case roll < mix.invalid+mix.conflict+mix.crossMerchant+mix.chain+mix.noToken+mix.mismatch:
			u.mismatch(merchant)
		default:
			capture := w.s.chance(0.5)
			card := pick(cardApproved, cardApproved, cardApproved, cardApproved, cardDeclined, cardRiskDeclined, cardPendingReview, cardPartial)
			amt := amount()
			if w.s.chance(mix.rejected) {
				amt = amountRejected
			}
			id := u.newID("pay")
			sub := u.submit(baseIntent(id, merchant, amt, card, capture), map[bool]string{true: "sale", false: "auth"}[capture])
			if w.s.chance(mix.duplicate) {
				later(simDupWindow+time.Minute, simDupWindow+time.Hour, func() { u.publish(sub, id) })
			}
			if w.s.chance(mix.settle) {
				later(0, 20*time.Minute, func() { u.settleOps(merchant, id, capture) })
			}
		}
	}
}

// settleOps publishes the settlement operations of a payment.
func (u *upstream) settleOps(merchant, target string, sale bool) {
	w := u.w
	then := func(in *intent.Intent, kind string, next func()) {
		u.submit(in, kind)
		if next != nil {
			w.s.after(w.s.between(time.Minute, 15*time.Minute), next)
		}
	}
	r := w.s.rng.Float64()
	if sale {
		switch {
		case r < 0.3:
			then(opIntent(u.newID("void"), merchant, intent.OpVoid, target, ""), "void", nil)
		case r < 0.6:
			then(opIntent(u.newID("refund"), merchant, intent.OpRefund, target, "5.00"), "refund-partial", func() {
				u.submit(opIntent(u.newID("refund"), merchant, intent.OpRefund, target, "3.00"), "refund-partial")
			})
		default:
			then(opIntent(u.newID("refund"), merchant, intent.OpRefund, target, ""), "refund-full", nil)
		}
		return
	}
	switch {
	case r < 0.3:
		then(opIntent(u.newID("capture"), merchant, intent.OpCapture, target, ""), "capture-full", nil)
	case r < 0.55:
		then(opIntent(u.newID("capture"), merchant, intent.OpCapture, target, "5.00"), "capture-partial", func() {
			u.submit(opIntent(u.newID("reverse"), merchant, intent.OpReverse, target, ""), "reverse-rest")
		})
	case r < 0.8:
		then(opIntent(u.newID("reverse"), merchant, intent.OpReverse, target, "4.00"), "reverse-partial", nil)
	default:
		then(opIntent(u.newID("reverse"), merchant, intent.OpReverse, target, ""), "reverse-full", nil)
	}
}

// invalid publishes a malformed intent: bad JSON, another merchant's
// subject, or a duplicate key that hides the amount.
func (u *upstream) invalid(merchant string) {
	w := u.w
	id := u.newID("bad")
	switch w.s.rng.Intn(3) {
	case 0:
		u.publish(&submission{merchant: merchant, id: id, kind: "invalid", data: []byte(`{"version":1,"intentId":"` + id + `",`)}, id)
	case 1:
		in := baseIntent(id, "m9", "12.00", cardApproved, false)
		b, _ := json.Marshal(in)
		u.publish(&submission{merchant: merchant, id: id, kind: "invalid", data: b}, id)
	default:
		in := baseIntent(id, merchant, "10.00", cardApproved, true)
		b, _ := json.Marshal(in)
		b = append(b[:len(b)-1], []byte(`,"amount":"1999.00"}`)...)
		u.publish(&submission{merchant: merchant, id: id, kind: "invalid", malformed: true, data: b}, id)
	}
}

// mismatch: a message whose body is one intent is published under another
// intent's Nats-Msg-Id (the victim), which JetStream then drops as a
// duplicate: the victim's publisher sees the Duplicate ack. The message
// itself must never be charged.
func (u *upstream) mismatch(merchant string) {
	w := u.w
	victim, body := u.newID("victim"), baseIntent(u.newID("junk"), merchant, "25.00", cardApproved, true)
	b, _ := json.Marshal(body)
	u.publish(&submission{merchant: merchant, id: body.IntentID, kind: "mismatched", mismatched: true, data: b}, victim)
	w.s.after(time.Second, func() {
		u.submit(baseIntent(victim, merchant, "26.00", cardApproved, true), "victim")
	})
}

// conflict: another merchant reuses an intentId already charged for this
// one, outside the duplicate window.
func (u *upstream) conflict(merchant string) {
	w := u.w
	id := u.newID("pay")
	u.submit(baseIntent(id, merchant, "20.00", cardApproved, true), "sale")
	other := merchants[(indexOf(merchant)+1)%len(merchants)]
	w.s.after(w.s.between(simDupWindow+time.Minute, time.Hour), func() {
		u.submit(baseIntent(id, other, "30.00", cardApproved, true), "conflict")
	})
}

// crossMerchant: another merchant names this one's payment in a refund or
// a capture.
func (u *upstream) crossMerchant(merchant string) {
	w := u.w
	id := u.newID("pay")
	capture := w.s.chance(0.5)
	u.submit(baseIntent(id, merchant, "40.00", cardApproved, capture), map[bool]string{true: "sale", false: "auth"}[capture])
	other := merchants[(indexOf(merchant)+1)%len(merchants)]
	w.s.after(w.s.between(time.Minute, 20*time.Minute), func() {
		op := intent.OpCapture
		if capture {
			op = intent.OpRefund
		}
		u.submit(opIntent(u.newID("xm"), other, op, id, "1.00"), "cross-merchant")
	})
}

// chain: a card stored by a CIT, then merchant-initiated transactions that
// name its network transaction id; sometimes another merchant names it too.
func (u *upstream) chain(merchant string) {
	w := u.w
	id := u.newID("cit")
	cit := baseIntent(id, merchant, "15.00", cardApproved, false)
	cit.Credential = &intent.Credential{Type: intent.CredentialCITStore, Reason: "recurring"}
	u.submit(cit, "cit")
	var mit func(n int)
	mit = func(n int) {
		r := u.resultOf(merchant, id)
		if r == nil {
			if n < 50 {
				w.s.after(time.Minute, func() { mit(n + 1) })
			}
			return
		}
		if !r.Authorized() || r.NetworkTransactionID == "" {
			return
		}
		for k := 0; k < 1+w.s.rng.Intn(3); k++ {
			from := merchant
			if w.s.chance(w.cfg.mix.crossChain) {
				from = merchants[(indexOf(merchant)+1)%len(merchants)]
			}
			w.s.after(w.s.between(0, 30*time.Minute), func() {
				in := baseIntent(u.newID("mit"), from, "15.00", cardApproved, true)
				in.Credential = &intent.Credential{Type: intent.CredentialMIT, Reason: "recurring", PreviousTransactionID: r.NetworkTransactionID}
				u.submit(in, "mit")
			})
		}
	}
	w.s.after(time.Minute, func() { mit(0) })
}

func indexOf(m string) int {
	for i, x := range merchants {
		if x == m {
			return i
		}
	}
	return 0
}

// replayDeadLetters is the operator replaying what a fix or a retry may
// settle (rejected, exhausted, config), as dlq replay does.
func (u *upstream) replayDeadLetters() int {
	n := 0
	for i, s := range u.w.js.dlq {
		l := letterOf(s)
		switch l.Class {
		case deadletter.ClassRejected, deadletter.ClassExhausted, deadletter.ClassConfig:
		default:
			continue
		}
		if deadletter.CheckReplay(l) != nil {
			continue // dlq replay refuses it too
		}
		seq := uint64(i + 1)
		l.Seq = seq
		u.w.js.publish(l.ReplayMsg())
		u.w.s.logf("operator replays dead letter %d (%s %s)", seq, l.IntentID, l.Class)
		n++
	}
	return n
}
