// Package chaos is tandem's fault suite, tests only: `make chaos` runs it
// alone and `make test` with everything else. Each scenario starts the
// tandem binary on real servers (PostgreSQL and MariaDB sources, a
// PostgreSQL target, the embedded or an external kfake broker) under a
// steady writer, injects one fault, and ends with an exact comparison of
// the target with the source through the mapping's model:
//
//   - kill -9 of each role at seeded random moments (-chaos.seed replays
//     them), one while apply is held by a target lock;
//   - source restarts, fast and immediate; the target down 20 s;
//   - connections reset on the source, target and broker paths
//     (testenv.FaultProxy);
//   - 90 s stalls of the PostgreSQL replication, MariaDB binlog and target
//     paths, which must be detected (source.stream_timeout,
//     target.write_timeout) and then converge;
//   - an external broker restarted from its data;
//   - an oversize row in the middle of a transaction (kafka.max_record_bytes):
//     dead-lettered, the stream going on, then replayed;
//   - forged records on the embedded broker's port, refused.
//
// Each scenario logs one CHAOS line: what it injected and what it measured
// (time to detect, time to converge, rows lost: 0). BenchmarkSoak, run by
// `make bench`, keeps tandem run under a steady writer for 10 minutes
// (-chaos.soak) and reports its memory at the start, middle and end.
package chaos
