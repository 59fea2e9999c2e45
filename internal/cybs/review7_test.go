package cybs_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/ttcpay/payflow/internal/cybs"
)

// TestStalledPeerDoesNotHoldTheHandshakeCap: a peer that accepts the TCP
// connection and never answers the ClientHello must not hold up a healthy
// call to the same host. The review of 79954db (a cap of one token per
// handshake, held for the whole handshake timeout whatever the caller's
// deadline, since the transport dials with a context detached from the
// request) proved that it did, with the cap at 1; the cap was reverted.
func TestStalledPeerDoesNotHoldTheHandshakeCap(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"id":"1","status":"AUTHORIZED"}`)
	}))
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var mu sync.Mutex
	var held []net.Conn
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	}()
	go func() {
		for i := 0; ; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if i == 0 { // the stalled peer: holds the connection, says nothing
				mu.Lock()
				held = append(held, c)
				mu.Unlock()
				continue
			}
			go func() {
				up, err := net.Dial("tcp", srv.Listener.Addr().String())
				if err != nil {
					c.Close()
					return
				}
				go func() { _, _ = io.Copy(up, c); up.Close() }()
				_, _ = io.Copy(c, up)
				c.Close()
			}()
		}
	}()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	c, err := cybs.New(cybs.Config{BaseURL: "https://" + ln.Addr().String(), RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	cr := cybs.Credentials{Key: "k", Generation: 1, AccessToken: "tok", Certificate: &tls.Certificate{}}

	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	_, err = c.Authorize(ctx, cr, req())
	cancel()
	if cybs.OutcomeOf(err) != cybs.OutcomeNotSent {
		t.Fatalf("stalled call: %v, want not sent", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := c.Authorize(ctx, cr, req()); err != nil {
		var e *cybs.Error
		t.Fatalf("healthy call after the stalled one failed: %v (outcome %v, is *Error %v)", err, cybs.OutcomeOf(err), errors.As(err, &e))
	}
}
