package sandbox

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"time"
)

// TTCHandler serves the TTC gateway (token and callback endpoints) and the
// sandbox's admin routes under /sandbox/.
func (s *Sandbox) TTCHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /cybersource/token/{integrator}", s.handleToken)
	mux.HandleFunc("POST /cybersource/oauth/callback", s.handleCallback)
	mux.HandleFunc("GET /sandbox/ledger", s.handleLedger)
	mux.HandleFunc("GET /sandbox/counts", s.handleCounts)
	mux.HandleFunc("POST /sandbox/reset", s.handleReset)
	mux.HandleFunc("GET /sandbox/faults", s.handleFaults)
	mux.HandleFunc("POST /sandbox/faults", s.handleFaults)
	mux.HandleFunc("POST /sandbox/revoke", s.handleRevoke)
	mux.HandleFunc("GET /sandbox/ca.pem", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/x-pem-file")
		_, _ = w.Write(s.ca.certPEM)
	})
	return mux
}

// CybsHandler serves the CyberSource REST API. It must run behind
// CybsTLSConfig, which demands a client certificate from the sandbox CA.
func (s *Sandbox) CybsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /pts/v2/payments", s.handlePayment)
	for _, op := range []string{"captures", "reversals", "voids", "refunds"} {
		mux.HandleFunc("POST /pts/v2/payments/{id}/"+op, s.handleFollowUp(op))
	}
	mux.HandleFunc("POST /pts/v2/reversals", s.handleTimeout("reversal"))
	mux.HandleFunc("POST /pts/v2/voids", s.handleTimeout("void"))
	return mux
}

// CybsTLSConfig requires and verifies a client certificate issued by the
// sandbox CA, and counts completed handshakes.
func (s *Sandbox) CybsTLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{s.serverCert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    s.ca.pool,
		NextProtos:   []string{"http/1.1"},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if !cs.DidResume {
				s.mu.Lock()
				s.handshakes++
				s.mu.Unlock()
			}
			return nil
		},
	}
}

// Server is a sandbox listening on two loopback ports.
type Server struct {
	*Sandbox
	// TTCURL is the base URL of the TTC gateway and the admin routes (http).
	TTCURL string
	// CybsURL is the base URL of CyberSource (https, client certificate).
	CybsURL string

	ttc, cybs *http.Server
	done      chan error
	closeOnce sync.Once
	closeErr  error
}

// Listen starts a sandbox on the given addresses ("127.0.0.1:0" picks a free
// port). Close stops it.
func Listen(cfg Config, ttcAddr, cybsAddr string) (*Server, error) {
	sb, err := New(cfg)
	if err != nil {
		return nil, err
	}
	tl, err := net.Listen("tcp", ttcAddr)
	if err != nil {
		return nil, fmt.Errorf("ttc listener: %w", err)
	}
	cl, err := net.Listen("tcp", cybsAddr)
	if err != nil {
		tl.Close()
		return nil, fmt.Errorf("cybersource listener: %w", err)
	}
	srv := &Server{
		Sandbox: sb,
		TTCURL:  "http://" + tl.Addr().String(),
		CybsURL: "https://" + cl.Addr().String(),
		ttc:     &http.Server{Handler: sb.TTCHandler(), ReadHeaderTimeout: 10 * time.Second},
		cybs: &http.Server{
			Handler:           sb.CybsHandler(),
			ReadHeaderTimeout: 10 * time.Second,
			TLSConfig:         sb.CybsTLSConfig(),
			// HTTP/1.1 only, so that "cut the connection" can hijack it.
			TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
			ErrorLog:     quietLog(),
		},
		done: make(chan error, 2),
	}
	go func() { srv.done <- srv.ttc.Serve(tl) }()
	go func() { srv.done <- srv.cybs.Serve(tls.NewListener(cl, srv.cybs.TLSConfig)) }()
	return srv, nil
}

// Close shuts both listeners down, waiting up to 5 s for requests in flight.
// Calling it again returns the first call's result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := errors.Join(s.ttc.Shutdown(ctx), s.cybs.Shutdown(ctx))
		for range 2 {
			if e := <-s.done; e != nil && !errors.Is(e, http.ErrServerClosed) {
				err = errors.Join(err, e)
			}
		}
		s.closeErr = err
	})
	return s.closeErr
}

// quietLog drops the http.Server's own error lines (refused TLS handshakes are
// expected in tests); the ledger and the answers tell what happened.
func quietLog() *log.Logger { return log.New(io.Discard, "", 0) }
