// Package console is the operator's web console: a few server-rendered
// pages over the same reads as `publisher status` and `publisher intent
// show` (package inspect) and the same dead-letter operations as
// `publisher dlq` (package deadletter). It holds no state of its own
// besides login sessions.
//
// Access: every page needs a login, either the shared CONSOLE_TOKEN
// (compared in constant time; a session cookie after the login page, or
// an Authorization: Bearer header) or an identity header set by an auth
// proxy in front of it. Replay and purge are refused unless AllowActions
// is set, and need the session's CSRF token and a same-origin request.
package console

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ttcpay/payflow/internal/deadletter"
	"github.com/ttcpay/payflow/internal/inspect"
)

// Reader is the read side (*inspect.Inspector).
type Reader interface {
	Status(ctx context.Context) (inspect.StatusReport, error)
	Intent(ctx context.Context, id string) (inspect.IntentStory, error)
	Find(ctx context.Context, key string) (inspect.FindReport, error)
}

var _ Reader = (*inspect.Inspector)(nil)

// Letters lists, replays and purges dead letters (JetStreamLetters).
type Letters interface {
	List(ctx context.Context, f deadletter.Filter) ([]deadletter.Letter, error)
	Replay(ctx context.Context, f deadletter.Filter) (deadletter.Summary, error)
	Purge(ctx context.Context, f deadletter.Filter) ([]deadletter.Letter, error)
}

// JetStreamLetters is Letters over package deadletter.
type JetStreamLetters struct{ JS jetstream.JetStream }

var _ Letters = JetStreamLetters{}

// List is deadletter.List.
func (l JetStreamLetters) List(ctx context.Context, f deadletter.Filter) ([]deadletter.Letter, error) {
	return deadletter.List(ctx, l.JS, f)
}

// Replay is deadletter.ReplayWith.
func (l JetStreamLetters) Replay(ctx context.Context, f deadletter.Filter) (deadletter.Summary, error) {
	return deadletter.ReplayWith(ctx, l.JS, f, deadletter.ReplayOptions{}, nil)
}

// Purge is deadletter.Purge.
func (l JetStreamLetters) Purge(ctx context.Context, f deadletter.Filter) ([]deadletter.Letter, error) {
	return deadletter.Purge(ctx, l.JS, f)
}

// Config configures the console.
type Config struct {
	// Token is the shared login token (CONSOLE_TOKEN). Either Token or
	// ProxyUserHeader must be set.
	Token string
	// ProxyUserHeader, when set, is the header an auth proxy puts the
	// signed-in user's name in (e.g. X-Forwarded-Email); requests
	// without it are refused. The console must then be reachable only
	// through the proxy.
	ProxyUserHeader string
	// AllowActions enables replay and purge (CONSOLE_ALLOW_ACTIONS).
	AllowActions bool
	// Refresh is how often the overview reloads. Defaults to 5 s.
	Refresh time.Duration
	// SessionTTL bounds a login. Defaults to 12 h.
	SessionTTL time.Duration
	// Now is the clock; defaults to time.Now.
	Now func() time.Time
}

// Defaults of Config.
const (
	RefreshDefault    = 5 * time.Second
	SessionTTLDefault = 12 * time.Hour
)

// ErrConfig: the console's configuration is unusable.
var ErrConfig = errors.New("console configuration")

func (c Config) withDefaults() Config {
	c.Refresh = cmp.Or(c.Refresh, RefreshDefault)
	c.SessionTTL = cmp.Or(c.SessionTTL, SessionTTLDefault)
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.Token == "" && c.ProxyUserHeader == "":
		return errors.Join(ErrConfig, errors.New("set CONSOLE_TOKEN (or CONSOLE_TOKEN_FILE), or CONSOLE_AUTH_PROXY_HEADER behind an auth proxy"))
	case c.Token != "" && len(c.Token) < 16:
		return errors.Join(ErrConfig, errors.New("CONSOLE_TOKEN: use at least 16 characters"))
	}
	return nil
}

//go:embed assets
var assets embed.FS

// Server is the console's http.Handler.
type Server struct {
	cfg     Config
	read    Reader
	letters Letters
	log     zerolog.Logger
	tmpl    map[string]*template.Template
	mux     *http.ServeMux
	token   [32]byte

	mu       sync.Mutex
	sessions map[string]*session
}

type session struct {
	operator string
	csrf     string
	expires  time.Time
}

// New returns the console. log receives one line per action, naming the
// operator.
func New(cfg Config, read Reader, letters Letters, log zerolog.Logger) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, read: read, letters: letters, log: log, sessions: map[string]*session{}, token: sha256.Sum256([]byte(cfg.Token))}
	var err error
	if s.tmpl, err = parseTemplates(); err != nil {
		return nil, err
	}
	s.routes()
	return s, nil
}

func (s *Server) routes() {
	s.mux = http.NewServeMux()
	static, _ := fs.Sub(assets, "assets") // a literal, present directory
	s.mux.Handle("GET /static/", http.FileServerFS(static))
	s.mux.HandleFunc("GET /login", s.handleLoginForm)
	s.mux.HandleFunc("POST /login", s.handleLogin)
	s.mux.Handle("POST /logout", s.authed(s.handleLogout))
	s.mux.Handle("GET /{$}", s.authed(s.handleOverview))
	s.mux.Handle("GET /intent", s.authed(s.handleIntent))
	s.mux.Handle("GET /deadletters", s.authed(s.handleLetters))
	s.mux.Handle("POST /deadletters/confirm", s.action(s.handleConfirm))
	s.mux.Handle("POST /deadletters/do", s.action(s.handleDo))
}

// ServeHTTP sets the security headers on every answer.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	s.mux.ServeHTTP(w, r)
}

const cookieName = "payflow_console"

// who is the signed-in operator of a request.
type who struct {
	operator string
	// csrf is the session's token; empty for a request authenticated by
	// its Authorization header, which a browser never adds on its own.
	csrf   string
	header bool
}

// identify authenticates r.
func (s *Server) identify(r *http.Request) (who, bool) {
	if s.cfg.ProxyUserHeader != "" {
		user := strings.TrimSpace(r.Header.Get(s.cfg.ProxyUserHeader))
		if user == "" {
			return who{}, false
		}
		// A per-user session holds the CSRF token.
		if sess := s.session(r); sess != nil && sess.operator == "proxy:"+user {
			return who{operator: sess.operator, csrf: sess.csrf}, true
		}
		return who{operator: "proxy:" + user}, true
	}
	if auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		if !s.tokenOK(auth) {
			return who{}, false
		}
		name := cmp.Or(cleanName(r.Header.Get("X-Console-Operator")), "unnamed")
		return who{operator: "token:" + name, header: true}, true
	}
	if sess := s.session(r); sess != nil {
		return who{operator: sess.operator, csrf: sess.csrf}, true
	}
	return who{}, false
}

func (s *Server) tokenOK(t string) bool {
	h := sha256.Sum256([]byte(t))
	return s.cfg.Token != "" && subtle.ConstantTimeCompare(h[:], s.token[:]) == 1
}

func (s *Server) session(r *http.Request) *session {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.sessions[c.Value]
	if sess == nil {
		return nil
	}
	if s.cfg.Now().After(sess.expires) {
		delete(s.sessions, c.Value)
		return nil
	}
	return sess
}

// newSession starts a session for operator and sets its cookie.
func (s *Server) newSession(w http.ResponseWriter, r *http.Request, operator string) *session {
	id, csrf := randomID(), randomID()
	sess := &session{operator: operator, csrf: csrf, expires: s.cfg.Now().Add(s.cfg.SessionTTL)}
	s.mu.Lock()
	now := s.cfg.Now()
	for k, v := range s.sessions {
		if now.After(v.expires) {
			delete(s.sessions, k)
		}
	}
	s.sessions[id] = sess
	s.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https", MaxAge: int(s.cfg.SessionTTL.Seconds())})
	return sess
}

func randomID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// cleanName keeps an operator's name printable and short for the log.
func cleanName(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, strings.TrimSpace(s))
	if len(s) > 64 {
		s = s[:64]
	}
	return s
}

type handler func(w http.ResponseWriter, r *http.Request, u who)

// authed lets signed-in requests through and sends others to the login
// page (a browser) or answers 401.
func (s *Server) authed(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, ok := s.identify(r)
		if !ok {
			if s.cfg.ProxyUserHeader == "" && r.Method == http.MethodGet && r.Header.Get("Authorization") == "" {
				http.Redirect(w, r, "/login", http.StatusSeeOther)
				return
			}
			s.refuse(w, r, http.StatusUnauthorized, "not signed in")
			return
		}
		if s.cfg.ProxyUserHeader != "" && u.csrf == "" {
			u.csrf = s.newSession(w, r, u.operator).csrf
		}
		h(w, r, u)
	})
}

// action guards a replay or purge: actions allowed, signed in, same
// origin, and the session's CSRF token.
func (s *Server) action(h handler) http.Handler {
	return s.authed(func(w http.ResponseWriter, r *http.Request, u who) {
		if !s.cfg.AllowActions {
			s.log.Warn().Str("operator", u.operator).Str("path", r.URL.Path).Msg("console: action refused: read-only (CONSOLE_ALLOW_ACTIONS is not true)")
			s.refuse(w, r, http.StatusForbidden, "this console is read-only (CONSOLE_ALLOW_ACTIONS is not true)")
			return
		}
		if !sameOrigin(r) {
			s.log.Warn().Str("operator", u.operator).Str("origin", r.Header.Get("Origin")).Msg("console: action refused: cross-site request")
			s.refuse(w, r, http.StatusForbidden, "cross-site request refused")
			return
		}
		if !u.header {
			if err := r.ParseForm(); err != nil || u.csrf == "" || subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(u.csrf)) != 1 {
				s.log.Warn().Str("operator", u.operator).Msg("console: action refused: missing or wrong CSRF token")
				s.refuse(w, r, http.StatusForbidden, "missing or wrong CSRF token: reload the page and try again")
				return
			}
		}
		h(w, r, u)
	})
}

// sameOrigin: Sec-Fetch-Site, when the browser sends it, is same-origin
// (or none: typed by the user); else Origin, when sent, is this host.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin" || site == "none"
	}
	if o := r.Header.Get("Origin"); o != "" {
		host, ok := strings.CutPrefix(o, "http://")
		if !ok {
			host, ok = strings.CutPrefix(o, "https://")
		}
		return ok && host == r.Host
	}
	return true
}

func (s *Server) handleLoginForm(w http.ResponseWriter, r *http.Request) {
	if s.cfg.ProxyUserHeader != "" {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	s.render(w, r, http.StatusOK, "login", page{Title: "Sign in"})
}

func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	if s.cfg.ProxyUserHeader != "" || !sameOrigin(r) {
		s.refuse(w, r, http.StatusForbidden, "sign-in refused")
		return
	}
	_ = r.ParseForm()
	name := cleanName(r.PostFormValue("operator"))
	if name == "" || !s.tokenOK(r.PostFormValue("token")) {
		s.log.Warn().Str("operator", name).Str("remote", r.RemoteAddr).Msg("console: sign-in refused")
		s.render(w, r, http.StatusUnauthorized, "login", page{Title: "Sign in", Error: "wrong token, or no name given"})
		return
	}
	s.newSession(w, r, "token:"+name)
	s.log.Info().Str("operator", "token:"+name).Str("remote", r.RemoteAddr).Msg("console: signed in")
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request, u who) {
	if c, err := r.Cookie(cookieName); err == nil {
		s.mu.Lock()
		delete(s.sessions, c.Value)
		s.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func (s *Server) refuse(w http.ResponseWriter, r *http.Request, code int, msg string) {
	s.render(w, r, code, "error", page{Title: http.StatusText(code), Error: msg})
}
