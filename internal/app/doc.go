// Package pipeline wires tandem's roles from a config: capture (source ->
// Kafka), apply (Kafka -> transform -> target, one consumer group per
// mapping), backfill (source chunks -> transform -> target, beside the
// stream: see capture/backfill), reconcile and the HTTP endpoints
// (/metrics, /healthz, /readyz). It is the only package besides
// cmd/tandem that imports both a capturer and a sink.
//
// Durability: with an external Kafka cluster a source position is
// acknowledged once Kafka has every record before it. With the embedded
// broker, whose data dies with the process, it is acknowledged only once
// every mapping reading those records has committed them, with their
// offsets, in the target. Offsets stored in the target are scoped by the
// Kafka cluster ID (the embedded broker gets a new one per start), so a
// restart against a fresh embedded broker starts its topics from the
// beginning while the source replays everything not yet acknowledged.
package app
