package chaos

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

var embeddedAddr = regexp.MustCompile(`msg="embedded kafka broker started" addr=(\S+)`)

// TestForgedRecord_OnTheEmbeddedBrokersPortIsRefused writes a well-formed
// change that the source never made to the embedded broker's loopback
// port, as another local process could, without tandem's credentials:
// with no authentication, with SCRAM as tandem's user and a guessed
// password, and with PLAIN. Each produce must be refused, tandem must go
// on, and the target must hold exactly the source's rows (the forged row
// absent).
func TestForgedRecord_OnTheEmbeddedBrokersPortIsRefused(t *testing.T) {
	t.Parallel()
	for _, kind := range sources {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			f := openFlow(ctx, t, kind)
			td := f.newTandem(t, nil, "")
			p := td.start("run")
			td.waitStreaming(p, 1)
			w := f.startWriter(ctx)
			td.waitApplied(ctx, 50)
			m := embeddedAddr.FindStringSubmatch(p.p.Out.String())
			if m == nil {
				t.Fatalf("tandem logged no embedded broker address:\n%s", td.output())
			}
			attempts := []struct {
				name string
				opts []kgo.Opt
			}{
				{"no authentication", nil},
				{"SCRAM-SHA-256 as tandem with a guessed password", []kgo.Opt{kgo.SASL(scram.Auth{User: "tandem", Pass: "tandem"}.AsSha256Mechanism())}},
				{"PLAIN as tandem with a guessed password", []kgo.Opt{kgo.SASL(plain.Auth{User: "tandem", Pass: "tandem"}.AsMechanism())}},
			}
			for _, a := range attempts {
				cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(m[1]), kgo.RecordRetries(2)}, a.opts...)...)
				if err != nil {
					t.Fatal(err)
				}
				pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
				err = cl.ProduceSync(pctx, &kgo.Record{Topic: f.forgedTopic, Key: []byte(`{"id":999999999}`), Value: f.forged}).FirstErr()
				pcancel()
				cl.Close()
				if err == nil {
					t.Errorf("a forged record written with %s was accepted", a.name)
				} else {
					t.Logf("forged produce with %s refused: %v", a.name, err)
				}
			}
			converged, rows := f.finish(t, ctx, w, td, false)
			report(t, "a forged change produced to the embedded broker's port three ways without tandem's credentials",
				"refused", len(attempts), "converged after the writer stopped in", converged.Round(time.Millisecond),
				"operations written", f.written(), "rows compared", rows)
		})
	}
}
