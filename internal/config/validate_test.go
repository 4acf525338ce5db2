package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestParse_MoreBadInputGivesExactErrors: cases beside
// TestParse_BadInputGivesExactErrors's, each with every error it gives.
func TestParse_MoreBadInputGivesExactErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{
			name: "a key that is not a string",
			yaml: head + "kafka:\n  [a]: 1\n",
			want: "tandem.yaml:9:3: kafka: keys must be strings, got a list",
		},
		{
			name: "an output without its table",
			yaml: head + "mappings:\n  - from: shop.orders\n    to:\n      - key: [id]\n        columns: {id: row.id}\n",
			want: "tandem.yaml:11:9: mappings[0].to[0].table: required: the target table to write",
		},
		{
			name: "an inverse column both computed and ignored",
			yaml: head + "mappings:\n  - from: shop.orders\n    to:\n      - table: t\n        key: [id]\n        columns: {id: row.id}\n" +
				"    inverse:\n      columns: {id: target.t.id, note: \"'x'\"}\n      ignore: [note, other]\n",
			want: `tandem.yaml:16:15: mappings[0].inverse.ignore: "note" is both computed and ignored`,
		},
		{
			name: "a check without its name and source",
			yaml: head + "reconcile:\n  checks:\n    - target: SELECT 1\n      source: \"  \"\n",
			want: "tandem.yaml:10:7: reconcile.checks[0].name: required\n" +
				"tandem.yaml:11:15: reconcile.checks[0].source: required: a query on the source returning one number",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("tandem.yaml", []byte(tt.yaml), nil)
			if err == nil {
				t.Fatalf("Parse = %+v, nil; want errors", c)
			}
			if diff := cmp.Diff(strings.Split(tt.want, "\n"), strings.Split(err.Error(), "\n")); diff != "" {
				t.Errorf("errors mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCheckMessage_SaysWhatEachCheckTagAccepts: the message of each form
// a check tag can take, for keys declared with them (tags_test.go checks
// the tags in use are well formed).
func TestCheckMessage_SaysWhatEachCheckTagAccepts(t *testing.T) {
	for _, tc := range []struct {
		f    field
		want string
	}{
		{field{check: "1..10000"}, "must be from 1 to 10000"},
		{field{check: ">0"}, "must be more than 0"},
		{field{check: ">=0"}, "must be 0 or more"},
		{field{check: "a|b|c"}, "must be a or b or c"},
		{field{check: ">0", what: "a positive count"}, "must be a positive count"},
		{field{check: ">0", what: "ignored", must: "be set, or -1"}, "must be set, or -1"},
	} {
		if got := checkMessage(tc.f); got != tc.want {
			t.Errorf("checkMessage(%+v) = %q, want %q", tc.f, got, tc.want)
		}
	}
}

// TestParse_AliasesThatExpandPastTheBudgetStopThere: a file whose
// aliases expand to more than maxNodes values is refused where the
// budget ran out, and nothing past it is decoded.
func TestParse_AliasesThatExpandPastTheBudgetStopThere(t *testing.T) {
	var cols []string
	for i := range 20 {
		cols = append(cols, "c"+string(rune('a'+i))+": row.a")
	}
	// 100 mappings of 100 outputs of 20 columns: over 200,000 values.
	y := head + "mappings:\n  - &m {from: shop.orders, to: [&o {table: t, key: [ca], columns: &c {" + strings.Join(cols, ", ") + "}}" +
		strings.Repeat(", *o", 99) + "]}\n" + strings.Repeat("  - *m\n", 99)
	_, err := Parse("tandem.yaml", []byte(y), nil)
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("Parse = %v, want Errors", err)
	}
	var budget []Error
	for _, e := range es {
		if strings.HasPrefix(e.Msg, "too many values") {
			budget = append(budget, *e)
		}
	}
	want := []Error{{Pos: at(9, 218), Path: "mappings[39].to[94].columns.cn", Msg: "too many values once aliases are expanded (at most 100000)"}}
	if diff := cmp.Diff(want, budget); diff != "" {
		t.Errorf("budget errors (-want +got):\n%s", diff)
	}
	// The mappings the budget cut: [39] with part of its outputs, from [40]
	// on nothing (from and to required); the first problems stand first.
	if len(es) != 182 {
		t.Errorf("%d problems, want 182:\n%v", len(es), err)
	}
}

// TestValidVarName_LettersDigitsAndUnderscoreNotFirstDigit: ${NAME}
// takes a shell variable's name.
func TestValidVarName_LettersDigitsAndUnderscoreNotFirstDigit(t *testing.T) {
	for name, want := range map[string]bool{
		"a": true, "z": true, "A": true, "Z": true, "_": true, "a0": true, "_9": true, "DB_PASSWORD": true,
		"": false, "0a": false, "9": false, "a-b": false, "a.b": false,
		"`": false, "{": false, "@": false, "[": false, "a/": false, "a:": false,
	} {
		if got := validVarName(name); got != want {
			t.Errorf("validVarName(%q) = %v, want %v", name, got, want)
		}
	}
}

// TestErrors_ALineOfTheLimitIsNotCutAndTwentyProblemsAreAllShown: the
// limits of Errors.Error are inclusive.
func TestErrors_ALineOfTheLimitIsNotCutAndTwentyProblemsAreAllShown(t *testing.T) {
	var es Errors
	for i := range maxShownErrors {
		es = append(es, &Error{Pos: Pos{File: "f", Line: i + 1}, Path: "p", Msg: "m"})
	}
	prefix := "f:1: p: "
	es[0].Msg = strings.Repeat("x", maxErrorLine-len(prefix))
	lines := strings.Split(es.Error(), "\n")
	if len(lines) != maxShownErrors || lines[0] != prefix+es[0].Msg || lines[19] != "f:20: p: m" {
		t.Errorf("Error() = %d lines, first %q..., last %q; want 20, the first whole", len(lines), lines[0][:20], lines[len(lines)-1])
	}
}

// TestSortErrors_ByLineThenColumnThoseWithoutALineLast: problems are
// listed in file order, the file-wide ones (no line) after them, each
// group in the order found.
func TestSortErrors_ByLineThenColumnThoseWithoutALineLast(t *testing.T) {
	es := Errors{
		{Path: "source.kind"},
		{Pos: Pos{Line: 9, Col: 3}, Path: "b"},
		{Path: "target.dsn"},
		{Pos: Pos{Line: 2, Col: 7}, Path: "c"},
		{Pos: Pos{Line: 2, Col: 1}, Path: "d"},
		{Pos: Pos{Line: 9, Col: 3}, Path: "e"},
	}
	sortErrors(es)
	var got []string
	for _, e := range es {
		got = append(got, e.Path)
	}
	if diff := cmp.Diff([]string{"d", "c", "b", "e", "source.kind", "target.dsn"}, got); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
}

// TestParse_NothingInsideAValueThatCouldNotBeDecodedIsReported: a
// section of the wrong kind is one problem, not also its missing keys.
func TestParse_NothingInsideAValueThatCouldNotBeDecodedIsReported(t *testing.T) {
	_, err := Parse("tandem.yaml", []byte("source: embedded\ntarget: {kind: postgres, dsn: postgres://h/db}\n"), nil)
	if err == nil || err.Error() != "tandem.yaml:1:9: source: must be a mapping, got a string" {
		t.Errorf("Parse error = %v, want only the one about source", err)
	}
}

// TestParse_AKeyMayBeAnAlias: an alias as a key is the string it names.
func TestParse_AKeyMayBeAnAlias(t *testing.T) {
	c := mustParse(t, head+"kafka:\n  group: &k partitions\n  *k : 3\n", nil)
	if got := []any{c.Kafka.Group, c.Kafka.Partitions}; !cmp.Equal(got, []any{"partitions", 3}) {
		t.Errorf("kafka group, partitions = %v, want [partitions 3]", got)
	}
}

// TestPassword_EveryPrintedFormIsXxxxxOrEmpty: a Password prints as
// "xxxxx" through fmt (any verb), slog and JSON, and as "" when empty.
func TestPassword_EveryPrintedFormIsXxxxxOrEmpty(t *testing.T) {
	p, empty := Password("hunter2"), Password("")
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}})).Info("login", "password", p, "empty", empty)
	j, err := json.Marshal(map[string]Password{"p": p, "e": empty})
	if err != nil {
		t.Fatal(err)
	}
	got := []string{fmt.Sprint(p), fmt.Sprintf("%s|%q|%v|%10s|%#v", p, p, p, p, p), fmt.Sprintf("%s|%#v", empty, empty), strings.TrimSpace(buf.String()), string(j)}
	want := []string{"xxxxx", `xxxxx|"xxxxx"|xxxxx|     xxxxx|config.Password("xxxxx")`, `|config.Password("")`,
		`level=INFO msg=login password=xxxxx empty=""`, `{"e":"","p":"xxxxx"}`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("printed (-want +got):\n%s", diff)
	}
	if p.Value() != "hunter2" {
		t.Errorf("Value() = %q, want the password", p.Value())
	}
}

// TestWhatOf_AnUnsignedNumberSaysItsRange and checkValue reads any
// unsigned number, the largest too.
func TestWhatOf_AnUnsignedNumberSaysItsRange(t *testing.T) {
	got := []string{whatOf(reflect.TypeFor[uint16]()), whatOf(reflect.TypeFor[uint32]())}
	if diff := cmp.Diff([]string{"a whole number from 0 to 65535", "a whole number from 0 to 4294967295"}, got); diff != "" {
		t.Errorf("whatOf (-want +got):\n%s", diff)
	}
	if ok, err := checkValue(">0", reflect.ValueOf(uint64(math.MaxUint64))); !ok || err != nil {
		t.Errorf("checkValue(>0, MaxUint64) = %v, %v; want true", ok, err)
	}
}

// TestValidate_ACheckIsPlacedAtItsSectionsPosition: in a config built in
// code, a key that fails its check is placed at its section's Pos.
func TestValidate_ACheckIsPlacedAtItsSectionsPosition(t *testing.T) {
	c := &Config{
		Source: Source{Kind: KindPostgres, DSN: "postgres://h/db", Tables: []string{"public.a"}},
		Target: Target{Kind: KindPostgres, DSN: "postgres://h/db2"},
		Mappings: []Mapping{{From: "public.a", To: []Output{{
			Table: "a", Key: []string{"id"}, Columns: []Column{{Name: "id", Expr: Expr{Text: "row.id"}}},
		}}}},
		Cutover: &Cutover{},
	}
	c.SetDefaults()
	c.Cutover.MaxLagSeconds, c.Cutover.Pos = 0, Pos{File: "x.yaml", Line: 30, Col: 10}
	want := "x.yaml:30:10: cutover.max_lag_seconds: must be more than 0"
	if err := c.Validate(); err == nil || err.Error() != want {
		t.Errorf("Validate = %v\nwant %s", err, want)
	}
}

// TestParse_DSNsThatAreNotURLsAreTakenAsTheyAre: libpq's key=value form
// and the Go MySQL driver's form have no scheme to check.
func TestParse_DSNsThatAreNotURLsAreTakenAsTheyAre(t *testing.T) {
	c := mustParse(t, "source: {kind: postgres, dsn: \"host=h dbname=shop\", tables: [shop.orders]}\n"+
		"target: {kind: mysql, dsn: \"u:pw@tcp(h:3306)/app\"}\n", nil)
	if got := []string{c.Source.DSN.Value(), c.Target.DSN.Value()}; !cmp.Equal(got, []string{"host=h dbname=shop", "u:pw@tcp(h:3306)/app"}) {
		t.Errorf("DSNs = %q", got)
	}
}

// TestValidate_AnExpressionWithoutAPositionIsPlacedAtItsOutput: in a
// config built in code, an empty when is placed at its output's Pos.
func TestValidate_AnExpressionWithoutAPositionIsPlacedAtItsOutput(t *testing.T) {
	c := &Config{
		Source: Source{Kind: KindPostgres, DSN: "postgres://h/db", Tables: []string{"public.a"}},
		Target: Target{Kind: KindPostgres, DSN: "postgres://h/db2"},
		Mappings: []Mapping{{From: "public.a", To: []Output{{
			Table: "a", Key: []string{"id"}, Columns: []Column{{Name: "id", Expr: Expr{Text: "row.id"}}},
			When: &Expr{Text: " "}, Pos: Pos{File: "x.yaml", Line: 5, Col: 7},
		}}}},
	}
	c.SetDefaults()
	want := "x.yaml:5:7: mappings[0].to[0].when: must not be empty"
	if err := c.Validate(); err == nil || err.Error() != want {
		t.Errorf("Validate = %v\nwant %s", err, want)
	}
}

// TestValidListen_HostAndAPortFrom0To65535: http.listen's port.
func TestValidListen_HostAndAPortFrom0To65535(t *testing.T) {
	for l, want := range map[string]bool{":0": true, ":65535": true, "127.0.0.1:9187": true, ":65536": false, ":-1": false, ":x": false, "localhost": false} {
		if got := validListen(l); got != want {
			t.Errorf("validListen(%q) = %v, want %v", l, got, want)
		}
	}
}
