package progress

import (
	"context"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/tandemcdc/tandem/backfill"
)

// BarWidth is the width of a bar, between its brackets.
const BarWidth = 30

// ANSI control sequences the display uses.
const (
	cursorUp   = "\x1b[%dA" // move up n lines
	clearLine  = "\x1b[2K"  // erase the whole line
	clearBelow = "\x1b[J"   // erase from the cursor to the end of the screen
)

// Lines renders one frame: a line per table, and a total line when there
// are several tables. In a bar, '#' is durable, '+' emitted but not durable
// yet, '.' still to copy.
func Lines(ps []backfill.TableProgress) []string {
	if len(ps) == 0 {
		return nil
	}
	width := len("total")
	for _, p := range ps {
		width = max(width, len(p.Table.String()))
	}
	out := make([]string, 0, len(ps)+1)
	for _, p := range ps {
		out = append(out, line(width, p.Table.String(), p))
	}
	if len(ps) > 1 {
		out = append(out, line(width, "total", total(ps)))
	}
	return out
}

// total sums the tables' progress: rates add up (tables copy in parallel);
// the estimate is unknown if any unfinished table's is.
func total(ps []backfill.TableProgress) backfill.TableProgress {
	t := backfill.TableProgress{State: backfill.StateDone}
	known, copying, waiting, failed := true, false, false, false
	for _, p := range ps {
		t.Durable += p.Durable
		t.Emitted += p.Emitted
		t.RowsPerSecond += p.RowsPerSecond
		t.Throttled += p.Throttled
		t.Elapsed = max(t.Elapsed, p.Elapsed)
		n, ok := denominator(p)
		known = known && ok
		t.Estimated += n
		switch p.State {
		case backfill.StateCopying, backfill.StateFlushing:
			copying = true
		case backfill.StateWaiting:
			waiting = true
		case backfill.StateFailed:
			failed = true
		}
	}
	switch {
	case failed:
		t.State = backfill.StateFailed
	case copying || waiting && t.Durable > 0:
		t.State = backfill.StateCopying
	case waiting:
		t.State = backfill.StateWaiting
	}
	if !known {
		t.Estimated = 0
	}
	return t
}

// denominator is the row count a table's bar is measured against, and
// whether it is known: the copied rows once done, else the estimate if it
// is not already passed (stale statistics).
func denominator(p backfill.TableProgress) (int64, bool) {
	switch p.State {
	case backfill.StateDone, backfill.StateSkipped:
		return p.Durable, true
	}
	if p.Estimated > 0 && p.Estimated >= p.Emitted {
		return p.Estimated, true
	}
	return 0, false
}

func line(width int, name string, p backfill.TableProgress) string {
	n, known := denominator(p)
	var b strings.Builder
	fmt.Fprintf(&b, "%-*s %s ", width, name, bar(p, n, known))
	pct, of := "?", "?"
	if known {
		pct, of = percent(p.Durable, n), count(n)
	}
	fmt.Fprintf(&b, "%4s %8s / %-8s %10s", pct, count(p.Durable), of, rate(p.RowsPerSecond))
	switch p.State {
	case backfill.StateWaiting:
		b.WriteString("  waiting")
	case backfill.StateCopying:
		b.WriteString("  ETA " + eta(p, n, known))
	case backfill.StateFlushing:
		b.WriteString("  flushing")
	case backfill.StateDone:
		b.WriteString("  done in " + duration(p.Elapsed))
	case backfill.StateSkipped:
		b.WriteString("  copied before (--restart copies it again)")
	case backfill.StateFailed:
		b.WriteString("  failed")
	}
	if p.Throttled > 0 {
		b.WriteString("  throttled " + duration(p.Throttled))
	}
	return b.String()
}

func bar(p backfill.TableProgress, n int64, known bool) string {
	durable, emitted := 0, 0
	if known && n > 0 {
		durable = int(min(p.Durable, n) * BarWidth / n)
		emitted = int(min(p.Emitted, n)*BarWidth/n) - durable
	} else if known { // an empty table, done
		durable = BarWidth
	}
	emitted = max(0, emitted)
	return "[" + strings.Repeat("#", durable) + strings.Repeat("+", emitted) + strings.Repeat(".", BarWidth-durable-emitted) + "]"
}

func percent(done, of int64) string {
	if of <= 0 {
		return "100%"
	}
	return fmt.Sprintf("%d%%", min(done, of)*100/of)
}

func eta(p backfill.TableProgress, n int64, known bool) string {
	if !known || p.RowsPerSecond <= 0 {
		return "?"
	}
	return duration(time.Duration(float64(max(0, n-p.Durable)) / p.RowsPerSecond * float64(time.Second)))
}

// count renders a row count: exact below 100,000, then 123.4k, 12.3M, 1.2G.
func count(n int64) string {
	f := float64(n)
	switch {
	case n < 100_000:
		return fmt.Sprint(n)
	case n < 1_000_000:
		return fmt.Sprintf("%.1fk", f/1e3)
	case n < 1_000_000_000:
		return fmt.Sprintf("%.1fM", f/1e6)
	}
	return fmt.Sprintf("%.1fG", f/1e9)
}

func rate(r float64) string {
	if math.IsInf(r, 1) {
		return "fast"
	}
	return count(int64(math.Round(r))) + "/s"
}

// duration renders to the millisecond under 1 s, the tenth of a second
// under 10 s, else to the second.
func duration(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	if d < 10*time.Second {
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// Display redraws a frame in place on a terminal. Safe for concurrent use.
type Display struct {
	mu     sync.Mutex
	w      io.Writer
	last   []string
	height int // lines of the frame on screen
}

// NewDisplay returns a Display writing to w, a terminal.
func NewDisplay(w io.Writer) *Display { return &Display{w: w} }

// Draw replaces the frame on screen with ps's.
func (d *Display) Draw(ps []backfill.TableProgress) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.last = Lines(ps)
	return d.redraw()
}

func (d *Display) redraw() error {
	var b strings.Builder
	if d.height > 0 {
		fmt.Fprintf(&b, cursorUp, d.height)
	}
	for _, l := range d.last {
		b.WriteString(clearLine + l + "\n")
	}
	b.WriteString(clearBelow)
	d.height = len(d.last)
	_, err := io.WriteString(d.w, b.String())
	return err
}

// Above returns a writer for log lines: each write erases the frame,
// writes to w (the same terminal, e.g. stderr) and draws the frame again
// under it, so logs scroll above the display instead of tearing it.
func (d *Display) Above(w io.Writer) io.Writer { return aboveWriter{d: d, w: w} }

type aboveWriter struct {
	d *Display
	w io.Writer
}

func (a aboveWriter) Write(p []byte) (int, error) {
	a.d.mu.Lock()
	defer a.d.mu.Unlock()
	if a.d.height > 0 {
		if _, err := fmt.Fprintf(a.d.w, cursorUp+clearBelow, a.d.height); err != nil {
			return 0, err
		}
		a.d.height = 0
	}
	n, err := a.w.Write(p)
	if len(a.d.last) > 0 {
		if rerr := a.d.redraw(); err == nil {
			err = rerr
		}
	}
	return n, err
}

// Watch draws snapshot() every interval until ctx ends, then draws a last
// frame, so the final state stays on screen.
func (d *Display) Watch(ctx context.Context, every time.Duration, snapshot func() []backfill.TableProgress) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		_ = d.Draw(snapshot())
		select {
		case <-ctx.Done():
			_ = d.Draw(snapshot())
			return
		case <-t.C:
		}
	}
}
