package mysql

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/mysqlurl"
	"github.com/tandemcdc/tandem/sink"
)

var _ sink.CohortStore = (*Sink)(nil)

// GuardSQLState is the SQLSTATE of the error (SIGNAL) a guard trigger
// installed with reject raises when the application writes a row of a
// cohort its side does not own.
const GuardSQLState = "45000"

func (s *Sink) cohortsTable() string    { return mysqlurl.QuoteIdent(s.state) + ".`cohorts`" }
func (s *Sink) misroutedTable() string  { return mysqlurl.QuoteIdent(s.state) + ".`misrouted`" }
func (s *Sink) heartbeatsTable() string { return mysqlurl.QuoteIdent(s.state) + ".`heartbeats`" }
func (s *Sink) driftTable() string      { return mysqlurl.QuoteIdent(s.state) + ".`drift`" }

// inList returns "?, ?, ..." for n values.
func inList(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// Cohorts implements sink.CohortStore: every stored owner, by cohort,
// times in UTC.
func (s *Sink) Cohorts(ctx context.Context) ([]sink.Ownership, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT cohort, owner, COALESCE(switching_to, ''), version, changed_at FROM "+
		s.cohortsTable()+" ORDER BY cohort")
	if err != nil {
		return nil, classified(s.cohortsTable(), fmt.Errorf("read cohort owners: %w", err))
	}
	defer rows.Close()
	var out []sink.Ownership
	for rows.Next() {
		var o sink.Ownership
		var changed string
		if err := rows.Scan(&o.Cohort, &o.Owner, &o.To, &o.Version, &changed); err != nil {
			return nil, classified(s.cohortsTable(), fmt.Errorf("read cohort owners: %w", err))
		}
		if o.ChangedAt, err = time.Parse(timeLayout, changed); err != nil {
			return nil, fmt.Errorf("read the owner of cohort %s: change time %q: %w", o.Cohort, changed, err)
		}
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, classified(s.cohortsTable(), fmt.Errorf("read cohort owners: %w", err))
	}
	return out, nil
}

// SetOwners implements sink.CohortStore, in one transaction whose upserts
// wait for the batches and guarded writes holding the rows share-locked.
// ChangedAt is the database's clock.
func (s *Sink) SetOwners(ctx context.Context, owners []sink.Ownership) error {
	if len(owners) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{Isolation: s.isolation})
	if err != nil {
		return classified(s.cohortsTable(), fmt.Errorf("store cohort owners: %w", err))
	}
	defer tx.Rollback()
	if err := s.storeOwners(ctx, tx, owners, nil); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return classified(s.cohortsTable(), fmt.Errorf("store cohort owners: %w", err))
	}
	return nil
}

// storeOwners upserts owners in tx, in cohort order; fenced, when not nil,
// lists the only cohorts owners may name.
func (s *Sink) storeOwners(ctx context.Context, tx *sql.Tx, owners []sink.Ownership, fenced []string) error {
	owners = slices.Clone(owners)
	slices.SortFunc(owners, func(a, b sink.Ownership) int { return strings.Compare(a.Cohort, b.Cohort) })
	for _, o := range owners {
		if err := validOwnership(o); err != nil {
			return fmt.Errorf("store cohort owners: %w", err)
		}
		if fenced != nil && !slices.Contains(fenced, o.Cohort) {
			return fmt.Errorf("store cohort owners: cohort %q is not fenced", o.Cohort)
		}
	}
	for _, o := range owners {
		var to any
		if o.To != "" {
			to = string(o.To)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO "+s.cohortsTable()+" (cohort, owner, switching_to, version, changed_at)"+
			" VALUES (?, ?, ?, ?, UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE owner = VALUES(owner),"+
			" switching_to = VALUES(switching_to), version = VALUES(version), changed_at = VALUES(changed_at)",
			o.Cohort, string(o.Owner), to, o.Version); err != nil {
			return classified(s.cohortsTable(), fmt.Errorf("store the owner of cohort %s: %w", o.Cohort, err))
		}
	}
	return nil
}

// validOwnership refuses an ownership the cohorts table cannot hold.
func validOwnership(o sink.Ownership) error {
	switch o.Owner {
	case sink.OwnerOld, sink.OwnerNew, sink.OwnerSwitching:
	default:
		return fmt.Errorf("cohort %q: unknown owner %q", o.Cohort, o.Owner)
	}
	switch o.To {
	case "", sink.SideOld, sink.SideNew:
	default:
		return fmt.Errorf("cohort %q: unknown side %q", o.Cohort, o.To)
	}
	return nil
}

// Fence implements sink.CohortStore. The rows of cohorts missing from the
// cohorts table are inserted first (owned by old, version 0) and
// committed, as a locking read of a missing row would lock a gap, or
// nothing. Then a transaction on a connection of its own locks the rows
// FOR UPDATE, in cohort order, and stays open until Commit or Release.
// ctx bounds the wait for the locks, not the fence.
func (s *Sink) Fence(ctx context.Context, cohorts []string) (sink.Fence, error) {
	cohorts = slices.Compact(slices.Sorted(slices.Values(cohorts)))
	if len(cohorts) == 0 {
		return nil, errors.New("fence cohorts: no cohort")
	}
	values := strings.TrimSuffix(strings.Repeat("(?, 'old', 0, UTC_TIMESTAMP(6)), ", len(cohorts)), ", ")
	if _, err := s.db.ExecContext(ctx, "INSERT IGNORE INTO "+s.cohortsTable()+" (cohort, owner, version, changed_at) VALUES "+values,
		anys(cohorts)...); err != nil {
		return nil, classified(s.cohortsTable(), fmt.Errorf("create the rows of fenced cohorts: %w", err))
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, classified(s.cohortsTable(), fmt.Errorf("fence cohorts: %w", err))
	}
	// database/sql rolls a transaction back when its context ends: the
	// fence's outlives ctx.
	tx, err := conn.BeginTx(context.WithoutCancel(ctx), &sql.TxOptions{Isolation: s.isolation})
	if err != nil {
		conn.Close()
		return nil, classified(s.cohortsTable(), fmt.Errorf("fence cohorts: %w", err))
	}
	rows, err := tx.QueryContext(ctx, "SELECT cohort FROM "+s.cohortsTable()+" WHERE cohort IN ("+inList(len(cohorts))+
		") ORDER BY cohort FOR UPDATE", anys(cohorts)...)
	if err == nil {
		err = rows.Close()
	}
	if err != nil {
		tx.Rollback()
		conn.Close()
		return nil, classified(s.cohortsTable(), fmt.Errorf("lock the rows of fenced cohorts: %w", err))
	}
	return &fence{s: s, conn: conn, tx: tx, cohorts: cohorts}, nil
}

// fence is an open Fence: its transaction, on a connection of its own.
type fence struct {
	s       *Sink
	conn    *sql.Conn
	tx      *sql.Tx
	cohorts []string
}

// Commit implements sink.Fence: owners must name fenced cohorts only (else
// nothing is stored and the fence stays). Commit after the fence ended is
// an error.
func (f *fence) Commit(ctx context.Context, owners []sink.Ownership) error {
	if f.tx == nil {
		return errors.New("commit a cohort fence: it has ended")
	}
	if err := f.s.storeOwners(ctx, f.tx, owners, f.cohorts); err != nil {
		return err
	}
	err := f.tx.Commit()
	f.end()
	if err != nil {
		return classified(f.s.cohortsTable(), fmt.Errorf("commit the cohort fence: %w", err))
	}
	return nil
}

// Release implements sink.Fence. Releasing a fence that ended does nothing.
func (f *fence) Release(context.Context) error {
	if f.tx == nil {
		return nil
	}
	err := f.tx.Rollback()
	f.end()
	if err != nil {
		return classified(f.s.cohortsTable(), fmt.Errorf("release the cohort fence: %w", err))
	}
	return nil
}

func (f *fence) end() {
	f.conn.Close()
	f.conn, f.tx = nil, nil
}

// Misrouted implements sink.CohortStore; limit <= 0 returns them all.
func (s *Sink) Misrouted(ctx context.Context, after int64, limit int) ([]sink.Misrouted, error) {
	if limit <= 0 {
		limit = math.MaxInt32
	}
	rows, err := s.db.QueryContext(ctx, "SELECT id, cohort, side, tbl, row_key, at FROM "+s.misroutedTable()+
		" WHERE id > ? ORDER BY id LIMIT ?", after, limit)
	if err != nil {
		return nil, classified(s.misroutedTable(), fmt.Errorf("read misrouted writes: %w", err))
	}
	defer rows.Close()
	var out []sink.Misrouted
	for rows.Next() {
		var m sink.Misrouted
		var at string
		if err := rows.Scan(&m.ID, &m.Cohort, &m.Side, &m.Table, &m.Key, &at); err != nil {
			return nil, classified(s.misroutedTable(), fmt.Errorf("read misrouted writes: %w", err))
		}
		if m.At, err = time.Parse(timeLayout, at); err != nil {
			return nil, fmt.Errorf("read misrouted write %d: time %q: %w", m.ID, at, err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, classified(s.misroutedTable(), fmt.Errorf("read misrouted writes: %w", err))
	}
	return out, nil
}

// Beat implements sink.CohortStore.
func (s *Sink) Beat(ctx context.Context, stream string, lag time.Duration) error {
	if _, err := s.db.ExecContext(ctx, "INSERT INTO "+s.heartbeatsTable()+" (stream, lag_seconds, updated_at) VALUES (?, ?, UTC_TIMESTAMP(6))"+
		" ON DUPLICATE KEY UPDATE lag_seconds = VALUES(lag_seconds), updated_at = VALUES(updated_at)", stream, lag.Seconds()); err != nil {
		return classified(s.heartbeatsTable(), fmt.Errorf("store the heartbeat of %s: %w", stream, err))
	}
	return nil
}

// Heartbeats implements sink.CohortStore, by stream, times in UTC.
func (s *Sink) Heartbeats(ctx context.Context) ([]sink.Heartbeat, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT stream, lag_seconds, updated_at FROM "+s.heartbeatsTable()+" ORDER BY stream")
	if err != nil {
		return nil, classified(s.heartbeatsTable(), fmt.Errorf("read heartbeats: %w", err))
	}
	defer rows.Close()
	var out []sink.Heartbeat
	for rows.Next() {
		var h sink.Heartbeat
		var lag float64
		var updated string
		if err := rows.Scan(&h.Stream, &lag, &updated); err != nil {
			return nil, classified(s.heartbeatsTable(), fmt.Errorf("read heartbeats: %w", err))
		}
		h.Lag = time.Duration(math.Round(lag * float64(time.Second)))
		if h.Updated, err = time.Parse(timeLayout, updated); err != nil {
			return nil, fmt.Errorf("read the heartbeat of %s: time %q: %w", h.Stream, updated, err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, classified(s.heartbeatsTable(), fmt.Errorf("read heartbeats: %w", err))
	}
	return out, nil
}

// ownedWrites returns the writes of b that the stream into b.Side applies
// (sink.Ownership.Applies), the owners read in tx LOCK IN SHARE MODE, so
// that a Fence (FOR UPDATE) waits for the batch and the batch for a Fence
// (a locking read sees the newest committed row). The rows are locked in
// primary-key order, as Fence locks them.
func (s *Sink) ownedWrites(ctx context.Context, tx *sql.Tx, b sink.Batch) ([]change.Write, error) {
	cohorts := batchCohorts(b)
	if len(cohorts) == 0 {
		return b.Writes, nil
	}
	owners := map[string]sink.Ownership{}
	for lo := 0; lo < len(cohorts); lo += maxPlaceholders {
		part := cohorts[lo:min(len(cohorts), lo+maxPlaceholders)]
		rows, err := tx.QueryContext(ctx, "SELECT cohort, owner, COALESCE(switching_to, '') FROM "+s.cohortsTable()+
			" WHERE cohort IN ("+inList(len(part))+") ORDER BY cohort LOCK IN SHARE MODE", anys(part)...)
		if err != nil {
			return nil, fmt.Errorf("read the owners of the batch's cohorts: %w", err)
		}
		for rows.Next() {
			var o sink.Ownership
			if err := rows.Scan(&o.Cohort, &o.Owner, &o.To); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read the owners of the batch's cohorts: %w", err)
			}
			owners[o.Cohort] = o
		}
		if err := rows.Close(); err != nil {
			return nil, fmt.Errorf("read the owners of the batch's cohorts: %w", err)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read the owners of the batch's cohorts: %w", err)
		}
	}
	out := make([]change.Write, 0, len(b.Writes))
	for _, w := range b.Writes {
		if w.Cohort == "" || owners[w.Cohort].Applies(b.Side) {
			out = append(out, w)
		}
	}
	return out, nil
}

// batchCohorts returns the distinct cohorts of b's writes, sorted, when
// b.Side asks for them to be filtered; nil otherwise.
func batchCohorts(b sink.Batch) []string {
	if b.Side == "" {
		return nil
	}
	var out []string
	for _, w := range b.Writes {
		if w.Cohort != "" {
			out = append(out, w.Cohort)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// The guard triggers of a table, one per event (MariaDB and MySQL 5.7+
// take several per event).
var guardEvents = []struct{ name, event, row string }{
	{"ins", "INSERT", "NEW"},
	{"upd", "UPDATE", "NEW"},
	{"del", "DELETE", "OLD"},
}

// nullCohort is the cohort of a row whose cohort column is NULL, and of
// every row of a table with neither a cohort column nor a Default, as
// transform counts it (config.DefaultCohort).
const nullCohort = "default"

// maxIdent is MySQL's longest identifier, in characters.
const maxIdent = 64

// guardTrigger is the name of a table's guard trigger for an event:
// tandem_guard_<event>_<table>, as trigger names are unique per database;
// when that is too long, the table's name is cut and the SHA-256 of the
// whole one's first 8 bytes added.
func guardTrigger(event, table string) string {
	_, tbl := splitTable(table)
	name := "tandem_guard_" + event + "_" + tbl
	if utf8.RuneCountInString(name) <= maxIdent {
		return name
	}
	sum := sha256.Sum256([]byte(tbl))
	suffix := "_" + hex.EncodeToString(sum[:8])
	runes := []rune(name)
	return string(runes[:maxIdent-len(suffix)]) + suffix
}

// guardTriggerIdent is the quoted, database-qualified name of a table's
// guard trigger for an event.
func guardTriggerIdent(event, table string) string {
	db, _ := splitTable(table)
	name := mysqlurl.QuoteIdent(guardTrigger(event, table))
	if db == "" {
		return name
	}
	return mysqlurl.QuoteIdent(db) + "." + name
}

// InstallGuard implements sink.CohortStore: on each table, the triggers
// tandem_guard_ins_<table>, tandem_guard_upd_<table> and
// tandem_guard_del_<table> (guardTrigger), BEFORE each row's INSERT,
// UPDATE or DELETE, replaced if they exist. Their body is guardBody's.
// Triggers run with their definer's rights: the application's user needs
// none on the state database.
func (s *Sink) InstallGuard(ctx context.Context, side sink.Side, tables []sink.GuardTable, reject bool) error {
	if side != sink.SideOld && side != sink.SideNew {
		return fmt.Errorf("install guard triggers: unknown side %q", side)
	}
	for _, g := range tables {
		for _, e := range guardEvents {
			ddl := "CREATE OR REPLACE TRIGGER " + guardTriggerIdent(e.name, g.Table) + " BEFORE " + e.event +
				" ON " + tableIdent(g.Table) + " FOR EACH ROW\n" + s.guardBody(side, g, e.row, reject)
			if _, err := s.db.ExecContext(ctx, ddl); err != nil {
				return classified(g.Table, fmt.Errorf("install guard triggers: create the %s trigger of %s: %w", e.event, g.Table, err))
			}
		}
	}
	return nil
}

// RemoveGuard implements sink.CohortStore; a missing trigger is skipped.
func (s *Sink) RemoveGuard(ctx context.Context, tables []sink.GuardTable) error {
	for _, g := range tables {
		for _, e := range guardEvents {
			if _, err := s.db.ExecContext(ctx, "DROP TRIGGER IF EXISTS "+guardTriggerIdent(e.name, g.Table)); err != nil {
				return classified(g.Table, fmt.Errorf("remove guard triggers: drop the %s trigger of %s: %w", e.event, g.Table, err))
			}
		}
	}
	return nil
}

// guardBody is a guard trigger's body for the row row (NEW or OLD).
// tandem's own sessions (@tandem_origin set) pass untouched. Otherwise the
// row's cohort is looked up in the cohorts table LOCK IN SHARE MODE: a
// fenced cohort's write waits there for the fence, and then sees its new
// owner. A write of a cohort the side does not own (old: no row or owner
// old; new: owner new) is refused with GuardSQLState (reject) or recorded
// in misrouted and let through (report). Every name and string is quoted
// here; the cohort is compared as utf8mb4_bin text, as the table stores it.
func (s *Sink) guardBody(side sink.Side, g sink.GuardTable, row string, reject bool) string {
	text := func(col string) string {
		return "CAST(" + row + "." + mysqlurl.QuoteIdent(col) + " AS CHAR CHARACTER SET utf8mb4)"
	}
	def := g.Default
	if def == "" {
		def = nullCohort
	}
	cohort := mysqlurl.QuoteString(def)
	if g.CohortColumn != "" {
		cohort = "COALESCE(" + text(g.CohortColumn) + ", " + mysqlurl.QuoteString(nullCohort) + ")"
	}
	owned := "v_owner IS NULL OR v_owner = 'old'"
	if side == sink.SideNew {
		owned = "v_owner <=> 'new'"
	}
	var act string
	if reject {
		act = `SET v_message = LEFT(CONCAT('tandem cutover guard: cohort ', v_cohort, ' of table ', ` +
			mysqlurl.QuoteString(g.Table) + `, ' is owned by the ', COALESCE(v_owner, 'old'), ' side, not this (` +
			string(side) + `) side'), 128);
		SIGNAL SQLSTATE '` + GuardSQLState + `' SET MESSAGE_TEXT = v_message;`
	} else {
		keys := make([]string, len(g.Key))
		for i, k := range g.Key {
			keys[i] = text(k)
		}
		act = "INSERT INTO " + s.misroutedTable() + " (cohort, side, tbl, row_key, at) VALUES (v_cohort, '" +
			string(side) + "', " + mysqlurl.QuoteString(g.Table) + ", JSON_ARRAY(" + strings.Join(keys, ", ") + "), UTC_TIMESTAMP(6));"
	}
	return `BEGIN
	DECLARE v_cohort VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
	DECLARE v_owner VARCHAR(16);
	DECLARE v_message VARCHAR(512) CHARACTER SET utf8mb4;
	IF @tandem_origin IS NULL THEN
		SET v_cohort = ` + cohort + `;
		SELECT MAX(owner) INTO v_owner FROM ` + s.cohortsTable() + ` WHERE cohort = v_cohort LOCK IN SHARE MODE;
		IF NOT (` + owned + `) THEN
		` + act + `
		END IF;
	END IF;
END`
}

// StoreDrift implements sink.DriftStore.
func (s *Sink) StoreDrift(ctx context.Context, counts []sink.DriftCount) error {
	if len(counts) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return classified(s.driftTable(), fmt.Errorf("store drift counts: %w", err))
	}
	defer tx.Rollback()
	var names []string
	var del, ins []any
	var values []string
	for _, c := range counts {
		if !slices.Contains(names, c.Mapping) {
			names = append(names, c.Mapping)
			del = append(del, c.Mapping)
		}
		values = append(values, "(?, ?, ?, UTC_TIMESTAMP(6))")
		ins = append(ins, c.Mapping, c.Kind, c.Rows)
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM "+s.driftTable()+" WHERE mapping IN (?"+strings.Repeat(", ?", len(del)-1)+")", del...); err != nil {
		return classified(s.driftTable(), fmt.Errorf("store drift counts: %w", err))
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO "+s.driftTable()+" (mapping, kind, `rows`, swept_at) VALUES "+strings.Join(values, ", "), ins...); err != nil {
		return classified(s.driftTable(), fmt.Errorf("store drift counts: %w", err))
	}
	if err := tx.Commit(); err != nil {
		return classified(s.driftTable(), fmt.Errorf("store drift counts: %w", err))
	}
	return nil
}

// Drift implements sink.DriftStore, times in UTC.
func (s *Sink) Drift(ctx context.Context) ([]sink.DriftCount, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT mapping, kind, `rows`, swept_at FROM "+s.driftTable()+" ORDER BY mapping, kind")
	if err != nil {
		return nil, classified(s.driftTable(), fmt.Errorf("read drift counts: %w", err))
	}
	defer rows.Close()
	var out []sink.DriftCount
	for rows.Next() {
		var c sink.DriftCount
		var swept string
		if err := rows.Scan(&c.Mapping, &c.Kind, &c.Rows, &swept); err != nil {
			return nil, classified(s.driftTable(), fmt.Errorf("read drift counts: %w", err))
		}
		if c.Swept, err = time.Parse(timeLayout, swept); err != nil {
			return nil, fmt.Errorf("read the drift counts of %s: time %q: %w", c.Mapping, swept, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, classified(s.driftTable(), fmt.Errorf("read drift counts: %w", err))
	}
	return out, nil
}
