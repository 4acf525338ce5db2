package postgres

import (
	"fmt"
	"slices"

	"github.com/jackc/pglogrepl"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/pgtext"
)

// PostgreSQL type OIDs, as package pgtext names them.
const (
	oidBool        = pgtext.OIDBool
	oidBytea       = pgtext.OIDBytea
	oidInt8        = pgtext.OIDInt8
	oidInt2        = pgtext.OIDInt2
	oidInt4        = pgtext.OIDInt4
	oidOID         = pgtext.OIDOID
	oidJSON        = pgtext.OIDJSON
	oidFloat4      = pgtext.OIDFloat4
	oidFloat8      = pgtext.OIDFloat8
	oidDate        = pgtext.OIDDate
	oidTime        = pgtext.OIDTime
	oidTimestamp   = pgtext.OIDTimestamp
	oidTimestamptz = pgtext.OIDTimestamptz
	oidTimetz      = pgtext.OIDTimetz
	oidNumeric     = pgtext.OIDNumeric
	oidJSONB       = pgtext.OIDJSONB
	oidUUID        = 2950
)

// relation is what a Relation message told us about a published table.
type relation struct {
	table   change.Table
	columns []*pglogrepl.RelationMessageColumn
	key     []string
	types   map[string]change.Type
	sql     map[string]string // source types, as change.Event.SQLTypes names them
	names   []string          // column names in table order
}

// replicaIdentityFull is RelationMessage.ReplicaIdentity for REPLICA IDENTITY FULL.
const replicaIdentityFull = 'f'

// newRelation describes a relation. pk holds the table's primary key columns
// (nil when it has none): pgoutput flags every column of a REPLICA IDENTITY
// FULL table as part of the key, so for those the key is the primary key.
// Key columns are in the table's column order either way.
func newRelation(m *pglogrepl.RelationMessage, pk []string) *relation {
	r := &relation{
		table:   change.Table{Schema: m.Namespace, Name: m.RelationName},
		columns: m.Columns,
		types:   make(map[string]change.Type, len(m.Columns)),
		sql:     make(map[string]string, len(m.Columns)),
	}
	usePK := m.ReplicaIdentity == replicaIdentityFull && len(pk) > 0
	for _, c := range m.Columns {
		if usePK && slices.Contains(pk, c.Name) || !usePK && c.Flags&1 != 0 {
			r.key = append(r.key, c.Name)
		}
		r.types[c.Name] = logicalType(c.DataType)
		if t := sqlType(c.DataType, c.TypeModifier); t != "" {
			r.sql[c.Name] = t
		}
		r.names = append(r.names, c.Name)
	}
	return r
}

// logicalType maps a column type OID to the envelope's logical type.
func logicalType(oid uint32) change.Type {
	switch oid {
	case oidInt2, oidInt4, oidInt8, oidOID:
		return change.TypeInt
	case oidFloat4, oidFloat8:
		return change.TypeFloat
	case oidBool:
		return change.TypeBool
	case oidBytea:
		return change.TypeBytes
	case oidNumeric:
		return change.TypeDecimal
	case oidDate, oidTime, oidTimestamp, oidTimestamptz, oidTimetz:
		return change.TypeTime
	case oidJSON, oidJSONB:
		return change.TypeJSON
	}
	return change.TypeString
}

// sqlType names a column's type for change.Event.SQLTypes: what Debezium's
// value mapping depends on, with the precision (time types) or precision
// and scale (numeric) its type modifier gives; "" for types whose values
// are written as their logical type holds them.
func sqlType(oid uint32, typmod int32) string {
	var name string
	switch oid {
	case oidInt2:
		return "int2"
	case oidInt4:
		return "int4"
	case oidInt8:
		return "int8"
	case oidOID:
		return "oid"
	case oidFloat4:
		return "float4"
	case oidFloat8:
		return "float8"
	case oidDate:
		return "date"
	case oidJSON:
		return "json"
	case oidJSONB:
		return "jsonb"
	case oidUUID:
		return "uuid"
	case oidNumeric:
		if typmod < 4 {
			return "numeric"
		}
		m := typmod - 4
		return fmt.Sprintf("numeric(%d,%d)", m>>16&0xFFFF, m&0xFFFF)
	case oidTime:
		name = "time"
	case oidTimetz:
		name = "timetz"
	case oidTimestamp:
		name = "timestamp"
	case oidTimestamptz:
		name = "timestamptz"
	default:
		return ""
	}
	if typmod < 0 {
		return name
	}
	return fmt.Sprintf("%s(%d)", name, typmod)
}

// decodeTuple turns pgoutput tuple data into a Row. keyOnly keeps only the
// replica identity columns (a 'K' old tuple carries nulls for the others).
// Unchanged TOASTed values ('u') are left out of the row.
func (r *relation) decodeTuple(t *pglogrepl.TupleData, keyOnly bool) (change.Row, error) {
	if t == nil {
		return nil, nil
	}
	if len(t.Columns) != len(r.columns) {
		return nil, fmt.Errorf("%s: tuple has %d columns, relation has %d", r.table, len(t.Columns), len(r.columns))
	}
	row := make(change.Row, len(t.Columns))
	for i, col := range t.Columns {
		rc := r.columns[i]
		if keyOnly && rc.Flags&1 == 0 {
			continue
		}
		switch col.DataType {
		case pglogrepl.TupleDataTypeNull:
			row[rc.Name] = nil
		case pglogrepl.TupleDataTypeToast:
			// unchanged TOASTed value: not sent, so not in the row.
		case pglogrepl.TupleDataTypeText:
			v, err := pgtext.Value(rc.DataType, col.Data)
			if err != nil {
				return nil, fmt.Errorf("%s column %q: %w", r.table, rc.Name, err)
			}
			row[rc.Name] = v
		default:
			return nil, fmt.Errorf("%s column %q: unsupported tuple data kind %q", r.table, rc.Name, col.DataType)
		}
	}
	return row, nil
}
