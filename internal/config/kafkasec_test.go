package config

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestParse_KafkaTLSAndSASL(t *testing.T) {
	const pw = "kafka-pw-42"
	pwFile := writeSecret(t, "kafka", pw+"\n")
	c := mustParse(t, minimal+`kafka:
  brokers: k1:9093
  tls: {ca_file: ca.pem, cert_file: client.pem, key_file: client.key, server_name: kafka.internal}
  sasl: {mechanism: SCRAM-SHA-512, user: tandem, password_file: `+pwFile+`}
`, nil)
	wantTLS := &KafkaTLS{CAFile: "ca.pem", CertFile: "client.pem", KeyFile: "client.key", ServerName: "kafka.internal"}
	if diff := cmp.Diff(wantTLS, c.Kafka.TLS); diff != "" {
		t.Errorf("kafka.tls (-want +got):\n%s", diff)
	}
	wantSASL := &KafkaSASL{Mechanism: SASLScramSHA512, User: "tandem", Password: pw}
	if diff := cmp.Diff(wantSASL, c.Kafka.SASL, cmpopts.IgnoreFields(KafkaSASL{}, "Pos")); diff != "" {
		t.Errorf("kafka.sasl (-want +got):\n%s", diff)
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		if out := fmt.Sprintf(verb, c.Kafka); strings.Contains(out, pw) {
			t.Errorf("fmt %s of kafka shows the password: %s", verb, out)
		}
	}
}

func TestParse_KafkaTLSAndSASLErrors(t *testing.T) {
	const pw = "kafka-pw-42"
	tests := []struct{ name, kafka, want string }{
		{"unknown mechanism", "  brokers: k:9092\n  sasl: {mechanism: GSSAPI, user: u, password: " + pw + "}\n",
			`kafka.sasl.mechanism: must be one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, got "GSSAPI"`},
		{"no password", "  brokers: k:9092\n  sasl: {mechanism: PLAIN, user: u}\n",
			"kafka.sasl.password: required (or password_file: a file holding it)"},
		{"both password forms", "  brokers: k:9092\n  sasl: {mechanism: PLAIN, user: u, password: " + pw + ", password_file: /nonexistent}\n",
			"kafka.sasl.password_file: set either password or password_file, not both"},
		{"a certificate without its key", "  brokers: k:9092\n  tls: {cert_file: c.pem}\n",
			"kafka.tls: set both cert_file and key_file"},
		{"the embedded broker", "  tls: {}\n",
			"kafka.brokers: required with kafka.tls or kafka.sasl"},
		{"not a boolean", "  brokers: k:9092\n  tls: {insecure_skip_verify: maybe}\n",
			`kafka.tls.insecure_skip_verify: must be true or false, got "maybe"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("tandem.yaml", []byte(minimal+"kafka:\n"+tt.kafka), nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse error = %v, want it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), pw) {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}
