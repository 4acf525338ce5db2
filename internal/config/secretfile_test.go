package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// writeSecret writes content to a file in a test directory and returns
// its path.
func writeSecret(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParse_SecretsFromFiles(t *testing.T) {
	const pw = "s3cr3t-from-file"
	src := writeSecret(t, "source-dsn", "postgres://u:"+pw+"@h/db\n") // as a Kubernetes Secret is often written
	tgt := writeSecret(t, "target-dsn", "mysql://u:"+pw+"@h:3306/app")
	data := strings.Replace(minimal, "  dsn: postgres://u:pw@h/db\n", "  dsn_file: ${SRC}\n", 1)
	data = strings.Replace(data, "  dsn: mysql://u:pw@h:3306/app\n", "  dsn_file: "+tgt+"\n", 1)
	c := mustParse(t, data, map[string]string{"SRC": src})
	got := []string{c.Source.DSN.Value(), c.Target.DSN.Value()}
	want := []string{"postgres://u:" + pw + "@h/db", "mysql://u:" + pw + "@h:3306/app"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("DSNs (-want +got):\n%s", diff)
	}
}

func TestParse_SecretFileErrorsNameTheKeyAndPathButNoContent(t *testing.T) {
	const pw = "s3cr3t-from-file"
	wrongKind := writeSecret(t, "dsn", "mysql://u:"+pw+"@h/db")
	empty := writeSecret(t, "empty", " \n")
	missing := filepath.Join(t.TempDir(), "nope")
	tests := []struct {
		name, replace, want string
	}{
		{name: "missing file", replace: "  dsn_file: " + missing + "\n",
			want: `tandem.yaml:3:13: source.dsn_file: read "` + missing + `": no such file or directory`},
		{name: "empty file", replace: "  dsn_file: " + empty + "\n",
			want: `tandem.yaml:3:13: source.dsn_file: file "` + empty + `" is empty`},
		{name: "not a secret", replace: "  dsn_file: /dev/zero\n",
			want: `tandem.yaml:3:13: source.dsn_file: read "/dev/zero": larger than 65536 bytes, too large for a secret`},
		{name: "both forms", replace: "  dsn: postgres://u:pw@h/db\n  dsn_file: " + wrongKind + "\n",
			want: "tandem.yaml:4:3: source.dsn_file: set either dsn or dsn_file, not both"},
		{name: "content that fails validation", replace: "  dsn_file: " + wrongKind + "\n",
			want: "tandem.yaml:3:13: source.dsn: the URL scheme does not fit kind postgres"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := strings.Replace(minimal, "  dsn: postgres://u:pw@h/db\n", tt.replace, 1)
			_, err := Parse("tandem.yaml", []byte(data), nil)
			if err == nil {
				t.Fatal("Parse = nil error, want errors")
			}
			if strings.Contains(err.Error(), pw) {
				t.Errorf("the error shows the file's content:\n%v", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("errors do not contain %q:\n%v", tt.want, err)
			}
		})
	}
}
