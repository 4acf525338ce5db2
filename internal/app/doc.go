// Package app wires tandem's roles from a config, and is the only package
// besides cmd/tandem that sees concrete implementations (through
// internal/connect). Run starts, in one errgroup: capture (the source's
// stream into Kafka: internal/kafka's Publisher), apply (one apply.Applier
// per mapping), backfill (backfill.Role), continuous reconcile
// (reconcile.Loop) and the HTTP endpoints (/metrics, /healthz, /readyz);
// each role lives in the package named for it, and this package only
// decides which run and connects them. The other exported functions are
// the one-shot verbs of cmd/tandem: Check, Preview, Reconcile, the
// dead-letter commands.
//
// Durability: with an external Kafka cluster a source position is
// acknowledged once Kafka has every record before it. With the embedded
// broker, whose data dies with the process, it is acknowledged only once
// every mapping reading those records has committed them, with their
// offsets, in the target (see internal/kafka's Tracker). Offsets stored in
// the target are scoped by the Kafka cluster ID (the embedded broker gets
// a new one per start), so a restart against a fresh embedded broker
// starts its topics from the beginning while the source replays everything
// not yet acknowledged.
package app
