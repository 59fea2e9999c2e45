package sandbox

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The TTC side, as the integration guide describes it.

// handleToken serves POST /cybersource/token/{integratorName}.
func (s *Sandbox) handleToken(w http.ResponseWriter, r *http.Request) {
	integrator := r.PathValue("integrator")
	in, known := s.cfg.Integrators[integrator]
	// The guide: 403 for an invalid or missing x-api-key. An unknown
	// integrator has no key that could match.
	if !known || r.Header.Get("x-api-key") == "" || r.Header.Get("x-api-key") != in.APIKey {
		writeJSON(w, http.StatusForbidden, map[string]string{"message": "Forbidden"})
		return
	}
	body, err := readBody(r)
	var req struct {
		MerchantID *string `json:"merchantId"`
	}
	if err != nil || json.Unmarshal(body, &req) != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": "Invalid JSON body"})
		return
	}
	if req.MerchantID == nil || strings.TrimSpace(*req.MerchantID) == "" || len(*req.MerchantID) > 64 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": "Missing or invalid merchantId"})
		return
	}
	merchant := *req.MerchantID

	rec := s.beginTokenRequest(integrator, merchant)
	status := http.StatusOK
	defer func() { s.endTokenRequest(rec, status) }()

	s.delay(EndpointToken)
	if st := s.injected(EndpointToken); st != 0 {
		status = st
		writeJSON(w, st, map[string]string{"message": "Internal server error"})
		return
	}
	if len(in.Merchants) > 0 && !slices.Contains(in.Merchants, merchant) {
		status = http.StatusNotFound
		writeJSON(w, status, map[string]string{"message": "No stored refresh token for merchant " + merchant})
		return
	}
	certPEM, keyPEM, err := s.ca.clientPair(integrator+":"+merchant, 24*time.Hour)
	if err != nil {
		status = http.StatusInternalServerError
		writeJSON(w, status, map[string]string{"message": "Internal server error"})
		return
	}
	token := "sbx." + randomHex(24)
	s.mu.Lock()
	s.tokens[token] = &issuedToken{
		integrator: integrator,
		merchant:   merchant,
		expires:    s.cfg.Now().Add(s.cfg.TokenLifetime),
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"message":      "Access token retrieved successfully",
		"access_token": token,
		"token_type":   "Bearer",
		"expires_in":   int(s.cfg.TokenLifetime / time.Second),
		"mTls_key":     string(keyPEM),
		"mTls_cert":    string(certPEM),
	})
}

func (s *Sandbox) beginTokenRequest(integrator, merchant string) *TokenRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := &TokenRequest{Integrator: integrator, MerchantID: merchant, Start: s.cfg.Now()}
	for _, other := range s.tokenReqs {
		if !other.done && other.Integrator == integrator && other.MerchantID == merchant {
			other.Overlapped = true
			rec.Overlapped = true
		}
	}
	s.tokenReqs = append(s.tokenReqs, rec)
	return rec
}

func (s *Sandbox) endTokenRequest(rec *TokenRequest, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec.End = s.cfg.Now()
	rec.Status = status
	rec.done = true
}

// handleCallback serves POST /cybersource/oauth/callback. Like the real
// gateway it verifies the transaction against what CyberSource recorded.
func (s *Sandbox) handleCallback(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("x-api-key")
	valid := false
	for _, in := range s.cfg.Integrators {
		if key != "" && key == in.APIKey {
			valid = true
		}
	}
	if !valid {
		s.rejectCallback()
		writeJSON(w, http.StatusForbidden, map[string]string{"message": "Forbidden"})
		return
	}
	s.delay(EndpointCallback)
	if st := s.injected(EndpointCallback); st != 0 {
		writeJSON(w, st, map[string]string{"message": "Internal error enqueuing the callback payload"})
		return
	}
	body, err := readBody(r)
	var cb map[string]any
	if err != nil || json.Unmarshal(body, &cb) != nil {
		s.rejectCallback()
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": "Invalid JSON body"})
		return
	}
	fields := map[string]string{}
	for _, f := range []string{"merchantId", "transactionId", "bookingId", "currency", "amount"} {
		v, ok := cb[f].(string)
		if !ok || strings.TrimSpace(v) == "" {
			s.rejectCallback()
			writeJSON(w, http.StatusBadRequest, map[string]string{"message": "Missing or invalid field: " + f})
			return
		}
		fields[f] = v
	}
	amount, ok := parseMilli(fields["amount"])
	if !ok {
		s.rejectCallback()
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": "Missing or invalid field: amount"})
		return
	}
	if len(fields["currency"]) != 3 || strings.ToUpper(fields["currency"]) != fields["currency"] {
		s.rejectCallback()
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": "Missing or invalid field: currency"})
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	c, found := s.byID[fields["transactionId"]]
	var why string
	switch {
	case !found:
		why = "transaction not found at CyberSource"
	case !isApproved(c.Status):
		why = "transaction was not authorized"
	case c.MerchantID != fields["merchantId"]:
		why = "transaction belongs to another merchant"
	case c.Currency != fields["currency"]:
		why = "currency does not match the transaction"
	case c.authorized != amount:
		why = "amount does not match the authorized amount"
	}
	if found && c.MerchantID != fields["merchantId"] {
		s.crossLocked("callback", fields["merchantId"], c.MerchantID, c.ID, "", s.cfg.Now())
	}
	if why != "" {
		s.cbRejected++
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": "Invalid payload: " + why})
		return
	}
	rec := s.callbacks[c.ID]
	now := s.cfg.Now()
	if rec == nil {
		rec = &CallbackRecord{
			TransactionID: c.ID, MerchantID: c.MerchantID, BookingID: fields["bookingId"],
			Amount: fields["amount"], Currency: fields["currency"], First: now,
		}
		s.callbacks[c.ID] = rec
		s.cbOrder = append(s.cbOrder, c.ID)
	}
	rec.Count++
	rec.Last = now
	rec.TraceParent = r.Header.Get("traceparent")
	writeJSON(w, http.StatusOK, map[string]string{"message": "ok"})
}

func (s *Sandbox) rejectCallback() {
	s.mu.Lock()
	s.cbRejected++
	s.mu.Unlock()
}

// Admin routes.

func (s *Sandbox) handleLedger(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Ledger())
}

// Counts is the answer of GET /sandbox/counts: cheap to poll, unlike the
// whole ledger.
type Counts struct {
	Charges   int `json:"charges"`
	Callbacks int `json:"callbacks"`
}

func (s *Sandbox) handleCounts(w http.ResponseWriter, _ *http.Request) {
	charges, callbacks := s.Counts()
	writeJSON(w, http.StatusOK, Counts{Charges: charges, Callbacks: callbacks})
}

func (s *Sandbox) handleReset(w http.ResponseWriter, _ *http.Request) {
	s.Reset()
	writeJSON(w, http.StatusOK, map[string]string{"message": "reset"})
}

func (s *Sandbox) handleFaults(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		writeJSON(w, http.StatusOK, s.Faults())
		return
	}
	body, err := readBody(r)
	var f Faults
	if err == nil {
		f, err = ParseFaults(body)
	}
	if err == nil {
		err = s.SetFaults(f)
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, s.Faults())
}

func (s *Sandbox) handleRevoke(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Integrator string `json:"integrator"`
		MerchantID string `json:"merchantId"`
	}
	body, err := readBody(r)
	if err != nil || json.Unmarshal(body, &req) != nil || req.Integrator == "" || req.MerchantID == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": "want {\"integrator\":…,\"merchantId\":…}"})
		return
	}
	n := s.RevokeTokens(req.Integrator, req.MerchantID)
	writeJSON(w, http.StatusOK, map[string]string{"revoked": strconv.Itoa(n)})
}
