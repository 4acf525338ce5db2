package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"postgres://u:pass@h/db", "postgres://u:xxxxx@h/db"},
		{"mysql://u:pass@h:3306/db", "mysql://u:xxxxx@h:3306/db"},
		{"postgresql://u@h:5432/db", "postgresql://u@h:5432/db"},
		{"postgres://h/db?sslmode=require", "postgres://h/db?sslmode=require"},
		{"postgres://u:p@ss/w?rd#1@h:5432/db", "postgres://u:xxxxx@h:5432/db"},
		{"postgres://u:12#frag@h/db", "postgres://u:xxxxx@h/db"},
		{"postgres://:tok@h/db", "postgres://:xxxxx@h/db"},
		{"postgres://u:p%40ss@h/db?sslmode=disable&password=two&sslpassword=three", "postgres://u:xxxxx@h/db?sslmode=disable&password=xxxxx&sslpassword=xxxxx"},
		{"postgres://h/db?user=u&password=secret", "postgres://h/db?user=u&password=xxxxx"},
		{"postgres://h/db?options=-c%20password%3Dx&a=b", "postgres://h/db?options=xxxxx&a=b"},
		{"host=h port=5432 user=u password=secret dbname=d", "host=h port=5432 user=u password=xxxxx dbname=d"},
		{"host=h password = 'se cret \\' x' dbname=d", "host=h password = xxxxx dbname=d"},
		{"  host=h\tPassword=s3\\ cret sslmode=require ", "  host=h\tPassword=xxxxx sslmode=require "},
		{"host=h user=a@b", "host=h user=a@b"},
		{"u:pass@tcp(127.0.0.1:3306)/shop?parseTime=true", "u:xxxxx@tcp(127.0.0.1:3306)/shop?parseTime=true"},
		{"u:p@ss@unix(/run/mysqld.sock)/shop", "u:xxxxx@unix(/run/mysqld.sock)/shop"},
		{"u@/shop", "u@/shop"},
		{"host=h password='unterminated", "[redacted]"},
		{"Server=h;User Id=u;Password=p;", "[redacted]"},
		{"user:secret@garbage", "[redacted]"},
		{"pwd is hunter2", "[redacted]"},
		{"localhost:5432", "localhost:5432"},
		{"://u:p@h", "[redacted]"},
		{"\x00@\xff", "[redacted]"},
		{"@tcp(h:3306)/shop", "@tcp(h:3306)/shop"},
		{"host=h a1=x password=p", "host=h a1=x password=xxxxx"},
		{"host=", "host="},
		{"host=h password=", "host=h password=xxxxx"},
		{"u:pass@az09(h:1)/shop", "u:xxxxx@az09(h:1)/shop"}, // a protocol of the edges of [a-z0-9]
		{"postgres://u@?password=secret", "postgres://u@?password=xxxxx"},
		{"9p://u:pass@h/db", "9p:xxxxx@h/db"}, // no scheme (a digit first): the first colon starts the password
		{"not a scheme://u:pass@h/db", "not a scheme:xxxxx@h/db"},
	}
	for _, tt := range tests {
		if got := Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSecret_NeverPrintsThePassword(t *testing.T) {
	const pw = "hunter2pw"
	s := Secret("postgres://app:" + pw + "@db:5432/shop")
	const want = "postgres://app:xxxxx@db:5432/shop"
	if s.Value() != string(s) {
		t.Errorf("Value() = %q, want the raw value", s.Value())
	}

	src := Source{Kind: KindPostgres, DSN: s}
	outputs := map[string]string{}
	for _, verb := range []string{"%v", "%s", "%+v", "%#v", "%q", "%x", "%d", "%10s"} {
		outputs["fmt "+verb] = fmt.Sprintf(verb, s)
		outputs["fmt struct "+verb] = fmt.Sprintf(verb, src)
		outputs["fmt pointer "+verb] = fmt.Sprintf(verb, &Config{Source: src})
	}
	outputs["Sprint"] = fmt.Sprint(s, src)
	outputs["Sprintln"] = fmt.Sprintln(s)

	var text, jsonLog bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("connect", "dsn", s, "source", src)
	slog.New(slog.NewJSONHandler(&jsonLog, nil)).Info("connect", "dsn", s, "source", src)
	outputs["slog text"] = text.String()
	outputs["slog json"] = jsonLog.String()

	for _, v := range []any{s, src, &Config{Source: src}} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("json.Marshal(%T): %v", v, err)
		}
		outputs[fmt.Sprintf("json %T", v)] = string(b)
	}

	for name, out := range outputs {
		if strings.Contains(out, pw) {
			t.Errorf("%s shows the password: %s", name, out)
		}
	}
	for _, name := range []string{"fmt %v", "fmt %s", "fmt struct %+v", "slog text", "slog json", "json config.Secret"} {
		if !strings.Contains(outputs[name], want) {
			t.Errorf("%s = %s, want it to contain %s", name, outputs[name], want)
		}
	}
	if got, want := outputs["fmt %#v"], `config.Secret("postgres://app:xxxxx@db:5432/shop")`; got != want {
		t.Errorf("%%#v = %s, want %s", got, want)
	}
	if got, want := outputs["fmt %q"], `"postgres://app:xxxxx@db:5432/shop"`; got != want {
		t.Errorf("%%q = %s, want %s", got, want)
	}
}

func TestParse_ErrorsNeverContainSecrets(t *testing.T) {
	const pw = "hunter2pw"
	vars := map[string]string{
		"SOURCE_DSN": "mysql://app:" + pw + "@h:3306/shop",
		"PW":         pw,
		"SECRET":     pw,
	}
	tests := []struct{ name, yaml, wantIn string }{
		{
			name:   "DSN given as a mapping",
			yaml:   "source:\n  kind: mysql\n  dsn: {url: mysql://app:" + pw + "@h/db}\n",
			wantIn: "tandem.yaml:3:8: source.dsn: must be a string, got a mapping",
		},
		{
			name:   "DSN given as a list",
			yaml:   "source:\n  kind: mysql\n  dsn: [\"mysql://app:" + pw + "@h/db\", \"${SOURCE_DSN}\"]\n",
			wantIn: "tandem.yaml:3:8: source.dsn: must be a string, got a list",
		},
		{
			name:   "unknown key next to a DSN",
			yaml:   "source:\n  dsn: mysql://app:" + pw + "@h/db\n  password: " + pw + "\n  dns: ${SOURCE_DSN}\n",
			wantIn: "tandem.yaml:3:3: source.password: unknown key",
		},
		{
			name:   "DSN as a key",
			yaml:   "source:\n  mysql://app:" + pw + "@h/db: x\n",
			wantIn: "tandem.yaml:2:3: source[\"mysql://app:xxxxx@h/db\"]: unknown key",
		},
		{
			name:   "DSN that does not fit the kind",
			yaml:   "source:\n  kind: postgres\n  dsn: ${SOURCE_DSN}\n  tables: [a.b]\n",
			wantIn: "tandem.yaml:3:8: source.dsn: the URL scheme does not fit kind postgres",
		},
		{
			name:   "literal DSN that does not fit the kind",
			yaml:   "target:\n  kind: postgres\n  dsn: mysql://app:" + pw + "@h/db\n",
			wantIn: "tandem.yaml:3:8: target.dsn: the URL scheme does not fit kind postgres",
		},
		{
			name: "expanded values that fail validation",
			yaml: `source:
  kind: ${SECRET}
  dsn: mysql://u:${PW}@h/db
  tables: ["${SECRET}"]
kafka: {topic_prefix: "${SECRET}/", partitions: "${SECRET}", brokers: ["${SECRET} x"]}
reconcile: {interval: "${SECRET}", tolerate: ["${SECRET}"]}
http: {listen: "${SECRET}"}
mappings:
  - from: ${SECRET}
    name: ${SECRET}
    to: [{table: "${SECRET}.a.b", mode: "${SECRET}", key: ["${SECRET}"], columns: {id: row.id}}]
  - from: ${SECRET}
    name: ${SECRET}
`,
			wantIn: "tandem.yaml:2:9: source.kind: unknown kind (known: mysql, postgres)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("tandem.yaml", []byte(tt.yaml), env(vars))
			if err == nil {
				t.Fatal("Parse = nil error, want errors")
			}
			if strings.Contains(err.Error(), pw) {
				t.Errorf("error shows a secret:\n%v", err)
			}
			if !strings.Contains(err.Error(), tt.wantIn) {
				t.Errorf("errors do not contain %q:\n%v", tt.wantIn, err)
			}
			t.Logf("errors:\n%v", err)
		})
	}
}
