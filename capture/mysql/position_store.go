package mysql

import "context"

// PositionStore keeps a capturer's acknowledged position where it survives a
// restart, for sources that do not keep it themselves (a MySQL binlog reader
// has no slot). Sinks implement it in the target database, so the position
// and the rows it covers live side by side.
type PositionStore interface {
	// LoadPosition returns the position last saved for source; found is
	// false when none was.
	LoadPosition(ctx context.Context, source string) (pos string, found bool, err error)
	// SavePosition durably replaces the position saved for source.
	SavePosition(ctx context.Context, source, pos string) error
}
