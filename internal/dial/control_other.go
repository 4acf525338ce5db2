//go:build !linux

package dial

import "syscall"

// control does nothing where TCP_USER_TIMEOUT does not exist: the
// keepalive probes alone bound a dead path.
func control(string, string, syscall.RawConn) error { return nil }
