package config

import (
	"strings"
	"testing"
)

func TestParse_KafkaRecordSizeAndCompressionDefaults(t *testing.T) {
	k := mustParse(t, minimal, nil).Kafka
	if k.MaxRecordBytes != 16<<20 || k.Compression != "zstd" {
		t.Errorf("max_record_bytes, compression = %d, %q; want 16777216, zstd", k.MaxRecordBytes, k.Compression)
	}
}

func TestParse_KafkaRecordSizeAndCompressionAreChecked(t *testing.T) {
	for _, tc := range []struct {
		name, kafka string
		want        string // the whole error: file, line, column, key, what is wrong
	}{
		{"below 1 KiB", "  max_record_bytes: 1023\n",
			`tandem.yaml:16:21: kafka.max_record_bytes: must be from 1024 (1 KiB) to 536870912 (512 MiB)`},
		{"over 512 MiB", "  max_record_bytes: 536870913\n",
			`tandem.yaml:16:21: kafka.max_record_bytes: must be from 1024 (1 KiB) to 536870912 (512 MiB)`},
		{"not a number", "  max_record_bytes: 16MiB\n",
			`tandem.yaml:16:21: kafka.max_record_bytes: must be a whole number, got "16MiB"`},
		{"unknown codec", "  compression: brotli\n",
			`tandem.yaml:16:16: kafka.compression: must be one of none, gzip, snappy, lz4, zstd, got "brotli"`},
		{"codec in capitals", "  compression: ZSTD\n",
			`tandem.yaml:16:16: kafka.compression: must be one of none, gzip, snappy, lz4, zstd, got "ZSTD"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("tandem.yaml", []byte(minimal+"kafka:\n"+tc.kafka), nil)
			if err == nil || err.Error() != tc.want {
				t.Errorf("Parse = %v\nwant %s", err, tc.want)
			}
		})
	}
}

func TestParse_KafkaRecordSizeBoundsAndEveryCodecAreAccepted(t *testing.T) {
	for _, kafka := range []string{"  max_record_bytes: 1024\n", "  max_record_bytes: 536870912\n"} {
		mustParse(t, minimal+"kafka:\n"+kafka, nil)
	}
	for _, codec := range Compressions {
		if got := mustParse(t, minimal+"kafka:\n  compression: "+codec+"\n", nil).Kafka.Compression; got != codec {
			t.Errorf("compression: %s gives %q", codec, got)
		}
	}
}

func TestValidate_KafkaCompressionBuiltInCodeIsChecked(t *testing.T) {
	c := Default()
	c.Source = Source{Kind: KindPostgres, DSN: "postgres://h/db", Tables: []string{"public.a"}}
	c.Target = Target{Kind: KindPostgres, DSN: "postgres://h/db2", StateSchema: "tandem"}
	c.Kafka.Compression = ""
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), `kafka.compression: must be one of none, gzip, snappy, lz4, zstd, got ""`) {
		t.Errorf("Validate = %v, want the kafka.compression error", err)
	}
}
