package mysql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/tandemcdc/tandem/capture"
	"github.com/tandemcdc/tandem/internal/poll"
)

// The capture lease fences the captures of one binlog source, as a
// replication slot fences PostgreSQL's: a binlog has no slot, and a second
// reader with the same server_id is not refused but kicks the first off
// (the server ends the older dump thread), so two captures would take
// turns and both produce. Before it reads the binlog, Stream takes a named
// lock on the source server, GET_LOCK('tandem.capture.<server_id>'), on a
// connection of its own, and holds it until it returns. The server
// releases the lock the moment that session ends, a capture killed or its
// host gone included, and a standby's next attempt takes it.
//
// The holder checks every LeaseCheck that its lock session is alive and
// still owns the lock; if not, Stream stops at once with ErrLeaseLost and
// saves no position from then on (a standby may be the active capture
// already). It loses the lease no later than the server can give it away:
// the server notices a dead session no sooner than the holder's own check
// fails. After a takeover the new holder resumes from the saved position,
// the last one acknowledged durable, so the changes between it and the old
// holder's last record are produced twice: replays, which apply skips or
// rewrites to the same result.

// ErrLeaseLost is wrapped by Stream when the capture lease's session ended
// or no longer owns the lock while streaming: another capture may hold it
// now. It is retried like a lost connection; the next Stream waits for
// the lease as a standby.
var ErrLeaseLost = errors.New("lost the capture lease on the source server")

// leaseName is the named lock fencing the captures of server id id: one
// per replica identity, which must be unique among the server's replicas.
func leaseName(id uint32) string { return "tandem.capture." + strconv.FormatUint(uint64(id), 10) }

// A lease whose session hung or broke (a stalled network path: the check
// got no answer within Config.Timeout, or the release failed) may still
// hold the lock on the server, whose end of the connection may be alive,
// for as long as the server keeps an idle session (wait_timeout, 8 hours
// by default). The capture gave that session up, so it ends it, as
// PostgreSQL's capturer terminates its hung walsender: the next
// acquireLease kills it (KILL of one's own session needs no privilege)
// before it waits for the lock, if that session still holds the lock.

// lease is a held capture lease: the session holding the lock.
type lease struct {
	src  *Source
	name string
	conn *sql.Conn
	id   int64 // the session's CONNECTION_ID()
}

// acquireLease takes the capture lease, waiting up to LeaseWait for a
// holder to release it. A lease held by another session is
// capture.ErrSourceTaken.
func (s *Source) acquireLease(ctx context.Context) (*lease, error) {
	name := leaseName(s.cfg.ServerID)
	s.killHungLease(ctx)
	ctx, cancel := context.WithTimeout(ctx, s.cfg.LeaseWait+s.cfg.Timeout)
	defer cancel()
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect to the source %s for the capture lease %s: %w", s.addr, name, err)
	}
	var got, id sql.NullInt64
	if err := conn.QueryRowContext(ctx, `SELECT GET_LOCK(?, ?), CONNECTION_ID()`, name, int(s.cfg.LeaseWait/time.Second)).Scan(&got, &id); err != nil {
		discard(conn)
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("take the capture lease %s (GET_LOCK) on %s: no answer within %s: %w", name, s.addr, s.cfg.LeaseWait+s.cfg.Timeout, context.DeadlineExceeded)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("take the capture lease %s (GET_LOCK) on %s: %w", name, s.addr, err)
	}
	if !got.Valid || got.Int64 != 1 {
		var holder sql.NullInt64
		_ = conn.QueryRowContext(ctx, `SELECT IS_USED_LOCK(?)`, name).Scan(&holder)
		conn.Close() // the lock is not held on it: back to the pool
		return nil, fmt.Errorf("the capture lease %s on the source is held by connection %d: another tandem capture streams this binlog (same source.mysql.server_id). Stop it, or give this one a server_id of its own: %w",
			name, holder.Int64, capture.ErrSourceTaken)
	}
	s.leaseLost.Store(false)
	return &lease{src: s, name: name, conn: conn, id: id.Int64}, nil
}

// killHungLease ends the session of a lease given up because it hung, if
// any (best effort, within Config.Timeout): so that its lock is free.
func (s *Source) killHungLease(ctx context.Context) {
	id := s.hungLease.Swap(0)
	if id == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	var holder sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT IS_USED_LOCK(?)`, leaseName(s.cfg.ServerID)).Scan(&holder)
	if err == nil && holder.Int64 == id {
		_, err = s.db.ExecContext(ctx, fmt.Sprintf("KILL %d", id))
		if err == nil {
			s.log.Info("ended the session of the capture lease given up as hung", "connection_id", id, "source", s.addr)
			return
		}
	}
	if err != nil {
		s.log.Debug("end the session of the capture lease given up", "connection_id", id, "source", s.addr, "err", err)
	}
}

// watchLease checks the lease every LeaseCheck until ctx ends, calling lose
// with ErrLeaseLost, at once, when its session is gone or no longer owns
// the lock.
func (s *Source) watchLease(ctx context.Context, l *lease, lose context.CancelCauseFunc) {
	poll.Every(ctx, s.cfg.LeaseCheck, func() bool {
		cctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
		var mine int
		err := l.conn.QueryRowContext(cctx, `SELECT COALESCE(IS_USED_LOCK(?) = CONNECTION_ID(), 0)`, l.name).Scan(&mine)
		hung := cctx.Err() != nil
		cancel()
		if ctx.Err() != nil {
			return false
		}
		if err != nil || mine != 1 {
			s.leaseLost.Store(true) // before Stream stops: no position saved from now on
			why := "its session no longer owns the lock"
			switch {
			case hung:
				s.hungLease.Store(l.id)
				why = fmt.Sprintf("its session on %s did not answer the lease check within %s (source.stream_timeout): the connection seems hung", s.addr, s.cfg.Timeout)
			case err != nil:
				why = err.Error()
			}
			lose(fmt.Errorf("%w %s (%s): stopped streaming", ErrLeaseLost, l.name, why))
			return false
		}
		return true
	})
}

// release gives the lease back and drops its connection. A release that
// fails leaves the session for the next acquireLease to end.
func (l *lease) release() {
	ctx, cancel := context.WithTimeout(context.Background(), min(2*time.Second, l.src.cfg.Timeout))
	defer cancel()
	if _, err := l.conn.ExecContext(ctx, `DO RELEASE_LOCK(?)`, l.name); err != nil {
		l.src.hungLease.CompareAndSwap(0, l.id)
	}
	discard(l.conn) // never back to the pool: a lock may still be held on it
}

// discard closes conn's session rather than returning it to the pool.
func discard(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	conn.Close()
}
