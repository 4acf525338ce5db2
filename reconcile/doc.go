// Package reconcile compares the source, mapped through the same compiled
// transform the sink is fed by, with the target, and reports drift: rows
// missing from the target, extra in it, or there with other values.
package reconcile
