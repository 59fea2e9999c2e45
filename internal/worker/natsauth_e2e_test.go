package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ttcpay/payflow/internal/deadletter"
	"github.com/ttcpay/payflow/internal/harness"
	"github.com/ttcpay/payflow/internal/natsconn"
	"github.com/ttcpay/payflow/internal/publish"
	"github.com/ttcpay/payflow/internal/sandbox"
	"github.com/ttcpay/payflow/internal/streams"
	"github.com/ttcpay/payflow/internal/systemtest"
	"github.com/ttcpay/payflow/internal/worker"
)

// chartNATS starts nats-server with deploy/nats/values.yaml's accounts,
// users, permissions and TLS.
func chartNATS(t *testing.T) *harness.ChartNATS {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "nats", "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return harness.StartChartNATS(t, b)
}

// roleConn is the NATS settings of a role's user on c.
func roleConn(c *harness.ChartNATS, role natsRole) natsconn.Config {
	return natsconn.Config{User: role.user, Password: c.Passwords[role.user], CAFile: c.TLS.CA, InboxPrefix: role.inbox}
}

// violations collects the permission violations the server reports to a
// connection.
type violations struct {
	mu   sync.Mutex
	errs []string
}

func (v *violations) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	if errors.Is(err, nats.ErrPermissionViolation) {
		v.mu.Lock()
		v.errs = append(v.errs, strings.ToLower(err.Error()))
		v.mu.Unlock()
	}
}

// denied reports whether a violation names the action on subject.
func (v *violations) denied(action, subject string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	want := strings.ToLower(action + " to " + strconv.Quote(subject))
	return slices.ContainsFunc(v.errs, func(e string) bool { return strings.Contains(e, want) })
}

func connectAs(t *testing.T, c *harness.ChartNATS, role natsRole) (*nats.Conn, *violations) {
	t.Helper()
	v := &violations{}
	nc, err := nats.Connect(c.URL(), append(roleConn(c, role).Options(), nats.ErrorHandler(v.handler))...)
	if err != nil {
		t.Fatalf("%s: %v", role.user, err)
	}
	t.Cleanup(nc.Close)
	return nc, v
}

// matches: a literal subject (or a subscription, whose wildcards must be
// covered) falls under an allow pattern.
func matches(pattern, subject string) bool {
	p, s := strings.Split(pattern, "."), strings.Split(subject, ".")
	for i, tok := range p {
		switch {
		case tok == ">":
			return i < len(s)
		case i >= len(s):
			return false
		case s[i] == ">":
			return false
		case tok == "*":
			continue
		case s[i] == "*" || tok != s[i]:
			return false
		}
	}
	return len(p) == len(s)
}

func allowed(list []string, subject string) bool {
	return slices.ContainsFunc(list, func(p string) bool { return matches(p, subject) })
}

// TestNATSPermissions runs nats-server with deploy/nats/values.yaml's
// accounts, users and TLS. Probes: for every role, every publish and
// subscription of a list (each stream's subjects, the JetStream API of each
// stream and consumer, acks, inboxes, wildcards) is allowed exactly when
// the role's permissions (natsRoles) allow it. End to end: workers run with
// the payments and callbacks users; upstream publishes and reads its
// results but cannot publish results, callback jobs or dead letters, nor
// read the intents stream; the operator lists, shows and replays dead
// letters; no connection without TLS or a user.
func TestNATSPermissions(t *testing.T) {
	roles := natsRoles()
	t.Run("Probes", func(t *testing.T) {
		c := chartNATS(t)
		var pubs []string
		for _, s := range []string{streams.Intents("m1"), streams.Results("m1"), streams.Callbacks("m1"), streams.DLQIntentsPrefix + "m1",
			streams.DLQCallbacksPrefix + "m1", "payments.other", jsAPI + "INFO", jsAPI + "STREAM.NAMES", jsAPI + "STREAM.LIST", "$SYS.REQ.SERVER.PING"} {
			pubs = append(pubs, s)
		}
		for _, s := range allStreams {
			for _, op := range []string{"STREAM.INFO.", "STREAM.CREATE.", "STREAM.UPDATE.", "STREAM.DELETE.", "STREAM.PURGE.", "STREAM.MSG.GET.",
				"STREAM.MSG.DELETE.", "DIRECT.GET.", "CONSUMER.NAMES.", "CONSUMER.LIST."} {
				pubs = append(pubs, jsAPI+op+s)
			}
			for _, cons := range []string{"probe", streams.ConsumerPayments, streams.ConsumerCallbacks} {
				for _, op := range []string{"CONSUMER.CREATE.", "CONSUMER.INFO.", "CONSUMER.MSG.NEXT.", "CONSUMER.DELETE."} {
					pubs = append(pubs, jsAPI+op+s+"."+cons)
				}
				pubs = append(pubs, jsAPI+"CONSUMER.CREATE."+s+"."+cons+".payments.x", "$JS.ACK."+s+"."+cons+".1.1.1.1.0")
			}
		}
		subs := []string{">", "payments.>", streams.IntentsPrefix + ">", streams.Intents("m1"), streams.ResultsPrefix + ">",
			streams.CallbacksPrefix + ">", streams.DLQPrefix + ">", "_INBOX.>", "$JS.>", "$JS.API.>"}
		for _, r := range roles {
			subs = append(subs, r.inbox+".>", r.inbox+".x")
		}
		for name, role := range roles {
			t.Run(name, func(t *testing.T) {
				nc, v := connectAs(t, c, role)
				for _, s := range pubs {
					if err := nc.Publish(s, []byte("{}")); err != nil {
						t.Fatal(err)
					}
				}
				for _, s := range subs {
					if _, err := nc.SubscribeSync(s); err != nil {
						t.Fatal(err)
					}
				}
				if err := nc.Flush(); err != nil {
					t.Fatal(err)
				}
				// The errors arrive before the flush's PONG; their handler
				// runs on another goroutine.
				deadline := time.Now().Add(5 * time.Second)
				want := 0
				for _, s := range pubs {
					if !allowed(role.publish, s) {
						want++
					}
				}
				for _, s := range subs {
					if !allowed(role.subscribeAllow(), s) {
						want++
					}
				}
				for time.Now().Before(deadline) {
					v.mu.Lock()
					n := len(v.errs)
					v.mu.Unlock()
					if n >= want {
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
				time.Sleep(200 * time.Millisecond) // and no more than that
				for _, s := range pubs {
					if a, d := allowed(role.publish, s), v.denied("publish", s); a == d {
						t.Errorf("%s: publish to %s: allowed by the contract %v, denied by the server %v", role.user, s, a, d)
					}
				}
				for _, s := range subs {
					if a, d := allowed(role.subscribeAllow(), s), v.denied("subscription", s); a == d {
						t.Errorf("%s: subscribe to %s: allowed by the contract %v, denied by the server %v", role.user, s, a, d)
					}
				}
			})
		}
	})
	t.Run("EndToEnd", func(t *testing.T) { testNATSPermissionsEndToEnd(t, roles) })
}

func testNATSPermissionsEndToEnd(t *testing.T, roles map[string]natsRole) {
	c := chartNATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	// No connection without TLS, without a user, or with a wrong password.
	up := roles["upstream"]
	if nc, err := nats.Connect(c.URL(), nats.UserInfo(up.user, c.Passwords[up.user])); err == nil {
		nc.Close()
		t.Error("connected without the CA (TLS)")
	}
	if nc, err := nats.Connect(c.URL(), nats.RootCAs(c.TLS.CA)); err == nil {
		nc.Close()
		t.Error("connected without a user")
	}
	if nc, err := nats.Connect(c.URL(), nats.RootCAs(c.TLS.CA), nats.UserInfo(up.user, "wrong")); err == nil {
		nc.Close()
		t.Error("connected with a wrong password")
	}

	// The system: workers log in as their roles' users; the Env's own
	// connection is the operator's.
	opNC := roleConn(c, roles["operator"])
	e := systemtest.NewWithNATS(t, sandbox.Config{}, c.URL(), opNC.Options()...)
	dir := t.TempDir()
	vars := func(name string) map[string]string {
		r := roles[name]
		pw := filepath.Join(dir, name+"-password")
		if err := os.WriteFile(pw, []byte(c.Passwords[r.user]+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return e.Vars(map[string]string{"WORKER_ROLES": name, "NATS_USER": r.user, "NATS_PASSWORD_FILE": pw,
			"NATS_CA_FILE": c.TLS.CA, "NATS_INBOX_PREFIX": r.inbox})
	}
	e.Start(vars("payments"), worker.TestConfig{}) // creates the streams
	e.Start(vars("callbacks"), worker.TestConfig{})

	// Upstream publishes intents and reads its results.
	upNC, upV := connectAs(t, c, up)
	upJS, _ := jetstream.New(upNC)
	waiter, err := publish.NewWaiter(ctx, upJS, time.Time{})
	if err != nil {
		t.Fatalf("upstream cannot read its results: %v", err)
	}
	defer waiter.Stop()
	wanted := map[string]bool{}
	for _, in := range []struct{ id, card string }{{"perm-ok", "4111111111111111"}, {"perm-declined", "4000000000000002"}, {"perm-luhn", "4111111111111112"}} {
		i := systemtest.NewIntent(in.id, in.card, "9.00", true)
		b, _ := json.Marshal(i)
		if _, err := publish.Publish(ctx, upJS, i, b, nil); err != nil {
			t.Fatalf("upstream publish: %v", err)
		}
		wanted[in.id] = true
	}
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	got := waiter.Wait(wctx, wanted)
	wcancel()
	if !got["perm-ok"].Authorized() || got["perm-declined"].Status != "DECLINED" || got["perm-luhn"].Status != "INVALID" {
		t.Fatalf("results read by upstream: %+v", got)
	}
	e.WaitFor("the callback", 30*time.Second, func() bool { return len(e.SB.Ledger().Callbacks) == 1 })

	// Upstream cannot write results, callback jobs or dead letters...
	for _, subject := range []string{streams.Results("ttc_ttusas_m"), streams.Callbacks("ttc_ttusas_m"),
		streams.DLQIntentsPrefix + "ttc_ttusas_m", streams.DLQCallbacksPrefix + "ttc_ttusas_m"} {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		_, err := upJS.Publish(pctx, subject, []byte(`{"intentId":"forged"}`))
		pcancel()
		if err == nil || !waitDenied(upV, "publish", subject) {
			t.Errorf("upstream published to %s (err %v)", subject, err)
		}
	}
	// ...nor read intents: no stream lookup, consumer, message get or
	// subscription on the intents subjects, and nothing published meanwhile
	// reaches it.
	sub, _ := upNC.SubscribeSync(streams.IntentsPrefix + ">")
	inbox, _ := upNC.SubscribeSync("_INBOX.>")
	i := systemtest.NewIntent("perm-late", "4111111111111111", "9.00", true)
	b, _ := json.Marshal(i)
	if _, err := publish.Publish(ctx, upJS, i, b, nil); err != nil {
		t.Fatal(err)
	}
	for _, try := range []struct {
		what string
		err  func(context.Context) error
	}{
		{"stream info", func(ctx context.Context) error { _, err := upJS.Stream(ctx, streams.StreamIntents); return err }},
		{"consumer", func(ctx context.Context) error {
			_, err := upJS.CreateOrUpdateConsumer(ctx, streams.StreamIntents, jetstream.ConsumerConfig{Durable: "peek"})
			return err
		}},
		{"ordered consumer", func(ctx context.Context) error {
			oc, err := upJS.OrderedConsumer(ctx, streams.StreamIntents, jetstream.OrderedConsumerConfig{})
			if err == nil {
				_, err = oc.Next(jetstream.FetchMaxWait(time.Second))
			}
			return err
		}},
		{"message get", func(ctx context.Context) error {
			req := nats.NewMsg(jsAPI + "STREAM.MSG.GET." + streams.StreamIntents)
			req.Data = []byte(`{"seq":1}`)
			_, err := upNC.RequestMsgWithContext(ctx, req)
			return err
		}},
	} {
		tctx, tcancel := context.WithTimeout(ctx, 2*time.Second)
		if err := try.err(tctx); err == nil {
			t.Errorf("upstream: %s of %s allowed", try.what, streams.StreamIntents)
		}
		tcancel()
	}
	if !waitDenied(upV, "subscription", streams.IntentsPrefix+">") || !waitDenied(upV, "subscription", "_INBOX.>") {
		t.Error("upstream's subscriptions to the intents subjects or to other inboxes were not refused")
	}
	if m, err := sub.NextMsg(500 * time.Millisecond); err == nil {
		t.Errorf("upstream received an intent: %s", m.Subject)
	}
	if m, err := inbox.NextMsg(100 * time.Millisecond); err == nil {
		t.Errorf("upstream received another user's reply: %s", m.Subject)
	}
	e.WaitFor("the late intent charged", 30*time.Second, func() bool { return e.Results()["perm-late"].Authorized() })

	// The operator: list, show and replay dead letters; no reading intents.
	letters, err := deadletter.List(ctx, e.JS, deadletter.Filter{})
	if err != nil || len(letters) != 1 {
		t.Fatalf("operator dlq list: %v %v", letters, err)
	}
	if _, err := deadletter.Show(ctx, e.JS, letters[0].Seq); err != nil {
		t.Fatalf("operator dlq show: %v", err)
	}
	sum, err := deadletter.Replay(ctx, e.JS, deadletter.Filter{}, false, nil)
	if err != nil || sum.Matched != 1 || sum.Failed != 1 { // the Luhn failure's card was removed: refused
		t.Fatalf("operator dlq replay: %+v %v", sum, err)
	}
	octx, ocancel := context.WithTimeout(ctx, 3*time.Second)
	if oc, err := e.JS.OrderedConsumer(octx, streams.StreamIntents, jetstream.OrderedConsumerConfig{}); err == nil {
		if m, err := oc.Next(jetstream.FetchMaxWait(time.Second)); err == nil {
			t.Errorf("the operator read an intent: %s", m.Subject())
		}
	}
	ocancel()
	octx, ocancel = context.WithTimeout(ctx, 3*time.Second)
	if s, err := e.JS.Stream(octx, streams.StreamIntents); err != nil {
		t.Errorf("operator stream info: %v", err)
	} else if _, err := s.GetMsg(octx, 1); err == nil {
		t.Error("the operator got a message of the intents stream")
	}
	ocancel()

	// Every worker did all it had to within its permissions.
	if logs := strings.ToLower(e.Logs.String()); strings.Contains(logs, "permissions violation") || strings.Contains(logs, "authorization violation") {
		t.Errorf("a worker hit its permissions:\n%s", grepLines(e.Logs.String(), "iolation"))
	}
}

// waitDenied waits up to two seconds for the server to report a violation.
func waitDenied(v *violations, action, subject string) bool {
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if v.denied(action, subject) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func grepLines(text, s string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
