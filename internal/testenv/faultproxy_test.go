package testenv

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// echoServer answers every line with the same line, until the test ends.
func echoServer(t *testing.T) string {
	t.Helper()
	return ServeTCP(t, func(c net.Conn) { defer c.Close(); _, _ = io.Copy(c, c) })
}

// echo sends line through c and returns what came back within wait.
func echo(c net.Conn, line string, wait time.Duration) (string, error) {
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		return "", err
	}
	_ = c.SetReadDeadline(time.Now().Add(wait))
	got, err := bufio.NewReader(c).ReadString('\n')
	return got, err
}

func TestFaultProxy_ForwardsRefusesStallsAndResets(t *testing.T) {
	p := NewFaultProxy(t, echoServer(t))
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatalf("dial the proxy: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	a := dial()
	if got, err := echo(a, "one", 5*time.Second); err != nil || got != "one\n" {
		t.Fatalf("through the forwarding proxy: %q, %v; want one", got, err)
	}

	p.Refuse()
	r := dial()
	if _, err := echo(r, "refused", 5*time.Second); err == nil {
		t.Fatal("a connection made while refusing was answered")
	}
	if p.Refused() != 1 {
		t.Errorf("Refused() = %d, want 1", p.Refused())
	}
	if got, err := echo(a, "two", 5*time.Second); err != nil || got != "two\n" {
		t.Fatalf("an open connection while refusing new ones: %q, %v; want two", got, err)
	}

	p.Forward()
	p.Stall()
	if _, err := echo(a, "stalled", 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a stalled connection: %v, want no answer and no end (deadline exceeded)", err)
	}
	n := dial()
	if got, err := echo(n, "new while one is stalled", 5*time.Second); err != nil || got != "new while one is stalled\n" {
		t.Fatalf("a new connection while an old one is stalled: %q, %v", got, err)
	}
	p.Blackhole()
	if _, err := echo(n, "blackholed", 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("an open connection after Blackhole: %v, want no answer and no end", err)
	}
	s := dial()
	if _, err := echo(s, "new while stalled", 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a connection made while blackholed: %v, want no answer and no end", err)
	}

	p.Forward()
	b := dial()
	if got, err := echo(b, "three", 5*time.Second); err != nil || got != "three\n" {
		t.Fatalf("a new connection after Forward: %q, %v; want three", got, err)
	}
	if n := p.Open(); n != 4 {
		t.Errorf("Open() = %d, want 4 (the stalled three and the new one)", n)
	}

	p.Reset()
	if _, err := echo(a, "after reset", 5*time.Second); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a reset connection: %v, want an error at once", err)
	}

	p.Slow(200 * time.Millisecond)
	c := dial()
	start := time.Now()
	if got, err := echo(c, "slow", 5*time.Second); err != nil || got != "slow\n" {
		t.Fatalf("through a slow proxy: %q, %v", got, err)
	}
	if took := time.Since(start); took < 400*time.Millisecond {
		t.Errorf("a round trip through a proxy slowed by 200ms each way took %s", took)
	}
}
