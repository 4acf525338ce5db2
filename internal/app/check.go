package app

import (
	"context"
	"slices"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/internal/connect"
	"github.com/tandemcdc/tandem/internal/preflight"
	"github.com/tandemcdc/tandem/sink"
)

// Check runs the preflight checks of the source and the target. It changes
// nothing. The error is for a configuration it cannot check at all.
func Check(ctx context.Context, cfg *config.Config) ([]preflight.Problem, error) {
	ps, err := connect.CheckSource(ctx, cfg, deleteNeeds(cfg))
	if err != nil {
		return nil, err
	}
	ps = append(ps, connect.CheckTarget(ctx, cfg, targetUses(cfg))...)
	return append(ps, checkMappings(ctx, cfg)...), nil
}

// deleteNeeds maps each source table to the columns its mappings compute
// target keys from (nil: the whole row). Mappings that do not compile are
// reported elsewhere.
func deleteNeeds(cfg *config.Config) map[change.Table][]string {
	mappings, _ := CompileMappings(cfg)
	needs := map[change.Table][]string{}
	whole := map[change.Table]bool{}
	for _, m := range mappings {
		cols, anyCol := m.KeyReads()
		if anyCol {
			whole[m.From] = true
		}
		for _, c := range cols {
			if !slices.Contains(needs[m.From], c) {
				needs[m.From] = append(needs[m.From], c)
			}
		}
		if _, ok := needs[m.From]; !ok {
			needs[m.From] = []string{}
		}
	}
	for t := range whole {
		needs[t] = nil
	}
	return needs
}

// targetUses lists, per target table, the key and the columns the mappings write.
func targetUses(cfg *config.Config) []sink.TableUse {
	var uses []sink.TableUse
	index := map[string]int{}
	for _, m := range cfg.Mappings {
		for _, o := range m.To {
			i, ok := index[o.Table]
			if !ok {
				i = len(uses)
				index[o.Table] = i
				uses = append(uses, sink.TableUse{Table: o.Table, Key: o.Key})
			}
			for _, c := range o.Columns {
				if !slices.Contains(uses[i].Columns, c.Name) {
					uses[i].Columns = append(uses[i].Columns, c.Name)
				}
			}
		}
	}
	return uses
}
