package console

import (
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/rs/zerolog"
)

func TestConfigValidation(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"nothing", Config{}, false},
		{"short token", Config{Token: "short"}, false},
		{"token", Config{Token: "0123456789abcdef"}, true},
		{"auth proxy", Config{ProxyUserHeader: "X-Forwarded-Email"}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := New(c.cfg, nil, nil, zerolog.Nop())
			if (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrConfig)) {
				t.Errorf("New: %v", err)
			}
		})
	}
}

func TestSameOrigin(t *testing.T) {
	for _, c := range []struct {
		name      string
		headers   map[string]string
		sameOrign bool
	}{
		{"no headers (not a browser)", nil, true},
		{"same-origin fetch", map[string]string{"Sec-Fetch-Site": "same-origin"}, true},
		{"cross-site fetch", map[string]string{"Sec-Fetch-Site": "cross-site"}, false},
		{"same-site, other origin", map[string]string{"Sec-Fetch-Site": "same-site"}, false},
		{"own origin", map[string]string{"Origin": "http://console.test"}, true},
		{"other origin", map[string]string{"Origin": "http://evil.test"}, false},
		{"null origin", map[string]string{"Origin": "null"}, false},
		{"cross-site beats a matching origin", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "http://console.test"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "http://console.test/deadletters/do", nil)
			for k, v := range c.headers {
				r.Header.Set(k, v)
			}
			if got := sameOrigin(r); got != c.sameOrign {
				t.Errorf("sameOrigin = %v", got)
			}
		})
	}
}

func TestLoginRefusesWrongToken(t *testing.T) {
	s, err := New(Config{Token: "0123456789abcdef"}, nil, nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		token string
		code  int
	}{
		{"0123456789abcdeX", 401},
		{"0123456789abcdef0", 401},
		{"", 401},
		{"0123456789abcdef", 303},
	} {
		r := httptest.NewRequest("POST", "http://console.test/login", nil)
		r.PostForm = map[string][]string{"operator": {"alice"}, "token": {c.token}}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if w.Code != c.code {
			t.Errorf("token %q: %d, want %d", c.token, w.Code, c.code)
		}
		if c.code == 303 && len(w.Result().Cookies()) != 1 {
			t.Errorf("no session cookie after sign-in")
		}
	}
}
