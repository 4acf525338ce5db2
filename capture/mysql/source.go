package mysql

import (
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gm "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	gomysql "github.com/go-sql-driver/mysql"

	"github.com/tandemcdc/tandem/capture"
	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/dial"
	"github.com/tandemcdc/tandem/internal/mysqlurl"
)

var _ capture.Source = (*Source)(nil)

// Config says which server and tables to capture and where to keep the position.
type Config struct {
	DSN      string         // mysql://user:pass@host:3306/db or a driver DSN; never logged
	ServerID uint32         // the replica server id tandem registers with; unique among the server's replicas
	Tables   []change.Table // the tables to capture ("db.table")
	// Store keeps the acknowledged position across restarts; StoreKey
	// names this capture in it.
	Store    PositionStore
	StoreKey string
	// MaxBatch bounds the events of one batch; a larger transaction is
	// emitted as several batches. Default 1000.
	MaxBatch int
	// Heartbeat is the server's heartbeat period while the binlog is idle;
	// default 1s, at most a fifth of Timeout.
	Heartbeat time.Duration
	// Timeout is how long the binlog stream may stay silent, no event and
	// no heartbeat, before it is taken as hung (a stalled firewall, NAT or
	// proxy that keeps the socket open and forwards nothing), dropped and
	// reopened; the capture lease's checks and the stream's reads of table
	// definitions must answer within it too. Default 30s.
	Timeout time.Duration
	// SaveInterval is how often an advanced acknowledged position is saved; default 1s.
	SaveInterval time.Duration
	// IdleAckInterval is how often a position that moved past other
	// tables' transactions is emitted alone, so the saved position follows
	// the binlog while the captured tables are quiet; default 1s.
	IdleAckInterval time.Duration
	// SkipOrigins names the origins whose transactions are not captured:
	// tandem's own sinks writing into this database
	// (sink/mysql.Config.Origin), so that a two-way replication does not
	// echo them back. A transaction whose first rows event is a row of
	// OriginTable whose name column is one of SkipOrigins is skipped
	// whole: none of its changes is emitted, and its position is
	// acknowledged like that of a transaction on tables not captured
	// (emitted alone, within IdleAckInterval).
	SkipOrigins []string
	// OriginTable is the sinks' marker table in the database read, the
	// table origin of their state database (sink/mysql.OriginTable);
	// required with SkipOrigins. Its rows need the full row image
	// (binlog_row_image=FULL, the default).
	OriginTable change.Table
	// LeaseWait is how long one Stream call waits for the capture lease
	// (lease.go) held by another capture before it returns
	// capture.ErrSourceTaken; default 1s, whole seconds.
	LeaseWait time.Duration
	// LeaseCheck is how often a streaming capture checks that it still
	// holds its lease; default 1s.
	LeaseCheck time.Duration
}

// Validate reports a configuration the source cannot run with.
func (c Config) Validate() error {
	var errs []error
	if c.DSN == "" {
		errs = append(errs, errors.New("mysql source: dsn is empty"))
	}
	if c.ServerID == 0 {
		errs = append(errs, errors.New("mysql source: server_id must not be 0"))
	}
	if len(c.Tables) == 0 {
		errs = append(errs, errors.New("mysql source: no tables"))
	}
	if c.Store == nil || c.StoreKey == "" {
		errs = append(errs, errors.New("mysql source: no position store"))
	}
	if len(c.SkipOrigins) > 0 && (c.OriginTable.Schema == "" || c.OriginTable.Name == "") {
		errs = append(errs, errors.New("mysql source: origins to skip but no origin table (database and name)"))
	}
	return errors.Join(errs...)
}

// ErrPositionPurged is wrapped when the server no longer has the binlog at
// the saved position: the changes since then cannot be read, and only a
// new backfill brings the target back in step.
var ErrPositionPurged = fmt.Errorf("the saved binlog position was purged from the source server: %w", capture.ErrPositionLost)

// Option configures a Source.
type Option func(*Source)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(s *Source) { s.log = l } }

// WithMetrics sets the metrics to update (default: unregistered ones).
func WithMetrics(m *capture.Metrics) Option { return func(s *Source) { s.metrics = m } }

// Source is a MySQL / MariaDB binlog capturer.
type Source struct {
	cfg     Config
	log     *slog.Logger
	metrics *capture.Metrics
	db      *sql.DB
	flavor  string // gm.MySQLFlavor or gm.MariaDBFlavor
	gtids   bool   // positions carry GTID sets
	host    string
	port    uint16
	addr    string        // host:port, naming the server in errors and logs
	dial    time.Duration // the DSN's connect timeout
	user    string
	pass    string
	tls     *tls.Config // the DSN's (tls=, ssl-ca...): the binlog connection is encrypted as the SQL ones are; nil: plaintext
	want    map[change.Table]bool

	mu    sync.Mutex
	acked Position // highest acknowledged position
	saved Position // last position saved to the store

	leaseLost atomic.Bool  // the lease was lost: another capture may save positions now
	hungLease atomic.Int64 // the session of a lease given up as hung, to end (lease.go); 0: none
	started   func()       // capture.Starter's callback; nil: none
}

var _ capture.Starter = (*Source)(nil)

// OnStart implements capture.Starter: f is called once the capture lease
// is held and the binlog dump has started.
func (s *Source) OnStart(f func()) { s.started = f }

// New returns a Source; it does not connect until Setup.
func New(cfg Config, opts ...Option) (*Source, error) {
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 1000
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	cfg.Heartbeat = min(cfg.Heartbeat, cfg.Timeout/5)
	if cfg.SaveInterval <= 0 {
		cfg.SaveInterval = time.Second
	}
	if cfg.IdleAckInterval <= 0 {
		cfg.IdleAckInterval = time.Second
	}
	if cfg.LeaseWait < time.Second {
		cfg.LeaseWait = time.Second
	}
	if cfg.LeaseCheck <= 0 {
		cfg.LeaseCheck = time.Second
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	dc, err := mysqlurl.Parse(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("mysql source: %w", err)
	}
	host, port, err := mysqlurl.Host(dc)
	if err != nil {
		return nil, fmt.Errorf("mysql source: %w", err)
	}
	s := &Source{cfg: cfg, log: slog.Default(), host: host, port: port, addr: dc.Addr, dial: dc.Timeout,
		user: dc.User, pass: dc.Passwd, tls: binlogTLS(dc), want: map[change.Table]bool{}}
	for _, t := range cfg.Tables {
		s.want[t] = true
	}
	for _, o := range opts {
		o(s)
	}
	if s.metrics == nil {
		s.metrics = capture.NewMetrics(nil)
	}
	conn, err := mysqlurl.Connector(dc)
	if err != nil {
		return nil, fmt.Errorf("mysql source: %w", err)
	}
	s.db = sql.OpenDB(conn)
	s.db.SetMaxOpenConns(5) // one of them holds the capture lease while streaming
	s.db.SetMaxIdleConns(idleConns)
	return s, nil
}

// Setup connects, detects the server's flavour and GTID mode, and loads the
// saved position. With none saved, the server's current position becomes
// the start and is saved at once: history before it is the backfill's job,
// and every change after it will be captured even if tandem stops before
// acknowledging anything.
func (s *Source) Setup(ctx context.Context) error {
	var version string
	if err := s.db.QueryRowContext(ctx, `SELECT VERSION()`).Scan(&version); err != nil {
		return fmt.Errorf("connect to source: %w", err)
	}
	s.flavor, s.gtids = gm.MySQLFlavor, false
	if strings.Contains(strings.ToLower(version), "mariadb") {
		s.flavor, s.gtids = gm.MariaDBFlavor, true
	} else {
		var mode string
		if err := s.db.QueryRowContext(ctx, `SELECT @@GLOBAL.gtid_mode`).Scan(&mode); err == nil && strings.EqualFold(mode, "ON") {
			s.gtids = true
		}
	}
	saved, found, err := s.cfg.Store.LoadPosition(ctx, s.cfg.StoreKey)
	if err != nil {
		return fmt.Errorf("load the saved binlog position: %w", err)
	}
	if found {
		p, err := s.resumeFrom(saved)
		if err != nil {
			return err
		}
		s.log.Info("resuming from the saved binlog position", "pos", p.String(), "flavor", s.flavor)
		return nil
	}
	p, err := s.currentPosition(ctx)
	if err != nil {
		return err
	}
	if err := s.cfg.Store.SavePosition(ctx, s.cfg.StoreKey, p.String()); err != nil {
		return fmt.Errorf("save the start binlog position: %w", err)
	}
	s.mu.Lock()
	s.acked, s.saved = p, p
	s.mu.Unlock()
	s.log.Info("starting at the server's current binlog position", "pos", p.String(), "flavor", s.flavor)
	return nil
}

// currentPosition reads where the server's binlog ends now. The GTID set is
// read first: a transaction committing in between is then replayed, never
// skipped.
func (s *Source) currentPosition(ctx context.Context) (Position, error) {
	var p Position
	if s.gtids {
		q := `SELECT @@GLOBAL.gtid_executed`
		if s.flavor == gm.MariaDBFlavor {
			q = `SELECT @@GLOBAL.gtid_binlog_pos`
		}
		if err := s.db.QueryRowContext(ctx, q).Scan(&p.GTID); err != nil {
			return Position{}, fmt.Errorf("read the source's GTID position: %w", err)
		}
		p.GTID = strings.ReplaceAll(strings.TrimSpace(p.GTID), "\n", "")
	}
	rows, err := s.db.QueryContext(ctx, `SHOW MASTER STATUS`)
	if err != nil {
		return Position{}, fmt.Errorf("read the source's binlog position (SHOW MASTER STATUS): %w", err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	if rows.Next() {
		vals := make([]sql.RawBytes, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return Position{}, fmt.Errorf("read SHOW MASTER STATUS: %w", err)
		}
		var off uint64
		if _, err := fmt.Sscan(string(vals[1]), &off); err != nil {
			return Position{}, fmt.Errorf("read SHOW MASTER STATUS: position %q", vals[1])
		}
		p.File, p.Offset = string(vals[0]), uint32(off)
	} else if err := rows.Err(); err != nil {
		return Position{}, fmt.Errorf("read SHOW MASTER STATUS: %w", err)
	} else {
		return Position{}, errors.New("the source has no binary log (SHOW MASTER STATUS is empty): set log_bin and binlog_format=ROW")
	}
	return p, nil
}

// Ack implements capture.Source. The position is saved to the store within
// SaveInterval by a running Stream, and by Close.
func (s *Source) Ack(pos change.Position) error {
	p, err := positionOf(pos)
	if err != nil {
		return fmt.Errorf("ack: %w", err)
	}
	s.mu.Lock()
	if !p.before(s.acked) {
		s.acked = p
	}
	s.mu.Unlock()
	return nil
}

// Acked returns the highest acknowledged position.
func (s *Source) Acked() Position {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acked
}

// save stores the acknowledged position if it moved since the last save.
func (s *Source) save(ctx context.Context) error {
	s.mu.Lock()
	p, prev := s.acked, s.saved
	s.mu.Unlock()
	if p == prev || p.IsZero() || s.leaseLost.Load() {
		return nil // a capture that lost its lease leaves the position to the new holder
	}
	if err := s.cfg.Store.SavePosition(ctx, s.cfg.StoreKey, p.String()); err != nil {
		return fmt.Errorf("save binlog position %s: %w", p, err)
	}
	s.mu.Lock()
	s.saved = p
	s.mu.Unlock()
	return nil
}

// binlogTLS is the TLS of the binlog connection: the DSN's (tls=true,
// tls=skip-verify, ssl-ca...), as the SQL connections use. With
// tls=preferred it is nil, plaintext: the binlog client cannot fall back
// to plaintext when the server has no TLS, as the SQL driver does.
func binlogTLS(dc *gomysql.Config) *tls.Config {
	if dc.TLS == nil || dc.AllowFallbackToPlaintext {
		return nil
	}
	return dc.TLS.Clone()
}

// Close saves the last acknowledged position and releases connections.
func (s *Source) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := s.save(ctx)
	return errors.Join(err, s.db.Close())
}

// Stream implements capture.Source: it takes the capture lease (lease.go;
// capture.ErrSourceTaken while another capture holds it), reads the binlog
// from the saved position and emits each committed transaction on the
// captured tables, until ctx ends, the stream fails, or the lease is lost
// (ErrLeaseLost).
func (s *Source) Stream(ctx context.Context, emit func(context.Context, change.Batch) error) error {
	err := s.streamLeased(ctx, emit)
	if err != nil && ctx.Err() == nil && !errors.Is(err, capture.ErrSourceTaken) {
		// The pool's idle connections may be as broken as the one that
		// failed (a stalled path holds them all): the next attempt opens
		// new ones rather than waiting out each of them.
		s.db.SetMaxIdleConns(0)
		s.db.SetMaxIdleConns(idleConns)
	}
	return err
}

// idleConns is how many idle connections the pool keeps.
const idleConns = 2

// streamLeased is Stream.
func (s *Source) streamLeased(ctx context.Context, emit func(context.Context, change.Batch) error) error {
	l, err := s.acquireLease(ctx)
	if err != nil {
		return err
	}
	defer l.release()
	if err := s.resume(ctx); err != nil {
		return err
	}
	lctx, lose := context.WithCancelCause(ctx)
	watched := make(chan struct{})
	go func() { defer close(watched); s.watchLease(lctx, l, lose) }()
	defer func() { lose(nil); <-watched }() // the watcher is done with the lease's session before release
	err = s.stream(lctx, emit)
	if cause := context.Cause(lctx); ctx.Err() == nil && errors.Is(cause, ErrLeaseLost) {
		return cause
	}
	return err
}

// resume starts from the saved position, once the lease is held: another
// capture may have held it, and saved a later position, since Setup.
func (s *Source) resume(ctx context.Context) error {
	saved, found, err := s.cfg.Store.LoadPosition(ctx, s.cfg.StoreKey)
	if err != nil {
		return fmt.Errorf("load the saved binlog position: %w", err)
	}
	s.mu.Lock()
	ours := s.saved.String()
	s.mu.Unlock()
	if !found || saved == ours {
		return nil // no one else saved since: go on from this capture's own acknowledged position
	}
	p, err := s.resumeFrom(saved)
	if err != nil {
		return err
	}
	s.log.Info("resuming from the binlog position another capture saved", "pos", p.String())
	return nil
}

// resumeFrom makes saved, a stored position, the acknowledged and saved
// ones: the stream starts there.
func (s *Source) resumeFrom(saved string) (Position, error) {
	p, err := ParsePosition(saved)
	if err != nil {
		return Position{}, fmt.Errorf("saved binlog position of %s: %w", s.cfg.StoreKey, err)
	}
	s.mu.Lock()
	s.acked, s.saved = p, p
	s.mu.Unlock()
	return p, nil
}

// stream reads the binlog from the acknowledged position; Stream holds
// the lease around it.
func (s *Source) stream(ctx context.Context, emit func(context.Context, change.Batch) error) error {
	start := s.Acked()
	if start.IsZero() {
		return errors.New("mysql source: Stream before Setup")
	}
	syncer := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID: s.cfg.ServerID, Flavor: s.flavor,
		Host: s.host, Port: s.port, User: s.user, Password: s.pass, TLSConfig: s.tls,
		Charset:                 "utf8mb4",
		TimestampStringLocation: time.UTC,
		HeartbeatPeriod:         s.cfg.Heartbeat,
		ReadTimeout:             s.cfg.Timeout, // Config.Timeout: the handshake's and every read's
		Dialer:                  dial.Func(s.dial),
		DisableRetrySync:        true,
		Logger:                  quiet(s.log),
		// go-mysql queues parsed events ahead of Stream; its default of
		// 10,240 events is millions of rows of one large transaction when
		// the pipeline is slower than the parser. A short queue keeps
		// memory bounded by MaxBatch, at no cost in speed (measured).
		EventCacheCount: 64,
	})
	defer closeSoon(syncer)
	var (
		streamer *replication.BinlogStreamer
		err      error
		gset     gm.GTIDSet
	)
	if start.GTID != "" || (s.gtids && start.File == "") {
		gset, err = gm.ParseGTIDSet(s.flavor, start.GTID)
		if err != nil {
			return fmt.Errorf("parse GTID set %q: %w", start.GTID, err)
		}
		streamer, err = syncer.StartSyncGTID(gset.Clone())
	} else {
		streamer, err = syncer.StartSync(gm.Position{Name: start.File, Pos: start.Offset})
	}
	if err != nil {
		return s.streamError(ctx, start, err)
	}
	s.log.Info("streaming the binlog", "from", start.String(), "server_id", s.cfg.ServerID)
	if s.started != nil {
		s.started()
	}

	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); s.saveLoop(wctx) }()
	go func() { defer wg.Done(); s.watchRetention(wctx) }()
	defer wg.Wait()
	defer stopWatch()

	st := &stream{src: s, emit: emit, pos: start, gset: gset, tables: map[uint64]*table{}, skip: map[uint64]bool{},
		counters: capture.Counters{Metrics: s.metrics}, lastEmit: time.Now()}
	last := time.Now() // when the stream last gave an event (a heartbeat included)
	for {
		ev, err := streamer.GetEvent(ctx)
		if err != nil {
			if time.Since(last) >= s.cfg.Timeout/2 && ctx.Err() == nil {
				// go-mysql's read deadline (Config.Timeout, from its last
				// read, a little before the last event came through) ended
				// it: its error says "connection was bad", not why. Any
				// other failure comes within a heartbeat or two of the
				// last event (Heartbeat is at most Timeout/5).
				return fmt.Errorf("read the binlog from %s: no event or heartbeat from %s for %s (source.stream_timeout): the connection seems hung (a stalled network path); reopening it: %w",
					st.pos, s.addr, s.cfg.Timeout, err)
			}
			return s.streamError(ctx, st.pos, err)
		}
		last = time.Now()
		if err := st.handle(ctx, ev); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
	}
}

// streamError explains why the binlog stream stopped.
func (s *Source) streamError(ctx context.Context, at Position, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var me *gm.MyError
	if errors.As(err, &me) && me.Code == gm.ER_MASTER_FATAL_ERROR_READING_BINLOG {
		msg := strings.ToLower(me.Message)
		if strings.Contains(msg, "purged") || strings.Contains(msg, "could not find") || strings.Contains(msg, "not find first log") {
			return fmt.Errorf("%w (position %s; the server says: %s): the changes since then are lost to tandem; run the backfill again (tandem backfill --restart) and reset the position", ErrPositionPurged, at, me.Message)
		}
	}
	return fmt.Errorf("read the binlog from %s on %s: %w", at, s.addr, err)
}

// saveLoop saves the acknowledged position every SaveInterval.
func (s *Source) saveLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.SaveInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if err := s.save(sctx); err != nil {
				s.log.Error("save binlog position", "err", err)
			}
			cancel()
			return
		case <-t.C:
			if err := s.save(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("save binlog position; will retry", "err", err)
			}
		}
	}
}

// watchRetention exports how much binlog the server may still purge before
// it reaches the acknowledged position.
func (s *Source) watchRetention(ctx context.Context) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		p := s.Acked()
		if p.File != "" {
			r, err := BinlogRetention(ctx, s.db, p.File, uint64(p.Offset))
			switch {
			case err != nil:
				if ctx.Err() == nil {
					s.log.Debug("measure binlog retention", "err", err)
				}
			case r.Purged:
				s.metrics.RetentionHeadroom.Set(0)
				s.setRetentionSeconds(0)
				s.log.Error("the acknowledged binlog position was purged from the source", "pos", p.String(), "oldest", r.OldestFile)
			default:
				s.metrics.RetentionHeadroom.Set(float64(r.HeadroomBytes))
				switch {
				case r.ExpireSeconds == 0:
					s.setRetentionSeconds(math.Inf(1)) // kept until purged by hand
				case !p.at.IsZero():
					// The position's file was written at or after p.at, and
					// expiry purges a file that much after its last write.
					left := time.Duration(r.ExpireSeconds)*time.Second - time.Since(p.at)
					s.setRetentionSeconds(max(0, left.Seconds()))
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Source) setRetentionSeconds(v float64) {
	if s.metrics.RetentionSeconds != nil {
		s.metrics.RetentionSeconds.Set(v)
	}
}

// quiet passes go-mysql's log lines on at debug level, and its errors as
// warnings: the capturer reports what stops a stream itself, with context.
func quiet(l *slog.Logger) *slog.Logger {
	return slog.New(levelShift{l.Handler()})
}

type levelShift struct{ h slog.Handler }

func (l levelShift) Enabled(ctx context.Context, lv slog.Level) bool {
	return l.h.Enabled(ctx, shift(lv))
}
func (l levelShift) Handle(ctx context.Context, r slog.Record) error {
	r.Level = shift(r.Level)
	r.AddAttrs(slog.String("component", "go-mysql"))
	return l.h.Handle(ctx, r)
}
func (l levelShift) WithAttrs(as []slog.Attr) slog.Handler { return levelShift{l.h.WithAttrs(as)} }
func (l levelShift) WithGroup(n string) slog.Handler       { return levelShift{l.h.WithGroup(n)} }

func shift(lv slog.Level) slog.Level {
	if lv >= slog.LevelError {
		return slog.LevelWarn
	}
	return slog.LevelDebug
}

// stream is one Stream call's state.
type stream struct {
	src      *Source
	emit     func(context.Context, change.Batch) error
	pos      Position   // position after the last complete transaction
	gset     gm.GTIDSet // executed GTID set at pos (nil without GTIDs)
	file     string     // current binlog file
	tables   map[uint64]*table
	skip     map[uint64]bool
	counters capture.Counters

	inTx     bool
	txGTID   string // the transaction's GTID, added to gset at commit
	rowsSeen bool   // the transaction had a rows event
	skipTx   bool   // the transaction is one of an origin to skip
	events   []change.Event
	emitted  bool // the transaction emitted interim batches
	lastEmit time.Time
	idle     bool // pos moved past transactions with nothing captured
}

func (st *stream) handle(ctx context.Context, ev *replication.BinlogEvent) error {
	h := ev.Header
	switch e := ev.Event.(type) {
	case *replication.RotateEvent:
		st.file = string(e.NextLogName)
		if st.pos.File != st.file && !st.inTx {
			st.pos.File, st.pos.Offset = st.file, uint32(e.Position)
		}
	case *replication.MariadbGTIDEvent:
		e.GTID.ServerID = h.ServerID
		st.begin(e.GTID.String())
	case *replication.GTIDEvent:
		next, err := e.GTIDNext()
		if err != nil {
			return fmt.Errorf("binlog GTID event at %s:%d: %w", st.file, h.LogPos, err)
		}
		st.begin(next.String())
	case *replication.QueryEvent:
		q := strings.TrimSpace(string(e.Query))
		switch {
		case strings.EqualFold(q, "BEGIN"):
			st.inTx = true
		case strings.EqualFold(q, "COMMIT"):
			return st.commit(ctx, h)
		default:
			st.ddl(string(e.Schema), q)
			return st.commit(ctx, h)
		}
	case *replication.XIDEvent:
		return st.commit(ctx, h)
	case *replication.TableMapEvent:
		return st.tableMap(ctx, e)
	case *replication.RowsEvent:
		return st.rows(ctx, ev.Header, e)
	case *replication.HeartbeatEvent:
		return st.heartbeat(ctx)
	}
	return nil
}

func (st *stream) begin(gtid string) {
	st.inTx, st.txGTID, st.rowsSeen, st.skipTx = true, gtid, false, false
}

// heartbeat: the server has nothing more for now.
func (st *stream) heartbeat(ctx context.Context) error {
	if !st.inTx {
		st.src.metrics.Lag.Set(0)
		return st.emitIdle(ctx)
	}
	return nil
}

// ddl reacts to a statement that changes a schema: cached table
// descriptions are dropped (the next table map describes the table anew),
// and a change to a captured table is logged.
func (st *stream) ddl(schema, q string) {
	clear(st.tables)
	clear(st.skip)
	lq := strings.ToLower(q)
	for t := range st.src.want {
		if strings.Contains(lq, strings.ToLower(t.Name)) && (schema == t.Schema || strings.Contains(lq, strings.ToLower(t.Schema))) {
			st.src.log.Warn("schema change on a captured table", "table", t.String(), "statement", q, "at", fmt.Sprintf("%s:%d", st.file, st.pos.Offset))
		}
	}
}

func (st *stream) tableMap(ctx context.Context, tm *replication.TableMapEvent) error {
	if _, ok := st.tables[tm.TableID]; ok || st.skip[tm.TableID] {
		return nil
	}
	name := change.Table{Schema: string(tm.Schema), Name: string(tm.Table)}
	if !st.src.want[name] {
		st.skip[tm.TableID] = true
		return nil
	}
	ictx, cancel := context.WithTimeout(ctx, st.src.cfg.Timeout) // the stream waits on it: a hung connection must not hold it
	info, err := readInfoSchema(ictx, st.src.db, name)
	cancel()
	if err != nil && len(tm.ColumnNameString()) != int(tm.ColumnCount) {
		return err
	}
	t, err := describe(tm, info)
	if err != nil {
		return err
	}
	if len(t.key) == 0 {
		return fmt.Errorf("table %s has no primary key: its changes cannot be keyed; add a primary key", name)
	}
	st.tables[tm.TableID] = t
	return nil
}

func (st *stream) rows(ctx context.Context, h *replication.EventHeader, e *replication.RowsEvent) error {
	first := !st.rowsSeen
	st.rowsSeen = true
	if first && len(st.src.cfg.SkipOrigins) > 0 && e.Table != nil &&
		string(e.Table.Schema) == st.src.cfg.OriginTable.Schema && string(e.Table.Table) == st.src.cfg.OriginTable.Name {
		name, err := originName(h, e)
		if err != nil {
			return fmt.Errorf("origin marker at %s:%d: %w", st.file, h.LogPos, err)
		}
		st.skipTx = slices.Contains(st.src.cfg.SkipOrigins, name)
	}
	if st.skipTx || st.skip[e.TableID] {
		return nil
	}
	t, ok := st.tables[e.TableID]
	if !ok {
		if e.Table == nil {
			return fmt.Errorf("binlog rows event for table id %d before its table map", e.TableID)
		}
		if err := st.tableMap(ctx, e.Table); err != nil {
			return err
		}
		if st.skip[e.TableID] {
			return nil
		}
		t = st.tables[e.TableID]
	}
	commit := time.Unix(int64(h.Timestamp), 0)
	switch h.EventType {
	case replication.WRITE_ROWS_EVENTv0, replication.WRITE_ROWS_EVENTv1, replication.WRITE_ROWS_EVENTv2, replication.MARIADB_WRITE_ROWS_COMPRESSED_EVENT_V1:
		for _, vals := range e.Rows {
			after, err := t.row(vals)
			if err != nil {
				return err
			}
			if err := st.add(ctx, t, change.OpCreate, nil, after, commit); err != nil {
				return err
			}
		}
	case replication.DELETE_ROWS_EVENTv0, replication.DELETE_ROWS_EVENTv1, replication.DELETE_ROWS_EVENTv2, replication.MARIADB_DELETE_ROWS_COMPRESSED_EVENT_V1:
		for _, vals := range e.Rows {
			before, err := t.row(vals)
			if err != nil {
				return err
			}
			if err := st.add(ctx, t, change.OpDelete, before, nil, commit); err != nil {
				return err
			}
		}
	case replication.UPDATE_ROWS_EVENTv0, replication.UPDATE_ROWS_EVENTv1, replication.UPDATE_ROWS_EVENTv2, replication.MARIADB_UPDATE_ROWS_COMPRESSED_EVENT_V1, replication.PARTIAL_UPDATE_ROWS_EVENT:
		if len(e.Rows)%2 != 0 {
			return fmt.Errorf("table %s: update event with an odd number of row images", t.name)
		}
		for i := 0; i < len(e.Rows); i += 2 {
			before, err := t.row(e.Rows[i])
			if err != nil {
				return err
			}
			after, err := t.row(e.Rows[i+1])
			if err != nil {
				return err
			}
			if capture.KeyChanged(t.key, before, after) {
				// A new key is a new row: delete the old one, create the new
				// one, each keyed (and so ordered) by its own key.
				if err := st.add(ctx, t, change.OpDelete, before, nil, commit); err != nil {
					return err
				}
				if err := st.add(ctx, t, change.OpCreate, nil, after, commit); err != nil {
					return err
				}
				continue
			}
			if err := st.add(ctx, t, change.OpUpdate, before, after, commit); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("table %s: unsupported binlog rows event type %s", t.name, h.EventType)
	}
	return nil
}

func (st *stream) add(ctx context.Context, t *table, op change.Op, before, after change.Row, commit time.Time) error {
	st.events = append(st.events, change.Event{
		Op: op, Table: t.name, Key: t.key, Types: t.types, SQLTypes: t.sql, Columns: t.names,
		Before: before, After: after, Commit: commit,
	})
	st.counters.Inc(t.name, op)
	if len(st.events) >= st.src.cfg.MaxBatch {
		if err := st.emit(ctx, change.Batch{Events: st.events, Commit: commit}); err != nil {
			return err
		}
		st.events, st.emitted = make([]change.Event, 0, st.src.cfg.MaxBatch), true
	}
	return nil
}

// commit ends the current transaction at the event with header h.
func (st *stream) commit(ctx context.Context, h *replication.EventHeader) error {
	if st.txGTID != "" && st.gset != nil {
		if err := st.gset.Update(st.txGTID); err != nil {
			return fmt.Errorf("add GTID %s to %s: %w", st.txGTID, st.gset, err)
		}
	}
	commit := time.Unix(int64(h.Timestamp), 0)
	st.pos.File, st.pos.Offset, st.pos.at = st.file, h.LogPos, commit
	if st.gset != nil {
		st.pos.GTID = st.gset.String()
	}
	events, had := st.events, st.emitted || len(st.events) > 0
	st.inTx, st.txGTID, st.events, st.emitted, st.rowsSeen, st.skipTx = false, "", nil, false, false, false
	if !had {
		st.idle = true
		if time.Since(st.lastEmit) >= st.src.cfg.IdleAckInterval {
			return st.emitIdle(ctx)
		}
		return nil
	}
	for i := range events {
		events[i].Pos = st.pos
	}
	if err := st.emit(ctx, change.Batch{Events: events, Pos: st.pos, Commit: commit}); err != nil {
		return err
	}
	st.lastEmit, st.idle = time.Now(), false
	st.src.metrics.Lag.Set(math.Max(0, time.Since(commit).Seconds()))
	return nil
}

// emitIdle emits the position alone when it moved past transactions that
// touched no captured table, so it gets acknowledged and saved.
func (st *stream) emitIdle(ctx context.Context) error {
	if !st.idle || st.pos.File == "" {
		return nil
	}
	st.pos.at = time.Now()
	if err := st.emit(ctx, change.Batch{Pos: st.pos, Commit: time.Now()}); err != nil {
		return err
	}
	st.lastEmit, st.idle = time.Now(), false
	return nil
}

// originName reads the origin's name from the marker row of a sink's
// transaction (sink/mysql.OriginTable: conn, name, n): the inserted row,
// or the updated row's new image.
func originName(h *replication.EventHeader, e *replication.RowsEvent) (string, error) {
	var img []any
	switch h.EventType {
	case replication.WRITE_ROWS_EVENTv0, replication.WRITE_ROWS_EVENTv1, replication.WRITE_ROWS_EVENTv2, replication.MARIADB_WRITE_ROWS_COMPRESSED_EVENT_V1:
		if len(e.Rows) > 0 {
			img = e.Rows[0]
		}
	case replication.UPDATE_ROWS_EVENTv0, replication.UPDATE_ROWS_EVENTv1, replication.UPDATE_ROWS_EVENTv2, replication.MARIADB_UPDATE_ROWS_COMPRESSED_EVENT_V1:
		if len(e.Rows) > 1 {
			img = e.Rows[1]
		}
	default:
		return "", nil // a delete names no origin
	}
	col := 1
	if names := e.Table.ColumnNameString(); len(names) > 0 {
		col = slices.Index(names, "name")
	}
	if col < 0 || col >= len(img) {
		return "", fmt.Errorf("%s.%s has no name column in its row image (binlog_row_image must be FULL)", e.Table.Schema, e.Table.Table)
	}
	switch v := img[col].(type) {
	case string:
		return v, nil
	case []byte:
		return string(v), nil
	}
	return "", fmt.Errorf("%s.%s: name is %T, not text", e.Table.Schema, e.Table.Table, img[col])
}

// syncerCloseWait bounds how long a stream waits for its binlog syncer to
// close.
const syncerCloseWait = 2 * time.Second

// closeSoon closes syncer, waiting at most syncerCloseWait: go-mysql's
// Close opens a new connection to kill the server's dump thread, and on a
// hung path that connection's handshake waits out the whole read timeout,
// which held a stream found hung for another source.stream_timeout (its
// error, and shutdown, 30 s late). The close goes on in the background; a
// reopened stream registers anew, and the server ends the old dump thread
// of the same server_id.
func closeSoon(syncer *replication.BinlogSyncer) {
	done := make(chan struct{})
	go func() { syncer.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(syncerCloseWait):
	}
}
