package natsconn_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ttcpay/payflow/internal/natsconn"
)

// TestFromEnv: a password file's line break is not part of the password,
// one inside it is refused; every problem names its variable and none
// quotes the password.
func TestFromEnv(t *testing.T) {
	const pw = "s3cret-Pw0"
	dir := t.TempDir()
	file := filepath.Join(dir, "password")
	if err := os.WriteFile(file, []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"NATS_USER": "payflow-payments", "NATS_PASSWORD_FILE": file, "NATS_INBOX_PREFIX": "_INBOX_payments"}
	c, ps := natsconn.FromEnv(func(k string) string { return env[k] })
	if len(ps) > 0 || c.Password != pw || c.User != "payflow-payments" || len(c.Check("nats://127.0.0.1:4222")) > 0 || len(c.Options()) != 2 {
		t.Fatalf("%+v %v", c.User, ps)
	}
	cases := map[string]map[string]string{
		"NATS_PASSWORD_FILE":        {"NATS_USER": "u", "NATS_PASSWORD_FILE": filepath.Join(dir, "missing")},
		"NATS_PASSWORD(_FILE) hold": {"NATS_USER": "u", "NATS_PASSWORD": pw + "\n" + pw},
		"NATS_URL holds":            {"NATS_USER": "u", "NATS_PASSWORD": pw, "url": "nats://a:" + pw + "@h:4222,nats://h2:4222"},
		"NATS_CA_FILE":              {"NATS_CA_FILE": file},
		"NATS_INBOX_PREFIX":         {"NATS_INBOX_PREFIX": "_INBOX."},
		"without NATS_USER":         {"NATS_PASSWORD": pw},
	}
	for want, env := range cases {
		c, ps := natsconn.FromEnv(func(k string) string { return env[k] })
		ps = append(ps, c.Check(env["url"])...)
		all := strings.Join(ps, "\n")
		if !strings.Contains(all, want) || strings.Contains(all, pw) {
			t.Errorf("%s: %q", want, all)
		}
	}
}
