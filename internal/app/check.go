package app

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/internal/connect"
	"github.com/tandemcdc/tandem/internal/preflight"
	"github.com/tandemcdc/tandem/sink"
	"github.com/tandemcdc/tandem/transform"
)

// Check runs the preflight checks of the source and the target. It changes
// nothing. The error is for a configuration it cannot check at all.
//
// The source and the target are checked at once, so that servers that
// cannot be reached (down, or a path that hangs) cost one connect timeout,
// not one each; the checks that read them again (the mappings' sample
// rows, cutover's keys) are skipped while one cannot be reached.
func Check(ctx context.Context, cfg *config.Config) ([]preflight.Problem, error) {
	var src, tgt []preflight.Problem
	var err error
	var wg sync.WaitGroup
	wg.Go(func() { src, err = connect.CheckSource(ctx, cfg, deleteNeeds(cfg)) })
	wg.Go(func() { tgt = connect.CheckTarget(ctx, cfg, targetUses(cfg)) })
	wg.Wait()
	if err != nil {
		return nil, err
	}
	ps := append(append(src, tgt...), modeProblems(cfg)...)
	if preflight.AnyUnreachable(ps) {
		return append(ps, transportProblems(ctx, cfg)...), nil
	}
	ps = append(ps, cutoverProblems(ctx, cfg)...)
	ps = append(ps, transportProblems(ctx, cfg)...)
	return append(ps, checkMappings(ctx, cfg)...), nil
}

// cutoverProblems checks what cutover needs of the mappings: a cohort
// column in every table the guard watches, and mappings whose reverse
// stream can rebuild the old rows from the new ones.
func cutoverProblems(ctx context.Context, cfg *config.Config) []preflight.Problem {
	if cfg.Cutover == nil {
		return nil
	}
	mappings, err := CompileMappings(cfg)
	if err != nil {
		return nil // reported elsewhere
	}
	keys, err := sourceKeys(ctx, cfg)
	if err != nil {
		return []preflight.Problem{{Severity: preflight.Fail, Object: "cutover", What: err.Error(), Fix: "make the source tables readable"}}
	}
	var ps []preflight.Problem
	if _, _, err := GuardTables(cfg, mappings, keys); err != nil {
		ps = append(ps, preflight.Problem{Severity: preflight.Fail, Object: "cutover", What: err.Error(),
			Fix: "give each target table a cohort column: to[].cohort, or a column copied from the mapping's cohort column"})
	}
	for _, m := range mappings {
		if !m.HasInverse() {
			ps = append(ps, preflight.Problem{Severity: preflight.Warn, Object: "mapping " + m.Name,
				What: "it has no inverse: no reverse stream keeps its old rows in step once a cohort is switched to the new schema",
				Fix:  "add inverse: with the columns of the source row computed from the target rows"})
			continue
		}
		if _, err := transform.NewReverse(m, keys[m.From.String()]); err != nil {
			ps = append(ps, preflight.Problem{Severity: preflight.Fail, Object: "mapping " + m.Name, What: err.Error(),
				Fix: "copy the source key columns plainly into every target table of the mapping (row.<key column>)"})
		}
	}
	return ps
}

// modeProblems warns of each output with mode create_if_absent: every
// mapping's table is captured, so `tandem run` and `tandem apply` stream
// it, and such an output drops every update of a row the target has.
func modeProblems(cfg *config.Config) []preflight.Problem {
	var ps []preflight.Problem
	for i, m := range cfg.Mappings {
		for j, o := range m.To {
			if o.Mode != config.ModeCreateIfAbsent {
				continue
			}
			ps = append(ps, preflight.Problem{Severity: preflight.Warn, Object: "mapping " + m.Name,
				What: fmt.Sprintf("%s: mappings[%d].to[%d] (%s) has mode create_if_absent: streamed, it inserts rows the target lacks "+
					"and drops every update of a row the target has, which keeps its first version", o.Pos, i, j, o.Table),
				Fix: "use mode: upsert (the default) for a streamed mapping; create_if_absent is for copies whose rows the new system owns once they exist"})
		}
	}
	return ps
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
		if c := m.CohortColumn(); cfg.Cutover != nil && c != "" && !slices.Contains(cols, c) {
			cols = append(cols, c) // a delete's cohort comes from its before-image
		}
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
