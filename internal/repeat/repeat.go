package repeat

import (
	"context"
	"log/slog"
	"regexp"
	"sync"
	"time"
)

// Log summarises the failures of one thing that is retried. The zero value
// is not usable: make one with New. Its methods are safe for concurrent
// use.
type Log struct {
	log   *slog.Logger
	level slog.Level
	msg   string
	now   func() time.Time

	mu    sync.Mutex
	cause string    // the current failure's cause; "" while it works
	last  string    // the current cause's last error message
	count int       // failures of cause in a row
	began time.Time // when the first of them happened
	attrs []any     // the first failure's attributes, repeated in its summary
}

// Option configures a Log.
type Option func(*Log)

// WithLevel logs failures at level instead of slog.LevelError (recoveries
// are logged at Info).
func WithLevel(level slog.Level) Option { return func(l *Log) { l.level = level } }

// WithClock reads the time from now instead of time.Now (tests).
func WithClock(now func() time.Time) Option { return func(l *Log) { l.now = now } }

// New returns a Log that writes to log, each failure's line saying msg
// (what failed, e.g. "re-verifying applied rows failed").
func New(log *slog.Logger, msg string, opts ...Option) *Log {
	l := &Log{log: log, level: slog.LevelError, msg: msg, now: time.Now}
	for _, o := range opts {
		o(l)
	}
	return l
}

// localAddr matches the local end of a connection in an error message
// ("read tcp 127.0.0.1:44134->127.0.0.1:5432: ..."): its port is new on
// every attempt, so it is no part of the cause.
var localAddr = regexp.MustCompile(`([0-9.]+|\[[0-9A-Fa-f:.%a-z]+\]):[0-9]+->`)

// cause is err's message without what differs between attempts of one
// cause (the local port of each connection).
func cause(err error) string { return localAddr.ReplaceAllString(err.Error(), "$1->") }

// Fail records one failure with err and attrs (slog's key, value pairs). A
// cause is an error message (less each attempt's local port): the first
// failure of a new cause is logged (after a summary of the previous cause,
// if it repeated), a repeat only at the 10th, 100th, 1000th... time, with
// "count" and "since".
func (l *Log) Fail(err error, attrs ...any) { l.FailOf(cause(err), err, attrs...) }

// FailOf is Fail with the cause given: failures whose messages differ in
// detail (a reset or an EOF from one server that is down) are one cause
// when the caller says so. The lines show err, the summary the last one.
func (l *Log) FailOf(cause string, err error, attrs ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if cause != l.cause {
		l.summarise()
		l.cause, l.count, l.began, l.attrs = cause, 0, l.now(), attrs
	}
	l.last = err.Error()
	l.count++
	if l.count == 1 || isPowerOfTen(l.count) {
		l.log.Log(context.Background(), l.level, l.msg, append(attrs, "err", err, "count", l.count, "since", l.began.Format(sinceLayout))...)
	}
}

// OK records a success: after failures it logs once that they ended,
// how many there were and since when. It is cheap when nothing failed.
func (l *Log) OK(attrs ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cause == "" {
		return
	}
	l.log.Info(l.msg+"; works again", append(attrs, "last_err", l.last, "count", l.count, "since", l.began.Format(sinceLayout),
		"for", l.now().Sub(l.began).Round(time.Millisecond).String())...)
	l.cause, l.last, l.count, l.attrs = "", "", 0, nil
}

// Failing returns how many times in a row the current cause failed, and
// since when; 0 while it works.
func (l *Log) Failing() (count int, since time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.count, l.began
}

// summarise logs the final count of the current cause when its last
// failure was not logged.
func (l *Log) summarise() {
	if l.count <= 1 || isPowerOfTen(l.count) {
		return
	}
	l.log.Log(context.Background(), l.level, l.msg, append(l.attrs, "err", l.last, "count", l.count, "since", l.began.Format(sinceLayout))...)
}

func isPowerOfTen(n int) bool {
	for n >= 10 && n%10 == 0 {
		n /= 10
	}
	return n == 1
}

// sinceLayout is how "since" is written: RFC 3339 to the millisecond.
const sinceLayout = "2006-01-02T15:04:05.000Z07:00"
