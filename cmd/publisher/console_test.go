package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ttcpay/payflow/internal/deadletter"
	"github.com/ttcpay/payflow/internal/sandbox"
	"github.com/ttcpay/payflow/internal/streams"
	"github.com/ttcpay/payflow/internal/systemtest"
	"github.com/ttcpay/payflow/internal/worker"
)

const consoleToken = "console-test-token-0123456789"

// testCards are the card numbers the console test's intents and letters
// carry; no page may show one.
var testCards = []string{"4111111111111111", "5555555555554444"}

// startConsole runs `publisher console` on a random loopback port and
// returns its base URL.
func startConsole(t *testing.T, env map[string]string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out systemtest.SyncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"console", "--addr", "127.0.0.1:0"}, func(k string) string { return env[k] }, strings.NewReader(""), &out)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("console: %v\n%s", err, out.String())
		}
	})
	re := regexp.MustCompile(`console listening on (http://[0-9.:]+)`)
	for range 200 {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			return m[1]
		}
		select {
		case err := <-done:
			t.Fatalf("console exited: %v\n%s", err, out.String())
		case <-time.After(25 * time.Millisecond):
		}
	}
	t.Fatalf("console did not start:\n%s", out.String())
	return ""
}

// chromium finds the browser (scripts/test.sh installs Debian's chromium).
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless_shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no chromium on PATH: apt-get install chromium (scripts/test.sh does)")
	return ""
}

// TestConsole drives the console in headless Chromium against NATS, Redis,
// the sandbox and a worker: the overview's counts, an intent found by its
// bookingId with its timeline, a dead letter replayed through the
// confirmation until its intent is authorized, a plaintext-card letter
// purged; actions refused without the token, without the CSRF token,
// cross-site and in read-only mode; no test card number in any page.
// CONSOLE_SCREENSHOTS=1 writes docs/console/*.png.
func TestConsole(t *testing.T) {
	exe := chromium(t)
	e := systemtest.New(t, sandbox.Config{Faults: sandbox.Faults{Outages: []sandbox.Outage{{Endpoint: "payments", For: sandbox.Duration(time.Hour)}}}}, false)
	vars := dlqKeyVars(t)
	vars["PAYMENT_RETRY_BUDGET"] = "2s"
	e.Start(e.Vars(vars), worker.TestConfig{})
	ctx := context.Background()

	// Two intents dead-lettered by the outage (exhausted), one authorized
	// after it, and an old letter whose payload holds a plaintext card.
	e.Publish(systemtest.NewIntent("con-1", testCards[0], "8.00", false))
	e.Publish(systemtest.NewIntent("con-2", testCards[1], "9.00", false))
	e.WaitFor("dead letters", 60*time.Second, func() bool { return len(e.DeadLetters()) == 2 })
	_ = e.SB.SetFaults(sandbox.Faults{})
	e.Publish(systemtest.NewIntent("con-3", testCards[0], "10.00", true))
	e.WaitFor("con-3 authorized", 30*time.Second, func() bool { return e.Results()["con-3"].Authorized() })
	old := deadletter.Letter{Kind: deadletter.KindIntents, Class: deadletter.ClassInvalid, MerchantID: "ttc_ttusas_m", IntentID: "old-1", Deliveries: 1,
		OriginalSubject: streams.Intents("ttc_ttusas_m"), Reason: "card 4111 1111 1111 1111 refused",
		Data: []byte(`{"intentId":"old-1","card":{"number":"4111111111111111","securityCode":"737"}}`)}
	if err := deadletter.Publish(ctx, e.JS, old, time.Now()); err != nil {
		t.Fatal(err)
	}
	seqOf := func(id string) uint64 {
		t.Helper()
		ls, err := deadletter.List(ctx, e.JS, deadletter.Filter{IntentID: id})
		if err != nil || len(ls) != 1 {
			t.Fatalf("letters of %s: %v %v", id, ls, err)
		}
		return ls[0].Seq
	}
	seq1, seqOld := seqOf("con-1"), seqOf("old-1")
	letters := func() int {
		t.Helper()
		ls, err := deadletter.List(ctx, e.JS, deadletter.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		return len(ls)
	}

	env := map[string]string{"NATS_URL": e.NATSURL, "REDIS_URL": e.RedisURL, "CONSOLE_TOKEN": consoleToken, "CONSOLE_ALLOW_ACTIONS": "true"}
	base := startConsole(t, env)
	roEnv := map[string]string{"NATS_URL": e.NATSURL, "REDIS_URL": e.RedisURL, "CONSOLE_TOKEN": consoleToken}
	readOnly := startConsole(t, roEnv)

	actx, cancelA := chromedp.NewExecAllocator(ctx, chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.WindowSize(1280, 900), chromedp.UserDataDir(t.TempDir()))
	defer cancelA()
	bctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	bctx, cancelT := context.WithTimeout(bctx, 60*time.Second)
	defer cancelT()

	pages := []string{""} // every page's HTML, checked for card numbers at the end
	html := func(what string) string {
		t.Helper()
		h, err := chromedp.Run(bctx, chromedp.OuterHTML(chromedp.CSS("html")))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		pages = append(pages, h)
		return h
	}
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, steps...); err != nil {
			loc, _ := chromedp.Run(context.WithoutCancel(bctx), chromedp.Location())
			t.Fatalf("%s: %v; at %s:\n%s", what, err, loc, pages[len(pages)-1])
		}
		t.Logf("%s: done", what)
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.Text(chromedp.ID(sel)))
		if err != nil {
			t.Fatalf("text of #%s: %v", sel, err)
		}
		return strings.TrimSpace(s)
	}
	shoot := func(name string) {
		t.Helper()
		if os.Getenv("CONSOLE_SCREENSHOTS") == "" {
			return
		}
		png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("..", "..", "docs", "console", name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Sign in: the overview sends the browser to the login page.
	do("sign in", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("operator"), "alice"), chromedp.SendKeys(chromedp.ID("token"), consoleToken),
		chromedp.Click(chromedp.ID("signin")), chromedp.WaitVisible(chromedp.ID("dead-letters")))

	// 1. The overview's counts.
	h := html("overview")
	if got := text("dead-letters"); got != "3" {
		t.Errorf("overview: %s dead letters, want 3", got)
	}
	for _, want := range []string{streams.StreamIntents, streams.StreamDLQ, "exhausted", "invalid", "alice"} {
		if !strings.Contains(h, want) {
			t.Errorf("overview lacks %q", want)
		}
	}
	shoot("overview.png")

	// 2. Search an intent by its bookingId (found in the results), then
	// one by its intentId with the search box and read its timeline (an
	// intent authorized at once keeps no history: con-3 has none).
	do("search", chromedp.Navigate(base+"/intent"), chromedp.SendKeys(chromedp.ID("q"), "B-con-3"), chromedp.Click(chromedp.ID("search")),
		chromedp.WaitVisible(chromedp.ID("results")))
	h = html("intent by bookingId")
	if got := text("intent-id"); got != "con-3" || !strings.Contains(h, "Found by its bookingId") {
		t.Errorf("search by bookingId found %q", got)
	}
	if !strings.Contains(text("results"), "AUTHORIZED") {
		t.Errorf("con-3's results do not say AUTHORIZED")
	}
	do("search con-1", chromedp.SetValue(chromedp.ID("q"), "con-1"), chromedp.Click(chromedp.ID("search")), chromedp.WaitVisible(chromedp.ID("timeline")))
	html("intent con-1")
	if got := text("intent-id"); got != "con-1" {
		t.Errorf("search by intentId found %q", got)
	}
	timeline := text("timeline")
	for _, want := range []string{"claim", "dead-letter"} {
		if !strings.Contains(timeline, want) {
			t.Errorf("con-1's timeline lacks %q:\n%s", want, timeline)
		}
	}

	// 3. Replay con-1's letter through the confirmation.
	do("dead letters", chromedp.Navigate(base+"/deadletters"), chromedp.WaitVisible(chromedp.ID("letters")))
	html("dead letters")
	shoot("deadletters.png")
	do("select", chromedp.Click(chromedp.ID(fmt.Sprintf("seq-%d", seq1))), chromedp.Click(chromedp.ID("replay")), chromedp.WaitVisible(chromedp.ID("confirm")))
	html("confirm replay")
	if got := text("what"); !strings.Contains(got, "1 will be republished") {
		t.Errorf("confirmation says %q", got)
	}
	if letters() != 3 {
		t.Fatalf("the confirmation page changed the dead letters")
	}
	do("confirm", chromedp.Click(chromedp.ID("confirm")), chromedp.WaitVisible(chromedp.ID("summary")))
	html("replayed")
	if got := text("summary"); !strings.HasPrefix(got, "Replayed 1 of 1") {
		t.Errorf("summary %q", got)
	}
	e.WaitFor("con-1 authorized", 30*time.Second, func() bool { return e.Results()["con-1"].Authorized() })
	do("con-1 again", chromedp.Navigate(base+"/intent?q=con-1"), chromedp.WaitVisible(chromedp.ID("results")))
	if !strings.Contains(html("con-1 authorized"), "AUTHORIZED") {
		t.Errorf("con-1's page does not show it authorized")
	}
	shoot("intent.png")

	// Purge the plaintext-card letter; its confirmation shows the masked payload.
	do("purge", chromedp.Navigate(base+"/deadletters?class=invalid"), chromedp.WaitVisible(chromedp.ID("letters")),
		chromedp.Click(chromedp.ID(fmt.Sprintf("seq-%d", seqOld))), chromedp.Click(chromedp.ID("purge")), chromedp.WaitVisible(chromedp.ID("confirm")))
	if h := html("confirm purge"); !strings.Contains(h, "****1111") {
		t.Errorf("purge confirmation does not show the masked card")
	}
	do("confirm purge", chromedp.Click(chromedp.ID("confirm")), chromedp.WaitVisible(chromedp.ID("summary")))
	html("purged")
	if got := text("summary"); got != "Purged 1." {
		t.Errorf("purge summary %q", got)
	}
	if n := letters(); n != 1 {
		t.Errorf("%d dead letters left, want con-2's", n)
	}

	// 4. Actions refused: no token, wrong token, no CSRF token, cross-site,
	// read-only.
	seq2 := seqOf("con-2")
	form := url.Values{"action": {"replay"}, "seq": {fmt.Sprint(seq2)}}
	post := func(c *http.Client, base, path string, v url.Values, hdr map[string]string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(v.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		pages = append(pages, string(b))
		return resp.StatusCode, string(b)
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	jar, _ := cookiejar.New(nil)
	signedIn := &http.Client{Jar: jar}
	if code, _ := post(signedIn, base, "/login", url.Values{"operator": {"bob"}, "token": {consoleToken}}, nil); code != http.StatusOK {
		t.Fatalf("sign in over HTTP: %d", code)
	}
	resp, err := signedIn.Get(base + "/deadletters")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	pages = append(pages, string(b))
	for h, want := range map[string]string{"Content-Security-Policy": "default-src 'self'", "X-Frame-Options": "DENY", "Cache-Control": "no-store"} {
		if got := resp.Header.Get(h); !strings.Contains(got, want) {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(string(b))
	if m == nil {
		t.Fatal("no CSRF token on the dead-letters page")
	}
	withCSRF := url.Values{"action": {"replay"}, "seq": {fmt.Sprint(seq2)}, "csrf": {m[1]}}
	for _, c := range []struct {
		name   string
		client *http.Client
		base   string
		form   url.Values
		hdr    map[string]string
		want   int
	}{
		{"no token", noRedirect, base, form, nil, http.StatusUnauthorized},
		{"wrong bearer token", noRedirect, base, form, map[string]string{"Authorization": "Bearer " + strings.Repeat("x", len(consoleToken))}, http.StatusUnauthorized},
		{"session without CSRF token", signedIn, base, form, nil, http.StatusForbidden},
		{"session, wrong CSRF token", signedIn, base, url.Values{"action": {"replay"}, "seq": {fmt.Sprint(seq2)}, "csrf": {"x" + m[1]}}, nil, http.StatusForbidden},
		{"cross-site", signedIn, base, withCSRF, map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"other origin", signedIn, base, withCSRF, map[string]string{"Origin": "http://evil.example"}, http.StatusForbidden},
		{"read-only, bearer token", noRedirect, readOnly, form, map[string]string{"Authorization": "Bearer " + consoleToken}, http.StatusForbidden},
	} {
		for _, path := range []string{"/deadletters/confirm", "/deadletters/do"} {
			if code, body := post(c.client, c.base, path, c.form, c.hdr); code != c.want {
				t.Errorf("%s %s: %d, want %d\n%s", c.name, path, code, c.want, body)
			}
		}
	}
	if n := letters(); n != 1 {
		t.Fatalf("a refused action changed the dead letters: %d left", n)
	}
	// The same session with its CSRF token may act (the guards above are
	// what refused): a confirmation page, nothing done yet.
	if code, body := post(signedIn, base, "/deadletters/confirm", withCSRF, nil); code != http.StatusOK || !strings.Contains(body, "1 will be republished") {
		t.Errorf("confirm with CSRF token: %d\n%s", code, body)
	}
	// A letter gone since it was listed: the confirmation says so.
	if code, body := post(signedIn, base, "/deadletters/confirm", url.Values{"action": {"purge"}, "seq": {fmt.Sprint(seq1)}, "csrf": {m[1]}}, nil); code != http.StatusConflict || !strings.Contains(body, "replayed or purged since") {
		t.Errorf("confirm of a replayed letter: %d\n%s", code, body)
	}
	// Read-only in the browser: no checkboxes, no buttons.
	do("read-only", chromedp.Navigate(readOnly+"/login"), chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("operator"), "carol"), chromedp.SendKeys(chromedp.ID("token"), consoleToken),
		chromedp.Click(chromedp.ID("signin")), chromedp.WaitVisible(chromedp.ID("dead-letters")),
		chromedp.Navigate(readOnly+"/deadletters"), chromedp.WaitVisible(chromedp.ID("letters")))
	if h := html("read-only dead letters"); strings.Contains(h, `type="checkbox"`) || strings.Contains(h, `id="replay"`) || !strings.Contains(h, "Read-only") {
		t.Errorf("read-only console offers actions")
	}

	// 5. No card number in any page.
	for i, p := range pages {
		for _, card := range append(testCards, "4111 1111 1111 1111") {
			if strings.Contains(p, card) {
				t.Errorf("page %d shows %q", i, card)
			}
		}
	}
}
