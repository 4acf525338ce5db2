package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParse_KafkaEnvelopeTakesDebeziumOptionNames(t *testing.T) {
	c := mustParse(t, minimal+`kafka:
  envelope:
    decimal.handling.mode: precise
    time.precision.mode: connect
    tombstones.on.delete: false
    schemas.enable: true
`, nil)
	want := Envelope{DecimalHandling: "precise", TimePrecision: "connect", TombstonesOnDel: "false", SchemasEnable: "true"}
	if diff := cmp.Diff(want, c.Kafka.Envelope); diff != "" {
		t.Errorf("Envelope (-want +got):\n%s", diff)
	}
	if c.Kafka.Envelope.Tombstones() || !c.Kafka.Envelope.Schemas() {
		t.Errorf("Tombstones() = %v, Schemas() = %v; want false, true", c.Kafka.Envelope.Tombstones(), c.Kafka.Envelope.Schemas())
	}
}

func TestParse_KafkaEnvelopeDefaultsAreDebeziumsButDecimalString(t *testing.T) {
	e := mustParse(t, minimal, nil).Kafka.Envelope
	want := Envelope{DecimalHandling: "string", TimePrecision: "adaptive", TombstonesOnDel: "true", SchemasEnable: "false"}
	if diff := cmp.Diff(want, e); diff != "" {
		t.Errorf("Envelope (-want +got):\n%s", diff)
	}
	if !e.Tombstones() || e.Schemas() {
		t.Errorf("Tombstones() = %v, Schemas() = %v; want true, false", e.Tombstones(), e.Schemas())
	}
}

func TestParse_KafkaEnvelopeRejectsUnknownModes(t *testing.T) {
	_, err := Parse("tandem.yaml", []byte(minimal+"kafka:\n  envelope:\n    time.precision.mode: nanos\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "kafka.envelope.time.precision.mode") || !strings.Contains(err.Error(), "adaptive_time_microseconds") {
		t.Errorf("Parse: %v, want an error naming the key and the modes", err)
	}
}

// defaultEnvelope is kafka.envelope with every key absent.
var defaultEnvelope = Envelope{DecimalHandling: "string", TimePrecision: "adaptive", TombstonesOnDel: "true", SchemasEnable: "false"}
