// Package dial is how tandem opens its TCP connections, to the databases
// (SQL and replication) and to the Kafka brokers: one dialer, with a
// connect timeout and TCP keepalive probes tuned to notice a dead path in
// about half a minute, where the kernel's defaults take two hours.
//
// Keepalives and TCP_USER_TIMEOUT bound what the kernel can see: a peer or
// a path that stopped answering at the TCP level (a host gone, a NAT that
// dropped the connection's state and drops its packets). They bound no
// statement: a server computing a long answer still acknowledges the
// probes. A middlebox that acknowledges and forwards nothing, and a server
// that holds a statement on a lock, are noticed one level up, by the
// deadlines of the operations that must answer soon (an applied batch,
// a replication stream's keepalive, a check's connect): see the Timeout
// fields of the capturers and the target write deadline of apply.
package dial
