package postgres

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandemcdc/tandem/internal/change"
)

// stallProxy forwards TCP connections to target until Stall, after which
// the connections open at that moment stay open and forward nothing, either
// way: a stalled firewall, NAT or proxy. Connections opened later forward.
type stallProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	open   []*atomic.Bool // each open connection's stalled flag
	done   chan struct{}
}

func newStallProxy(t *testing.T, target string) *stallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{ln: ln, target: target, done: make(chan struct{})}
	t.Cleanup(func() { close(p.done); ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *stallProxy) serve(c net.Conn) {
	defer c.Close()
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer s.Close()
	stalled := &atomic.Bool{}
	p.mu.Lock()
	p.open = append(p.open, stalled)
	p.mu.Unlock()
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if stalled.Load() {
				<-p.done // hold the connection open, forwarding nothing
				return
			}
			if n > 0 {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					return
				}
				return
			}
		}
	}
	go pipe(s, c)
	pipe(c, s)
}

// Stall stalls every connection open now.
func (p *stallProxy) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.open {
		s.Store(true)
	}
}

// A replication connection that hangs (the socket open, nothing forwarded)
// is noticed within SilenceTimeout of the unanswered status update: Stream
// returns saying so, after terminating its walsender, so that the slot is
// free and the stream reopened at once through a new connection.
func TestStream_AHungConnectionIsNoticedAndTheSlotFreed(t *testing.T) {
	f := newFixture(t, itemsDDL)
	u, err := url.Parse(f.dsn)
	if err != nil {
		t.Fatalf("the test DSN is not a URL: %v", err)
	}
	proxy := newStallProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	cfg := f.config("public.items")
	cfg.DSN, cfg.SilenceTimeout = u.String(), 500*time.Millisecond
	src := f.source(cfg)

	run := func() (batches <-chan change.Batch, done <-chan error) {
		b, d := make(chan change.Batch, 16), make(chan error, 1)
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		go func() {
			d <- src.Stream(ctx, func(_ context.Context, batch change.Batch) error {
				if batch.Pos != nil {
					if err := src.Ack(batch.Pos); err != nil {
						return err
					}
				}
				b <- batch
				return nil
			})
		}()
		return b, d
	}
	next := func(batches <-chan change.Batch, done <-chan error, want int64) {
		t.Helper()
		deadline := time.After(waitTimeout)
		for {
			select {
			case b := <-batches:
				for _, ev := range b.Events {
					if ev.After["id"] == want {
						return
					}
				}
			case err := <-done:
				t.Fatalf("Stream ended before row %d came: %v", want, err)
			case <-deadline:
				t.Fatalf("row %d never came", want)
			}
		}
	}

	batches, done := run()
	f.exec(`INSERT INTO items VALUES (1, 'one')`)
	next(batches, done, 1)
	proxy.Stall()
	stalled := time.Now()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "seems hung") || !strings.Contains(err.Error(), "terminated: true") {
			t.Fatalf("Stream after the stall = %v, want the hung connection said and its walsender terminated", err)
		}
		if took := time.Since(stalled); took > 10*time.Second {
			t.Errorf("the hang was noticed after %s, want about SilenceTimeout (500ms) and a status interval", took)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("Stream still waits %s after the connection stalled", waitTimeout)
	}
	// The slot is free at once, not after wal_sender_timeout: the stream
	// reopens through a new connection and goes on.
	f.waitSlot(f.db, slotReleased)
	batches, done = run()
	f.exec(`INSERT INTO items VALUES (2, 'two')`)
	next(batches, done, 2)
}
