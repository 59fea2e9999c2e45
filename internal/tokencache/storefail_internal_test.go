package tokencache

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ttcpay/payflow/internal/ttc"
)

// failingStore is a memory store whose unlock, extend and refuse fail when
// told to (a Redis that went away in the middle of a refresh).
type failingStore struct {
	*MemoryStore
	unlockErr, extendErr, refuseErr error
}

func (s *failingStore) unlock(ctx context.Context, k entryKey, token string) error {
	if s.unlockErr != nil {
		return s.unlockErr
	}
	return s.MemoryStore.unlock(ctx, k, token)
}

func (s *failingStore) extend(ctx context.Context, k entryKey, token string, ttl time.Duration) (bool, error) {
	if s.extendErr != nil {
		return false, s.extendErr
	}
	return s.MemoryStore.extend(ctx, k, token, ttl)
}

func (s *failingStore) refuse(ctx context.Context, k entryKey, kind ttc.Kind, status int, ttl time.Duration) error {
	if s.refuseErr != nil {
		return s.refuseErr
	}
	return s.MemoryStore.refuse(ctx, k, kind, status, ttl)
}

// errFetcher answers every token request with err.
type errFetcher struct{ err error }

func (f errFetcher) Token(context.Context, string, string) (*ttc.Token, error) { return nil, f.err }

// TestStoreFailuresAfterARefreshAreLogged: when the store fails to release
// the lock, to extend it after an unanswered TTC call, or to remember TTC's
// refusal, the pod says so in a warning, and only then. (Kills cache.go
// 475:48, 470:68 and 509:96 CONDITIONALS_NEGATION: each warns when the
// store step succeeded and keeps quiet when it failed.)
func TestStoreFailuresAfterARefreshAreLogged(t *testing.T) {
	redisDown := errors.New("redis: connection refused")
	for _, tc := range []struct {
		name  string
		fetch error // nil: TTC answers with a token
		store failingStore
		warn  string
	}{
		{"UnlockFails", &ttc.Error{Op: "token", Kind: ttc.KindTransient, Status: 500}, failingStore{unlockErr: redisDown}, "credential lock release failed"},
		{"UnlockWorks", &ttc.Error{Op: "token", Kind: ttc.KindTransient, Status: 500}, failingStore{}, ""},
		{"ExtendFails", &ttc.Error{Op: "token", Kind: ttc.KindTransient, Status: 0}, failingStore{extendErr: redisDown}, "credential lock not extended"},
		{"ExtendWorks", &ttc.Error{Op: "token", Kind: ttc.KindTransient, Status: 0}, failingStore{}, ""},
		{"RefuseFails", &ttc.Error{Op: "token", Kind: ttc.KindNoRefreshToken, Status: 404}, failingStore{refuseErr: redisDown}, "TTC refusal not remembered"},
		{"RefuseWorks", &ttc.Error{Op: "token", Kind: ttc.KindNoRefreshToken, Status: 404}, failingStore{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			st := tc.store
			st.MemoryStore = NewMemoryStore()
			c := New(errFetcher{tc.fetch}, &st, Options{Logger: zerolog.New(&logs)})
			if _, err := c.Get(context.Background(), "costco", "m1"); err == nil {
				t.Fatal("Get succeeded with TTC failing")
			}
			var warnings []string
			for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
				if strings.Contains(line, `"level":"warn"`) {
					warnings = append(warnings, line)
				}
			}
			switch {
			case tc.warn == "" && len(warnings) > 0:
				t.Fatalf("a store step that worked was warned about: %s", strings.Join(warnings, "\n"))
			case tc.warn != "" && (len(warnings) != 1 || !strings.Contains(warnings[0], tc.warn) || !strings.Contains(warnings[0], "connection refused")):
				t.Fatalf("want one warning %q with the store's error, got:\n%s", tc.warn, strings.Join(warnings, "\n"))
			}
		})
	}
}
