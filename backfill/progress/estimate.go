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
// unthrottled), for the column of projections under it. When the copy was
// tried (backfill.Trial), a column says at what rate and in how many key
// ranges.
func PrintEstimate(w io.Writer, rep *backfill.EstimateReport, limit float64) error {
	tried := false
	for _, t := range rep.Tables {
		tried = tried || t.Trial.Ranges > 0
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	header := "table\trows\tsampled\tread rate\tbytes/row"
	if tried {
		header += "\ttrial copy"
	}
	header += "\tprojected"
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
		fmt.Fprintf(tw, "%s\t%s\t%s in %s\t%s\t%.0f", t.Table, rows, count(t.Sampled), duration(t.SampleTook),
			rate(t.RowsPerSecond), t.BytesPerRow)
		if tried {
			fmt.Fprintf(tw, "\t%s", trial(t.Trial))
		}
		fmt.Fprintf(tw, "\t%s", projection(t.Projected))
		if limit > 0 {
			fmt.Fprintf(tw, "\t%s", projection(t.Limited))
		}
		fmt.Fprintln(tw)
	}
	fmt.Fprintf(tw, "total\t%s\t\t\t", count(rep.Rows))
	if tried {
		fmt.Fprint(tw, "\t")
	}
	fmt.Fprintf(tw, "\t%s", projection(rep.Projected))
	if limit > 0 {
		fmt.Fprintf(tw, "\t%s", projection(rep.Limited))
	}
	fmt.Fprintln(tw)
	if err := tw.Flush(); err != nil {
		return err
	}
	if tried {
		_, err := fmt.Fprintf(w, "Projections time a trial copy of each table as `tandem backfill` makes it (%d key ranges or tables\n"+
			"at once, largest first), reading the source and writing into temporary copies of the target tables\n"+
			"that no other session sees, dropped after. Nothing was written.\n", rep.Parallel)
		return err
	}
	_, err := fmt.Fprintf(w, "Projections count reading the source only, %d tables at once, largest first: writing to the\n"+
		"target comes on top, so the copy takes at least this long (the live display of `tandem backfill`\n"+
		"shows the real rate within seconds). Nothing was written.\n", rep.Parallel)
	return err
}

// trial renders a trial copy: its rate, and its key ranges when several.
func trial(t backfill.Trial) string {
	s := rate(t.RowsPerSecond)
	if t.Whole {
		s = count(t.Rows) + " in " + duration(t.Took)
	}
	if t.Ranges > 1 {
		s += fmt.Sprintf(" (%d ranges)", t.Ranges)
	}
	return s
}

func projection(d time.Duration) string {
	if d < 0 {
		return "?"
	}
	return duration(d)
}
