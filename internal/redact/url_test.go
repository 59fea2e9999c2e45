package redact

import (
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"},
		{"nats://h1:4222,nats://h2:4222", "nats://h1:4222,nats://h2:4222"},
		{"https://ttc.example.com/a?q=1", "https://ttc.example.com/a?q=1"},
		{"https://h/a@b", "https://xxxxx@b"}, // an @ in a path is hidden with what precedes it: the safe mistake
		{"redis://:s3cret@127.0.0.1:6379/0", "redis://xxxxx@127.0.0.1:6379/0"},
		{"redis://payflow:s3cret@redis:6379/0", "redis://xxxxx@redis:6379/0"},
		{"nats://s3cret@h:4222", "nats://xxxxx@h:4222"}, // a NATS token sits where a user name would
		// Unparsable: the password still goes.
		{"redis://:s3cret@127.0.0.1:port/0", "redis://xxxxx@127.0.0.1:port/0"},
		{"redis://:s3c ret@h/0", "redis://xxxxx@h/0"},
		{"redis://:s3/cret@h:6379/0", "redis://xxxxx@h:6379/0"},
		{"redis://:s3@cret@h:port", "redis://xxxxx@h:port"},
		{"nats://s3cret@[::1:4222", "nats://xxxxx@[::1:4222"},
		{"redis://:s3cret\n@h:6379", "redis://xxxxx@h:6379"},
		// No scheme (url.Parse reads "u" as the scheme and the rest as opaque).
		{"u:s3cret@h:6379", "xxxxx@h:6379"},
		// Lists, as NATS_URL takes them.
		{"nats://a:s3cret@h1:4222,nats://b:s3cret@h2:4222", "nats://xxxxx@h1:4222,nats://xxxxx@h2:4222"},
		{"nats://a:s3,cret@h1:4222,nats://h2:4222", "nats://xxxxx@h1:4222,nats://h2:4222"},
		{"nats://h1:4222,nats://b:s3cret@h2:4222", "nats://h1:4222,nats://xxxxx@h2:4222"},
	} {
		got := URL(tc.in)
		if got != tc.want {
			t.Errorf("URL(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if strings.Contains(got, "s3") {
			t.Errorf("URL(%q) = %q keeps the password", tc.in, got)
		}
	}
}

// FuzzURL: whatever the input, a password put in the userinfo of a URL
// never survives, and the host after it does.
func FuzzURL(f *testing.F) {
	f.Add("redis", "user", "127.0.0.1:6379", "/0")
	f.Add("nats", "", "h1:4222,nats://h2:4222", "")
	f.Add("rediss", "a:b", "[::1", "/x@y")
	f.Fuzz(func(t *testing.T, scheme, user, host, path string) {
		const pw = "Pw9~Q"
		if strings.Contains(scheme+user+host+path, "Pw9") || strings.Contains(scheme+user+host+path, "://") {
			return
		}
		in := scheme + "://" + user + ":" + pw + "@" + host + path
		if got := URL(in); strings.Contains(got, pw) {
			t.Fatalf("URL(%q) = %q keeps the password", in, got)
		}
	})
}
