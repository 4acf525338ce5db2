package connect

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tandemcdc/tandem/internal/testenv"
)

const module = "github.com/tandemcdc/tandem/"

// imports returns the module's packages (their paths inside the module)
// and the module packages each imports in its non-test files.
func imports(t *testing.T) map[string][]string {
	t.Helper()
	root, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		dir, _ := filepath.Rel(root, filepath.Dir(path))
		dir = filepath.ToSlash(dir)
		if _, ok := out[dir]; !ok {
			out[dir] = nil
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if q, ok := strings.CutPrefix(p, module); ok && !slices.Contains(out[dir], q) {
				out[dir] = append(out[dir], q)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestLayout_DependenciesPointOneWay checks the rules of the layout
// (README, "Layout"): the leaves import nothing of the module, the
// database implementations import no other stage and not each other, and
// only this package (the one switch on database kind) imports them.
func TestLayout_DependenciesPointOneWay(t *testing.T) {
	pkgs := imports(t)
	implementations := []string{"capture/postgres", "capture/mysql", "sink/postgres", "sink/mysql"}
	stages := []string{"apply", "backfill", "reconcile", "transform", "internal/kafka", "internal/resync", "internal/app", "internal/connect"}
	for _, leaf := range []string{"internal/change", "internal/config"} {
		if got := pkgs[leaf]; len(got) > 0 {
			t.Errorf("%s is a leaf but imports %v", leaf, got)
		}
	}
	for _, impl := range implementations {
		if _, ok := pkgs[impl]; !ok {
			t.Fatalf("package %s not found: the layout changed, update this test", impl)
		}
		for _, imp := range pkgs[impl] {
			if slices.Contains(stages, imp) || slices.Contains(implementations, imp) {
				t.Errorf("%s imports %s: an implementation may import contracts (capture, sink) and leaves only", impl, imp)
			}
		}
	}
	for pkg, imps := range pkgs {
		if pkg == "internal/connect" || slices.Contains(implementations, pkg) || isTestSupport(pkg) {
			continue
		}
		for _, imp := range imps {
			if slices.Contains(implementations, imp) {
				t.Errorf("%s imports %s: only internal/connect sees the implementations", pkg, imp)
			}
		}
	}
}

// isTestSupport reports whether pkg only serves tests and benchmarks,
// which open real databases of each kind on purpose.
func isTestSupport(pkg string) bool {
	return pkg == "bench" || strings.HasSuffix(pkg, "test") || strings.HasPrefix(pkg, "internal/testenv")
}
