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
	ProcessingInformation *struct {
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
	} `json:"processingInformation"`
	PaymentInformation *struct {
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

	s.mu.Lock()
	if txnID != "" && s.usedTxnIDs[txnID] {
		s.mu.Unlock()
		s.badRequest(w, "DUPLICATE_REQUEST", "Declined - The merchant transaction identifier has already been used",
			fieldProblem{Field: "clientReferenceInformation.transactionId", Reason: "INVALID_DATA"})
		return
	}
	if txnID != "" {
		s.usedTxnIDs[txnID] = true
	}
	s.mu.Unlock()

	out := approved
	if o, ok := DeclineCards[card.number]; ok {
		out = o
	}
	if o, ok := amountTriggers[amount]; ok {
		out = o
	}
	if out.http400 != "" {
		s.badRequest(w, out.http400, "Declined - One or more fields in the request contains invalid data",
			fieldProblem{Field: "orderInformation.amountDetails.totalAmount", Reason: "INVALID_DATA"})
		return
	}
	if out.http502 != "" && !out.charged {
		s.serverError(w, http.StatusBadGateway, out.http502)
		return
	}
	if out.http502 != "" {
		out = approved // charged, then the answer is lost in a timeout
	}
	cut502 := s.roll(s.Faults().TimeoutAfterChargeRate)
	cutConn := !cut502 && s.roll(s.Faults().CutAfterChargeRate)

	pi := req.ProcessingInformation
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
	case cut502 || out.http502 != "":
		s.setAnswered(c, "502")
		reason := out.http502
		if reason == "" {
			reason = "SERVER_TIMEOUT"
		}
		s.serverError(w, http.StatusBadGateway, reason)
	case cutConn:
		s.setAnswered(c, "cut")
		cut(w)
	default:
		writeJSON(w, http.StatusCreated, resp)
	}
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
	c.refresh()
	s.charges = append(s.charges, c)
	s.byID[c.ID] = c
	if c.TransactionID != "" {
		s.byTxnID[c.TransactionID] = c
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

func (f *csFollowUp) reversalAmount() string {
	if f.ReversalInformation != nil && f.ReversalInformation.AmountDetails != nil {
		return f.ReversalInformation.AmountDetails.TotalAmount
	}
	return ""
}

// handleFollowUp serves POST /pts/v2/payments/{id}/{captures|reversals|voids|refunds}.
func (s *Sandbox) handleFollowUp(op string) http.HandlerFunc {
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
			s.badRequest(w, "INVALID_DATA", "Declined - One or more fields in the request contains invalid data")
			return
		}
		cutAfter := s.roll(s.Faults().CutAfterFollowUpRate) // before the lock: roll takes it
		answer := func(body map[string]any) {
			if cutAfter {
				cut(w) // recorded, but the answer is lost
				return
			}
			writeJSON(w, http.StatusCreated, body)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		var txn string
		if req.ClientReferenceInformation != nil {
			txn = req.ClientReferenceInformation.TransactionID
		}
		if txn != "" && s.usedTxnIDs[txn] {
			s.badRequest(w, "DUPLICATE_REQUEST", "Declined - The merchant transaction identifier has already been used",
				fieldProblem{Field: "clientReferenceInformation.transactionId", Reason: "INVALID_DATA"})
			return
		}
		c := s.byID[r.PathValue("id")]
		if c == nil || c.MerchantID != merchant {
			s.badRequest(w, "INVALID_PAYMENT_ID", "Declined - The payment id is not known")
			return
		}
		if !isApproved(c.Status) {
			s.badRequest(w, "MISSING_AUTH", "Declined - The payment was not authorized")
			return
		}
		now := s.cfg.Now().UTC().Format(time.RFC3339)
		id := s.newIDLocked()
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
		switch op {
		case "captures":
			if c.Voided || c.Reversed {
				s.badRequest(w, "TRANSACTION_ALREADY_REVERSED_OR_SETTLED", "Declined - The authorization has already been reversed")
				return
			}
			amt, ok := parse(req.orderAmount(), "orderInformation.amountDetails.totalAmount")
			if !ok {
				return
			}
			if amt > c.authorized-c.captured-c.reversed {
				s.badRequest(w, "EXCEEDS_AUTH_AMOUNT", "Declined - The capture amount exceeds the authorized amount")
				return
			}
			c.captured += amt
			c.refresh()
			s.noteFollowUp(txn, c, "capture", amt)
			answer(map[string]any{"id": id, "status": "PENDING", "submitTimeUtc": now,
				"orderInformation": map[string]any{"amountDetails": map[string]any{"totalAmount": formatMilli(amt, c.decimals), "currency": c.Currency}},
				"_links":           map[string]any{"void": link("POST", "/pts/v2/captures/"+id+"/voids")}})
		case "reversals":
			if c.Voided || c.Reversed {
				s.badRequest(w, "AUTH_ALREADY_REVERSED", "Declined - The authorization has already been reversed")
				return
			}
			left := c.authorized - c.captured - c.reversed
			if left <= 0 {
				s.badRequest(w, "TRANSACTION_ALREADY_SETTLED", "Declined - The authorization has already been captured")
				return
			}
			amt, ok := parse(req.reversalAmount(), "reversalInformation.amountDetails.totalAmount")
			if !ok {
				return
			}
			if amt > left {
				s.badRequest(w, "INVALID_AMOUNT", "Declined - The reversal amount exceeds what is left of the authorization")
				return
			}
			c.reversed += amt
			c.refresh()
			s.noteFollowUp(txn, c, "reversal", amt)
			answer(map[string]any{"id": id, "status": "REVERSED", "submitTimeUtc": now,
				"reversalAmountDetails": map[string]any{"reversedAmount": formatMilli(amt, c.decimals), "currency": c.Currency}})
		case "voids":
			if c.Voided {
				s.badRequest(w, "TRANSACTION_ALREADY_REVERSED_OR_SETTLED", "Declined - The transaction has already been voided")
				return
			}
			if c.captured == 0 || c.refunded > 0 {
				s.badRequest(w, "NOT_SUPPORTED", "Declined - Only an unrefunded sale or capture can be voided")
				return
			}
			c.Voided = true
			c.refresh()
			s.noteFollowUp(txn, c, "void", 0)
			answer(map[string]any{"id": id, "status": "VOIDED", "submitTimeUtc": now,
				"voidAmountDetails": map[string]any{"voidAmount": formatMilli(c.captured, c.decimals), "currency": c.Currency}})
		case "refunds":
			if c.Voided {
				s.badRequest(w, "TRANSACTION_ALREADY_REVERSED_OR_SETTLED", "Declined - The transaction has been voided")
				return
			}
			amt, ok := parse(req.orderAmount(), "orderInformation.amountDetails.totalAmount")
			if !ok {
				return
			}
			if amt > c.captured-c.refunded {
				s.badRequest(w, "INVALID_AMOUNT", "Declined - The refund amount exceeds the captured amount")
				return
			}
			c.refunded += amt
			c.Refunds = append(c.Refunds, formatMilli(amt, c.decimals))
			c.refresh()
			s.noteFollowUp(txn, c, "refund", amt)
			answer(map[string]any{"id": id, "status": "PENDING", "submitTimeUtc": now,
				"refundAmountDetails": map[string]any{"refundAmount": formatMilli(amt, c.decimals), "currency": c.Currency}})
		}
	}
}

// handleTimeout serves the timeout reversal (POST /pts/v2/reversals) and the
// timeout void (POST /pts/v2/voids), both keyed on
// clientReferenceInformation.transactionId of the lost request.
func (s *Sandbox) handleTimeout(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, _, ok := s.authenticate(w, r); !ok {
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
			s.badRequest(w, "INVALID_DATA", "Declined - One or more fields in the request contains invalid data")
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
		s.mu.Lock()
		defer s.mu.Unlock()
		now := s.cfg.Now()
		// The transactionId is spent: a late original with it is refused.
		s.usedTxnIDs[txn] = true
		if fu := s.followUps[txn]; fu != nil && kind == "void" {
			// A timeout void of a capture or refund cancels just that.
			rec := TimeoutReversal{Kind: kind, TransactionID: txn, Found: true, At: now, Status: "VOIDED"}
			if !fu.voided {
				fu.voided = true
				switch fu.kind {
				case "capture":
					fu.charge.captured -= fu.amount
				case "refund":
					fu.charge.refunded -= fu.amount
					fu.charge.Refunds = append(fu.charge.Refunds, "-"+formatMilli(fu.amount, fu.charge.decimals))
				}
				fu.charge.refresh()
			}
			s.timeoutRevs = append(s.timeoutRevs, rec)
			writeJSON(w, http.StatusCreated, map[string]any{"id": s.newIDLocked(), "status": "VOIDED",
				"clientReferenceInformation": map[string]any{"transactionId": txn},
				"voidAmountDetails":          map[string]any{"voidAmount": formatMilli(fu.amount, fu.charge.decimals), "currency": fu.charge.Currency}})
			return
		}
		c := s.byTxnID[txn]
		rec := TimeoutReversal{Kind: kind, TransactionID: txn, Found: c != nil, At: now}
		id := s.newIDLocked()
		resp := map[string]any{"id": id, "submitTimeUtc": now.UTC().Format(time.RFC3339),
			"clientReferenceInformation": map[string]any{"transactionId": txn}}
		status := "REVERSED"
		if kind == "void" {
			status = "VOIDED"
		}
		switch {
		case c == nil || !isApproved(c.Status):
			// The original failed or never arrived: nothing to cancel. The
			// documented answer carries the original amount and a response code.
			details := map[string]any{"originalTransactionAmount": "0", "currency": ""}
			if c != nil {
				details = map[string]any{"originalTransactionAmount": c.Amount, "currency": c.Currency}
			}
			if kind == "void" {
				resp["voidAmountDetails"] = details
			} else {
				resp["reversalAmountDetails"] = details
			}
			resp["processorInformation"] = map[string]any{"responseCode": "25"}
		case kind == "reversal" && c.captured > 0:
			rec.Status = "TRANSACTION_ALREADY_SETTLED"
			s.timeoutRevs = append(s.timeoutRevs, rec)
			s.badRequest(w, "TRANSACTION_ALREADY_SETTLED", "Declined - The authorization has already been captured")
			return
		case kind == "void" && !c.Capture:
			rec.Status = "NOT_SUPPORTED"
			s.timeoutRevs = append(s.timeoutRevs, rec)
			s.badRequest(w, "NOT_SUPPORTED", "Declined - An authorization is cancelled with a reversal, not a void")
			return
		case kind == "reversal":
			c.reversed = c.authorized - c.captured
			c.refresh()
			resp["reversalAmountDetails"] = map[string]any{"reversedAmount": formatMilli(c.reversed, c.decimals), "currency": c.Currency}
		default:
			c.Voided = true
			c.refresh()
			resp["voidAmountDetails"] = map[string]any{"voidAmount": c.AuthorizedAmount, "currency": c.Currency}
		}
		resp["status"] = status
		rec.Status = status
		s.timeoutRevs = append(s.timeoutRevs, rec)
		writeJSON(w, http.StatusCreated, resp)
	}
}

// noteFollowUp records a follow-up sent with a transactionId. Caller holds s.mu.
func (s *Sandbox) noteFollowUp(txn string, c *Charge, kind string, amount int64) {
	if txn == "" {
		return
	}
	s.usedTxnIDs[txn] = true
	s.followUps[txn] = &followUp{charge: c, kind: kind, amount: amount}
}
