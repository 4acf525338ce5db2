// Package testenv starts throwaway PostgreSQL servers on 127.0.0.1 for
// tandem's integration tests and demo, without Docker.
//
// Tests use one shared server per test binary, started on first use:
//
//	func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }
//
//	func TestSomething(t *testing.T) {
//		dsn := testenv.NewDatabase(t) // a fresh database on the shared server
//		...
//	}
//
// Code that needs a server of its own (crash tests with Restart, the demo)
// calls StartPostgreSQL and Stop.
//
// Each server lives in its own folder, by default under
// <module root>/.work/testenv/, holding the data directory, the Unix socket
// and postgres.log. The folder records the process that owns it; a server
// whose owner died without stopping it (a test binary killed mid-run) is
// stopped and deleted by the next StartPostgreSQL. Folders and ports are
// unique, so several test binaries may run at once.
//
// The servers run the Debian postgresql-15 binaries (/usr/lib/postgresql/15/bin,
// or the folder in TANDEM_PG_BIN); scripts/deps.sh installs them. As root the
// binaries run as the postgres user through runuser, since PostgreSQL refuses
// to run as root. Every server is configured for logical replication
// (wal_level=logical) and for speed rather than durability (fsync=off).
package testenv
