package app_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tandemcdc/tandem/internal/app"
	"github.com/tandemcdc/tandem/internal/fixture/shop"
	"github.com/tandemcdc/tandem/internal/testenv"
)

// testCA is a certificate authority made for one test, a server
// certificate it signed for 127.0.0.1 and localhost, and a client
// certificate it signed.
type testCA struct {
	caFile             string          // the CA certificate, PEM
	pool               *x509.CertPool  // the CA
	server             tls.Certificate // for the broker
	clientCert, client string          // the client certificate and its key, PEM files
}

func newTestCA(t *testing.T) testCA {
	t.Helper()
	dir, c := t.TempDir(), testenv.NewCA(t)
	srvDER, srvKey := c.Server(t, "localhost", "127.0.0.1")
	cliDER, cliKey := c.Client(t, "tandem")
	return testCA{
		caFile: testenv.WriteCert(t, dir, "ca.pem", c.DER, 0o600), pool: c.Pool,
		server:     tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey},
		clientCert: testenv.WriteCert(t, dir, "client.pem", cliDER, 0o600), client: testenv.WriteKey(t, dir, "client.key", cliKey, 0o600),
	}
}

// secureKafka starts a broker that takes only TLS connections with a
// client certificate of ca, and only SCRAM-SHA-256 user tandem with
// password pw.
func secureKafka(t *testing.T, ca testCA, pw string) *kfake.Cluster {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{ca.server}, MinVersion: tls.VersionTLS12,
			ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.pool}),
		kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "tandem", pw))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	return cluster
}

// secureConfig is the shop migration's config over cluster, with
// kafka.tls trusting ca and kafka.sasl's password read from a file.
func secureConfig(t *testing.T, m *shop.Migration, slot string, cluster *kfake.Cluster, ca testCA, pw string) string {
	t.Helper()
	pwFile := filepath.Join(t.TempDir(), "kafka-password")
	if err := os.WriteFile(pwFile, []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	yaml := shop.Config(shop.ConfigOptions{Slot: slot, SourceDSN: m.SrcDSN, TargetDSN: m.TgtDSN, Brokers: cluster.ListenAddrs()})
	sec := "  tls: {ca_file: " + ca.caFile + ", cert_file: " + ca.clientCert + ", key_file: " + ca.client + "}\n  sasl: {mechanism: SCRAM-SHA-256, user: tandem, password_file: " + pwFile + "}\n"
	out := strings.Replace(yaml, "  topic_prefix: shop\n", "  topic_prefix: shop\n"+sec, 1)
	if out == yaml {
		t.Fatal("the shop config has no kafka.topic_prefix line to add kafka.tls and kafka.sasl after")
	}
	return out
}

func TestRun_KafkaOverTLSWithSCRAMConverges(t *testing.T) {
	ctx := context.Background()
	const pw = "scram-pw-7f3a"
	ca := newTestCA(t)
	cluster := secureKafka(t, ca, pw)
	m := newMigration(t)
	cfg := parseConfig(t, secureConfig(t, m, slotFor(t, m), cluster, ca, pw))
	start(t, cfg)
	w := &shop.Workload{Src: m.Src, Seed: 19}
	if err := w.History(ctx, 20); err != nil {
		t.Fatal(err)
	}
	if err := w.Run(ctx, 200, 0); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, m, 30*time.Second)
}

func TestRun_AWrongKafkaPasswordIsAClearErrorThatShowsNoSecret(t *testing.T) {
	const pw, wrong = "scram-pw-7f3a", "wrong-pw-91c2"
	ca := newTestCA(t)
	cluster := secureKafka(t, ca, pw)
	m := newMigration(t)
	cfg := parseConfig(t, secureConfig(t, m, slotFor(t, m), cluster, ca, wrong))
	var logs bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := app.Run(ctx, cfg, app.Options{Roles: app.Roles{Capture: true, Apply: true},
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err == nil || ctx.Err() != nil {
		t.Fatalf("Run = %v (context: %v), want a prompt authentication error", err, ctx.Err())
	}
	t.Logf("error: %v\nlogs:\n%s", err, logs.String())
	for _, want := range []string{"kafka", "SASL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	for _, secret := range []string{pw, wrong} {
		if strings.Contains(err.Error()+logs.String(), secret) {
			t.Errorf("the error or the logs show a password")
		}
	}
}

func TestCheck_SaysWhatIsWrongWithKafkaTLSAndSASL(t *testing.T) {
	const pw, wrong = "scram-pw-7f3a", "wrong-pw-91c2"
	ca := newTestCA(t)
	cluster := secureKafka(t, ca, pw)
	m := newMigration(t)
	slot := slotFor(t, m)
	missing := filepath.Join(t.TempDir(), "missing-ca.pem")
	tests := []struct {
		name       string
		yaml       string
		wantObject string // "" for no problem of kafka
		wantWhat   string
	}{
		{"right", secureConfig(t, m, slot, cluster, ca, pw), "", ""},
		{"wrong password", secureConfig(t, m, slot, cluster, ca, wrong), "kafka", "SASL SCRAM-SHA-256 as user \"tandem\""},
		{"missing CA file", strings.Replace(secureConfig(t, m, slot, cluster, ca, pw), ca.caFile, missing, 1), "kafka.tls", "read kafka.tls.ca_file: open " + missing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			problems, err := app.Check(context.Background(), parseConfig(t, tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range problems {
				if strings.HasPrefix(p.Object, "kafka") {
					got = append(got, p.Object)
					if !strings.Contains(p.What, tt.wantWhat) {
						t.Errorf("%s: %q does not say %q", p.Object, p.What, tt.wantWhat)
					}
					if strings.Contains(p.What+p.Fix, pw) || strings.Contains(p.What+p.Fix, wrong) {
						t.Errorf("%s: the problem shows a password", p.Object)
					}
				}
			}
			var want []string
			if tt.wantObject != "" {
				want = []string{tt.wantObject}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("kafka problems (-want +got):\n%s", diff)
			}
		})
	}
}
