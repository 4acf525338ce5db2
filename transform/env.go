package transform

import (
	"fmt"
	"slices"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"

	"github.com/tandemcdc/tandem/internal/change"
)

// Option is a way to compile a mapping.
type Option func(*options)

type options struct {
	source map[string]change.Type
	lookup Lookuper
	// cohorts: Writes sets each write's Cohort (WithCohorts).
	cohorts bool
}

// WithSource type-checks the mapping's expressions against the source
// table's columns and their types (as the capturer types them): an unknown
// column or an expression of the wrong type is a compile error with its
// file:line:col. Without it, row is a map of any values and such mistakes
// surface as evaluation errors.
func WithSource(columns map[string]change.Type) Option {
	return func(o *options) { o.source = columns }
}

// WithLookup lets lookup() read target rows through l. Without it, an
// expression that calls lookup() compiles but fails when evaluated.
func WithLookup(l Lookuper) Option {
	return func(o *options) { o.lookup = l }
}

// rowTypeName is the CEL type of a typed row.
const rowTypeName = "tandem.Row"

// celType is the CEL type of a source column of type t: every column may be
// NULL, so each is the nullable form of its scalar. Types carried as text
// (decimal, time, json, ...) are strings: exact, and the helper functions
// parse them when a mapping needs a number or a time.
func celType(t change.Type) *cel.Type {
	switch t {
	case change.TypeInt:
		return cel.NullableType(cel.IntType)
	case change.TypeFloat:
		return cel.NullableType(cel.DoubleType)
	case change.TypeBool:
		return cel.NullableType(cel.BoolType)
	case change.TypeBytes:
		return cel.NullableType(cel.BytesType)
	}
	return cel.NullableType(cel.StringType)
}

// rowProvider adds the typed row to CEL's type registry. Its fields have
// no getters, so the interpreter selects them from the row map as it does
// for an untyped row: only the type checker sees the difference.
type rowProvider struct {
	*types.Registry
	fields map[string]*types.FieldType
	names  []string
}

func newRowProvider(columns map[string]change.Type) *rowProvider {
	p := &rowProvider{Registry: types.NewEmptyRegistry(), fields: make(map[string]*types.FieldType, len(columns))}
	for name, t := range columns {
		p.fields[name] = &types.FieldType{Type: celType(t)}
		p.names = append(p.names, name)
	}
	slices.Sort(p.names)
	return p
}

// FindStructType implements types.Provider.
func (p *rowProvider) FindStructType(name string) (*types.Type, bool) {
	if name == rowTypeName {
		return types.NewTypeTypeWithParam(types.NewObjectType(rowTypeName)), true
	}
	return p.Registry.FindStructType(name)
}

// FindStructFieldNames implements types.Provider.
func (p *rowProvider) FindStructFieldNames(name string) ([]string, bool) {
	if name == rowTypeName {
		return p.names, true
	}
	return p.Registry.FindStructFieldNames(name)
}

// FindStructFieldType implements types.Provider.
func (p *rowProvider) FindStructFieldType(name, field string) (*types.FieldType, bool) {
	if name == rowTypeName {
		ft, ok := p.fields[field]
		return ft, ok
	}
	return p.Registry.FindStructFieldType(name, field)
}

// newEnv builds the environment a mapping's forward expressions compile in:
// `row` typed by the source columns when they are known, the helper
// functions, and lookup() bound to l.
func newEnv(source map[string]change.Type, l *lookups) (*cel.Env, error) {
	opts := append(baseOptions(l), cel.CrossTypeNumericComparisons(true))
	if source == nil {
		opts = append(opts, cel.Variable("row", cel.MapType(cel.StringType, cel.DynType)))
	} else {
		opts = append(opts, cel.CustomTypeProvider(newRowProvider(source)),
			cel.Variable("row", cel.ObjectType(rowTypeName)))
	}
	e, err := cel.NewEnv(opts...)
	if err != nil {
		return nil, fmt.Errorf("build the CEL environment: %w", err)
	}
	return e, nil
}

// baseOptions are what every environment has, forward or inverse.
func baseOptions(l *lookups) []cel.EnvOption {
	return append([]cel.EnvOption{
		cel.OptionalTypes(),
		cel.EnableIdentifierEscapeSyntax(),
		l.function(),
	}, functions()...)
}

// inverseEnv builds the environment of a mapping's inverse expressions: one
// variable per output, named by the output table without its schema,
// holding the target row that output produced (an empty map when its `when`
// did not hold).
func inverseEnv(vars []string, l *lookups) (*cel.Env, error) {
	opts := append(baseOptions(l), cel.CrossTypeNumericComparisons(true))
	for _, v := range vars {
		opts = append(opts, cel.Variable(v, cel.MapType(cel.StringType, cel.DynType)))
	}
	e, err := cel.NewEnv(opts...)
	if err != nil {
		return nil, fmt.Errorf("build the inverse's CEL environment: %w", err)
	}
	return e, nil
}

// inverseVar is the inverse's variable name for a target table.
func inverseVar(table string) string {
	if i := strings.LastIndexByte(table, '.'); i >= 0 {
		return table[i+1:]
	}
	return table
}
