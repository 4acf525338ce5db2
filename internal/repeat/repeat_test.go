package repeat

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestLog_ManyFailuresOfOneCauseAreFewLinesWithTheirCountAndStart feeds
// 65 failures of one cause (a MariaDB restart's retries), 2 of another,
// then a success: one line per cause when it begins, a reminder at the
// 10th, the summary of each cause that repeated, and the recovery.
func TestLog_ManyFailuresOfOneCauseAreFewLinesWithTheirCountAndStart(t *testing.T) {
	var buf bytes.Buffer
	logger := timelessLogger(&buf)
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	now := start
	l := New(logger, "re-verifying applied rows failed", WithLevel(slog.LevelWarn), WithClock(func() time.Time { return now }))
	down := errors.New("connection refused")
	for range 65 {
		l.Fail(down, "mapping", "orders")
		now = now.Add(10 * time.Millisecond)
	}
	l.Fail(errors.New("server is starting up"), "mapping", "orders")
	l.Fail(errors.New("server is starting up"), "mapping", "orders")
	now = now.Add(time.Second)
	l.OK()
	l.OK() // nothing more: it already works

	want := []string{
		`level=WARN msg="re-verifying applied rows failed" mapping=orders err="connection refused" count=1 since=2026-01-02T03:04:05.000Z`,
		`level=WARN msg="re-verifying applied rows failed" mapping=orders err="connection refused" count=10 since=2026-01-02T03:04:05.000Z`,
		`level=WARN msg="re-verifying applied rows failed" mapping=orders err="connection refused" count=65 since=2026-01-02T03:04:05.000Z`,
		`level=WARN msg="re-verifying applied rows failed" mapping=orders err="server is starting up" count=1 since=2026-01-02T03:04:05.650Z`,
		`level=INFO msg="re-verifying applied rows failed; works again" last_err="server is starting up" count=2 since=2026-01-02T03:04:05.650Z for=1s`,
	}
	if diff := cmp.Diff(want, strings.Split(strings.TrimSpace(buf.String()), "\n")); diff != "" {
		t.Errorf("log lines (-want +got):\n%s", diff)
	}
}

// Each attempt's connection has a local port of its own, which its error
// message names: the failures are still one cause, logged once.
func TestLog_TheLocalPortOfEachAttemptIsNoNewCause(t *testing.T) {
	var buf bytes.Buffer
	l := New(slog.New(slog.NewTextHandler(&buf, nil)), "waiting to start")
	for _, local := range []string{"127.0.0.1:44134", "127.0.0.1:44136", "[::1]:51000", "[::1]:51002"} {
		l.Fail(errors.New("target: cannot connect: read tcp " + local + "->127.0.0.1:5432: read: connection reset by peer"))
	}
	l.Fail(errors.New("target: cannot connect: dial tcp 127.0.0.1:5432: connect: connection refused"))
	got := strings.Count(buf.String(), "msg=\"waiting to start\"")
	// Three causes (the IPv4 attempts, the IPv6 attempts, the refusal):
	// each one's first line, and the summary of each that repeated.
	if got != 3+2 {
		t.Errorf("%d lines, want 5:\n%s", got, buf.String())
	}
	for _, c := range []string{"127.0.0.1->127.0.0.1:5432", "[::1]->127.0.0.1:5432"} {
		if cause(errors.New("read tcp "+strings.Replace(c, "->", ":40000->", 1))) != "read tcp "+c {
			t.Errorf("cause of a message with %s keeps the local port", c)
		}
	}
}

// TestLog_ACauseThatFailedOnceIsNotSummarisedAndTheHundredthIsLogged: a
// cause whose only failure was logged gets no summary when another
// follows; the 100th failure of a cause is logged; Failing counts the
// current cause from its first failure.
func TestLog_ACauseThatFailedOnceIsNotSummarisedAndTheHundredthIsLogged(t *testing.T) {
	var buf bytes.Buffer
	logger := timelessLogger(&buf)
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	now := start
	l := New(logger, "copy failed", WithClock(func() time.Time { return now }))
	if n, _ := l.Failing(); n != 0 {
		t.Errorf("Failing before any failure = %d, want 0", n)
	}
	l.Fail(errors.New("lock wait timeout"))
	now = now.Add(time.Second)
	for range 100 {
		l.Fail(errors.New("deadlock"))
	}
	if n, since := l.Failing(); n != 100 || !since.Equal(start.Add(time.Second)) {
		t.Errorf("Failing = %d since %v, want 100 since %v", n, since, start.Add(time.Second))
	}
	want := []string{
		`level=ERROR msg="copy failed" err="lock wait timeout" count=1 since=2026-01-02T03:04:05.000Z`,
		`level=ERROR msg="copy failed" err=deadlock count=1 since=2026-01-02T03:04:06.000Z`,
		`level=ERROR msg="copy failed" err=deadlock count=10 since=2026-01-02T03:04:06.000Z`,
		`level=ERROR msg="copy failed" err=deadlock count=100 since=2026-01-02T03:04:06.000Z`,
	}
	if diff := cmp.Diff(want, strings.Split(strings.TrimSpace(buf.String()), "\n")); diff != "" {
		t.Errorf("log lines (-want +got):\n%s", diff)
	}
}

// timelessLogger writes text lines to buf without their time, so that a
// test compares them whole.
func timelessLogger(buf *bytes.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
}
