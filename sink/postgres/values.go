package postgres

import "strings"

// value is v as t's column c takes it: v, but for MySQL's zero dates.
//
// MySQL's zero date ("0000-00-00", "0000-00-00 00:00:00" with or without a
// zero fraction) names no day, and PostgreSQL has no value for it. Written
// into a date or timestamp column it becomes NULL, as MySQL's own
// connectors read it (Connector/J's zeroDateTimeBehavior=convertToNull,
// Debezium's optional columns): the row goes on with no date rather than a
// made-up one. A NOT NULL column refuses that NULL, and the change is
// dead-lettered. A date only partly zero ("2024-00-10") is not converted:
// PostgreSQL refuses it, and the change is dead-lettered.
func (t *table) value(c string, v any) any {
	s, ok := v.(string)
	if !ok || !isZeroDate(s) {
		return v
	}
	switch t.types[c] {
	case "date", "timestamp without time zone", "timestamp with time zone":
		return nil
	}
	return v
}

// isZeroDate reports whether s is MySQL's zero DATE, DATETIME or TIMESTAMP
// as text: "0000-00-00", then nothing or a zero time, fraction optional.
func isZeroDate(s string) bool {
	rest, ok := strings.CutPrefix(s, "0000-00-00")
	if !ok {
		return false
	}
	if rest == "" {
		return true
	}
	if rest[0] != ' ' && rest[0] != 'T' {
		return false
	}
	rest = rest[1:]
	if len(rest) < len("00:00:00") {
		return false
	}
	return strings.Trim(rest, "0:.") == "" && rest[2] == ':' && rest[5] == ':'
}
