package main

import (
	"bytes"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// runCLI runs tandem's command line in this process.
func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// globalFlags are the flags every verb takes, as help lists them.
var globalFlags = []string{"--config", "--help", "--log-format", "--log-level"}

// flagLine is a flag's line in cobra's help: its long name in group 1.
var flagLine = regexp.MustCompile(`(?m)^\s+(?:-\w, )?--([\w-]+)`)

// listedFlags are the long names of the flags a help text lists, sorted.
func listedFlags(help string) []string {
	var names []string
	for _, m := range flagLine.FindAllStringSubmatch(help, -1) {
		names = append(names, "--"+m[1])
	}
	slices.Sort(names)
	return slices.Compact(names)
}

func TestUsage_NoVerbExits2AndHelpExits0WithTheVerbsInOrder(t *testing.T) {
	code, usage, stderr := runCLI()
	if code != exitUsage || stderr != "" {
		t.Errorf("tandem: exit %d, stderr %q; want exit 2 and the usage on stdout", code, stderr)
	}
	verbs := []string{"run", "capture", "apply", "backfill", "check", "preview", "reconcile",
		"dlq list", "dlq replay", "dlq drop", "slot drop", "version", "completion"}
	var got []string
	for _, line := range strings.Split(usage, "\n") {
		for _, v := range verbs {
			if strings.HasPrefix(line, "  "+v+"  ") {
				got = append(got, v)
			}
		}
	}
	if diff := cmp.Diff(verbs, got); diff != "" {
		t.Errorf("the verbs the usage lists (-want +got):\n%s\nusage:\n%s", diff, usage)
	}
	for _, want := range []string{"Usage: tandem <verb> -c tandem.yaml [flags]\n", "  -c, --config FILE ", `(default "tandem.yaml")`,
		"Exit codes: 0 ok, 1 check failed or drift found, 2 usage or config error.\n"} {
		if !strings.Contains(usage, want) {
			t.Errorf("usage lacks %q:\n%s", want, usage)
		}
	}
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}} {
		code, stdout, stderr := runCLI(args...)
		if code != exitOK || stderr != "" {
			t.Errorf("tandem %s: exit %d, stderr %q; want exit 0", args[0], code, stderr)
		}
		if diff := cmp.Diff(usage, stdout); diff != "" {
			t.Errorf("tandem %s prints other than the usage (-usage +got):\n%s", args[0], diff)
		}
	}
}

func TestHelp_EachVerbExits0AndListsExactlyItsFlags(t *testing.T) {
	tests := []struct {
		verb  string
		flags []string // beyond globalFlags
		texts []string // more the help must say
	}{
		{"run", nil, []string{"Usage:\n  tandem run -c tandem.yaml"}},
		{"capture", nil, []string{"Usage:\n  tandem capture -c tandem.yaml"}},
		{"apply", nil, []string{"Usage:\n  tandem apply -c tandem.yaml"}},
		{"backfill", []string{"--estimate", "--format", "--restart", "--table"}, []string{"--table schema.table ", "repeatable"}},
		{"check", nil, []string{"Usage:\n  tandem check -c tandem.yaml"}},
		{"preview", []string{"--limit", "--table"}, []string{"--limit int ", "(default 10)"}},
		{"reconcile", []string{"--format", "--once", "--output", "--repair"}, []string{`text or json (default "text")`, "--output FILE "}},
		{"dlq list", []string{"--limit", "--mapping"}, []string{"(default 100)"}},
		{"dlq replay", []string{"--mapping"}, nil},
		{"dlq drop", []string{"--all", "--mapping", "--offset", "--partition", "--topic"}, []string{"--topic topic "}},
		{"slot drop", nil, []string{"Usage:\n  tandem slot drop -c tandem.yaml"}},
		{"version", nil, []string{"Usage:\n  tandem version"}},
		{"completion", nil, []string{"Usage:\n  tandem completion bash|zsh|fish|powershell"}},
	}
	for _, tc := range tests {
		t.Run(tc.verb, func(t *testing.T) {
			args := strings.Fields(tc.verb)
			code, help, stderr := runCLI(append(args, "--help")...)
			if code != exitOK || stderr != "" {
				t.Errorf("exit %d, stderr %q; want exit 0", code, stderr)
			}
			want := slices.Sorted(slices.Values(append(slices.Clone(globalFlags), tc.flags...)))
			if diff := cmp.Diff(want, listedFlags(help)); diff != "" {
				t.Errorf("flags (-want +got):\n%s\nhelp:\n%s", diff, help)
			}
			for _, text := range append(tc.texts, "Usage:\n  tandem "+tc.verb) {
				if !strings.Contains(help, text) {
					t.Errorf("help lacks %q:\n%s", text, help)
				}
			}
			if _, viaHelp, _ := runCLI(append([]string{"help"}, args...)...); viaHelp != help {
				t.Errorf("tandem help %s differs from tandem %[1]s --help:\n%s", tc.verb, cmp.Diff(help, viaHelp))
			}
		})
	}
}

func TestUsageErrors_Exit2NamingTheVerbAndTheMistake(t *testing.T) {
	tests := []struct {
		args []string
		want string // stderr's first line
	}{
		{[]string{"run", "--bogus"}, "tandem run: unknown flag: --bogus"},
		{[]string{"dlq", "list", "--all"}, "tandem dlq list: unknown flag: --all"},
		{[]string{"backfill", "--once"}, "tandem backfill: unknown flag: --once"},
		{[]string{"--bogus"}, "tandem: unknown flag: --bogus"},
		{[]string{"chek"}, `tandem: unknown verb "chek"; did you mean check?`},
		{[]string{"check", "now"}, `tandem check: unexpected argument "now"`},
		{[]string{"dlq"}, "tandem dlq: want `tandem dlq list`, `tandem dlq replay` or `tandem dlq drop`"},
		{[]string{"dlq", "show"}, "tandem dlq: want `tandem dlq list`, `tandem dlq replay` or `tandem dlq drop`"},
		{[]string{"slot"}, "tandem slot: want `tandem slot drop -c tandem.yaml`"},
		{[]string{"reconcile", "--once", "--format", "yaml"}, `tandem reconcile: --format "yaml": want text or json`},
		{[]string{"reconcile", "--output", "drift.jsonl"}, "tandem reconcile: --output drift.jsonl: only with --once"},
		{[]string{"preview", "--limit", "5"}, "tandem preview: want --table schema.table and a --limit above 0"},
		{[]string{"preview", "--table", "shop.orders", "--limit", "0"}, "tandem preview: want --table schema.table and a --limit above 0"},
		{[]string{"dlq", "drop", "--offset", "seven"}, `tandem dlq drop: invalid argument "seven" for "--offset" flag: strconv.ParseInt: parsing "seven": invalid syntax`},
		{[]string{"run", "--log-level", "loud"}, `tandem run: --log-level "loud": want debug, info, warn or error`},
		{[]string{"version", "--log-format", "xml"}, `tandem version: --log-format "xml": want text or json`},
		{[]string{"completion"}, "tandem completion: want one shell of bash, zsh, fish, powershell"},
		{[]string{"completion", "tcsh"}, "tandem completion: want one shell of bash, zsh, fish, powershell"},
		{[]string{"run", "-c"}, "tandem run: flag needs an argument: 'c' in -c"},
	}
	for _, tc := range tests {
		code, stdout, stderr := runCLI(tc.args...)
		first, rest, _ := strings.Cut(stderr, "\n")
		verb, _, _ := strings.Cut(tc.want, ":")
		hint := "Run '" + verb + " --help' for usage.\n"
		if code != exitUsage || first != tc.want || rest != hint || stdout != "" {
			t.Errorf("tandem %s: exit %d, stdout %q, stderr %q\nwant exit 2, no stdout, stderr %q", strings.Join(tc.args, " "), code, stdout, stderr, tc.want+"\n"+hint)
		}
	}
}

func TestCompletion_PrintsEachShellsScript(t *testing.T) {
	for shell, wants := range map[string][]string{
		"bash":       {"# bash completion V2 for tandem", "__start_tandem()", "complete -o default -F __start_tandem tandem"},
		"zsh":        {"#compdef tandem", "compdef _tandem tandem"},
		"fish":       {"# fish completion for tandem", "complete -c tandem "},
		"powershell": {"# powershell completion for tandem", "Register-ArgumentCompleter -CommandName 'tandem'"},
	} {
		code, script, stderr := runCLI("completion", shell)
		if code != exitOK || stderr != "" {
			t.Errorf("completion %s: exit %d, stderr %q; want exit 0", shell, code, stderr)
		}
		for _, want := range wants {
			if !strings.Contains(script, want) {
				t.Errorf("completion %s: the script lacks %q:\n%.400s", shell, want, script)
			}
		}
	}
}

func TestCompletion_OffersVerbsSubverbsAndFlagValues(t *testing.T) {
	tests := []struct {
		args []string // after __complete; the last is the word completed
		want []string // the candidates, without descriptions
	}{
		{[]string{"dlq", ""}, []string{"list", "replay", "drop"}},
		{[]string{"re"}, []string{"reconcile"}},
		{[]string{"reconcile", "--format", ""}, []string{"text", "json"}},
		{[]string{"run", "--log-level", ""}, []string{"debug", "info", "warn", "error"}},
		{[]string{"check", "-c", ""}, []string{"yaml", "yml"}}, // file extensions the shell filters on
		{[]string{"completion", ""}, []string{"bash", "zsh", "fish", "powershell"}},
		{[]string{"backfill", "--re"}, []string{"--restart"}},
	}
	for _, tc := range tests {
		code, stdout, _ := runCLI(append([]string{"__complete"}, tc.args...)...)
		lines := strings.Split(strings.TrimSpace(stdout), "\n")
		var got []string
		for _, l := range lines[:len(lines)-1] { // the last is the directive, ":4"
			word, _, _ := strings.Cut(l, "\t")
			got = append(got, word)
		}
		if diff := cmp.Diff(tc.want, got); code != exitOK || diff != "" {
			t.Errorf("completing tandem %s: exit %d, candidates (-want +got):\n%s", strings.Join(tc.args, " "), code, diff)
		}
	}
}
