package harness

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"golang.org/x/crypto/bcrypt"
	"gopkg.in/yaml.v3"
)

// TLSFiles are PEM files of a test CA and a server certificate it signed
// for 127.0.0.1, ::1 and localhost.
type TLSFiles struct {
	CA, Cert, Key string
}

// NewTLSFiles writes a fresh CA and server certificate into the test's
// temporary directory (keys are made at run time, never committed).
func NewTLSFiles(t testing.TB) TLSFiles {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "payflow test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "nats"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	f := TLSFiles{CA: filepath.Join(dir, "ca.crt"), Cert: filepath.Join(dir, "tls.crt"), Key: filepath.Join(dir, "tls.key")}
	for path, b := range map[string]*pem.Block{f.CA: {Type: "CERTIFICATE", Bytes: caDER}, f.Cert: {Type: "CERTIFICATE", Bytes: der},
		f.Key: {Type: "EC PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(path, pem.EncodeToMemory(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// StartNATSConf starts a single JetStream server from a nats-server
// configuration text (accounts, users and their permissions, tls: what a
// deployment gives the server), on a random loopback port with a fresh
// store in the test's temporary directory. Variables in the text ($NAME)
// are read from the environment, as nats-server does.
func StartNATSConf(t testing.TB, conf string) *NATS {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("nats-server configuration: %v", err)
	}
	opts.ServerName, opts.Host, opts.Port = "single", "127.0.0.1", server.RANDOM_PORT
	opts.HTTPPort, opts.Cluster.Port = 0, 0
	opts.JetStream, opts.StoreDir = true, filepath.Join(dir, "js")
	opts.NoLog, opts.NoSigs = true, true
	s := startServer(t, opts)
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return &NATS{Server: s}
}

// ChartConfig renders the part of a NATS Helm chart values file
// (nats-io/k8s, 1.x values) that decides who may do what: config.merge,
// written as the chart writes it (JSON, with `<< $VAR >>` unquoted to a
// variable reference), plus the client tls block of config.nats.tls
// pointing at tlsFiles (the chart points it at the mounted Secret). The
// chart's own settings (ports, cluster, JetStream store) are left to
// StartNATSConf.
func ChartConfig(values []byte, tlsFiles TLSFiles) (string, error) {
	var v struct {
		Config struct {
			Merge map[string]any `yaml:"merge"`
			NATS  struct {
				TLS struct {
					Enabled    bool   `yaml:"enabled"`
					SecretName string `yaml:"secretName"`
				} `yaml:"tls"`
			} `yaml:"nats"`
		} `yaml:"config"`
	}
	if err := yaml.Unmarshal(values, &v); err != nil {
		return "", err
	}
	conf := map[string]any{}
	for k, x := range v.Config.Merge {
		conf[k] = x
	}
	if v.Config.NATS.TLS.Enabled {
		if v.Config.NATS.TLS.SecretName == "" {
			return "", fmt.Errorf("config.nats.tls is enabled without a secretName")
		}
		conf["tls"] = map[string]any{"cert_file": tlsFiles.Cert, "key_file": tlsFiles.Key}
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // Helm's toPrettyRawJson: ">" stays ">"
	enc.SetIndent("", "  ")
	if err := enc.Encode(conf); err != nil {
		return "", err
	}
	// The chart's nats.formatConfig: "<< X >>" becomes X.
	return chartRaw.ReplaceAllString(b.String(), "$1"), nil
}

var chartRaw = regexp.MustCompile(`"<<\s+(.*?)\s+>>"`)

// ChartNATS is a server started with the security settings of a NATS Helm
// chart values file: its accounts, users and permissions, and TLS.
type ChartNATS struct {
	*NATS
	TLS TLSFiles
	// Passwords are the users' passwords, by user name.
	Passwords map[string]string
}

// StartChartNATS starts a JetStream server with ChartConfig(values) and
// fresh TLS files. Each user's password in the values is a variable
// (`password: << $VAR >>`, set from a Secret in the chart's pod): here each
// gets a random password, and VAR is set, for the test, to its bcrypt hash
// in double quotes, as the deployment's Secret holds it.
func StartChartNATS(t testing.TB, values []byte) *ChartNATS {
	t.Helper()
	c := &ChartNATS{TLS: NewTLSFiles(t), Passwords: map[string]string{}}
	var v struct {
		Config struct {
			Merge struct {
				Accounts map[string]struct {
					Users []struct {
						User     string `yaml:"user"`
						Password string `yaml:"password"`
					} `yaml:"users"`
				} `yaml:"accounts"`
			} `yaml:"merge"`
		} `yaml:"config"`
	}
	if err := yaml.Unmarshal(values, &v); err != nil {
		t.Fatal(err)
	}
	for _, acc := range v.Config.Merge.Accounts {
		for _, u := range acc.Users {
			m := chartVar.FindStringSubmatch(u.Password)
			if m == nil {
				t.Fatalf("user %s: password %q is not a variable (<< $VAR >>): a password in the values would be committed", u.User, u.Password)
			}
			pw := make([]byte, 16)
			_, _ = rand.Read(pw)
			c.Passwords[u.User] = fmt.Sprintf("%x", pw)
			hash, err := bcrypt.GenerateFromPassword([]byte(c.Passwords[u.User]), bcrypt.MinCost)
			if err != nil {
				t.Fatal(err)
			}
			t.Setenv(m[1], `"`+string(hash)+`"`)
		}
	}
	conf, err := ChartConfig(values, c.TLS)
	if err != nil {
		t.Fatal(err)
	}
	c.NATS = StartNATSConf(t, conf)
	return c
}

var chartVar = regexp.MustCompile(`^<<\s+\$(\w+)\s+>>$`)
