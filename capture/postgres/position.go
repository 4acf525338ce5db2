package postgres

import (
	"fmt"

	"github.com/jackc/pglogrepl"

	"github.com/tandemcdc/tandem/internal/change"
)

// LSN is a PostgreSQL WAL position: the end of a committed transaction.
type LSN = pglogrepl.LSN

// ParseLSN parses "16/B374D848".
func ParseLSN(s string) (LSN, error) {
	lsn, err := pglogrepl.ParseLSN(s)
	if err != nil {
		return 0, fmt.Errorf("parse LSN %q: %w", s, err)
	}
	return lsn, nil
}

// positionLSN extracts an LSN from a change.Position emitted by this package
// or read back from an envelope.
func positionLSN(p change.Position) (LSN, error) {
	switch p := p.(type) {
	case LSN:
		return p, nil
	case nil:
		return 0, fmt.Errorf("nil position")
	default:
		return ParseLSN(p.String())
	}
}
