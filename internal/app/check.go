package app

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	mycapture "github.com/tandemcdc/tandem/capture/mysql"
	pgcapture "github.com/tandemcdc/tandem/capture/postgres"
	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/internal/preflight"
	"github.com/tandemcdc/tandem/sink"
	sinkmysql "github.com/tandemcdc/tandem/sink/mysql"
	sinkpg "github.com/tandemcdc/tandem/sink/postgres"
)

// Check runs the preflight checks of the source and the target. It changes
// nothing. The error is for a configuration it cannot check at all.
func Check(ctx context.Context, cfg *config.Config) ([]preflight.Problem, error) {
	var ps []preflight.Problem
	switch cfg.Source.Kind {
	case config.KindPostgres:
		src, err := pgcapture.New(pgcapture.Config{DSN: cfg.Source.DSN.Value(), Slot: cfg.Source.Postgres.Slot,
			Publication: cfg.Source.Postgres.Publication, Tables: sourceTables(cfg)})
		if err != nil {
			return nil, err
		}
		ps = append(ps, src.Check(ctx)...)
		ps = append(ps, src.CheckBeforeImages(ctx, deleteNeeds(cfg))...)
	case config.KindMySQL:
		cc := mycapture.CheckConfig{DSN: cfg.Source.DSN.Value(), ServerID: cfg.Source.MySQL.ServerID, Tables: cfg.Source.Tables}
		saved, found, err := savedPosition(ctx, cfg)
		switch {
		case err != nil:
			ps = append(ps, preflight.Problem{Severity: preflight.Warn, Object: "source position",
				What: fmt.Sprintf("cannot read the saved binlog position from the target: %v", err), Fix: "check target.dsn; the target problems below may say more"})
		case found:
			p, err := mycapture.ParsePosition(saved)
			if err != nil {
				ps = append(ps, preflight.Problem{Severity: preflight.Fail, Object: "source position",
					What: fmt.Sprintf("the saved binlog position %q of %s is unreadable: %v", saved, positionKey(cfg), err), Fix: "delete it from the target's tandem.source_positions and backfill again"})
			}
			cc.File, cc.Pos = p.File, uint64(p.Offset)
		}
		ps = append(ps, mycapture.Check(ctx, cc)...)
	default:
		ps = append(ps, preflight.Problem{Severity: preflight.Fail, Object: "source", What: "kind " + cfg.Source.Kind + " is not supported", Fix: "use a mysql or postgres source"})
	}
	switch cfg.Target.Kind {
	case config.KindPostgres:
		ps = append(ps, sinkpg.Check(ctx, cfg.Target.DSN.Value(), targetUses(cfg))...)
	case config.KindMySQL:
		ps = append(ps, sinkmysql.Check(ctx, sinkmysql.Config{DSN: cfg.Target.DSN.Value(), StateSchema: cfg.Target.StateSchema}, targetUses(cfg))...)
	default:
		ps = append(ps, preflight.Problem{Severity: preflight.Fail, Object: "target", What: "kind " + cfg.Target.Kind + " is not supported", Fix: "use a mysql or postgres target"})
	}
	ps = append(ps, checkMappings(ctx, cfg)...)
	return ps, nil
}

// savedPosition reads a MySQL capture's saved position from the target
// without creating anything there.
func savedPosition(ctx context.Context, cfg *config.Config) (string, bool, error) {
	switch cfg.Target.Kind {
	case config.KindPostgres:
		return sinkpg.SavedPosition(ctx, cfg.Target.DSN.Value(), positionKey(cfg))
	case config.KindMySQL:
		return sinkmysql.SavedPosition(ctx, cfg.Target.DSN.Value(), positionKey(cfg))
	}
	return "", false, nil
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

// PrintProblems writes check results for people.
func PrintProblems(w io.Writer, ps []preflight.Problem) { preflight.Print(w, ps) }

// HasFailures reports whether any problem stops tandem.
func HasFailures(ps []preflight.Problem) bool { return preflight.HasFailures(ps) }

// DropSlot removes the source's replication slot and publication (PostgreSQL)
// when a migration is done, and says what it dropped.
func DropSlot(ctx context.Context, cfg *config.Config) ([]string, error) {
	if cfg.Source.Kind != config.KindPostgres {
		return nil, fmt.Errorf("slot drop: source kind %s has no replication slot", cfg.Source.Kind)
	}
	src, err := pgcapture.New(pgcapture.Config{DSN: cfg.Source.DSN.Value(), Slot: cfg.Source.Postgres.Slot,
		Publication: cfg.Source.Postgres.Publication, Tables: sourceTables(cfg)})
	if err != nil {
		return nil, err
	}
	return src.Drop(ctx)
}

// sourceTables returns the configured source tables.
func sourceTables(cfg *config.Config) []change.Table {
	tables := make([]change.Table, len(cfg.Source.Tables))
	for i, t := range cfg.Source.Tables {
		schema, name, _ := strings.Cut(t, ".")
		tables[i] = change.Table{Schema: schema, Name: name}
	}
	return tables
}
