package transform

import (
	"fmt"
	"slices"

	"cel.dev/cel-go/cel"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/config"
)

// WithCohorts makes Writes set change.Write.Cohort on every write it
// returns: the cohort (CohortOf) of the source row the write comes from,
// its after-image for what it writes and its before-image for what it takes
// away, or config.DefaultCohort for a mapping without a cohort. Use it when cutover is configured; without it Cohort
// stays "" (a sink applies the write whoever owns the row).
func WithCohorts() Option {
	return func(o *options) { o.cohorts = true }
}

// CohortOf is the text of a cohort value, the one form every part of
// tandem stores and compares cohorts in: NULL is config.DefaultCohort (the
// guard triggers count a NULL cohort column so too, and a write with no
// cohort would be applied whoever owns it), bytes are \x and their
// hex digits (as change.KeyText writes them), and anything else is as
// fmt.Sprint writes it, so int 7 and int64 7 are one cohort "7".
func CohortOf(v any) string {
	switch v := v.(type) {
	case nil:
		return config.DefaultCohort
	case string:
		return v
	case []byte:
		return fmt.Sprintf("\\x%x", v)
	}
	return fmt.Sprint(v)
}

// HasCohort reports whether the mapping has a cohort (mappings[].cohort):
// without one every row of it is config.DefaultCohort.
func (m *Mapping) HasCohort() bool { return m.cohort != "" }

// CohortColumn returns the source column that holds a source row's cohort
// (mappings[].cohort), or "" when the mapping has no cohort.
func (m *Mapping) CohortColumn() string { return m.cohort }

// OutputCohortColumn returns the column of output table (as configured)
// that holds a new row's cohort: its to[].cohort, or else the first of its
// columns whose expression is the mapping's cohort column copied as it is.
// It is "" when the mapping has no cohort, and an error when the table is
// not one of the mapping's outputs or has no such column.
func (m *Mapping) OutputCohortColumn(table string) (string, error) {
	i := slices.IndexFunc(m.outputs, func(o *output) bool { return o.table == table })
	if i < 0 {
		return "", fmt.Errorf("mapping %s has no output table %s", m.Name, table)
	}
	if m.cohort == "" {
		return "", nil
	}
	o := m.outputs[i]
	if o.cohort != "" {
		return o.cohort, nil
	}
	for _, c := range o.columns {
		if c.direct == m.cohort {
			return c.name, nil
		}
	}
	return "", fmt.Errorf("%s: mapping %s: table %s has no cohort column: none of its columns is row.%s as it is; add to[].cohort naming the column of %s that holds the row's cohort, or a column %s: row.%s",
		o.pos, m.Name, table, m.cohort, table, m.cohort, m.cohort)
}

// compileCohort checks a cohort expression (mappings[].cohort or
// to[].cohort, at path) in env and returns the column it names: it must be
// a column as it is, because the fence triggers compute it in SQL.
func compileCohort(env *cel.Env, e config.Expr, path, over string) (string, error) {
	if _, _, err := compile(env, e, path, false); err != nil {
		return "", err
	}
	col := plainColumn(env, e.Text)
	if col == "" {
		return "", fmt.Errorf("%s: %s: must name a column of %s, such as row.merchant_id, got %q: the fence triggers compute the cohort in SQL, so it cannot be an expression",
			e.Pos, path, over, e.Text)
	}
	return col, nil
}

// The images of a change a cohort is read from, for errors.
const (
	beforeImage = "before-image"
	afterImage  = "after-image"
)

// cohortOf returns the cohort of r, an image of a source row of m (image
// says which, for the error): DefaultCohort when m has no cohort.
func (m *Mapping) cohortOf(r change.Row, image string) (string, error) {
	if m.cohort == "" {
		return config.DefaultCohort, nil
	}
	v, ok := r[m.cohort]
	if !ok && image == beforeImage {
		what := "has no cohort column " + m.cohort
		if r == nil {
			what = "is missing, so its cohort (column " + m.cohort + ") is unknown"
		}
		return "", fmt.Errorf("mapping %s: the before-image of the %s row %s: with cutover the source table needs its full before-image (REPLICA IDENTITY FULL on PostgreSQL, binlog_row_image=FULL on MySQL)",
			m.Name, m.From, what)
	}
	if !ok {
		return "", fmt.Errorf("mapping %s: the %s of the %s row has no cohort column %s", m.Name, image, m.From, m.cohort)
	}
	return CohortOf(v), nil
}

// setCohorts sets the Cohort of ws, when m was compiled WithCohorts, to
// the cohort of r, the image (named by image) they come from.
func (m *Mapping) setCohorts(ws []change.Write, r change.Row, image string) error {
	if !m.withCohorts || len(ws) == 0 {
		return nil
	}
	c, err := m.cohortOf(r, image)
	if err != nil {
		return err
	}
	for i := range ws {
		ws[i].Cohort = c
	}
	return nil
}
