// Package testenv starts throwaway PostgreSQL and MariaDB servers on
// 127.0.0.1 for tandem's integration tests and demo, without Docker.
//
// Tests use one shared server of each kind per test binary, started on first
// use:
//
//	func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }
//
//	func TestSomething(t *testing.T) {
//		dsn := testenv.NewDatabase(t)        // a fresh database on the shared PostgreSQL
//		mdsn := testenv.NewMariaDBDatabase(t) // a fresh database on the shared MariaDB
//		...
//	}
//
// Code that needs a server of its own (crash tests with Restart, the demo)
// calls StartPostgreSQL or StartMariaDB, and Stop.
//
// Each server lives in its own folder, by default under
// <module root>/.work/testenv/ (pg-* and mariadb-*), holding the data
// directory, the Unix socket and the server log (postgres.log,
// mariadb.log). The folder records the process that owns it; a server whose
// owner died without stopping it (a test binary killed mid-run) is stopped
// and deleted by the next StartPostgreSQL or StartMariaDB. Folders and ports
// are unique, so several test binaries may run at once.
//
// The PostgreSQL servers run the Debian postgresql-15 binaries
// (/usr/lib/postgresql/15/bin, or the folder in TANDEM_PG_BIN); scripts/deps.sh
// installs them. As root the binaries run as the postgres user through
// runuser, since PostgreSQL refuses to run as root. Every server is
// configured for logical replication (wal_level=logical) and for speed
// rather than durability (fsync=off).
//
// The MariaDB servers run the Debian mariadb-server 10.11 binaries
// (/usr/sbin/mariadbd, mariadb-install-db), also installed by
// scripts/deps.sh, with --no-defaults so /etc/mysql is never read. Each has
// the binary log on as a binlog capturer needs it (binlog_format=ROW,
// binlog_row_image=FULL, binlog_row_metadata=FULL, server_id=1), utf8mb4 as
// the server character set, and trades durability for speed
// (innodb_flush_log_at_trx_commit=2, sync_binlog=0): committed data survives
// a killed server, not a power loss.
//
// Every server has the superuser User with the fixed Password, a test
// secret that no String, error or log line of this package shows.
package testenv
