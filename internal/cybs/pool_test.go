package cybs_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ttcpay/payflow/internal/cybs"
)

// TestIdleConnsFollowConcurrency: with IdleConns set to the payments in
// flight, every slot keeps its connection: rounds of that many concurrent
// calls open that many connections once, not one per call beyond the pool.
func TestIdleConnsFollowConcurrency(t *testing.T) {
	for _, tc := range []struct {
		name      string
		idle      int
		inFlight  int
		wantConns int64
	}{
		{"pool as large as the slots", 12, 12, 12},
		{"default pool, fewer slots", 0, 8, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var conns atomic.Int64
			var mu sync.Mutex
			arrived, release := 0, make(chan struct{})
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				// Hold every call until the round's calls are all in,
				// so that each needs a connection of its own.
				mu.Lock()
				arrived++
				if arrived == tc.inFlight {
					arrived = 0
					close(release)
					release = make(chan struct{})
					mu.Unlock()
				} else {
					wait := release
					mu.Unlock()
					select {
					case <-wait:
					case <-r.Context().Done():
					}
				}
				w.WriteHeader(201)
				_, _ = w.Write([]byte(`{"id":"1","status":"AUTHORIZED"}`))
			}))
			srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					conns.Add(1)
				}
			}
			srv.StartTLS()
			t.Cleanup(srv.Close)
			c, cr := clientFor(t, srv, cybs.Config{Timeout: 10 * time.Second, IdleConns: tc.idle})
			for round := range 3 {
				var wg sync.WaitGroup
				for range tc.inFlight {
					wg.Go(func() {
						if _, err := c.Authorize(context.Background(), cr, req()); err != nil {
							t.Errorf("round %d: %v", round, err)
						}
					})
				}
				wg.Wait()
			}
			if got := conns.Load(); got != tc.wantConns {
				t.Fatalf("%d connections for 3 rounds of %d concurrent calls, want %d (one per slot, reused)", got, tc.inFlight, tc.wantConns)
			}
		})
	}
}
