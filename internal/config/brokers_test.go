package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParse_KafkaBrokersAsOneCommaSeparatedString(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		vars map[string]string
		want []string
	}{
		{name: "a list", yaml: "kafka: {brokers: [k1:9092, k2:9092]}\n", want: []string{"k1:9092", "k2:9092"}},
		{name: "one string", yaml: "kafka: {brokers: k1:9092}\n", want: []string{"k1:9092"}},
		{name: "a comma-separated string", yaml: "kafka: {brokers: \"k1:9092, k2:9092,,k3:9092 \"}\n", want: []string{"k1:9092", "k2:9092", "k3:9092"}},
		{name: "from the environment", yaml: "kafka:\n  brokers: ${BROKERS}\n", vars: map[string]string{"BROKERS": "k1:9092,k2:9092"}, want: []string{"k1:9092", "k2:9092"}},
		{name: "an empty variable is the embedded broker", yaml: "kafka:\n  brokers: ${BROKERS}\n", vars: map[string]string{"BROKERS": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustParse(t, minimal+tt.yaml, tt.vars)
			if diff := cmp.Diff(tt.want, c.Kafka.Brokers); diff != "" {
				t.Errorf("kafka.brokers (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParse_KafkaBrokersStringItemsAreValidated(t *testing.T) {
	_, err := Parse("tandem.yaml", []byte(minimal+"kafka:\n  brokers: \"k1:9092,k 2:9092\"\n"), nil)
	want := `tandem.yaml:16:12: kafka.brokers[1]: must be host:port, got "k 2:9092"`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Parse error = %v, want it to contain %q", err, want)
	}
}
