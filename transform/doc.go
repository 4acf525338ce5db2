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
//
// Compiled WithSource (as `tandem check` and `tandem run` do, from the real
// source table), row is a typed object: each column a field of its nullable
// scalar type, so a misspelt column or `row.total * 100.0` on decimal text
// is a compile error at its file:line:col instead of a dead letter at run
// time. Columns are fields (row.total, or row.`odd name`), not map keys.
//
// lookup(table, {column: value, ...}) returns the one target row with those
// values (ids the new system assigned), cached for a while once found. No
// such row is an evaluation error (a dead letter, replayable once the row
// exists); a target that cannot answer is ErrLookupUnavailable, which the
// applier retries instead.
//
// An inverse maps the target rows back to the source row: each output's row
// is a variable named by its table without the schema (an empty map when its
// `when` did not hold). RoundTrip runs a row forward and back and names each
// source column that did not come back Equal; `tandem check` and `tandem
// preview` use it to catch a mapping that loses data.
//
// Cutover switches cohorts of rows between the schemas. A mapping's cohort
// (mappings[].cohort) is a source column as it is, such as
// row.merchant_id, because the fence triggers compute it in SQL; CohortOf
// is the text of its value, and a mapping without one is
// config.DefaultCohort. Compiled WithCohorts, Writes stamps every write
// with its row's cohort so the sink applies it only while the stream owns
// it. A Reverse runs a mapping backwards for the reverse stream: a change
// of a new row rebuilds its old row from the current new rows through the
// inverse:
//
//	m, _ := transform.Compile(0, cfg.Mappings[0], transform.WithCohorts())
//	back, err := transform.NewReverse(m, []string{"id"}) // shop.orders' key
//	// for each change ev of a table in back.Tables():
//	ws, err := back.Writes(ctx, "public.payments", ev, readNewRow)
//	// ws: an upsert of the shop.orders row, or its delete once its
//	// public.orders row is gone, each with Cohort set.
package transform
