package app

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/internal/connect"
	"github.com/tandemcdc/tandem/internal/resync"
	"github.com/tandemcdc/tandem/sink"
)

// ErrUnknownMapping is wrapped when a command names a mapping the config
// does not have.
var ErrUnknownMapping = errors.New("no such mapping in the config")

// knownMapping checks that mapping ("": every mapping) names one of cfg's.
func knownMapping(cfg *config.Config, mapping string) error {
	if mapping != "" && !slices.ContainsFunc(cfg.Mappings, func(m config.Mapping) bool { return m.Name == mapping }) {
		return fmt.Errorf("%s: mapping %q: %w", cfg.File, mapping, ErrUnknownMapping)
	}
	return nil
}

// OpenDeadLetters connects to the configured target and returns it as the
// store of the dead letters apply kept there; close releases it.
func OpenDeadLetters(ctx context.Context, cfg *config.Config) (connect.Target, func(), error) {
	return openDeadLetters(ctx, cfg, false)
}

// ListDeadLetters opens the target's dead letters to read them only: it
// creates nothing there, and a target tandem never wrote to has none.
func ListDeadLetters(ctx context.Context, cfg *config.Config) (sink.DeadLetterStore, func(), error) {
	store, closeStore, err := openDeadLetters(ctx, cfg, true)
	return store, closeStore, err
}

func openDeadLetters(ctx context.Context, cfg *config.Config, readOnly bool) (connect.Target, func(), error) {
	open := connect.OpenTarget
	if readOnly {
		open = connect.OpenTargetReadOnly
	}
	tgt, err := open(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	return tgt, func() { tgt.Close() }, nil
}

// ReplayDeadLetters re-syncs the source rows of the dead letters kept in
// the target (of mapping only, every mapping when it is "") with the
// config's mappings, and removes the dead letters of the rows re-synced:
// see package resync for how that converges with a running stream. It
// reads the source (shared row locks, briefly) and writes the target; run
// it once `tandem run` runs the fixed config.
func ReplayDeadLetters(ctx context.Context, cfg *config.Config, mapping string) (*resync.Report, error) {
	if _, err := CompileMappings(cfg); err != nil { // a bad config, before the target is opened
		return nil, err
	}
	if err := knownMapping(cfg, mapping); err != nil {
		return nil, err
	}
	store, closeStore, err := OpenDeadLetters(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer closeStore()
	// Again, with lookup() reading the target, as apply compiles them.
	mappings, err := CompileMappings(cfg, mappingOptions(cfg, store)...)
	if err != nil {
		return nil, err
	}
	reader, err := connect.OpenReader(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer reader.Close()
	rep, err := resync.Replay(ctx, reader, mappings, owned(cfg, store, mappings), mapping)
	if err != nil {
		return rep, fmt.Errorf("replay dead letters: %w", err)
	}
	return rep, nil
}

// DropDeadLetters removes, without re-syncing anything, the dead letters
// of mapping ("": of every mapping) that match selects, and returns them,
// oldest first. It is for dead letters no replay can re-sync (a TRUNCATE, a
// record that does not decode) or that the operator has dealt with by
// hand. Like ListDeadLetters it creates nothing in the target: one tandem
// never wrote to has none to drop.
func DropDeadLetters(ctx context.Context, cfg *config.Config, mapping string, selects func(sink.DeadLetterID) bool) ([]sink.DeadLetterID, error) {
	if err := knownMapping(cfg, mapping); err != nil {
		return nil, err
	}
	store, closeStore, err := openDeadLetters(ctx, cfg, true)
	if err != nil {
		return nil, err
	}
	defer closeStore()
	dls, err := store.DeadLetters(ctx, mapping, 0)
	if se := (*sink.Error)(nil); errors.As(err, &se) && se.Reason == "table_missing" {
		return nil, nil // tandem never kept anything in this target
	}
	if err != nil {
		return nil, fmt.Errorf("read the dead letters: %w", err)
	}
	var ids []sink.DeadLetterID
	for _, d := range dls {
		if selects(d.ID()) {
			ids = append(ids, d.ID())
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	if _, err := store.DeleteDeadLetters(ctx, ids); err != nil {
		return nil, fmt.Errorf("drop %d dead letters: %w", len(ids), err)
	}
	return ids, nil
}
