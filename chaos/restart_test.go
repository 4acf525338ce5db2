package chaos

import (
	"context"
	"testing"
	"time"

	"github.com/tandemcdc/tandem/internal/testenv"
)

// TestSourceRestart_FastThenImmediateLosesNothing restarts the source
// server under the writer, on a server of the scenario's own: first a
// clean shutdown (pg_ctl -m fast; SIGTERM to mariadbd), then a crash
// (pg_ctl -m immediate; SIGKILL). Capture must reconnect with its backoff
// and resume from its slot or its saved binlog position each time, and the
// target converge. The writer's transactions that the restarts cut off
// are retried, as an application does.
func TestSourceRestart_FastThenImmediateLosesNothing(t *testing.T) {
	t.Parallel()
	for _, kind := range sources {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			testSourceRestart(t, kind)
		})
	}
}

// restartable is a source server of a scenario's own.
type restartable interface {
	Restart(ctx context.Context) error
	RestartFast(ctx context.Context) error
	CreateDatabase(ctx context.Context, name string) (string, error)
	Stop() error
}

func testSourceRestart(t *testing.T, kind string) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var srv restartable
	var err error
	if kind == postgres {
		srv, err = testenv.StartPostgreSQL(ctx, testenv.PostgresOptions{})
	} else {
		srv, err = testenv.StartMariaDB(ctx, testenv.MariaDBOptions{})
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	srcDSN, err := srv.CreateDatabase(ctx, "chaos_src")
	if err != nil {
		t.Fatal(err)
	}
	f := openFlowOn(ctx, t, kind, srcDSN, testenv.NewDatabase(t))
	td := f.newTandem(t, nil, "")
	p := td.start("run")
	td.waitStreaming(p, 1)
	w := f.startWriter(ctx)
	td.waitApplied(ctx, 50)

	var measured []any
	for _, mode := range []struct {
		name    string
		restart func(context.Context) error
	}{{"fast", srv.RestartFast}, {"immediate", srv.Restart}} {
		streams := p.logged(f.streaming)
		at := time.Now()
		if err := mode.restart(ctx); err != nil {
			t.Fatal(err)
		}
		serverBack := time.Since(at)
		back := since(t, "capture to stream again after the "+mode.name+" restart", at, time.Minute, func() (bool, error) {
			return p.logged(f.streaming) > streams, td.alive()
		})
		base := td.applied(ctx)
		applying := td.untilApplied(ctx, "apply to make progress again", at, base)
		measured = append(measured, mode.name+": server back after", serverBack.Round(time.Millisecond),
			"streaming again after", back.Round(time.Millisecond), "applying again after", applying.Round(time.Millisecond))
	}
	// Enough rows for the comparison to prove something, however slowly a
	// loaded machine wrote through the restarts.
	td.waitApplied(ctx, 100)
	converged, rows := f.finish(t, ctx, w, td, true)
	failures, _ := w.stop()
	measured = append(measured, "converged after the writer stopped in", converged.Round(time.Millisecond),
		"writer transactions cut off and retried", failures, "operations written", f.written(), "rows compared", rows)
	report(t, "a fast then an immediate restart of the source server", measured...)
}
