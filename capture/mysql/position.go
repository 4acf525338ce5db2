package mysql

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tandemcdc/tandem/internal/change"
)

// Position is a place in the binary log just after a transaction: the
// binlog file and the offset of the next event, and the server's executed
// GTID set at that point when the server has GTIDs (always on MariaDB; on
// MySQL with gtid_mode=ON). A stream resumes from the GTID set when there is
// one, since it survives a failover to another server, and from File:Offset
// otherwise; File:Offset also measures retention headroom.
type Position struct {
	File   string // binlog file name; "" until the stream has named it
	Offset uint32 // offset of the next event in File
	GTID   string // executed GTID set ("0-1-42" on MariaDB, "uuid:1-42" on MySQL); "" without GTIDs
	// at is when the binlog reached this position (the commit time of the
	// transaction that ends there), if known: the position's binlog file
	// was written at or after it, which bounds when expiry may purge it.
	at time.Time
}

// String renders the position as "file:offset", "file:offset;gtid=set" or
// "gtid=set"; ParsePosition reads it back.
func (p Position) String() string {
	var sb strings.Builder
	if p.File != "" {
		sb.WriteString(p.File)
		sb.WriteByte(':')
		sb.WriteString(strconv.FormatUint(uint64(p.Offset), 10))
	}
	if p.GTID != "" {
		if sb.Len() > 0 {
			sb.WriteByte(';')
		}
		sb.WriteString("gtid=")
		sb.WriteString(p.GTID)
	}
	return sb.String()
}

// IsZero reports whether the position names nothing.
func (p Position) IsZero() bool { return p.File == "" && p.GTID == "" }

// ParsePosition parses what Position.String returns.
func ParsePosition(s string) (Position, error) {
	var p Position
	rest := s
	if i := strings.Index(rest, "gtid="); i >= 0 {
		p.GTID = rest[i+len("gtid="):]
		rest = strings.TrimSuffix(rest[:i], ";")
		if p.GTID == "" {
			return Position{}, fmt.Errorf("binlog position %q: empty gtid set", s)
		}
	}
	if rest != "" {
		colon := strings.LastIndexByte(rest, ':')
		if colon <= 0 {
			return Position{}, fmt.Errorf("binlog position %q: want file:offset, file:offset;gtid=set or gtid=set", s)
		}
		off, err := strconv.ParseUint(rest[colon+1:], 10, 32)
		if err != nil {
			return Position{}, fmt.Errorf("binlog position %q: offset is not a number", s)
		}
		p.File, p.Offset = rest[:colon], uint32(off)
	}
	if p.IsZero() {
		return Position{}, fmt.Errorf("binlog position %q is empty", s)
	}
	return p, nil
}

// before reports whether p is strictly earlier than q in the binary log.
// Binlog file names share a base and end in a zero-padded sequence number,
// so they order as strings of equal length, then by length.
func (p Position) before(q Position) bool {
	if p.File == "" || q.File == "" {
		return false
	}
	if p.File != q.File {
		if len(p.File) != len(q.File) {
			return len(p.File) < len(q.File)
		}
		return p.File < q.File
	}
	return p.Offset < q.Offset
}

// positionOf accepts a Position or its text form (one read back from a
// Kafka envelope).
func positionOf(pos change.Position) (Position, error) {
	switch p := pos.(type) {
	case Position:
		return p, nil
	case *Position:
		return *p, nil
	case nil:
		return Position{}, fmt.Errorf("nil binlog position")
	}
	return ParsePosition(pos.String())
}
