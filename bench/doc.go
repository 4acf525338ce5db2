// Package bench measures tandem end to end on this machine, and beside each
// figure the physical limit it is bounded by, measured in the same run on the
// same PostgreSQL servers:
//
//   - capture rate: source commits to tandem_capture_events_total, against
//     pg_recvlogical reading the same WAL through a pgoutput slot of its own;
//   - end-to-end rate: source commits to rows committed in the target,
//     against a plain COPY FROM STDIN of the same rows into a table of the
//     target's shape;
//   - end-to-end latency (p50, p99, max) under a steady 1,000 changes/s;
//   - BenchmarkPostgresLargeTransaction: one 1,000,000-row transaction
//     captured by capture/postgres in a child process, as the MySQL one
//     below (a 100,000-row control, a consumer paced at 100,000 rows/s, a
//     failure when the peak RSS grows with the transaction's size), against
//     pg_recvlogical decoding it, with what the walsender spilled to disk
//     for it (pgoutput protocol v1 holds a transaction until its commit).
//
// Each run uses throwaway databases, the source's on the test binary's shared
// testenv server and the target's on a second one (so the source's WAL holds
// only the workload), its own replication slot, and the embedded Kafka
// broker, all in one process, so a CPU profile (-cpuprofile) shows the whole
// pipeline. Each throughput run also logs where the machine's CPU went
// (tandem, postgres, other processes, idle). Run it with
//
//	make bench
//	go test -run '^$' -bench . -benchtime 1x -timeout 30m ./bench/...
//
// The MySQL path has benchmarks of its own (go test -bench MySQL), on the
// test binary's shared MariaDB server, with PostgreSQL as the target:
//
//   - BenchmarkMySQLCapture: 200,000 inserts in 200 transactions, read back
//     from the binlog by tandem's capturer (capture/mysql, acking as it
//     goes) against mariadb-binlog decoding every row of the same range;
//   - BenchmarkMySQLEndToEnd: the same rows through the whole pipeline,
//     committed while it runs (live) and before it starts (backlog),
//     against COPY FROM STDIN of the same rows into the target's server;
//   - BenchmarkMySQLLargeTransaction: one 500,000-row transaction captured
//     in a child process (this test binary again), whose peak RSS (VmHWM)
//     is the capturer's alone; it fails when the peak grows with the
//     transaction's size (a 100,000-row transaction is the control), and
//     reports the peak again for a consumer slower than the binlog reader.
//
// BenchmarkBackfill (backfill_bench_test.go) copies a 1,000,000-row table
// of six columns with `tandem backfill` (pipeline.Run with a backfill, in a
// child process whose VmHWM is its peak RSS), PostgreSQL -> PostgreSQL and
// MariaDB -> PostgreSQL, from the call to the copy durable in the target,
// against the same rows streamed from the source into COPY FROM STDIN on
// the target's server (COPY TO STDOUT piped by pgx for PostgreSQL, a
// SELECT read by go-sql-driver for MariaDB); below the aim it runs one
// tuned setting too, and logs the RSS curve and where the CPU went.
//
// Cutover has benchmarks of its own (cutover_bench_test.go), on the canary
// scenario (internal/fixture/canary), PostgreSQL -> PostgreSQL:
//
//   - BenchmarkCutoverFence: the canary merchants switched one at a time
//     to the new schema and back (tandem switch, twice each way) under the
//     canary application's ~1,000 writes/s; how long each switch fenced
//     the merchant's writes, p50 and p99 by direction, against the one-way
//     latency of the stream the switch drains, probed in the same run;
//   - BenchmarkCutoverReverseThroughput: 100,000 orders with payments
//     streamed forward and then, the merchants switched, written on the
//     new side and rebuilt into the old table by the reverse stream, end
//     to end, against plain INSERTs of the same rows on each side.
//
// BenchmarkPipelineMemory (pipeline_memory_test.go) measures what a user
// runs: the peak RSS (VmHWM) of the tandem binary, `tandem run` and,
// separately, `tandem apply` beside a `tandem capture`, over one
// transaction of 100,000 and of 1,000,000 rows of each kind (INSERT,
// UPDATE of every row, DELETE of every row), each waited for until the
// target holds exactly the source's rows (count and md5 on both sides),
// with its rows/s next to a COPY of as many rows; a peak above 256 MiB
// fails it. TestPipelineMemory_ALargeTransactionStaysUnderTheBound runs
// the same for `tandem run` on an INSERT and an UPDATE of 200,000 rows as
// a test, in `make test`.
//
// BenchmarkApplyScaleOut (scaleout_bench_test.go) runs the same
// end-to-end workload through the tandem binary as separate processes, one
// `tandem capture` and one, two or three `tandem apply` over a kfake broker
// this process serves on loopback, next to one `tandem run` and COPY, with
// where the CPU went (tandem processes, postgres, the broker, others).
//
// The package holds benchmarks, a config check that runs as a test, and
// the pipeline's memory test (about a minute), so `go test ./bench/...`
// without -bench is short.
//
// Mappings and reconcile have benchmarks of their own:
//
//   - BenchmarkTransform (-bench Transform -cpu 1): transform.Writes per core
//     for a split mapping of 14 columns into two tables next to an identity
//     mapping of 12, untyped and typed;
//   - BenchmarkReconcile: a full sweep of 1,000,000 rows next to COPY TO
//     STDOUT of both tables (sweep), the same from a MariaDB source next to
//     a streamed SELECT of it and COPY TO STDOUT of the target
//     (sweep_mariadb), and how long continuous mode at its default
//     read rate takes to report one corrupted row (measured on 50,000 rows
//     against the rate limiter's model, extrapolated to 1,000,000).
package bench
