package apply

import (
	"fmt"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/transform"
)

// schemaGuard stops a mapping when a source column it reads is dropped,
// renamed or retyped mid-stream. Carrying on would write NULLs or values of
// the wrong kind into the target without a word; stopping keeps the
// change (and everything after it) in Kafka and at the source until the
// mapping is fixed and tandem restarted. Columns no mapping reads may come
// and go freely.
type schemaGuard struct {
	mapping string
	reads   []string
	types   map[string]change.Type // the type each read column had when first seen
}

func newSchemaGuard(m *transform.Mapping) *schemaGuard {
	cols, _ := m.Reads()
	return &schemaGuard{mapping: m.Name, reads: cols, types: map[string]change.Type{}}
}

// schemaChangeError says which column of which table changed under a mapping.
type schemaChangeError struct {
	Mapping, Table, Column string
	Was, Now               change.Type // Now "" when the column is gone
	Pos                    string
}

func (e *schemaChangeError) Error() string {
	if e.Now == "" {
		return fmt.Sprintf("mapping %s reads column %s of source table %s, which is no longer there (dropped or renamed, seen at source position %s): fix the mapping and restart tandem; nothing after this change is applied until then",
			e.Mapping, e.Column, e.Table, e.Pos)
	}
	return fmt.Sprintf("mapping %s reads column %s of source table %s, whose type changed from %s to %s (seen at source position %s): check the mapping still holds and restart tandem; nothing after this change is applied until then",
		e.Mapping, e.Column, e.Table, e.Was, e.Now, e.Pos)
}

// check returns a *schemaChangeError when ev lacks a column the mapping
// reads or carries it with another type than before. Events without types
// (a foreign producer) are not checked.
func (g *schemaGuard) check(ev *change.Event) error {
	if len(ev.Types) == 0 || ev.Op == change.OpTruncate {
		return nil
	}
	for _, c := range g.reads {
		now, ok := ev.Types[c]
		if !ok {
			return &schemaChangeError{Mapping: g.mapping, Table: ev.Table.String(), Column: c, Was: g.types[c], Pos: posString(ev)}
		}
		was, seen := g.types[c]
		if !seen {
			g.types[c] = now
			continue
		}
		if was != now {
			return &schemaChangeError{Mapping: g.mapping, Table: ev.Table.String(), Column: c, Was: was, Now: now, Pos: posString(ev)}
		}
	}
	return nil
}

func posString(ev *change.Event) string {
	if ev.Pos == nil {
		return "unknown"
	}
	return ev.Pos.String()
}
