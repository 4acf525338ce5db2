package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/tandemcdc/tandem/internal/mysqlurl"
)

// BinlogNotOnServerError is BinlogRetention's error when the position's
// binlog is neither on the server nor older than its oldest binlog: the
// binlogs were reset (RESET MASTER) or renamed (log_bin's base name), or the
// position comes from another server. Resuming from it is impossible.
type BinlogNotOnServerError struct {
	File           string // the position's binlog
	Oldest, Newest string // the binlogs the server has
}

func (e *BinlogNotOnServerError) Error() string {
	return fmt.Sprintf("binlog %s is not on the server, whose binlogs run from %s to %s", e.File, e.Oldest, e.Newest)
}

// Retention is how far the server's oldest binlog is from a position.
type Retention struct {
	// HeadroomBytes is the number of bytes from the start of the oldest
	// binlog still on the server to the position: what may be purged before
	// the position is. 0 when Purged.
	HeadroomBytes int64
	OldestFile    string // the oldest binlog still on the server
	Purged        bool   // the position's file is gone: resuming is impossible
	// ExpireSeconds is how old a binlog gets before the server purges it
	// (binlog_expire_logs_seconds, or expire_logs_days in seconds); 0 means
	// never.
	ExpireSeconds int64
}

// retainedBinlog is one row of SHOW BINARY LOGS.
type retainedBinlog struct {
	name string
	size int64
}

// BinlogRetention measures how far the server's oldest binlog is from
// file:pos, from SHOW BINARY LOGS (file sizes) and the expiry variables. It
// needs the REPLICATION CLIENT privilege (MariaDB: BINLOG MONITOR). A file
// older than the oldest binlog on the server gives Purged; a file that is
// neither on the server nor older gives a *BinlogNotOnServerError. It does
// not change the server.
func BinlogRetention(ctx context.Context, db *sql.DB, file string, pos uint64) (Retention, error) {
	logs, err := showBinaryLogs(ctx, db)
	if err != nil {
		return Retention{}, err
	}
	vars, err := showVariables(ctx, db, "binlog_expire_logs_seconds", "expire_logs_days", "binlog_expire_logs_auto_purge")
	if err != nil {
		return Retention{}, err
	}
	r := Retention{OldestFile: logs[0].name, ExpireSeconds: binlogExpiry(vars)}
	var before int64
	for _, l := range logs {
		if l.name == file {
			if pos > math.MaxInt64-uint64(before) {
				return Retention{}, fmt.Errorf("binlog position %s:%d: offset out of range", file, pos)
			}
			r.HeadroomBytes = before + int64(pos)
			return r, nil
		}
		before += l.size
	}
	if binlogOlder(file, r.OldestFile) {
		r.Purged = true
		return r, nil
	}
	return Retention{}, &BinlogNotOnServerError{File: file, Oldest: r.OldestFile, Newest: logs[len(logs)-1].name}
}

// showBinaryLogs returns SHOW BINARY LOGS, oldest first; never empty.
func showBinaryLogs(ctx context.Context, db *sql.DB) ([]retainedBinlog, error) {
	rows, err := db.QueryContext(ctx, "SHOW BINARY LOGS")
	if err != nil {
		return nil, fmt.Errorf("list binlogs: %w", err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, fmt.Errorf("list binlogs: %w", err)
	}
	if len(cols) < 2 {
		return nil, fmt.Errorf("list binlogs: SHOW BINARY LOGS returned %d columns, want Log_name, File_size", len(cols))
	}
	var logs []retainedBinlog
	vals := make([]any, len(cols)) // MySQL 8 adds Encrypted
	for i := range vals {
		vals[i] = new(sql.RawBytes)
	}
	for rows.Next() {
		if err := rows.Scan(vals...); err != nil {
			return nil, fmt.Errorf("list binlogs: %w", err)
		}
		name := string(*vals[0].(*sql.RawBytes))
		size, err := strconv.ParseInt(string(*vals[1].(*sql.RawBytes)), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("list binlogs: size of %s: %w", name, err)
		}
		logs = append(logs, retainedBinlog{name, size})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list binlogs: %w", err)
	}
	if len(logs) == 0 {
		return nil, errors.New("list binlogs: the server has none")
	}
	return logs, nil
}

// showVariables returns the named global variables the server has, keyed
// by lowercase name; a name it does not know is absent from the map.
func showVariables(ctx context.Context, db *sql.DB, names ...string) (map[string]string, error) {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = mysqlurl.QuoteString(n)
	}
	// Literals, not placeholders: not every server prepares SHOW.
	rows, err := db.QueryContext(ctx, "SHOW GLOBAL VARIABLES WHERE Variable_name IN ("+strings.Join(quoted, ", ")+")")
	if err != nil {
		return nil, fmt.Errorf("read server variables: %w", err)
	}
	defer rows.Close()
	vars := make(map[string]string, len(names))
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, fmt.Errorf("read server variables: %w", err)
		}
		vars[strings.ToLower(k)] = v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read server variables: %w", err)
	}
	return vars, nil
}

// binlogExpiry is the binlog expiry the variables configure; 0 means
// never. binlog_expire_logs_seconds wins over expire_logs_days when set
// (MySQL 8 ignores the days then; MariaDB keeps the two in step), and
// MySQL 8.0.29+'s binlog_expire_logs_auto_purge=OFF turns expiry off.
func binlogExpiry(vars map[string]string) int64 {
	if strings.EqualFold(vars["binlog_expire_logs_auto_purge"], "OFF") {
		return 0
	}
	if s, err := strconv.ParseInt(vars["binlog_expire_logs_seconds"], 10, 64); err == nil && s > 0 {
		return s
	}
	if d, err := strconv.ParseFloat(vars["expire_logs_days"], 64); err == nil && d > 0 {
		return int64(math.Round(d * 86400))
	}
	return 0
}

// binlogOlder reports whether binlog a comes before binlog b: the same
// base name and a smaller sequence number ("binlog.000007" before
// "binlog.000012").
func binlogOlder(a, b string) bool {
	ab, an, ok1 := splitBinlogName(a)
	bb, bn, ok2 := splitBinlogName(b)
	return ok1 && ok2 && ab == bb && an < bn
}

// splitBinlogName splits "binlog.000012" into "binlog" and 12.
func splitBinlogName(name string) (string, uint64, bool) {
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return "", 0, false
	}
	n, err := strconv.ParseUint(name[i+1:], 10, 64)
	if err != nil {
		return "", 0, false
	}
	return name[:i], n, true
}
