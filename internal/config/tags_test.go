package config

import (
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The exported Default* constants and MaxPartitions repeat values of the
// tags; this keeps them equal.
func TestDefault_MatchesTheExportedConstants(t *testing.T) {
	d := Default()
	got := []any{
		d.Source.MySQL.ServerID, d.Source.Postgres.Slot, d.Source.Postgres.Publication,
		d.Kafka.TopicPrefix, d.Kafka.Partitions, d.Kafka.Group, d.Kafka.MaxRecordBytes, d.Kafka.Compression,
		d.Reconcile.Interval, d.Reconcile.ChunkRows, d.Reconcile.MaxRowsPerSecond, d.Reconcile.Settle,
		d.Backfill.ChunkRows, d.Backfill.Parallel, d.Backfill.MaxLagSeconds, d.Backfill.MaxSourceLoad,
		d.HTTP.Listen, d.Target.StateSchema,
	}
	want := []any{
		DefaultServerID, DefaultSlot, DefaultPublication,
		DefaultTopicPrefix, DefaultPartitions, DefaultGroup, DefaultMaxRecordBytes, DefaultCompression,
		DefaultReconcileInterval, DefaultReconcileChunk, DefaultReconcileRate, DefaultReconcileSettle,
		DefaultChunkRows, DefaultParallel, DefaultMaxLagSeconds, DefaultMaxSourceLoad,
		DefaultListen, DefaultStateSchema,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Default() mismatch (-constants +tags):\n%s", diff)
	}
	f := fieldsOf(reflect.TypeFor[Kafka]())[keyOf(reflect.TypeFor[Kafka](), "partitions")]
	for n, want := range map[int]bool{MaxPartitions: true, MaxPartitions + 1: false} {
		if ok, err := checkValue(f.check, reflect.ValueOf(n)); ok != want || err != nil {
			t.Errorf("kafka.partitions check accepts %d = %v, %v; want %v", n, ok, err, want)
		}
	}
}

// TestTags_AreWellFormed reads every tag of every struct a Config holds, so
// that a mistyped tag fails here rather than in Parse.
func TestTags_AreWellFormed(t *testing.T) {
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type)
	walk = func(st reflect.Type) {
		for st.Kind() == reflect.Pointer || st.Kind() == reflect.Slice {
			st = st.Elem()
		}
		if st.Kind() != reflect.Struct || seen[st] || st == posType || st == exprType {
			return
		}
		seen[st] = true
		for _, f := range fieldsOf(st) {
			sf := st.Field(f.index)
			name := st.Name() + "." + sf.Name
			if f.def != "" {
				if _, err := parseScalar(sf.Type, f.def); err != nil {
					t.Errorf("%s: default %q: %v", name, f.def, err)
				}
			}
			if f.check != "" {
				if _, err := checkValue(f.check, reflect.New(sf.Type).Elem()); err != nil {
					t.Errorf("%s: %v", name, err)
				}
				if strings.Contains(f.check, "|") && f.must == "" && f.what == "" {
					t.Errorf("%s: check %q needs a must tag", name, f.check)
				}
			}
			if f.pos != "" && keyOf(st, f.pos) < 0 {
				t.Errorf("%s: pos %q is no key of %s", name, f.pos, st.Name())
			}
			if key, _, keyed := keyedFields(st); keyed && st.Field(key).Type.Kind() != reflect.String {
				t.Errorf("%s: the mapping key must be a string", st.Name())
			}
			if f.key != "" || sf.Tag.Get("mapping") != "" {
				walk(sf.Type)
			}
		}
	}
	walk(reflect.TypeFor[Config]())
	if len(seen) < 10 {
		t.Errorf("walked %d struct types, want every one of Config", len(seen))
	}
}

// A key is one tagged field: decoding, its default, strictness, positions
// and its check all come from the tags.
func TestTags_ANewKeyIsOneDeclaration(t *testing.T) {
	type section struct {
		MaxFoo int `yaml:"max_foo" default:"7" check:">0"`
	}
	decode := func(data string) (section, string) {
		root, perr := parseYAML("t.yaml", []byte(data))
		if perr != nil {
			t.Fatal(perr)
		}
		var s section
		setDefaults(reflect.ValueOf(&s).Elem())
		d := newDecoder("t.yaml", env(map[string]string{"FOO": "3"}))
		d.object(root, "", reflect.ValueOf(&s).Elem(), "")
		v := validator{c: &Config{File: "t.yaml"}}
		v.checkTags(reflect.ValueOf(s), "", Pos{})
		if errs := d.merge(v.errs); len(errs) > 0 {
			return s, errs.Error()
		}
		return s, ""
	}
	tests := []struct {
		yaml    string
		want    int
		wantErr string
	}{
		{yaml: "other: 1\n", want: 7, wantErr: "t.yaml:1:1: other: unknown key (known: max_foo)"},
		{yaml: "max_foo: ~\n", want: 7},
		{yaml: "max_foo: ${FOO}\n", want: 3},
		{yaml: "max_foo: 0\n", wantErr: "t.yaml:1:10: max_foo: must be more than 0"},
		{yaml: "max_foo: x\n", want: 7, wantErr: `t.yaml:1:10: max_foo: must be a whole number, got "x"`},
	}
	for _, tt := range tests {
		got, err := decode(tt.yaml)
		if got.MaxFoo != tt.want || err != tt.wantErr {
			t.Errorf("decode(%q) = %d, %q; want %d, %q", tt.yaml, got.MaxFoo, err, tt.want, tt.wantErr)
		}
	}
}
