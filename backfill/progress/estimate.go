package progress

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/tandemcdc/tandem/backfill"
)

// PrintEstimate writes the projection of `tandem backfill --estimate`: a
// line per table and the total. limit is backfill.max_rows_per_second (0:
// unthrottled), for the column of projections under it.
func PrintEstimate(w io.Writer, rep *backfill.EstimateReport, limit float64) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	header := "table\trows\tsampled\tread rate\tbytes/row\tprojected"
	if limit > 0 {
		header += fmt.Sprintf("\tat max %s", rate(limit))
	}
	fmt.Fprintln(tw, header)
	for _, t := range rep.Tables {
		rows := count(t.Rows)
		switch {
		case t.Exact:
			rows += " (exact)"
		case t.AtLeast:
			rows = ">= " + rows + " (no statistics)"
		default:
			rows = "~" + rows
		}
		fmt.Fprintf(tw, "%s\t%s\t%s in %s\t%s\t%.0f\t%s", t.Table, rows, count(t.Sampled), duration(t.SampleTook),
			rate(t.RowsPerSecond), t.BytesPerRow, projection(t.Projected))
		if limit > 0 {
			fmt.Fprintf(tw, "\t%s", projection(t.Limited))
		}
		fmt.Fprintln(tw)
	}
	fmt.Fprintf(tw, "total\t%s\t\t\t\t%s", count(rep.Rows), projection(rep.Projected))
	if limit > 0 {
		fmt.Fprintf(tw, "\t%s", projection(rep.Limited))
	}
	fmt.Fprintln(tw)
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "Projections count reading the source only, %d tables at once, largest first: writing to the\n"+
		"target comes on top, so the copy takes at least this long (the live display of `tandem backfill`\n"+
		"shows the real rate within seconds). Nothing was written.\n", rep.Parallel)
	return err
}

func projection(d time.Duration) string {
	if d < 0 {
		return "?"
	}
	return duration(d)
}
