package registry

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// Every Corefile property the parsers accept is in the README's Syntax block and has its
// bullet, and every metric of the process (the plugin's, the API's, etcdstore's) is in its
// Metrics section: an operator reads only that file.
func TestREADMEDocumentsPropertiesAndMetrics(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	syntax, _, _ := strings.Cut(readme[strings.Index(readme, "## Syntax"):], "## Metrics")
	metrics, _, _ := strings.Cut(readme[strings.Index(readme, "## Metrics"):], "\n## ")

	props := stringCases(t, "setup_*.go", func(fn *ast.FuncDecl, sw *ast.SwitchStmt) bool {
		id, ok := sw.Tag.(*ast.Ident)
		return ok && id.Name == "prop" && strings.HasSuffix(fn.Name.Name, "Property")
	})
	if len(props) < 40 {
		t.Fatalf("found %d properties in setup_*.go, fewer than exist: the test no longer finds them", len(props))
	}
	for _, p := range props {
		if !regexp.MustCompile(`(?m)^    ` + p + `\b`).MatchString(syntax) {
			t.Errorf("property %s is not in the README's Syntax block", p)
		}
		if !strings.Contains(syntax, "\n* `"+p+"` ") {
			t.Errorf("property %s has no bullet in the README", p)
		}
	}

	var names []string
	for _, dir := range []string{".", "../../api", "../../etcdstore"} {
		names = append(names, metricNames(t, filepath.Join(dir, "*.go"))...)
	}
	if len(names) < 20 {
		t.Fatalf("found %d metrics, fewer than exist: the test no longer finds them", len(names))
	}
	for _, n := range names {
		if !strings.Contains(metrics, "`coredns_registry_"+n+"`") && !strings.Contains(metrics, "`coredns_registry_"+n+"{") {
			t.Errorf("metric coredns_registry_%s is not in the README's Metrics section", n)
		}
	}
}

// stringCases are the string constants of the cases of the switches of the non-test files
// matching glob that keep says are wanted.
func stringCases(t *testing.T, glob string, keep func(*ast.FuncDecl, *ast.SwitchStmt) bool) []string {
	var out []string
	for _, f := range parseFiles(t, glob) {
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				sw, ok := n.(*ast.SwitchStmt)
				if !ok || !keep(fn, sw) {
					return true
				}
				for _, s := range sw.Body.List {
					for _, e := range s.(*ast.CaseClause).List {
						if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == token.STRING {
							v, _ := strconv.Unquote(lit.Value)
							out = append(out, v)
						}
					}
				}
				return true
			})
		}
	}
	return out
}

// metricNames are the Name fields of the promauto metrics the non-test files matching glob
// register.
func metricNames(t *testing.T, glob string) []string {
	var out []string
	for _, f := range parseFiles(t, glob) {
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			if sel, ok := call.Fun.(*ast.SelectorExpr); !ok || !strings.HasPrefix(sel.Sel.Name, "New") || !isIdent(sel.X, "promauto") {
				return true
			}
			ast.Inspect(call.Args[0], func(n ast.Node) bool {
				if kv, ok := n.(*ast.KeyValueExpr); ok && isIdent(kv.Key, "Name") {
					if lit, ok := kv.Value.(*ast.BasicLit); ok {
						v, _ := strconv.Unquote(lit.Value)
						out = append(out, v)
					}
				}
				return true
			})
			return true
		})
	}
	return out
}

func isIdent(e ast.Expr, name string) bool {
	id, ok := e.(*ast.Ident)
	return ok && id.Name == name
}

func parseFiles(t *testing.T, glob string) []*ast.File {
	t.Helper()
	paths, err := filepath.Glob(glob)
	if err != nil || len(paths) == 0 {
		t.Fatalf("%s: %v (no files)", glob, err)
	}
	var out []*ast.File
	fset := token.NewFileSet()
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, f)
	}
	return out
}
