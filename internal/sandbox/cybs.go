package sandbox

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// The CyberSource side, from ../shared/reference/cybersource-rest.md. These
// wire types are the sandbox's own reading of the documents.

type csPaymentRequest struct {
	ClientReferenceInformation *struct {
		Code          string `json:"code"`
		TransactionID string `json:"transactionId"`
		Partner       *struct {
			SolutionID string `json:"solutionId"`
		} `json:"partner"`
	} `json:"clientReferenceInformation"`
	ProcessingInformation *csProcessingInformation `json:"processingInformation"`
	PaymentInformation    *struct {
		Card *struct {
			Number          string `json:"number"`
			ExpirationMonth string `json:"expirationMonth"`
			ExpirationYear  string `json:"expirationYear"`
			SecurityCode    string `json:"securityCode"`
			Type            string `json:"type"`
		} `json:"card"`
		Customer *struct {
			ID string `json:"id"`
		} `json:"customer"`
		PaymentInstrument *struct {
			ID string `json:"id"`
		} `json:"paymentInstrument"`
		InstrumentIdentifier *struct {
			ID string `json:"id"`
		} `json:"instrumentIdentifier"`
	} `json:"paymentInformation"`
	OrderInformation *struct {
		AmountDetails *struct {
			TotalAmount string `json:"totalAmount"`
			Currency    string `json:"currency"`
		} `json:"amountDetails"`
		BillTo map[string]any `json:"billTo"`
	} `json:"orderInformation"`
}

type csProcessingInformation struct {
	Capture              bool     `json:"capture"`
	ActionList           []string `json:"actionList"`
	CommerceIndicator    string   `json:"commerceIndicator"`
	AuthorizationOptions *struct {
		Initiator *struct {
			Type                         string `json:"type"`
			CredentialStoredOnFile       bool   `json:"credentialStoredOnFile"`
			StoredCredentialUsed         bool   `json:"storedCredentialUsed"`
			MerchantInitiatedTransaction *struct {
				Reason                   string `json:"reason"`
				PreviousTransactionID    string `json:"previousTransactionId"`
				OriginalAuthorizedAmount string `json:"originalAuthorizedAmount"`
			} `json:"merchantInitiatedTransaction"`
		} `json:"initiator"`
	} `json:"authorizationOptions"`
}

type fieldProblem struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

func (s *Sandbox) badRequest(w http.ResponseWriter, reason, message string, details ...fieldProblem) {
	body := map[string]any{
		"submitTimeUtc": s.cfg.Now().UTC().Format(time.RFC3339),
		"status":        "INVALID_REQUEST",
		"reason":        reason,
		"message":       message,
	}
	if len(details) > 0 {
		body["details"] = details
	}
	writeJSON(w, http.StatusBadRequest, body)
}

func (s *Sandbox) serverError(w http.ResponseWriter, status int, reason string) {
	writeJSON(w, status, map[string]any{
		"submitTimeUtc": s.cfg.Now().UTC().Format(time.RFC3339),
		"status":        "SERVER_ERROR",
		"reason":        reason,
		"message":       "Error - General system failure.",
	})
}

func unauthorized(w http.ResponseWriter, rmsg any) {
	writeJSON(w, http.StatusUnauthorized, map[string]any{"response": map[string]any{"rmsg": rmsg}})
}

// authenticate checks the Bearer token against the client certificate of the
// TLS connection. It writes the 401 itself and returns false on failure.
func (s *Sandbox) authenticate(w http.ResponseWriter, r *http.Request) (integrator, merchant string, ok bool) {
	auth := r.Header.Get("Authorization")
	tok, found := strings.CutPrefix(auth, "Bearer ")
	if !found || tok == "" {
		unauthorized(w, "Authentication Failed")
		return "", "", false
	}
	s.mu.Lock()
	t := s.tokens[tok]
	now := s.cfg.Now()
	s.mu.Unlock()
	switch {
	case t == nil || t.revoked:
		unauthorized(w, "Authentication Failed")
		return "", "", false
	case !now.Before(t.expires):
		unauthorized(w, map[string]string{"error": "ACCESS_TOKEN_EXPIRED", "error_description": "ACCESS_TOKEN_EXPIRED"})
		return "", "", false
	}
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 ||
		r.TLS.PeerCertificates[0].Subject.CommonName != t.integrator+":"+t.merchant {
		unauthorized(w, map[string]string{"error": "UNAUTHORIZED_PARTNER", "error_description": "UNAUTHORIZED_PARTNER"})
		return "", "", false
	}
	return t.integrator, t.merchant, true
}

// cut closes the connection without an answer.
func cut(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler) // closes the connection on HTTP/2 too
}

// handlePayment serves POST /pts/v2/payments.
func (s *Sandbox) handlePayment(w http.ResponseWriter, r *http.Request) {
	integrator, merchant, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	s.delay(EndpointPayments)
	if st := s.injected(EndpointPayments); st != 0 {
		s.serverError(w, st, "SYSTEM_ERROR")
		return
	}
	body, err := readBody(r)
	var req csPaymentRequest
	if err != nil || json.Unmarshal(body, &req) != nil {
		s.badRequest(w, "INVALID_DATA", "Declined - One or more fields in the request contains invalid data",
			fieldProblem{Field: "body", Reason: "INVALID_DATA"})
		return
	}
	card, problems := s.validatePayment(&req)
	if len(problems) > 0 {
		reason, msg := "MISSING_FIELD", "Declined - The request is missing one or more fields"
		for _, p := range problems {
			if p.Reason == "INVALID_DATA" {
				reason, msg = "INVALID_DATA", "Declined - One or more fields in the request contains invalid data"
				break
			}
		}
		s.badRequest(w, reason, msg, problems...)
		return
	}
	ad := req.OrderInformation.AmountDetails
	amount, _ := parseMilli(ad.TotalAmount)
	txnID := req.ClientReferenceInformation.TransactionID
	key := txnKey{merchant, txnID}
	pi := req.ProcessingInformation

	s.mu.Lock()
	now := s.cfg.Now()
	if txnID != "" && s.usedTxnIDs[key] {
		s.duplicateLocked("payments", key, now)
		s.mu.Unlock()
		s.badRequest(w, "DUPLICATE_REQUEST", "Declined - The merchant transaction identifier has already been used",
			fieldProblem{Field: "clientReferenceInformation.transactionId", Reason: "INVALID_DATA"})
		return
	}
	// The transactionId is taken on arrival: a reuse while this request is
	// still being processed is a duplicate too.
	if txnID != "" {
		s.usedTxnIDs[key] = true
	}
	if prev := previousTransactionID(pi); prev != "" {
		if o := s.byNetworkID[prev]; o != nil && o.MerchantID != merchant {
			s.crossLocked("payments", merchant, o.MerchantID, o.ID, "", now)
		}
	}
	var hold time.Duration
	if h := s.faults.HoldInFlight; h.holds(amount, s.rng.Float64) {
		hold = time.Duration(h.For)
		if txnID != "" {
			s.inFlight[key] = &InFlightPayment{MerchantID: merchant, TransactionID: txnID, Since: now, Until: now.Add(hold)}
		}
	}
	s.mu.Unlock()
	if hold > 0 {
		// Received, not processed. Like a real server it carries on when
		// the client goes away.
		time.Sleep(hold)
	}

	out := approved
	if o, ok := DeclineCards[card.number]; ok {
		out = o
	}
	if o, ok := amountTriggers[amount]; ok {
		out = o
	}
	if out.http400 != "" {
		s.landed(key)
		s.badRequest(w, out.http400, "Declined - One or more fields in the request contains invalid data",
			fieldProblem{Field: "orderInformation.amountDetails.totalAmount", Reason: "INVALID_DATA"})
		return
	}
	if out.http502 != "" && !out.charged {
		s.landed(key)
		s.serverError(w, http.StatusBadGateway, out.http502)
		return
	}
	late502 := out.http502 // charged, then the answer is lost in a timeout
	if late502 != "" {
		out = approved
	}
	f := s.Faults()
	if late502 == "" && s.roll(f.TimeoutAfterChargeRate) {
		late502 = "SERVER_TIMEOUT"
	}
	cutConn := late502 == "" && s.roll(f.CutAfterChargeRate)

	c := &Charge{
		TransactionID: txnID,
		Reference:     req.ClientReferenceInformation.Code,
		Integrator:    integrator,
		MerchantID:    merchant,
		Status:        out.status,
		Reason:        out.reason,
		Amount:        ad.TotalAmount,
		Currency:      ad.Currency,
		CardType:      cardType(card.number),
		CardLast4:     card.number[len(card.number)-4:],
		Capture:       pi != nil && pi.Capture,
		decimals:      decimalsOf(ad.TotalAmount),
		Answered:      "201",
		TraceParent:   r.Header.Get("traceparent"),
		Held:          hold > 0,
	}
	if pi != nil {
		c.CommerceIndic = pi.CommerceIndicator
		if ao := pi.AuthorizationOptions; ao != nil && ao.Initiator != nil {
			in := ao.Initiator
			c.Credential = Credential{InitiatorType: in.Type, CredentialStoredOnFile: in.CredentialStoredOnFile, StoredCredentialUsed: in.StoredCredentialUsed}
			if m := in.MerchantInitiatedTransaction; m != nil {
				c.Credential.Reason = m.Reason
				c.Credential.PreviousTransactionID = m.PreviousTransactionID
				c.Credential.OriginalAmount = m.OriginalAuthorizedAmount
			}
		}
	}
	if isApproved(out.status) {
		c.authorized = amount
		if out.partial {
			c.authorized = amount / 2
		}
		c.AuthorizedAmount = formatMilli(c.authorized, c.decimals)
		c.NetworkTxnID = randomDigits(15)
		if c.Capture && out.status != "AUTHORIZED_RISK_DECLINED" {
			c.captured = c.authorized
		}
	}
	resp := s.recordCharge(c, card, pi != nil && contains(pi.ActionList, "TOKEN_CREATE"))
	switch {
	case late502 != "":
		s.setAnswered(c, "502")
		s.serverError(w, http.StatusBadGateway, late502)
	case cutConn:
		s.setAnswered(c, "cut")
		cut(w)
	default:
		writeJSON(w, http.StatusCreated, resp)
	}
}

func previousTransactionID(pi *csProcessingInformation) string {
	if pi == nil || pi.AuthorizationOptions == nil || pi.AuthorizationOptions.Initiator == nil ||
		pi.AuthorizationOptions.Initiator.MerchantInitiatedTransaction == nil {
		return ""
	}
	return pi.AuthorizationOptions.Initiator.MerchantInitiatedTransaction.PreviousTransactionID
}

// landed ends the hold of a payment that was not charged.
func (s *Sandbox) landed(key txnKey) {
	s.mu.Lock()
	delete(s.inFlight, key)
	s.mu.Unlock()
}

// duplicateLocked records a DUPLICATE_REQUEST refusal. Caller holds s.mu.
func (s *Sandbox) duplicateLocked(endpoint string, key txnKey, now time.Time) {
	s.duplicates = append(s.duplicates, DuplicateRequest{Endpoint: endpoint, MerchantID: key.merchant, TransactionID: key.txn, At: now})
}

// crossLocked records a request by merchant that named a payment of owner.
// Caller holds s.mu.
func (s *Sandbox) crossLocked(endpoint, merchant, owner, paymentID, txn string, now time.Time) {
	s.cross = append(s.cross, CrossMerchantRequest{Endpoint: endpoint, MerchantID: merchant, OwnerMerchantID: owner,
		PaymentID: paymentID, TransactionID: txn, At: now})
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func (s *Sandbox) setAnswered(c *Charge, how string) {
	s.mu.Lock()
	c.Answered = how
	s.mu.Unlock()
}

// recordCharge enters the charge in the ledger and builds the 201 body.
func (s *Sandbox) recordCharge(c *Charge, card storedCard, tokenCreate bool) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	c.ID = s.newIDLocked()
	c.CreatedAt = now
	if c.captured > 0 {
		c.capturedAt = now
	}
	c.refresh()
	s.charges = append(s.charges, c)
	s.byID[c.ID] = c
	if c.NetworkTxnID != "" {
		s.byNetworkID[c.NetworkTxnID] = c
	}
	if c.TransactionID != "" {
		key := txnKey{c.MerchantID, c.TransactionID}
		s.byTxnID[key] = c
		if fl := s.inFlight[key]; fl != nil {
			c.MissedByTimeout = fl.missed
			delete(s.inFlight, key)
		}
	}
	resp := map[string]any{
		"id":                         c.ID,
		"status":                     c.Status,
		"submitTimeUtc":              now.UTC().Format(time.RFC3339),
		"reconciliationId":           randomDigits(16),
		"clientReferenceInformation": map[string]any{"code": c.Reference, "transactionId": c.TransactionID},
		"paymentAccountInformation":  map[string]any{"card": map[string]any{"type": c.CardType}},
		"paymentInformation": map[string]any{
			"card":          map[string]any{"type": c.CardType},
			"tokenizedCard": map[string]any{"type": c.CardType},
		},
		"pointOfSaleInformation": map[string]any{"terminalId": "12345678"},
	}
	if !isApproved(c.Status) {
		resp["errorInformation"] = map[string]any{"reason": c.Reason, "message": msgOr(c.Reason)}
		resp["processorInformation"] = map[string]any{"responseCode": "05"}
		return resp
	}
	resp["orderInformation"] = map[string]any{"amountDetails": map[string]any{
		"authorizedAmount": c.AuthorizedAmount, "totalAmount": c.Amount, "currency": c.Currency,
	}}
	resp["processorInformation"] = map[string]any{
		"merchantNumber":       "12345678",
		"approvalCode":         randomDigits(6),
		"networkTransactionId": c.NetworkTxnID,
		"transactionId":        c.NetworkTxnID,
		"responseCode":         "00",
		"avs":                  map[string]any{"code": "Y", "codeRaw": "Y"},
	}
	if c.Reason != "" {
		resp["errorInformation"] = map[string]any{"reason": c.Reason, "message": msgOr(c.Reason)}
	}
	links := map[string]any{"self": link("GET", "/pts/v2/payments/"+c.ID)}
	if c.Capture {
		links["void"] = link("POST", "/pts/v2/payments/"+c.ID+"/voids")
		links["refund"] = link("POST", "/pts/v2/payments/"+c.ID+"/refunds")
	} else {
		links["authReversal"] = link("POST", "/pts/v2/payments/"+c.ID+"/reversals")
		links["capture"] = link("POST", "/pts/v2/payments/"+c.ID+"/captures")
	}
	resp["_links"] = links
	if tokenCreate {
		cust, pi, ii := strings.ToUpper(randomHex(16)), strings.ToUpper(randomHex(16)), randomDigits(19)
		for _, id := range []string{cust, pi, ii} {
			s.tms[id] = card
		}
		c.TokenCreated = true
		resp["tokenInformation"] = map[string]any{
			"instrumentidentifierNew": true,
			"customer":                map[string]any{"id": cust},
			"paymentInstrument":       map[string]any{"id": pi},
			"instrumentIdentifier":    map[string]any{"id": ii, "state": "ACTIVE"},
		}
	}
	return resp
}

func msgOr(reason string) string {
	for _, o := range DeclineCards {
		if o.reason == reason {
			return o.message
		}
	}
	for _, o := range amountTriggers {
		if o.reason == reason {
			return o.message
		}
	}
	return "Decline"
}

func link(method, href string) map[string]string {
	return map[string]string{"method": method, "href": href}
}

// validatePayment checks the required fields and returns the card to charge
// (from the request or from a TMS token).
func (s *Sandbox) validatePayment(req *csPaymentRequest) (storedCard, []fieldProblem) {
	var ps []fieldProblem
	missing := func(f string) { ps = append(ps, fieldProblem{Field: f, Reason: "MISSING_FIELD"}) }
	invalid := func(f string) { ps = append(ps, fieldProblem{Field: f, Reason: "INVALID_DATA"}) }

	if req.ClientReferenceInformation == nil || req.ClientReferenceInformation.Code == "" {
		missing("clientReferenceInformation.code")
	} else if len(req.ClientReferenceInformation.Code) > 50 {
		invalid("clientReferenceInformation.code")
	}
	var card storedCard
	pi := req.PaymentInformation
	switch {
	case pi != nil && pi.Card != nil && pi.Card.Number != "":
		c := pi.Card
		card = storedCard{number: c.Number, month: c.ExpirationMonth, year: c.ExpirationYear}
		if !luhnValid(c.Number) {
			invalid("paymentInformation.card.number")
		}
		if c.ExpirationMonth == "" {
			missing("paymentInformation.card.expirationMonth")
		} else if len(c.ExpirationMonth) != 2 || c.ExpirationMonth < "01" || c.ExpirationMonth > "12" {
			invalid("paymentInformation.card.expirationMonth")
		}
		if c.ExpirationYear == "" {
			missing("paymentInformation.card.expirationYear")
		} else if len(c.ExpirationYear) != 4 || c.ExpirationYear < "1900" || c.ExpirationYear > "9999" {
			invalid("paymentInformation.card.expirationYear")
		}
	case pi != nil && (pi.Customer != nil || pi.PaymentInstrument != nil || pi.InstrumentIdentifier != nil):
		var id, field string
		switch {
		case pi.PaymentInstrument != nil:
			id, field = pi.PaymentInstrument.ID, "paymentInformation.paymentInstrument.id"
		case pi.Customer != nil:
			id, field = pi.Customer.ID, "paymentInformation.customer.id"
		default:
			id, field = pi.InstrumentIdentifier.ID, "paymentInformation.instrumentIdentifier.id"
		}
		s.mu.Lock()
		sc, ok := s.tms[id]
		s.mu.Unlock()
		if !ok {
			invalid(field)
		}
		card = sc
	default:
		missing("paymentInformation.card.number")
	}
	oi := req.OrderInformation
	if oi == nil || oi.AmountDetails == nil || oi.AmountDetails.TotalAmount == "" {
		missing("orderInformation.amountDetails.totalAmount")
	} else if _, ok := parseMilli(oi.AmountDetails.TotalAmount); !ok {
		invalid("orderInformation.amountDetails.totalAmount")
	}
	if oi == nil || oi.AmountDetails == nil || oi.AmountDetails.Currency == "" {
		missing("orderInformation.amountDetails.currency")
	} else if c := oi.AmountDetails.Currency; len(c) != 3 || strings.ToUpper(c) != c {
		invalid("orderInformation.amountDetails.currency")
	}
	for _, f := range []string{"firstName", "lastName", "address1", "locality", "administrativeArea", "postalCode", "country", "email"} {
		var v string
		if oi != nil && oi.BillTo != nil {
			v, _ = oi.BillTo[f].(string)
		}
		if strings.TrimSpace(v) == "" {
			missing("orderInformation.billTo." + f)
		}
	}
	// The credentialed-transactions guide: an MIT names the transaction
	// that stored the card, and Discover needs the original amount.
	if p := req.ProcessingInformation; p != nil && p.AuthorizationOptions != nil && p.AuthorizationOptions.Initiator != nil {
		in := p.AuthorizationOptions.Initiator
		m := in.MerchantInitiatedTransaction
		if in.Type == "merchant" && (m == nil || m.PreviousTransactionID == "") {
			missing("processingInformation.authorizationOptions.initiator.merchantInitiatedTransaction.previousTransactionId")
		}
		discover := card.number != "" && cardType(card.number) == "004"
		if discover && (in.Type == "merchant" || in.StoredCredentialUsed) && (m == nil || m.OriginalAuthorizedAmount == "") {
			missing("processingInformation.authorizationOptions.initiator.merchantInitiatedTransaction.originalAuthorizedAmount")
		}
		if in.Type != "" && in.Type != "merchant" && in.Type != "customer" {
			invalid("processingInformation.authorizationOptions.initiator.type")
		}
	}
	if len(ps) > 0 || card.number == "" {
		return card, ps
	}
	return card, nil
}

// Follow-up operations on a payment id.

type csFollowUp struct {
	ClientReferenceInformation *struct {
		Code          string `json:"code"`
		TransactionID string `json:"transactionId"`
	} `json:"clientReferenceInformation"`
	OrderInformation *struct {
		AmountDetails *struct {
			TotalAmount string `json:"totalAmount"`
			Currency    string `json:"currency"`
		} `json:"amountDetails"`
	} `json:"orderInformation"`
	ReversalInformation *struct {
		AmountDetails *struct {
			TotalAmount string `json:"totalAmount"`
			Currency    string `json:"currency"`
		} `json:"amountDetails"`
		Reason string `json:"reason"`
	} `json:"reversalInformation"`
}

func (f *csFollowUp) orderAmount() string {
	if f.OrderInformation != nil && f.OrderInformation.AmountDetails != nil {
		return f.OrderInformation.AmountDetails.TotalAmount
	}
	return ""
}

// currency is the currency a timeout reversal names, wherever it puts it.
func (f *csFollowUp) currency() string {
	if f.ReversalInformation != nil && f.ReversalInformation.AmountDetails != nil && f.ReversalInformation.AmountDetails.Currency != "" {
		return f.ReversalInformation.AmountDetails.Currency
	}
	if f.OrderInformation != nil && f.OrderInformation.AmountDetails != nil {
		return f.OrderInformation.AmountDetails.Currency
	}
	return ""
}

func (f *csFollowUp) reversalAmount() string {
	if f.ReversalInformation != nil && f.ReversalInformation.AmountDetails != nil {
		return f.ReversalInformation.AmountDetails.TotalAmount
	}
	return ""
}

// The follow-up endpoints, by path segment, with the kind the ledger calls
// each.
var followUpKinds = map[string]string{"captures": "capture", "reversals": "reversal", "voids": "void", "refunds": "refund"}

// handleFollowUp serves POST /pts/v2/payments/{id}/{captures|reversals|voids|refunds}.
// Every refusal uses a reason of the endpoint's documented set (the REST
// SDK's PtsV2Payments{Captures,Reversals,Voids,Refunds}Post400Response).
func (s *Sandbox) handleFollowUp(op string) http.HandlerFunc {
	kind := followUpKinds[op]
	return func(w http.ResponseWriter, r *http.Request) {
		_, merchant, ok := s.authenticate(w, r)
		if !ok {
			return
		}
		s.delay(EndpointFollowUps)
		if st := s.injected(EndpointFollowUps); st != 0 {
			s.serverError(w, st, "SYSTEM_ERROR")
			return
		}
		body, err := readBody(r)
		var req csFollowUp
		if err != nil || json.Unmarshal(body, &req) != nil {
			s.badRequest(w, "INVALID_DATA", "Declined - One or more fields in the request contains invalid data",
				fieldProblem{Field: "body", Reason: "INVALID_DATA"})
			return
		}
		cutAfter := s.roll(s.Faults().CutAfterFollowUpRate) // before the lock: roll takes it
		s.mu.Lock()
		defer s.mu.Unlock()
		now := s.cfg.Now()
		var txn, code string
		if req.ClientReferenceInformation != nil {
			txn, code = req.ClientReferenceInformation.TransactionID, req.ClientReferenceInformation.Code
		}
		key := txnKey{merchant, txn}
		if txn != "" && s.usedTxnIDs[key] {
			s.duplicateLocked(op, key, now)
			s.badRequest(w, "DUPLICATE_REQUEST", "Declined - The merchant transaction identifier has already been used",
				fieldProblem{Field: "clientReferenceInformation.transactionId", Reason: "INVALID_DATA"})
			return
		}
		c := s.byID[r.PathValue("id")]
		if c != nil && c.MerchantID != merchant {
			// Another merchant's payment is, to this one, no payment at all.
			s.crossLocked(op, merchant, c.MerchantID, c.ID, txn, now)
			c = nil
		}
		if c == nil {
			s.badRequest(w, "INVALID_DATA", "Declined - One or more fields in the request contains invalid data",
				fieldProblem{Field: "id", Reason: "INVALID_DATA"})
			return
		}
		if reason, msg := s.followUpRefusalLocked(op, c, now); reason != "" {
			s.badRequest(w, reason, msg)
			return
		}
		parse := func(v string, field string) (int64, bool) {
			if v == "" {
				s.badRequest(w, "MISSING_FIELD", "Declined - The request is missing one or more fields", fieldProblem{Field: field, Reason: "MISSING_FIELD"})
				return 0, false
			}
			m, ok := parseMilli(v)
			if !ok {
				s.badRequest(w, "INVALID_AMOUNT", "Declined - The amount is invalid", fieldProblem{Field: field, Reason: "INVALID_DATA"})
			}
			return m, ok
		}
		var amt int64
		switch op {
		case "captures":
			if amt, ok = parse(req.orderAmount(), "orderInformation.amountDetails.totalAmount"); !ok {
				return
			}
			if amt > c.authorized-c.captured-c.reversed {
				s.badRequest(w, "EXCEEDS_AUTH_AMOUNT", "Declined - The capture amount exceeds the authorized amount")
				return
			}
			c.captured += amt
			if c.capturedAt.IsZero() {
				c.capturedAt = now
			}
		case "reversals":
			if amt, ok = parse(req.reversalAmount(), "reversalInformation.amountDetails.totalAmount"); !ok {
				return
			}
			if amt > c.authorized-c.captured-c.reversed {
				s.badRequest(w, "INVALID_AMOUNT", "Declined - The reversal amount exceeds what is left of the authorization")
				return
			}
			c.reversed += amt
		case "voids":
			amt = c.captured
			c.Voided = true
			c.voided += amt
		case "refunds":
			if amt, ok = parse(req.orderAmount(), "orderInformation.amountDetails.totalAmount"); !ok {
				return
			}
			if amt > c.captured-c.refunded {
				s.badRequest(w, "INVALID_AMOUNT", "Declined - The refund amount exceeds the captured amount")
				return
			}
			c.refunded += amt
			c.Refunds = append(c.Refunds, formatMilli(amt, c.decimals))
		}
		c.refresh()
		f := &FollowUp{ID: s.newIDLocked(), Kind: kind, PaymentID: c.ID, MerchantID: merchant, TransactionID: txn, Reference: code,
			Amount: formatMilli(amt, c.decimals), Currency: c.Currency, Answered: "201", At: now, charge: c, amount: amt}
		s.followUps = append(s.followUps, f)
		if txn != "" {
			s.usedTxnIDs[key] = true
			s.fuByTxnID[key] = f
		}
		if cutAfter {
			f.Answered = "cut"
			cut(w) // applied, but the answer is lost
			return
		}
		resp := map[string]any{"id": f.ID, "submitTimeUtc": now.UTC().Format(time.RFC3339)}
		details := func(name string) map[string]any { return map[string]any{name: f.Amount, "currency": c.Currency} }
		switch op {
		case "captures":
			resp["status"] = "PENDING"
			resp["orderInformation"] = map[string]any{"amountDetails": details("totalAmount")}
			resp["_links"] = map[string]any{"void": link("POST", "/pts/v2/captures/"+f.ID+"/voids")}
		case "reversals":
			resp["status"] = "REVERSED"
			resp["reversalAmountDetails"] = details("reversedAmount")
		case "voids":
			resp["status"] = "VOIDED"
			resp["voidAmountDetails"] = details("voidAmount")
		case "refunds":
			resp["status"] = "PENDING"
			resp["refundAmountDetails"] = details("refundAmount")
		}
		writeJSON(w, http.StatusCreated, resp)
	}
}

// followUpRefusalLocked is the documented refusal, if any, of a follow-up on
// one of the merchant's payments, before its amount is looked at. Caller
// holds s.mu.
func (s *Sandbox) followUpRefusalLocked(op string, c *Charge, now time.Time) (reason, message string) {
	approved := isApproved(c.Status)
	switch op {
	case "captures":
		switch {
		case !approved:
			return "MISSING_AUTH", "Declined - The payment was not authorized"
		case c.Voided || c.Reversed:
			return "TRANSACTION_ALREADY_REVERSED_OR_SETTLED", "Declined - The authorization has already been reversed"
		}
	case "reversals":
		switch {
		case !approved:
			return "MISSING_AUTH", "Declined - The payment was not authorized"
		case c.Voided || c.Reversed:
			return "AUTH_ALREADY_REVERSED", "Declined - The authorization has already been reversed"
		case c.authorized-c.captured-c.reversed <= 0:
			return "TRANSACTION_ALREADY_SETTLED", "Declined - The authorization has already been captured"
		}
	case "voids":
		switch {
		case !approved:
			return "NOT_VOIDABLE", "Declined - The payment was not authorized"
		case c.Voided:
			return "NOT_VOIDABLE", "Declined - The transaction has already been voided"
		case s.settledLocked(c, now):
			return s.settledVoidReasonLocked(), "Declined - The transaction has already been settled"
		case c.captured == 0 || c.refunded > 0:
			return "NOT_SUPPORTED", "Declined - Only an unrefunded sale or capture can be voided"
		}
	case "refunds":
		switch {
		case !approved:
			return "INVALID_DATA", "Declined - The payment was not authorized"
		case c.Voided:
			return "CAPTURE_ALREADY_VOIDED", "Declined - The capture has already been voided"
		}
	}
	return "", ""
}

// settledLocked reports whether a charge's captured amount has settled: it
// was captured longer than the settleAfter fault ago. Once seen settled it
// stays settled. Caller holds s.mu.
func (s *Sandbox) settledLocked(c *Charge, now time.Time) bool {
	if !c.Settled {
		after := time.Duration(s.faults.SettleAfter)
		c.Settled = after > 0 && c.captured > 0 && !c.Voided && !c.capturedAt.IsZero() && !now.Before(c.capturedAt.Add(after))
	}
	return c.Settled
}

// followUpSettledLocked is settledLocked for one capture.
func (s *Sandbox) followUpSettledLocked(f *FollowUp, now time.Time) bool {
	if !f.Settled {
		after := time.Duration(s.faults.SettleAfter)
		f.Settled = after > 0 && f.Kind == "capture" && !f.Voided && !f.charge.Voided && !now.Before(f.At.Add(after))
	}
	return f.Settled
}

// timeoutAnswer is what a timeout reversal or void answers: a 400 reason,
// or a 201 body.
type timeoutAnswer struct {
	reason, message string
	body            map[string]any
}

func refuse(reason, message string) timeoutAnswer {
	return timeoutAnswer{reason: reason, message: message}
}

// handleTimeout serves the timeout reversal (POST /pts/v2/reversals) and the
// timeout void (POST /pts/v2/voids), both keyed on
// clientReferenceInformation.transactionId of the lost request, in the
// authenticated merchant's namespace.
func (s *Sandbox) handleTimeout(kind string) http.HandlerFunc {
	endpoint := map[string]string{"reversal": "timeoutReversal", "void": "timeoutVoid"}[kind]
	return func(w http.ResponseWriter, r *http.Request) {
		_, merchant, ok := s.authenticate(w, r)
		if !ok {
			return
		}
		s.delay(EndpointFollowUps)
		if st := s.injected(EndpointFollowUps); st != 0 {
			s.serverError(w, st, "SYSTEM_ERROR")
			return
		}
		body, err := readBody(r)
		var req csFollowUp
		if err != nil || json.Unmarshal(body, &req) != nil {
			s.badRequest(w, "INVALID_DATA", "Declined - One or more fields in the request contains invalid data",
				fieldProblem{Field: "body", Reason: "INVALID_DATA"})
			return
		}
		if req.ClientReferenceInformation == nil || req.ClientReferenceInformation.TransactionID == "" {
			s.badRequest(w, "MISSING_FIELD", "Declined - The request is missing one or more fields",
				fieldProblem{Field: "clientReferenceInformation.transactionId", Reason: "MISSING_FIELD"})
			return
		}
		if kind == "reversal" && req.reversalAmount() == "" {
			s.badRequest(w, "MISSING_FIELD", "Declined - The request is missing one or more fields",
				fieldProblem{Field: "reversalInformation.amountDetails.totalAmount", Reason: "MISSING_FIELD"})
			return
		}
		txn := req.ClientReferenceInformation.TransactionID
		key := txnKey{merchant, txn}
		s.mu.Lock()
		defer s.mu.Unlock()
		now := s.cfg.Now()
		rec := TimeoutReversal{Kind: kind, MerchantID: merchant, TransactionID: txn, At: now}
		// The transactionId is spent: a late original with it is refused.
		// One already received and still in flight is not: it finds nothing
		// now and is charged afterwards.
		s.usedTxnIDs[key] = true
		if fl := s.inFlight[key]; fl != nil {
			fl.missed = true
			rec.InFlight = true
		}
		a := s.timeoutLocked(kind, endpoint, key, &req, &rec, now)
		if a.reason != "" {
			rec.Status = a.reason
			s.timeoutRevs = append(s.timeoutRevs, rec)
			s.badRequest(w, a.reason, a.message)
			return
		}
		a.body["id"] = s.newIDLocked()
		a.body["submitTimeUtc"] = now.UTC().Format(time.RFC3339)
		a.body["clientReferenceInformation"] = map[string]any{"transactionId": txn}
		rec.Status, _ = a.body["status"].(string)
		s.timeoutRevs = append(s.timeoutRevs, rec)
		writeJSON(w, http.StatusCreated, a.body)
	}
}

// timeoutLocked decides a timeout reversal or void. Caller holds s.mu.
func (s *Sandbox) timeoutLocked(kind, endpoint string, key txnKey, req *csFollowUp, rec *TimeoutReversal, now time.Time) timeoutAnswer {
	status := map[string]string{"reversal": "REVERSED", "void": "VOIDED"}[kind]
	var fu *FollowUp
	if kind == "void" {
		fu = s.fuByTxnID[key]
	}
	c := s.byTxnID[key]
	if fu == nil && c == nil && !rec.InFlight {
		if owner, id := s.ownerElsewhereLocked(key); owner != "" {
			s.crossLocked(endpoint, key.merchant, owner, id, key.txn, now)
		}
	}
	if fu != nil {
		rec.Found, rec.PaymentID = true, fu.PaymentID
		return s.timeoutVoidFollowUpLocked(fu, now)
	}
	if c == nil || !isApproved(c.Status) {
		// The original failed or never arrived: nothing to cancel. The
		// documented answer carries the original amount and a response code.
		details := map[string]any{"originalTransactionAmount": "0", "currency": req.currency()}
		if c != nil {
			details = map[string]any{"originalTransactionAmount": c.Amount, "currency": c.Currency}
		}
		return timeoutAnswer{body: map[string]any{"status": status, kind + "AmountDetails": details,
			"processorInformation": map[string]any{"responseCode": "25"}}}
	}
	rec.Found, rec.PaymentID = true, c.ID
	settled := s.settledLocked(c, now)
	if kind == "reversal" {
		switch {
		case c.captured > 0 || c.Voided:
			// Timeout reversals are only for authorizations not captured
			// and settled (no ARAV here).
			msg := "Declined - The authorization has already been captured"
			if settled {
				msg = "Declined - The authorization has been captured and settled"
			}
			return refuse("TRANSACTION_ALREADY_SETTLED", msg)
		case c.reversed >= c.authorized:
			return refuse("AUTH_ALREADY_REVERSED", "Declined - The authorization has already been reversed")
		}
		amt := c.authorized - c.reversed
		c.reversed = c.authorized
		c.refresh()
		return timeoutAnswer{body: map[string]any{"status": status,
			"reversalAmountDetails": map[string]any{"reversedAmount": formatMilli(amt, c.decimals), "currency": c.Currency}}}
	}
	switch {
	case !c.Capture:
		return refuse("NOT_SUPPORTED", "Declined - An authorization is cancelled with a reversal, not a void")
	case c.Voided:
		return refuse("NOT_VOIDABLE", "Declined - The transaction has already been voided")
	case settled:
		return refuse(s.settledVoidReasonLocked(), "Declined - The transaction has already been settled")
	case c.refunded > 0:
		return refuse("NOT_SUPPORTED", "Declined - Only an unrefunded sale or capture can be voided")
	}
	c.Voided = true
	c.voided += c.captured
	c.refresh()
	return timeoutAnswer{body: map[string]any{"status": status,
		"voidAmountDetails": map[string]any{"voidAmount": c.AuthorizedAmount, "currency": c.Currency}}}
}

// timeoutVoidFollowUpLocked cancels a capture or refund whose answer was
// lost. Caller holds s.mu.
func (s *Sandbox) timeoutVoidFollowUpLocked(f *FollowUp, now time.Time) timeoutAnswer {
	c := f.charge
	switch {
	case f.Kind != "capture" && f.Kind != "refund":
		return refuse("NOT_SUPPORTED", "Declined - Only a sale, capture, refund or credit can be voided")
	case f.Voided || f.Kind == "capture" && c.Voided:
		return refuse("NOT_VOIDABLE", "Declined - The transaction has already been voided")
	case s.followUpSettledLocked(f, now):
		return refuse(s.settledVoidReasonLocked(), "Declined - The transaction has already been settled")
	case f.Kind == "capture" && c.refunded > c.captured-f.amount:
		return refuse("NOT_SUPPORTED", "Declined - The capture has been refunded")
	}
	f.Voided = true
	switch f.Kind {
	case "capture":
		c.captured -= f.amount
		c.voided += f.amount
		if c.captured == 0 {
			c.capturedAt = time.Time{}
		}
	case "refund":
		c.refunded -= f.amount
		c.Refunds = append(c.Refunds, "-"+f.Amount)
	}
	c.refresh()
	return timeoutAnswer{body: map[string]any{"status": "VOIDED",
		"voidAmountDetails": map[string]any{"voidAmount": f.Amount, "currency": c.Currency}}}
}

// ownerElsewhereLocked finds another merchant's charge, follow-up or held
// payment with the transactionId. Caller holds s.mu.
func (s *Sandbox) ownerElsewhereLocked(key txnKey) (owner, paymentID string) {
	for _, c := range s.charges {
		if c.TransactionID == key.txn && c.MerchantID != key.merchant {
			return c.MerchantID, c.ID
		}
	}
	for _, f := range s.followUps {
		if f.TransactionID == key.txn && f.MerchantID != key.merchant {
			return f.MerchantID, f.PaymentID
		}
	}
	for k := range s.inFlight {
		if k.txn == key.txn && k.merchant != key.merchant {
			return k.merchant, ""
		}
	}
	return "", ""
}

// settledVoidReasonLocked is the reason a void of a settled transaction
// answers (the SettledVoidReason fault). Caller holds s.mu.
func (s *Sandbox) settledVoidReasonLocked() string {
	if r := s.faults.SettledVoidReason; r != "" {
		return r
	}
	return "NOT_VOIDABLE"
}
