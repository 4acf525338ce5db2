package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tandemcdc/tandem/capture"
	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/pgdsn"
)

var _ capture.Source = (*Source)(nil)

// Config says which database, slot, publication and tables to capture.
type Config struct {
	DSN         string         // a libpq URL or key=value DSN; never logged
	Slot        string         // logical replication slot name
	Publication string         // publication name
	Tables      []change.Table // the tables to publish
	// StatusInterval is how often standby status updates are sent; default 1s.
	StatusInterval time.Duration
	// SilenceTimeout is how long the stream may stay silent after a status
	// update asked the server for a reply (every StatusInterval, once
	// something is acknowledged): longer, the connection is taken as hung
	// (a stalled firewall, NAT or proxy keeps the socket open and forwards
	// nothing), its walsender terminated, and Stream returns so that it
	// is reopened. Default 30s.
	SilenceTimeout time.Duration
	// MaxBatch bounds the events of one batch; a larger transaction is
	// emitted as several batches. Default 1000.
	MaxBatch int
	// RetainedWALWarn is how much WAL the slot may hold back before Check
	// warns; default 1 GiB.
	RetainedWALWarn int64
	// SkipOrigins names the replication origins whose transactions are
	// not captured: tandem's own sinks writing into this database
	// (sink/postgres.Config.Origin), so that a two-way replication does
	// not echo them back. A transaction is skipped when pgoutput's Origin
	// message (sent after its BEGIN, before its changes) names one of
	// them or one of its session origins: the name, "#" and a number
	// (sink/postgres.SessionOrigin). Nothing of a skipped transaction is
	// emitted but its commit position, alone, so that it is acknowledged
	// in order like any other.
	SkipOrigins []string
}

var slotName = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// Validate reports a configuration the source cannot run with.
func (c Config) Validate() error {
	var errs []error
	if c.DSN == "" {
		errs = append(errs, errors.New("postgres source: dsn is empty"))
	}
	if !slotName.MatchString(c.Slot) {
		errs = append(errs, fmt.Errorf("postgres source: slot name %q: use 1 to 63 lowercase letters, digits and underscores", c.Slot))
	}
	if !slotName.MatchString(c.Publication) {
		errs = append(errs, fmt.Errorf("postgres source: publication name %q: use 1 to 63 lowercase letters, digits and underscores", c.Publication))
	}
	if len(c.Tables) == 0 {
		errs = append(errs, errors.New("postgres source: no tables"))
	}
	return errors.Join(errs...)
}

// Option configures a Source.
type Option func(*Source)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(s *Source) { s.log = l } }

// WithMetrics sets the metrics to update (default: unregistered ones).
func WithMetrics(m *capture.Metrics) Option { return func(s *Source) { s.metrics = m } }

// Source is a PostgreSQL logical replication capturer.
type Source struct {
	cfg     Config
	log     *slog.Logger
	metrics *capture.Metrics
	flush   atomic.Uint64 // highest LSN the slot may confirm
	started func()        // capture.Starter's callback; nil: none
}

var _ capture.Starter = (*Source)(nil)

// OnStart implements capture.Starter: f is called once the slot is
// acquired (START_REPLICATION accepted).
func (s *Source) OnStart(f func()) { s.started = f }

// New returns a Source; it does not connect until Setup or Stream.
func New(cfg Config, opts ...Option) (*Source, error) {
	if cfg.StatusInterval <= 0 {
		cfg.StatusInterval = time.Second
	}
	if cfg.SilenceTimeout <= 0 {
		cfg.SilenceTimeout = 30 * time.Second
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 1000
	}
	if cfg.RetainedWALWarn <= 0 {
		cfg.RetainedWALWarn = 1 << 30
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Source{cfg: cfg, log: slog.Default()}
	for _, o := range opts {
		o(s)
	}
	if s.metrics == nil {
		s.metrics = capture.NewMetrics(nil)
	}
	return s, nil
}

// Setup creates the publication (or adds missing tables to it) and then the
// slot, if they do not exist. The publication must exist before the slot's
// start position, or pgoutput cannot see it.
func (s *Source) Setup(ctx context.Context) error {
	conn, err := pgdsn.Connect(ctx, s.cfg.DSN)
	if err != nil {
		return fmt.Errorf("connect to source: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := s.ensurePublication(ctx, conn); err != nil {
		return err
	}
	return s.ensureSlot(ctx, conn)
}

func (s *Source) ensurePublication(ctx context.Context, conn *pgx.Conn) error {
	var allTables bool
	err := conn.QueryRow(ctx, `SELECT puballtables FROM pg_publication WHERE pubname = $1`, s.cfg.Publication).Scan(&allTables)
	if errors.Is(err, pgx.ErrNoRows) {
		sql := "CREATE PUBLICATION " + pgx.Identifier{s.cfg.Publication}.Sanitize() + " FOR TABLE " + tableList(s.cfg.Tables)
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("create publication %s: %w", s.cfg.Publication, err)
		}
		s.log.Info("created publication", "publication", s.cfg.Publication, "tables", len(s.cfg.Tables))
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up publication %s: %w", s.cfg.Publication, err)
	}
	if allTables {
		return nil
	}
	rows, err := conn.Query(ctx, `SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = $1`, s.cfg.Publication)
	if err != nil {
		return fmt.Errorf("list tables of publication %s: %w", s.cfg.Publication, err)
	}
	have := map[change.Table]bool{}
	for rows.Next() {
		var t change.Table
		if err := rows.Scan(&t.Schema, &t.Name); err != nil {
			return fmt.Errorf("list tables of publication %s: %w", s.cfg.Publication, err)
		}
		have[t] = true
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list tables of publication %s: %w", s.cfg.Publication, err)
	}
	var missing []change.Table
	for _, t := range s.cfg.Tables {
		if !have[t] {
			missing = append(missing, t)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	sql := "ALTER PUBLICATION " + pgx.Identifier{s.cfg.Publication}.Sanitize() + " ADD TABLE " + tableList(missing)
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("add tables to publication %s: %w", s.cfg.Publication, err)
	}
	s.log.Info("added tables to publication", "publication", s.cfg.Publication, "tables", len(missing))
	return nil
}

func (s *Source) ensureSlot(ctx context.Context, conn *pgx.Conn) error {
	var plugin, db, current string
	err := conn.QueryRow(ctx, `SELECT coalesce(plugin, ''), coalesce(database, ''), current_database() FROM pg_replication_slots WHERE slot_name = $1`, s.cfg.Slot).Scan(&plugin, &db, &current)
	if errors.Is(err, pgx.ErrNoRows) {
		var lsn string
		if err := conn.QueryRow(ctx, `SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')`, s.cfg.Slot).Scan(&lsn); err != nil {
			return fmt.Errorf("create replication slot %s: %w", s.cfg.Slot, err)
		}
		s.log.Info("created replication slot", "slot", s.cfg.Slot, "lsn", lsn)
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up replication slot %s: %w", s.cfg.Slot, err)
	}
	if plugin != "pgoutput" {
		return fmt.Errorf("replication slot %s uses plugin %q, not pgoutput: drop it or choose another slot name", s.cfg.Slot, plugin)
	}
	if db != current {
		return fmt.Errorf("replication slot %s belongs to database %q, not %q: choose another slot name", s.cfg.Slot, db, current)
	}
	return nil
}

func tableList(ts []change.Table) string {
	out := ""
	for i, t := range ts {
		if i > 0 {
			out += ", "
		}
		out += pgx.Identifier{t.Schema, t.Name}.Sanitize()
	}
	return out
}

// Ack records that everything up to pos is durable downstream.
func (s *Source) Ack(pos change.Position) error {
	lsn, err := positionLSN(pos)
	if err != nil {
		return fmt.Errorf("ack: %w", err)
	}
	s.advance(lsn)
	return nil
}

func (s *Source) advance(lsn LSN) {
	for {
		cur := s.flush.Load()
		if uint64(lsn) <= cur || s.flush.CompareAndSwap(cur, uint64(lsn)) {
			return
		}
	}
}

// Acked returns the highest position the slot may confirm so far: the
// last one acknowledged (as capture/mysql's Source.Acked).
func (s *Source) Acked() LSN { return LSN(s.flush.Load()) }

// Close releases resources; Stream closes its own connection when it returns.
func (s *Source) Close() error { return nil }

// replicationConfig is the DSN's config with the replication protocol on.
func (s *Source) replicationConfig() (*pgconn.Config, error) {
	cfg, err := pgdsn.Config(s.cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("parse source dsn: %w", err)
	}
	cfg.RuntimeParams["replication"] = "database"
	cfg.RuntimeParams["TimeZone"] = "UTC"
	cfg.RuntimeParams["DateStyle"] = "ISO"
	cfg.RuntimeParams["bytea_output"] = "hex"
	cfg.RuntimeParams["extra_float_digits"] = "3"
	// Values arrive as UTF-8 whatever the database's encoding (a LATIN1
	// database would otherwise send bytes JSON cannot carry), and intervals
	// in the style every PostgreSQL reads back the same (sql_standard's
	// "-1 1:00:00" means another interval to a default target).
	cfg.RuntimeParams["client_encoding"] = "UTF8"
	cfg.RuntimeParams["IntervalStyle"] = "postgres"
	cfg.RuntimeParams["application_name"] = "tandem"
	return cfg, nil
}

// Stream implements capture.Source.
func (s *Source) Stream(ctx context.Context, emit func(context.Context, change.Batch) error) error {
	rcfg, err := s.replicationConfig()
	if err != nil {
		return err
	}
	pks, err := s.primaryKeys(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	conn, err := pgconn.ConnectConfig(ctx, rcfg)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("open replication connection: %w", err)
	}
	defer func() {
		// Bounded: the connection may be hung.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		conn.Close(cctx)
	}()

	args := []string{"proto_version '1'", "publication_names '" + s.cfg.Publication + "'"}
	if err := pglogrepl.StartReplication(ctx, conn, s.cfg.Slot, 0, pglogrepl.StartReplicationOptions{PluginArgs: args}); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55006" { // object_in_use: the slot is active
			return s.slotInUse(ctx, err)
		}
		return fmt.Errorf("start replication on slot %s: %w", s.cfg.Slot, err)
	}
	s.log.Info("streaming from replication slot", "slot", s.cfg.Slot, "publication", s.cfg.Publication)
	if s.started != nil {
		s.started()
	}

	hctx, stopHeadroom := context.WithCancel(ctx)
	defer stopHeadroom()
	go s.watchHeadroom(hctx)

	st := &stream{src: s, emit: emit, rels: map[uint32]*relation{}, pks: pks, counters: capture.Counters{Metrics: s.metrics}}
	nextStatus := time.Now()
	// One receive deadline per status interval, not one per message.
	recv := &deadline{}
	defer recv.stop()
	var asked time.Time // when a status update asked for a reply that has not come; zero: answered
	for {
		if !time.Now().Before(nextStatus) {
			sent, err := s.sendStatus(ctx, conn)
			if err != nil {
				return err
			}
			if sent && asked.IsZero() {
				asked = time.Now()
			}
			nextStatus = time.Now().Add(s.cfg.StatusInterval)
			recv.stop()
		}
		raw, err := conn.ReceiveMessage(recv.until(ctx, nextStatus))
		if err != nil {
			if ctx.Err() != nil {
				s.sendFinalStatus(conn)
				return ctx.Err()
			}
			if pgconn.Timeout(err) {
				if !asked.IsZero() && time.Since(asked) > s.cfg.SilenceTimeout {
					return s.hung(conn, time.Since(asked))
				}
				continue
			}
			return fmt.Errorf("receive from replication slot %s: %w", s.cfg.Slot, err)
		}
		asked = time.Time{}
		switch msg := raw.(type) {
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("replication slot %s: %w", s.cfg.Slot, pgconn.ErrorResponseToPgError(msg))
		case *pgproto3.CopyData:
			if len(msg.Data) == 0 {
				continue
			}
			switch msg.Data[0] {
			case pglogrepl.PrimaryKeepaliveMessageByteID:
				pkm, err := pglogrepl.ParsePrimaryKeepaliveMessage(msg.Data[1:])
				if err != nil {
					return fmt.Errorf("parse keepalive: %w", err)
				}
				st.keepalive(pkm.ServerWALEnd)
				if pkm.ReplyRequested {
					nextStatus = time.Time{}
				}
			case pglogrepl.XLogDataByteID:
				xld, err := pglogrepl.ParseXLogData(msg.Data[1:])
				if err != nil {
					return fmt.Errorf("parse XLogData: %w", err)
				}
				if err := st.handle(ctx, xld.WALData); err != nil {
					return err
				}
			}
		case *pgproto3.CopyDone:
			return fmt.Errorf("replication slot %s: %w", s.cfg.Slot, capture.ErrServerShutdown)
		default:
			return fmt.Errorf("replication slot %s: unexpected message %T", s.cfg.Slot, raw)
		}
	}
}

func (s *Source) sendStatus(ctx context.Context, conn *pgconn.PgConn) (sent bool, err error) {
	lsn := s.Acked()
	if lsn == 0 {
		// Nothing acknowledged yet: report nothing rather than moving the slot.
		return false, nil
	}
	// Bounded: a write to a hung connection may block once its buffers fill.
	ctx, cancel := context.WithTimeout(ctx, s.cfg.SilenceTimeout)
	defer cancel()
	err = pglogrepl.SendStandbyStatusUpdate(ctx, conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: lsn, WALFlushPosition: lsn, WALApplyPosition: lsn,
		ReplyRequested: true, // the server's answer shows the connection is alive (Config.SilenceTimeout)
	})
	if err != nil {
		return false, fmt.Errorf("send standby status to slot %s: %w", s.cfg.Slot, err)
	}
	return true, nil
}

// hung gives up conn, silent for silence after asking for a reply: it
// terminates the connection's walsender (its own; best effort, through a
// new connection), so that the slot is free for the stream to reopen at
// once rather than after the server's wal_sender_timeout, and returns the
// error that says so.
func (s *Source) hung(conn *pgconn.PgConn, silence time.Duration) error {
	pid := conn.PID()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	terminated := false
	if c, err := pgdsn.Connect(ctx, s.cfg.DSN); err == nil {
		_ = c.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, pid).Scan(&terminated)
		c.Close(ctx)
	}
	return fmt.Errorf("replication slot %s: no message from the server %s for %s after asking for one (source.stream_timeout): the connection seems hung (a stalled network path); reopening it (its walsender, pid %d, terminated: %v)",
		s.cfg.Slot, conn.Conn().RemoteAddr(), silence.Round(time.Millisecond), pid, terminated)
}

// sendFinalStatus reports the last acknowledged position on shutdown, so a
// clean stop does not replay what is already durable.
func (s *Source) sendFinalStatus(conn *pgconn.PgConn) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := s.sendStatus(ctx, conn); err != nil {
		s.log.Warn("final standby status not sent", "err", err)
	}
}

// stream is the decoding state of one replication connection.
type stream struct {
	src         *Source
	emit        func(context.Context, change.Batch) error
	rels        map[uint32]*relation
	pks         map[change.Table][]string // primary key columns, for REPLICA IDENTITY FULL tables
	counters    capture.Counters
	inTx        bool
	skipTx      bool // the open transaction's origin is one of SkipOrigins
	begin       pglogrepl.BeginMessage
	events      []change.Event
	lastEmitted LSN
}

// keepalive moves the slot to the server's sent position when nothing we
// emitted is still waiting to become durable and no transaction is open.
func (st *stream) keepalive(walEnd LSN) {
	if st.inTx || st.src.Acked() < st.lastEmitted {
		return
	}
	st.src.advance(walEnd)
	st.src.metrics.Lag.Set(0)
}

func (st *stream) handle(ctx context.Context, data []byte) error {
	msg, err := pglogrepl.Parse(data)
	if err != nil {
		return fmt.Errorf("parse pgoutput message: %w", err)
	}
	switch m := msg.(type) {
	case *pglogrepl.RelationMessage:
		// Described even in a skipped transaction: later ones use it.
		st.rels[m.RelationID] = newRelation(m, st.pks[change.Table{Schema: m.Namespace, Name: m.RelationName}])
		return nil
	case *pglogrepl.BeginMessage:
		st.inTx, st.skipTx, st.begin, st.events = true, false, *m, st.events[:0]
		return nil
	case *pglogrepl.OriginMessage:
		st.skipTx = st.src.skipsOrigin(m.Name)
		return nil
	case *pglogrepl.CommitMessage:
		return st.commit(ctx, m)
	}
	if st.skipTx {
		return nil // a change of a skipped transaction
	}
	switch m := msg.(type) {
	case *pglogrepl.InsertMessage:
		rel, err := st.relation(m.RelationID)
		if err != nil {
			return err
		}
		after, err := rel.decodeTuple(m.Tuple, false)
		if err != nil {
			return fmt.Errorf("decode insert: %w", err)
		}
		return st.add(ctx, rel, change.OpCreate, nil, after)
	case *pglogrepl.UpdateMessage:
		rel, err := st.relation(m.RelationID)
		if err != nil {
			return err
		}
		before, err := rel.decodeTuple(m.OldTuple, m.OldTupleType == pglogrepl.UpdateMessageTupleTypeKey)
		if err != nil {
			return fmt.Errorf("decode update: %w", err)
		}
		after, err := rel.decodeTuple(m.NewTuple, false)
		if err != nil {
			return fmt.Errorf("decode update: %w", err)
		}
		if before != nil && capture.KeyChanged(rel.key, before, after) {
			// A primary key change is a delete of the old key and a create of
			// the new one (as Debezium does): each record is keyed, and so
			// partitioned and ordered, with the other changes of its own key.
			if err := st.add(ctx, rel, change.OpDelete, capture.KeyOnly(rel.key, before), nil); err != nil {
				return err
			}
			return st.add(ctx, rel, change.OpCreate, nil, after)
		}
		return st.add(ctx, rel, change.OpUpdate, before, after)
	case *pglogrepl.DeleteMessage:
		rel, err := st.relation(m.RelationID)
		if err != nil {
			return err
		}
		before, err := rel.decodeTuple(m.OldTuple, m.OldTupleType == pglogrepl.DeleteMessageTupleTypeKey)
		if err != nil {
			return fmt.Errorf("decode delete: %w", err)
		}
		return st.add(ctx, rel, change.OpDelete, before, nil)
	case *pglogrepl.TruncateMessage:
		for _, id := range m.RelationIDs {
			rel, err := st.relation(id)
			if err != nil {
				return err
			}
			if err := st.add(ctx, rel, change.OpTruncate, nil, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// commit emits the transaction's last batch, with its position. A skipped
// transaction has no events: its position is emitted alone.
func (st *stream) commit(ctx context.Context, m *pglogrepl.CommitMessage) error {
	b := change.Batch{Events: st.events, Pos: m.TransactionEndLSN, Commit: m.CommitTime}
	if err := st.emit(ctx, b); err != nil {
		return err
	}
	st.inTx, st.skipTx, st.events, st.lastEmitted = false, false, nil, m.TransactionEndLSN
	st.src.metrics.Lag.Set(math.Max(0, time.Since(m.CommitTime).Seconds()))
	return nil
}

// skipsOrigin reports whether transactions of replication origin name are
// skipped: name is one of SkipOrigins, or one of their session origins
// (the name, "#" and a number).
func (s *Source) skipsOrigin(name string) bool {
	for _, o := range s.cfg.SkipOrigins {
		if name == o {
			return true
		}
		if n, ok := strings.CutPrefix(name, o+"#"); ok && n != "" && strings.Trim(n, "0123456789") == "" {
			return true
		}
	}
	return false
}

func (st *stream) relation(id uint32) (*relation, error) {
	rel, ok := st.rels[id]
	if !ok {
		return nil, fmt.Errorf("pgoutput sent a change for relation %d before describing it", id)
	}
	return rel, nil
}

func (st *stream) add(ctx context.Context, rel *relation, op change.Op, before, after change.Row) error {
	if len(rel.key) == 0 && op != change.OpTruncate {
		return fmt.Errorf("table %s has no replica identity key: add a primary key (or REPLICA IDENTITY USING INDEX)", rel.table)
	}
	st.events = append(st.events, change.Event{
		Op: op, Table: rel.table, Key: rel.key, Types: rel.types, SQLTypes: rel.sql, Columns: rel.names,
		Before: before, After: after,
		Pos: st.begin.FinalLSN, TxID: st.begin.Xid, Commit: st.begin.CommitTime,
	})
	st.counters.Inc(rel.table, op)
	if len(st.events) >= st.src.cfg.MaxBatch {
		if err := st.emit(ctx, change.Batch{Events: st.events, Commit: st.begin.CommitTime}); err != nil {
			return err
		}
		st.events = make([]change.Event, 0, st.src.cfg.MaxBatch)
	}
	return nil
}

// primaryKeys reads the primary key columns of the configured tables that
// have one.
func (s *Source) primaryKeys(ctx context.Context) (map[change.Table][]string, error) {
	conn, err := pgdsn.Connect(ctx, s.cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("connect to source: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	schemas, names := make([]string, len(s.cfg.Tables)), make([]string, len(s.cfg.Tables))
	for i, t := range s.cfg.Tables {
		schemas[i], names[i] = t.Schema, t.Name
	}
	rows, err := conn.Query(ctx, `SELECT n.nspname, c.relname, a.attname
	FROM unnest($1::text[], $2::text[]) t(schema, name)
	JOIN pg_namespace n ON n.nspname = t.schema
	JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.name
	JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
	JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY (i.indkey)`, schemas, names)
	if err != nil {
		return nil, fmt.Errorf("read primary keys: %w", err)
	}
	pks := map[change.Table][]string{}
	var t change.Table
	var col string
	_, err = pgx.ForEachRow(rows, []any{&t.Schema, &t.Name, &col}, func() error {
		pks[t] = append(pks[t], col)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read primary keys: %w", err)
	}
	return pks, nil
}

// watchHeadroom exports how much more WAL the server may write before the
// slot is invalidated (pg_replication_slots.safe_wal_size; +Inf when
// max_slot_wal_keep_size is unlimited), every 15 seconds until ctx ends.
func (s *Source) watchHeadroom(ctx context.Context) {
	conn, err := pgdsn.Connect(ctx, s.cfg.DSN)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("retention headroom not watched: cannot connect", "err", err)
		}
		return
	}
	defer conn.Close(context.WithoutCancel(ctx))
	t := time.NewTicker(15 * time.Second)
	defer t.Stop()
	for {
		var safe *int64
		err := conn.QueryRow(ctx, `SELECT safe_wal_size FROM pg_replication_slots WHERE slot_name = $1`, s.cfg.Slot).Scan(&safe)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			s.log.Warn("read slot retention headroom", "slot", s.cfg.Slot, "err", err)
		case safe == nil:
			s.metrics.RetentionHeadroom.Set(math.Inf(1))
		default:
			s.metrics.RetentionHeadroom.Set(float64(*safe))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// liveReplyAge is how recently a slot's reader must have replied to count
// as alive: a streaming tandem replies every StatusInterval (1s).
const liveReplyAge = 10 * time.Second

// slotInUse explains a refused START_REPLICATION on an active slot. A
// reader that replied recently is alive (another tandem on the same slot):
// that is ErrSourceTaken, and the pipeline stops rather than fight it for
// the slot. A reader that stopped replying is a connection the server has
// not noticed is dead yet (a crashed tandem): the slot is released within
// wal_sender_timeout, so the error is an ordinary one, retried.
func (s *Source) slotInUse(ctx context.Context, cause error) error {
	conn, err := pgdsn.Connect(ctx, s.cfg.DSN)
	if err != nil {
		return fmt.Errorf("start replication on slot %s: %w", s.cfg.Slot, cause)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var (
		pid      int32
		app      string
		client   *string
		replyAge *float64
		timeout  string
	)
	err = conn.QueryRow(ctx, `SELECT s.active_pid, coalesce(r.application_name, ''), r.client_addr::text,
	extract(epoch FROM now() - coalesce(r.reply_time, r.backend_start))::float8, current_setting('wal_sender_timeout')
FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
WHERE s.slot_name = $1 AND s.active`, s.cfg.Slot).Scan(&pid, &app, &client, &replyAge, &timeout)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("start replication on slot %s: %w (released since; retrying)", s.cfg.Slot, cause)
	}
	if err != nil {
		return fmt.Errorf("start replication on slot %s: %w", s.cfg.Slot, cause)
	}
	from := "a local socket"
	if client != nil {
		from = *client
	}
	if replyAge != nil && *replyAge < liveReplyAge.Seconds() {
		return fmt.Errorf("replication slot %s is being read by a live consumer (pid %d, application %q, from %s, last reply %.0fs ago): another tandem is running this migration. Stop it, or give this one a slot of its own (source.postgres.slot): %w",
			s.cfg.Slot, pid, app, from, *replyAge, capture.ErrSourceTaken)
	}
	age := "never replied"
	if replyAge != nil {
		age = fmt.Sprintf("last reply %.0fs ago", *replyAge)
	}
	return fmt.Errorf("replication slot %s is still held by pid %d (application %q, from %s, %s): a reader that died without closing its connection; the server releases the slot within wal_sender_timeout (%s), retrying: %w",
		s.cfg.Slot, pid, app, from, age, timeout, cause)
}

// ErrSlotActive is returned by Drop while a connection streams from the slot.
var ErrSlotActive = errors.New("replication slot is in use")

// Drop removes the migration's replication slot and publication, the end
// of a migration: an abandoned slot keeps WAL on the source forever. It
// refuses while a capture streams from the slot. Missing objects are not
// an error; it reports what it dropped.
func (s *Source) Drop(ctx context.Context) (dropped []string, err error) {
	conn, err := pgdsn.Connect(ctx, s.cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("connect to source: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var pid *int32
	err = conn.QueryRow(ctx, `SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1`, s.cfg.Slot).Scan(&pid)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return nil, fmt.Errorf("look up replication slot %s: %w", s.cfg.Slot, err)
	case pid != nil:
		return nil, fmt.Errorf("%w: slot %s is streaming to process %d on the server: stop tandem's capture first", ErrSlotActive, s.cfg.Slot, *pid)
	default:
		if _, err := conn.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, s.cfg.Slot); err != nil {
			return nil, fmt.Errorf("drop replication slot %s: %w", s.cfg.Slot, err)
		}
		dropped = append(dropped, "replication slot "+s.cfg.Slot)
	}
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`, s.cfg.Publication).Scan(&exists); err != nil {
		return dropped, fmt.Errorf("look up publication %s: %w", s.cfg.Publication, err)
	}
	if exists {
		if _, err := conn.Exec(ctx, "DROP PUBLICATION "+pgx.Identifier{s.cfg.Publication}.Sanitize()); err != nil {
			return dropped, fmt.Errorf("drop publication %s: %w", s.cfg.Publication, err)
		}
		dropped = append(dropped, "publication "+s.cfg.Publication)
	}
	return dropped, nil
}

// deadline is a context with a deadline, made once and reused until stopped.
type deadline struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// until returns the context ending at t, creating it if stopped.
func (d *deadline) until(parent context.Context, t time.Time) context.Context {
	if d.ctx == nil {
		d.ctx, d.cancel = context.WithDeadline(parent, t)
	}
	return d.ctx
}

// stop releases the context; the next until makes a new one.
func (d *deadline) stop() {
	if d.cancel != nil {
		d.cancel()
	}
	d.ctx, d.cancel = nil, nil
}
