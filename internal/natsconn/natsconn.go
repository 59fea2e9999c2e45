// Package natsconn is how a process authenticates to NATS and trusts the
// server's TLS certificate: the settings the worker and the publisher share
// (NATS_CREDS_FILE, NATS_USER, NATS_PASSWORD(_FILE), NATS_CA_FILE,
// NATS_INBOX_PREFIX), read from the environment and turned into nats.go
// connection options. Each role has its own NATS user (deploy/nats), whose
// permissions allow replies only under its own inbox prefix.
package natsconn

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"unicode"

	"github.com/nats-io/nats.go"
)

// Config holds the settings. Zero values: no credentials, the system
// roots, the default inbox prefix _INBOX.
type Config struct {
	// CredsFile is NATS_CREDS_FILE: a decentralized-auth .creds file (user
	// JWT and NKey seed).
	CredsFile string
	// User and Password are NATS_USER and NATS_PASSWORD(_FILE).
	User, Password string
	// CAFile is NATS_CA_FILE: the PEM CA certificate(s) that signed the
	// server's certificate. Setting it requires TLS.
	CAFile string
	// InboxPrefix is NATS_INBOX_PREFIX: the subject prefix of this
	// process's reply inboxes (JetStream acks and pulled messages arrive
	// there). A role's user may subscribe only under its own prefix, so
	// that no other user reads what it pulls.
	InboxPrefix string
}

// FromEnv reads the settings. Each problem names its variable and never
// quotes a password.
func FromEnv(getenv func(string) string) (Config, []string) {
	var c Config
	var ps []string
	c.CredsFile = strings.TrimSpace(getenv("NATS_CREDS_FILE"))
	c.User = strings.TrimSpace(getenv("NATS_USER"))
	pw, file := getenv("NATS_PASSWORD"), strings.TrimSpace(getenv("NATS_PASSWORD_FILE"))
	switch {
	case pw != "" && file != "":
		ps = append(ps, "NATS_PASSWORD and NATS_PASSWORD_FILE are both set: set one")
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			ps = append(ps, fmt.Sprintf("NATS_PASSWORD_FILE: cannot read %s: %v", file, errors.Unwrap(err)))
		}
		c.Password = strings.TrimRight(string(b), "\r\n")
	default:
		c.Password = pw
	}
	if strings.ContainsFunc(c.Password, unicode.IsControl) {
		ps = append(ps, "NATS_PASSWORD(_FILE) holds a control character such as a line break inside it")
	}
	c.CAFile = strings.TrimSpace(getenv("NATS_CA_FILE"))
	c.InboxPrefix = strings.TrimSpace(getenv("NATS_INBOX_PREFIX"))
	return c, ps
}

// Check lists what is wrong with the settings, alone and with the NATS
// URL(s) they are used with.
func (c Config) Check(natsURL string) []string {
	var ps []string
	bad := func(format string, args ...any) { ps = append(ps, fmt.Sprintf(format, args...)) }
	if c.CredsFile != "" && c.User != "" {
		bad("NATS_CREDS_FILE and NATS_USER are both set: set one")
	}
	switch {
	case c.User != "" && c.Password == "":
		bad("NATS_USER is set without NATS_PASSWORD or NATS_PASSWORD_FILE")
	case c.User == "" && c.Password != "":
		bad("NATS_PASSWORD(_FILE) is set without NATS_USER")
	}
	if c.CredsFile != "" {
		if _, err := os.Stat(c.CredsFile); err != nil {
			bad("NATS_CREDS_FILE: cannot read %s: %v", c.CredsFile, errors.Unwrap(err))
		}
	}
	if (c.CredsFile != "" || c.User != "") && urlHasUserinfo(natsURL) {
		bad("NATS_URL holds credentials and NATS_USER or NATS_CREDS_FILE is set too: set one")
	}
	if c.CAFile != "" {
		if err := checkCA(c.CAFile); err != nil {
			bad("NATS_CA_FILE: %v", err)
		}
	}
	if p := c.InboxPrefix; p != "" && (strings.ContainsAny(p, "*> \t\r\n") || strings.HasSuffix(p, ".") || strings.HasPrefix(p, ".") || strings.Contains(p, "..")) {
		bad("NATS_INBOX_PREFIX=%q: want subject tokens such as _INBOX_payments (no wildcards, spaces or empty tokens)", p)
	}
	return ps
}

// Options are the connection options of the settings.
func (c Config) Options() []nats.Option {
	var opts []nats.Option
	if c.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	}
	if c.User != "" {
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	}
	if c.CAFile != "" {
		// Sets Secure: a server that does not offer TLS is refused.
		opts = append(opts, nats.RootCAs(c.CAFile))
	}
	if c.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(c.InboxPrefix))
	}
	return opts
}

func urlHasUserinfo(list string) bool {
	for _, raw := range strings.Split(list, ",") {
		raw = strings.TrimSpace(raw)
		if !strings.Contains(raw, "://") {
			raw = "nats://" + raw
		}
		if u, err := url.Parse(raw); err == nil && u.User != nil {
			return true
		}
	}
	return false
}

func checkCA(file string) error {
	rest, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("cannot read %s: %w", file, errors.Unwrap(err))
	}
	for {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return fmt.Errorf("%s holds no PEM certificate", file)
		}
		if _, err := x509.ParseCertificate(b.Bytes); err == nil && b.Type == "CERTIFICATE" {
			return nil
		}
	}
}
