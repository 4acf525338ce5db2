// Package sqlbatch holds the SQL batching helpers the two sinks share:
// compacting a batch of writes into rounds and statement groups, the order
// of a batch's copy locks, the keyset scan and key-lookup helpers. It is
// internal to sink/...: nothing outside the sinks needs it.
package sqlbatch
