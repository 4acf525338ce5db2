package chaos

import (
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/tandemcdc/tandem/internal/poll"
	"github.com/tandemcdc/tandem/internal/testenv"
)

// rngFor is the seeded random source of scenario t: -chaos.seed (logged)
// and the scenario's name, so that each scenario draws its own moments and
// a rerun with the same seed draws the same ones.
func rngFor(t *testing.T) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(t.Name()))
	t.Logf("seed %d (rerun with -chaos.seed %d)", *seedFlag, *seedFlag)
	return rand.New(rand.NewPCG(*seedFlag, h.Sum64()))
}

// TestKillNine_EachRoleAtRandomMomentsLosesAndDoublesNothing kills tandem
// with SIGKILL four times under a steady writer, at seeded random moments,
// and restarts it each time: `tandem run` with its embedded broker, and
// `tandem capture` and `tandem apply` as separate processes beside an
// external broker, each role killed at least once. One kill comes while
// apply is held up (the target tables locked) and capture goes on: the most
// changes captured but not applied, exactly those that a source position
// acknowledged before the target commit would lose. The target must then
// equal the source, and the acknowledged source position reach the last
// write.
func TestKillNine_EachRoleAtRandomMomentsLosesAndDoublesNothing(t *testing.T) {
	t.Parallel()
	for _, kind := range sources {
		for _, verbs := range [][]string{{"run"}, {"capture", "apply"}} {
			t.Run(kind+"/"+strings.Join(verbs, "+"), func(t *testing.T) {
				t.Parallel()
				testKillNine(t, kind, verbs)
			})
		}
	}
}

func testKillNine(t *testing.T, kind string, verbs []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	f := openFlow(ctx, t, kind)
	var brokers []string
	if len(verbs) > 1 {
		brokers = newBroker(t, false).Addrs()
	}
	td := f.newTandem(t, brokers, "")
	running := map[string]*proc{}
	for _, v := range verbs {
		running[v] = td.start(v)
	}
	td.waitStreaming(running[verbs[0]], 1)
	w := f.startWriter(ctx)

	rng := rngFor(t)
	victims := append([]string(nil), verbs...) // each role once, then random ones
	for len(victims) < 4 {
		victims = append(victims, verbs[rng.IntN(len(verbs))])
	}
	rng.Shuffle(len(victims), func(i, j int) { victims[i], victims[j] = victims[j], victims[i] })
	const heldAt = 2 // the kill that comes while apply is held up
	var slowest time.Duration
	for i, verb := range victims {
		var release func()
		at := time.Duration(200+rng.IntN(2800)) * time.Millisecond
		if i == heldAt {
			release = f.holdTarget(t, ctx)
			base := f.written()
			testenv.WaitFor(t, "writes while apply is held up", time.Minute, func() (bool, error) { return f.written() >= base+100, td.alive() })
		} else if err := poll.Sleep(ctx, at); err != nil { // a random moment
			t.Fatal(err)
		}
		if verb != "capture" {
			td.waitJoined(running[verb])
		}
		td.kill9(running[verb])
		if release != nil {
			release()
		}
		restarted := time.Now()
		running[verb] = td.start(verb)
		back := "-"
		if verb != "apply" {
			td.waitStreaming(running[verb], 1)
			took := time.Since(restarted)
			slowest, back = max(slowest, took), took.Round(time.Millisecond).String()
		}
		moment := at.String()
		if i == heldAt {
			moment = "apply held up"
		}
		t.Logf("kill %d: tandem %s at %s; %d operations written; streaming again %s after the restart", i+1, verb, moment, f.written(), back)
	}
	td.waitApplied(ctx, 50)
	converged, rows := f.finish(t, ctx, w, td, false)
	report(t, fmt.Sprintf("4 kill -9 of %s (seed %d)", strings.Join(victims, ", "), *seedFlag),
		"streaming again within", slowest.Round(time.Millisecond), "converged after the writer stopped in", converged.Round(time.Millisecond),
		"operations written", f.written(), "rows compared", rows)
}
