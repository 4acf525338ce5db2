package testenv

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandemcdc/tandem/internal/poll"
)

// sharedStartTimeout bounds the start of a test binary's shared server.
const sharedStartTimeout = 2 * time.Minute

// shared is the test binary's shared server.
var shared struct {
	mu        sync.Mutex
	runActive bool // Run is running the tests
	pg        *PostgreSQL
	err       error // the first start's failure, reported to every caller
}

// sharedMaria is the test binary's shared MariaDB server. It has a lock of
// its own so that starting it does not hold up the PostgreSQL callers.
var sharedMaria struct {
	mu  sync.Mutex
	m   *MariaDB
	err error // the first start's failure, reported to every caller
}

// dbCounter makes NewDatabase's and NewMariaDBDatabase's names unique within
// the test binary.
var dbCounter atomic.Int64

// Run runs the tests and then stops every server the test binary started
// (the shared ones and any StartPostgreSQL or StartMariaDB left running).
// Call it from
// TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }
//
// A failure to stop is printed to stderr and does not change the exit code;
// the next StartPostgreSQL or StartMariaDB cleans up what was left.
func Run(m *testing.M) int {
	shared.mu.Lock()
	shared.runActive = true
	shared.mu.Unlock()

	code := m.Run()

	shared.mu.Lock()
	shared.runActive = false
	shared.pg, shared.err = nil, nil
	shared.mu.Unlock()
	sharedMaria.mu.Lock()
	sharedMaria.m, sharedMaria.err = nil, nil
	sharedMaria.mu.Unlock()
	if err := stopAll(); err != nil {
		fmt.Fprintf(os.Stderr, "testenv: stop servers: %v\n", err)
	}
	return code
}

// Postgres returns the test binary's shared server, starting it on first use
// (about a second). Tests share it, so they must not Stop or Restart it: use
// NewDatabase for isolation and StartPostgreSQL for a server of one's own.
//
// It fails the test (never skips it) when the server cannot start, or when
// TestMain does not call Run, which stops the server at the end.
func Postgres(t testing.TB) *PostgreSQL {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.runActive {
		t.Fatal("testenv.Postgres: the package's TestMain must call os.Exit(testenv.Run(m)), which stops the shared server when the tests end")
	}
	if shared.pg == nil && shared.err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), sharedStartTimeout)
		shared.pg, shared.err = StartPostgreSQL(ctx, PostgresOptions{})
		cancel()
	}
	if shared.err != nil {
		t.Fatalf("testenv: start the shared PostgreSQL server: %v", shared.err)
	}
	return shared.pg
}

// NewDatabase creates a fresh database on the shared server and returns its
// DSN. Its name comes from t.Name(), lowercased with every character outside
// [a-z0-9] turned into '_', plus a counter that makes it unique: for
// TestApply/delete_first it is "testapply_delete_first_<n>", at most 63 bytes.
// The database lives as long as the shared server.
func NewDatabase(t testing.TB) string {
	t.Helper()
	p := Postgres(t)
	name := databaseName(t.Name(), dbCounter.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dsn, err := p.CreateDatabase(ctx, name)
	if err != nil {
		t.Fatalf("testenv: new database for %s: %v", t.Name(), err)
	}
	return dsn
}

// SharedMariaDB returns the test binary's shared MariaDB server, starting it
// on first use (about 2 s). Tests share it, so they must not Stop or Restart
// it: use NewMariaDBDatabase for isolation and StartMariaDB for a server of
// one's own.
//
// It fails the test (never skips it) when the server cannot start, or when
// TestMain does not call Run, which stops the server at the end.
func SharedMariaDB(t testing.TB) *MariaDB {
	t.Helper()
	shared.mu.Lock()
	active := shared.runActive
	shared.mu.Unlock()
	if !active {
		t.Fatal("testenv.SharedMariaDB: the package's TestMain must call os.Exit(testenv.Run(m)), which stops the shared server when the tests end")
	}
	sharedMaria.mu.Lock()
	defer sharedMaria.mu.Unlock()
	if sharedMaria.m == nil && sharedMaria.err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), sharedStartTimeout)
		sharedMaria.m, sharedMaria.err = StartMariaDB(ctx, MariaDBOptions{})
		cancel()
	}
	if sharedMaria.err != nil {
		t.Fatalf("testenv: start the shared MariaDB server: %v", sharedMaria.err)
	}
	return sharedMaria.m
}

// NewMariaDBDatabase creates a fresh database on the shared MariaDB server
// and returns its DSN (MariaDB.DSN). Its name is made from t.Name() as
// NewDatabase's is: "testapply_delete_first_<n>", unique in the test binary,
// at most 63 bytes (MariaDB allows 64). The database lives as long as the
// shared server.
func NewMariaDBDatabase(t testing.TB) string {
	t.Helper()
	m := SharedMariaDB(t)
	name := databaseName(t.Name(), dbCounter.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dsn, err := m.CreateDatabase(ctx, name)
	if err != nil {
		t.Fatalf("testenv: new MariaDB database for %s: %v", t.Name(), err)
	}
	return dsn
}

// maxIdentifier is PostgreSQL's identifier limit (NAMEDATALEN-1).
const maxIdentifier = 63

// databaseName derives a database name from a test name and a counter.
func databaseName(testName string, n int64) string {
	suffix := "_" + strconv.FormatInt(n, 10)
	var b strings.Builder
	under := true // no leading '_', no "__"
	for _, c := range strings.ToLower(testName) {
		switch {
		case c >= 'a' && c <= 'z' || c >= '0' && c <= '9':
			b.WriteRune(c)
			under = false
		case !under:
			b.WriteByte('_')
			under = true
		}
	}
	base := strings.TrimRight(b.String(), "_")
	if base == "" {
		base = "db"
	}
	if len(base) > maxIdentifier-len(suffix) {
		base = strings.TrimRight(base[:maxIdentifier-len(suffix)], "_")
	}
	return base + suffix
}

// WaitFor polls cond every 20ms until it holds, and fails tb naming what it
// waited for when within passes or cond returns an error.
func WaitFor(tb testing.TB, what string, within time.Duration, cond func() (bool, error)) {
	tb.Helper()
	if _, err := poll.Until(context.Background(), 20*time.Millisecond, within, cond); err != nil {
		tb.Fatalf("waiting for %s: %v", what, err)
	}
}
