package testenv

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// FaultProxy is a TCP proxy on 127.0.0.1 that tests put between tandem and
// a server (source, target, broker) to inject the network faults the field
// sees: connections refused, reset, stalled (a NAT, firewall or proxy that
// keeps the socket open and forwards nothing) and slowed. It forwards until
// told otherwise; every fault is switched on and off while connections are
// open, and the proxy is closed at the end of the test.
type FaultProxy struct {
	ln     net.Listener
	target string
	done   chan struct{}

	refuse    atomic.Bool  // new connections are closed at once
	blackhole atomic.Bool  // new connections are held open and forward nothing
	delay     atomic.Int64 // nanoseconds added before each forwarded chunk

	mu    sync.Mutex
	conns map[*proxyConn]struct{}

	accepted atomic.Int64
	refused  atomic.Int64
}

// proxyConn is one client connection and the connection to the target
// that it is forwarded to.
type proxyConn struct {
	client, server net.Conn
	stalled        atomic.Bool
}

// NewFaultProxy starts a proxy that forwards connections to target
// (host:port) and closes at the end of t.
func NewFaultProxy(t testing.TB, target string) *FaultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("start a fault proxy to %s: %v", target, err)
	}
	p := &FaultProxy{ln: ln, target: target, done: make(chan struct{}), conns: map[*proxyConn]struct{}{}}
	t.Cleanup(p.close)
	go p.accept()
	return p
}

// Addr is the proxy's host:port, to put in a DSN or a broker list in place
// of the target's.
func (p *FaultProxy) Addr() string { return p.ln.Addr().String() }

// Refuse makes the proxy close every new connection as soon as it is
// accepted (a server not listening yet, or a port closed by a firewall),
// until Forward. Open connections are left as they are.
func (p *FaultProxy) Refuse() { p.blackhole.Store(false); p.refuse.Store(true) }

// Stall makes every open connection stop forwarding, either way, while
// staying open: a NAT, firewall or proxy that lost the connection's state
// and drops its packets. New connections are forwarded. Stalled
// connections stay so until Reset.
func (p *FaultProxy) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.stalled.Store(true)
	}
}

// Blackhole stalls every open connection and holds every new one open
// without connecting it to the target, until Forward: a path that hangs,
// where even a connect gets no answer beyond the proxy.
func (p *FaultProxy) Blackhole() {
	p.refuse.Store(false)
	p.blackhole.Store(true)
	p.Stall()
}

// Slow delays every forwarded chunk of bytes by d (0 turns it off).
func (p *FaultProxy) Slow(d time.Duration) { p.delay.Store(int64(d)) }

// Forward ends Refuse and Blackhole for new connections: they are forwarded to
// the target again. Connections stalled before stay stalled until Reset.
func (p *FaultProxy) Forward() { p.refuse.Store(false); p.blackhole.Store(false) }

// Reset closes every open connection abruptly (a TCP reset on both sides),
// the stalled ones included, as a middlebox that drops its state does.
func (p *FaultProxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.reset()
		delete(p.conns, c)
	}
}

// Accepted is how many connections the proxy has accepted, refused ones
// included; Refused how many of them it closed at once.
func (p *FaultProxy) Accepted() int64 { return p.accepted.Load() }

// Refused is how many connections Refuse closed at once.
func (p *FaultProxy) Refused() int64 { return p.refused.Load() }

// Open is how many connections are open through the proxy now.
func (p *FaultProxy) Open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

func (p *FaultProxy) close() {
	close(p.done)
	p.ln.Close()
	p.Reset()
}

func (p *FaultProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		if p.refuse.Load() {
			p.refused.Add(1)
			c.Close()
			continue
		}
		go p.serve(c)
	}
}

func (p *FaultProxy) serve(client net.Conn) {
	pc := &proxyConn{client: client}
	if p.blackhole.Load() {
		pc.stalled.Store(true)
	} else {
		server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			client.Close()
			return
		}
		pc.server = server
	}
	p.mu.Lock()
	p.conns[pc] = struct{}{}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.conns, pc)
		p.mu.Unlock()
		pc.close()
	}()
	if pc.server == nil {
		// Held open, forwarding nothing, until Reset or the end of the test.
		_, _ = io.Copy(io.Discard, client)
		return
	}
	var both sync.WaitGroup
	both.Add(2)
	go func() { defer both.Done(); p.pipe(pc, pc.server, client) }()
	go func() { defer both.Done(); p.pipe(pc, client, pc.server) }()
	both.Wait()
}

// pipe copies src to dst until src ends: an orderly end is passed on as a
// half close, anything else closes both connections. A stalled
// connection's bytes are read and dropped, so that neither side sees an
// error or an end.
func (p *FaultProxy) pipe(pc *proxyConn, dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if d := time.Duration(p.delay.Load()); d > 0 && n > 0 {
			select {
			case <-time.After(d):
			case <-p.done:
				pc.close()
				return
			}
		}
		if n > 0 && !pc.stalled.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				pc.close()
				return
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) && !pc.stalled.Load() {
				if tc, ok := dst.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
					return
				}
			}
			pc.close()
			return
		}
	}
}

// reset closes both connections with SO_LINGER 0, so that each peer gets a
// TCP reset rather than an orderly end.
func (pc *proxyConn) reset() {
	for _, c := range []net.Conn{pc.client, pc.server} {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
	}
	pc.close()
}

func (pc *proxyConn) close() {
	pc.client.Close()
	if pc.server != nil {
		pc.server.Close()
	}
}
