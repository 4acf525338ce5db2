package main

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandemcdc/tandem/internal/fixture/shop"
	"github.com/tandemcdc/tandem/internal/testenv"
)

// TestCheck_AHostThatNeverAnswersFailsWithinTheConnectTimeout points
// `tandem check` at a source, then a target, behind a path that hangs (the
// connection accepted, nothing ever answered): it exits 1 within about
// the DSN's connect_timeout, once, not once per check, saying which
// address did not answer, instead of waiting for ever.
func TestCheck_AHostThatNeverAnswersFailsWithinTheConnectTimeout(t *testing.T) {
	ctx := context.Background()
	m, err := shop.Open(ctx, testenv.NewDatabase(t), testenv.NewDatabase(t), true)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	const connectTimeout = 2 * time.Second
	blackholed := func(dsn string) (string, *testenv.FaultProxy) {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		p := testenv.NewFaultProxy(t, u.Host)
		p.Blackhole()
		u.Host = p.Addr()
		q := u.Query()
		q.Set("connect_timeout", "2")
		u.RawQuery = q.Encode()
		return u.String(), p
	}
	for _, side := range []string{"source", "target"} {
		t.Run(side, func(t *testing.T) {
			src, tgt := m.SrcDSN, m.TgtDSN
			var p *testenv.FaultProxy
			if side == "source" {
				src, p = blackholed(src)
			} else {
				tgt, p = blackholed(tgt)
			}
			path := filepath.Join(t.TempDir(), "tandem.yaml")
			if err := os.WriteFile(path, []byte(shop.Config(shop.ConfigOptions{SourceDSN: src, TargetDSN: tgt})), 0o600); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			start := time.Now()
			code := run([]string{"check", "-c", path}, &stdout, &stderr)
			took := time.Since(start)
			out := stdout.String() + stderr.String()
			if code != exitFailed {
				t.Errorf("exit code %d, want %d\n%s", code, exitFailed, out)
			}
			if took > connectTimeout+5*time.Second {
				t.Errorf("check took %s, want about the connect timeout (%s)", took, connectTimeout)
			}
			line := ""
			for l := range strings.Lines(out) {
				if strings.HasPrefix(l, "FAIL  "+side+": cannot connect") {
					line = l
				}
			}
			if !strings.Contains(line, p.Addr()) || !strings.Contains(line, "timeout") {
				t.Errorf("no FAIL line says %s at %s did not answer in time:\n%s", side, p.Addr(), out)
			}
			if strings.Contains(out, testenv.Password) {
				t.Errorf("the output holds the password:\n%s", out)
			}
			t.Logf("check returned after %s: %s", took.Round(time.Millisecond), strings.TrimSpace(line))
		})
	}
}
