package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Admin reads and steers a sandbox in another process through its admin
// routes (under /sandbox/ on the TTC URL), for programs such as the bench
// that run the sandbox apart from themselves.
type Admin struct {
	// URL is the sandbox's TTC URL.
	URL  string
	HTTP *http.Client
}

// Ledger fetches GET /sandbox/ledger.
func (a Admin) Ledger(ctx context.Context) (Ledger, error) {
	var l Ledger
	return l, a.do(ctx, http.MethodGet, "/sandbox/ledger", nil, &l)
}

// Counts fetches GET /sandbox/counts: charges and callbacks recorded.
func (a Admin) Counts(ctx context.Context) (charges, callbacks int, err error) {
	var c Counts
	err = a.do(ctx, http.MethodGet, "/sandbox/counts", nil, &c)
	return c.Charges, c.Callbacks, err
}

// Faults fetches the faults in force (GET /sandbox/faults).
func (a Admin) Faults(ctx context.Context) (Faults, error) {
	var f Faults
	return f, a.do(ctx, http.MethodGet, "/sandbox/faults", nil, &f)
}

// SetFaults replaces the faults in force (POST /sandbox/faults).
func (a Admin) SetFaults(ctx context.Context, f Faults) error {
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return a.do(ctx, http.MethodPost, "/sandbox/faults", b, nil)
}

func (a Admin) do(ctx context.Context, method, path string, body []byte, into any) error {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(a.URL, "/")+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := a.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("sandbox %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("sandbox %s %s: HTTP %d: %s", method, path, resp.StatusCode, bytes.TrimSpace(msg))
	}
	if into == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		return fmt.Errorf("sandbox %s %s: %w", method, path, err)
	}
	return nil
}
