package testenv

import (
	"net"
	"testing"
)

// ServeTCP listens on a port of 127.0.0.1 until the end of t, calling
// serve in a goroutine of its own with each connection it accepts (serve
// closes it), and returns the port's host:port: a server that misbehaves
// in one way, for a test of the client.
func ServeTCP(t testing.TB, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	return ln.Addr().String()
}
