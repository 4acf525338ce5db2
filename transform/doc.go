// Package transform compiles a mapping's CEL expressions once and applies
// them to source rows: one source row becomes zero or more target rows (one
// per `to` output whose `when` holds). A Mapping is pure: no I/O, safe for
// concurrent use. The sink and the reconciler read through the same compiled
// Mapping, so a mapping bug shows up as drift instead of hiding in a second
// copy of the logic.
//
// Expressions see the source row as `row`, a map from column name to value:
// integers are int, floating point double, booleans bool, bytea bytes, and
// every other type (numeric, timestamps, text, uuid, json) its text form as
// string. A column missing from the row (a key-only before-image) is an
// evaluation error, never a silent NULL. An update that did not send a
// column (PostgreSQL's unchanged TOASTed values) leaves out every target
// column computed from it, so the target keeps its value: the columns an
// expression reads are found in its syntax tree when it is compiled.
package transform
