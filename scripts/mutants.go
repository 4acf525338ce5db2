//go:build ignore

// mutants.go checks one package's gremlins results (the JSON `gremlins
// unleash -o` writes) against the list of equivalent mutants in
// docs/mutation-equivalent.md, for `make mutate` (scripts/mutate.sh):
//
//	go run scripts/mutants.go -pkg internal/change -results out.json [-files a.go,b.go] [-min 95]
//
// It prints the package's figures (test efficacy, mutator coverage and the
// count of each status) and every mutant that lived, and fails when
//
//   - a mutant lived that the list does not hold (a new survivor: kill it
//     with an assertion, or list it with the reason it is equivalent);
//   - the list holds a mutant of the package that did not live (killed now,
//     or its line changed: update the list);
//   - the test efficacy is below -min percent.
//
// -files restricts all of this to some of the package's files (reconcile's
// comparison rules); mutants of its other files are only counted (mutate.sh
// has gremlins skip them). A mutant of a checked file that was skipped
// fails the check: the run did not test the file whole.
//
// The list's entries are keyed by file, column, mutator and the text of
// the mutated line, not by line number, so that code added above a
// mutant does not make it new:
//
//	## internal/change
//	- debezium.go:466:4 INCREMENT_DECREMENT
//	  `q--`
//	  Why no test can tell the mutant from the code (one or more lines).
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// results is the part of gremlins' JSON output read here.
type results struct {
	Files []struct {
		Name      string `json:"file_name"`
		Mutations []struct {
			Type   string `json:"type"`
			Status string `json:"status"`
			Line   int    `json:"line"`
			Column int    `json:"column"`
		} `json:"mutations"`
	} `json:"files"`
}

// mutant identifies a mutant across edits of other lines.
type mutant struct {
	file string
	col  int
	typ  string
	code string // the mutated line, trimmed
}

// entry is one mutant of the list.
type entry struct {
	mutant
	line   int // where it was when listed: only to find it
	reason string
}

var entryHead = regexp.MustCompile("^- ([^ :]+\\.go):([0-9]+):([0-9]+) ([A-Z_]+)$")

func main() {
	pkg := flag.String("pkg", "", "package directory, relative to the module root (internal/change)")
	resultsPath := flag.String("results", "", "gremlins' JSON results for the package")
	listPath := flag.String("list", "docs/mutation-equivalent.md", "the list of equivalent mutants")
	files := flag.String("files", "", "comma-separated files of the package to check (default: all)")
	minEfficacy := flag.Float64("min", 95, "the lowest test efficacy, in percent, that passes")
	flag.Parse()
	if err := run(*pkg, *resultsPath, *listPath, *files, *minEfficacy); err != nil {
		fmt.Fprintln(os.Stderr, "mutants:", err)
		os.Exit(1)
	}
}

func run(pkg, resultsPath, listPath, files string, minEfficacy float64) error {
	pkg = strings.TrimPrefix(filepath.Clean(pkg), "./")
	raw, err := os.ReadFile(resultsPath)
	if err != nil {
		return fmt.Errorf("read gremlins results: %w", err)
	}
	var res results
	if err := json.Unmarshal(raw, &res); err != nil {
		return fmt.Errorf("parse gremlins results %s: %w", resultsPath, err)
	}
	listed, err := readList(listPath, pkg)
	if err != nil {
		return err
	}
	var only []string
	if files != "" {
		only = strings.Split(files, ",")
	}

	count := map[string]int{}  // status -> mutants in the checked files
	others := map[string]int{} // status -> mutants in the package's other files
	lines := map[string][]string{}
	var lived []entry
	for _, f := range res.Files {
		if only != nil && !slices.Contains(only, f.Name) {
			for _, m := range f.Mutations {
				others[m.Status]++
			}
			continue
		}
		for _, m := range f.Mutations {
			count[m.Status]++
			if m.Status != "LIVED" {
				continue
			}
			src, ok := lines[f.Name]
			if !ok {
				if src, err = readLines(filepath.Join(pkg, f.Name)); err != nil {
					return err
				}
				lines[f.Name] = src
			}
			code := ""
			if m.Line >= 1 && m.Line <= len(src) {
				code = strings.TrimSpace(src[m.Line-1])
			}
			lived = append(lived, entry{mutant: mutant{f.Name, m.Column, m.Type, code}, line: m.Line})
		}
	}

	scope := pkg
	if only != nil {
		scope += " (" + strings.Join(only, ", ") + ")"
	}
	killed, survived := count["KILLED"], count["LIVED"]
	covered := killed + survived
	total := covered + count["NOT COVERED"]
	fmt.Printf("%s: test efficacy %s, mutator coverage %s; killed %d, lived %d, not covered %d, timed out %d, not viable %d\n",
		scope, percent(killed, covered), percent(covered, total), killed, survived, count["NOT COVERED"], count["TIMED OUT"], count["NOT VIABLE"])
	if only != nil {
		fmt.Printf("%s, other files (not checked): killed %d, lived %d, not covered %d, timed out %d, not viable %d, skipped %d\n",
			pkg, others["KILLED"], others["LIVED"], others["NOT COVERED"], others["TIMED OUT"], others["NOT VIABLE"], others["SKIPPED"])
	}

	var failures []string
	if n := count["SKIPPED"]; n > 0 {
		failures = append(failures, fmt.Sprintf("%s: %d mutant(s) of the checked files were skipped, not run", scope, n))
	}
	seen := map[mutant]bool{}
	for _, l := range lived {
		seen[l.mutant] = true
		if slices.ContainsFunc(listed, func(e entry) bool { return e.mutant == l.mutant }) {
			fmt.Printf("  lived, equivalent (listed): %s:%d:%d %s `%s`\n", l.file, l.line, l.col, l.typ, l.code)
			continue
		}
		failures = append(failures, fmt.Sprintf("new survivor %s/%s:%d:%d %s `%s`: kill it with an assertion, or list it in %s with the reason it is equivalent",
			pkg, l.file, l.line, l.col, l.typ, l.code, listPath))
	}
	for _, e := range listed {
		if only != nil && !slices.Contains(only, e.file) {
			continue
		}
		if !seen[e.mutant] {
			failures = append(failures, fmt.Sprintf("%s lists %s/%s:%d:%d %s `%s`, which did not live in this run (killed, or its line changed): update the list",
				listPath, pkg, e.file, e.line, e.col, e.typ, e.code))
		}
	}
	if covered > 0 && 100*float64(killed) < minEfficacy*float64(covered) {
		failures = append(failures, fmt.Sprintf("%s: test efficacy %s is below %g%%", scope, percent(killed, covered), minEfficacy))
	}
	if len(failures) > 0 {
		for _, f := range failures {
			fmt.Println("FAIL", f)
		}
		return fmt.Errorf("%s: %d problem(s)", scope, len(failures))
	}
	return nil
}

func percent(n, of int) string {
	if of == 0 {
		return "n/a"
	}
	return strconv.FormatFloat(100*float64(n)/float64(of), 'f', 2, 64) + "%"
}

// readList reads the entries of the list's section for pkg.
func readList(path, pkg string) ([]entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read the equivalent mutants: %w", err)
	}
	defer f.Close()
	var (
		out     []entry
		in      bool
		cur     *entry
		lineNum int
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lineNum++
		line := sc.Text()
		if h, ok := strings.CutPrefix(line, "## "); ok {
			in = strings.TrimSpace(h) == pkg
			cur = nil
			continue
		}
		if !in {
			continue
		}
		if m := entryHead.FindStringSubmatch(line); m != nil {
			ln, _ := strconv.Atoi(m[2])
			col, _ := strconv.Atoi(m[3])
			out = append(out, entry{mutant: mutant{file: m[1], col: col, typ: m[4]}, line: ln})
			cur = &out[len(out)-1]
			continue
		}
		if strings.HasPrefix(line, "- ") {
			return nil, fmt.Errorf("%s:%d: an entry is \"- file.go:line:col MUTATOR\", then its line of code in backquotes, then why it is equivalent: %q", path, lineNum, line)
		}
		body, indented := strings.CutPrefix(line, "  ")
		switch {
		case cur == nil || !indented:
			cur = nil
		case cur.code == "":
			code, ok := strings.CutPrefix(body, "`")
			if code, ok2 := strings.CutSuffix(code, "`"); ok && ok2 && code != "" {
				cur.code = code
				continue
			}
			return nil, fmt.Errorf("%s:%d: the line after an entry is its mutated line of code, in backquotes: %q", path, lineNum, line)
		default:
			cur.reason = strings.TrimSpace(cur.reason + " " + strings.TrimSpace(body))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	for _, e := range out {
		if e.code == "" || e.reason == "" {
			return nil, fmt.Errorf("%s: the entry %s:%d:%d %s of %s needs its line of code and why it is equivalent", path, e.file, e.line, e.col, e.typ, pkg)
		}
	}
	return out, nil
}

func readLines(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the mutated source: %w", err)
	}
	return strings.Split(string(b), "\n"), nil
}
