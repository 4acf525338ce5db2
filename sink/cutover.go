package sink

import (
	"context"
	"time"
)

// Side names one database of a migration: the old schema's (the source of
// the forward stream) or the new one's (its target).
type Side string

// The two sides.
const (
	SideOld Side = "old"
	SideNew Side = "new"
)

// Other is the side that is not s.
func (s Side) Other() Side {
	if s == SideOld {
		return SideNew
	}
	return SideOld
}

// Owner is who owns a cohort's writes, as <state_schema>.cohorts stores it:
// OwnerOld, OwnerNew, or OwnerSwitching while a switch moves it.
type Owner string

// The owners of a cohort.
const (
	OwnerOld       Owner = "old"
	OwnerNew       Owner = "new"
	OwnerSwitching Owner = "switching"
)

// Ownership is one row of <state_schema>.cohorts. Each database of a
// migration keeps its own copy; the switch writes them in an order that
// makes the one with the higher Version the truth (package cutover).
type Ownership struct {
	Cohort string
	Owner  Owner
	// To is the side a switching cohort moves to; "" otherwise.
	To        Side
	Version   int64
	ChangedAt time.Time
}

// Applies reports whether the stream that writes into side w applies the
// changes of a cohort owned as o says: the forward stream (w = SideNew)
// while the old side owns it or while it moves to the new side (the forward
// stream drains), the reverse stream (w = SideOld) the other way round. A
// cohort with no row is owned by the old side.
func (o Ownership) Applies(w Side) bool {
	from := w.Other() // the side the stream reads
	switch o.Owner {
	case "":
		return from == SideOld
	case OwnerSwitching:
		return o.To == w
	}
	return Side(o.Owner) == from
}

// Misrouted is a write the application made on the side that does not own
// its cohort, as the guard trigger recorded it.
type Misrouted struct {
	ID     int64
	Cohort string
	Side   Side
	Table  string
	Key    string // the row's key, as text
	At     time.Time
}

// GuardTable is one table the cutover guard watches: writes of the
// application into it wait while a switch fences the row's cohort, and a
// write of a cohort the side does not own is recorded (Misrouted) or,
// with Reject, refused.
type GuardTable struct {
	Table        string   // "schema.table" or "table"
	CohortColumn string   // the column holding the row's cohort; "": every row is cohort Default
	Default      string   // the cohort of every row when CohortColumn is ""
	Key          []string // the key columns, recorded in Misrouted.Key
}

// Heartbeat is what a running stream last said of itself, kept in the state
// schema of the database it writes, so that `tandem switch` and `tandem
// status` can see every process of a migration.
type Heartbeat struct {
	Stream  string // "forward:<mapping>" or "reverse:<mapping>"
	Lag     time.Duration
	Updated time.Time // the database's clock
}

// CohortStore keeps cutover's state in a database's state schema: the
// cohorts' owners, the guard triggers, the misrouted writes and the
// streams' heartbeats. Both sinks implement it; the switch uses it on both
// databases.
type CohortStore interface {
	// Cohorts returns every stored owner.
	Cohorts(ctx context.Context) ([]Ownership, error)
	// SetOwners stores owners in one transaction.
	SetOwners(ctx context.Context, owners []Ownership) error
	// Fence locks the rows of cohorts (created as owned by the old side if
	// absent) in a transaction it keeps open: until Fence.Commit or
	// Fence.Release, the application's writes of those cohorts wait in
	// the guard triggers, and so do stream batches that write them.
	Fence(ctx context.Context, cohorts []string) (Fence, error)
	// InstallGuard creates (or replaces) the guard triggers of tables
	// for this side; reject makes them refuse a misrouted write instead
	// of recording it. Writes of tandem's own sessions pass untouched.
	InstallGuard(ctx context.Context, side Side, tables []GuardTable, reject bool) error
	// RemoveGuard drops every guard trigger of tables.
	RemoveGuard(ctx context.Context, tables []GuardTable) error
	// Misrouted returns the misrouted writes recorded after id, oldest first, at most limit.
	Misrouted(ctx context.Context, after int64, limit int) ([]Misrouted, error)
	// Beat stores a stream's heartbeat (the database's clock sets Updated).
	Beat(ctx context.Context, stream string, lag time.Duration) error
	// Heartbeats returns every stored heartbeat.
	Heartbeats(ctx context.Context) ([]Heartbeat, error)
}

// Fence is a transaction holding cohorts' rows locked (CohortStore.Fence).
type Fence interface {
	// Commit stores owners (of the fenced cohorts) and ends the fence.
	Commit(ctx context.Context, owners []Ownership) error
	// Release ends the fence and changes nothing.
	Release(ctx context.Context) error
}

// DriftCount is how many rows of one kind the last reconcile sweep found
// drifted in one mapping (its report's label: "<mapping>" or
// "reverse:<mapping>"), kept in the target's state schema so that `tandem
// status` shows it whichever process reconciles.
type DriftCount struct {
	Mapping string
	Kind    string // missing, extra, mismatch, round_trip, unmapped
	Rows    int
	Swept   time.Time // when the sweep ended, the database's clock
}

// DriftStore keeps the last sweep's drift counts. Both sinks implement it.
type DriftStore interface {
	// StoreDrift replaces the stored counts of the mappings counts name
	// with counts, in one transaction.
	StoreDrift(ctx context.Context, counts []DriftCount) error
	// Drift returns every stored count, by mapping and kind.
	Drift(ctx context.Context) ([]DriftCount, error)
}
