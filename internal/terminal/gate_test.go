package terminal

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestOnlyTheGateOpensMedia keeps the never-silent rule structural: in the
// whole module, outside tests, media.Open (and mediadevices.GetUserMedia
// below it) is referenced only by the gate, by the media package itself and
// by code that is not the child's terminal. A new reference elsewhere fails
// here, and its author must route it through announce (gate.go).
func TestOnlyTheGateOpensMedia(t *testing.T) {
	root := filepath.Join("..", "..")
	allowed := map[string]string{
		"internal/terminal/gate.go": "the gate",
		"internal/parent/":          "the parent's phone (a test client), not the terminal",
		"media/":                    "the media package implements Open",
		"cmd/terminald/selftest.go": "the technician's self-test, which announces with its own light and tone",
	}
	watched := map[string]string{ // import path → function
		"github.com/tuanju/tuanju/media": "Open",
		"github.com/pion/mediadevices":   "GetUserMedia",
	}
	found := map[string]int{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); n != "." && n != ".." && (strings.HasPrefix(n, ".") || n == "testdata" || n == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		local := map[string]string{} // local name → watched function
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			fn, ok := watched[p]
			if !ok {
				continue
			}
			name := p[strings.LastIndex(p, "/")+1:]
			if imp.Name != nil {
				name = imp.Name.Name
			}
			local[name] = fn
		}
		if len(local) == 0 {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			id, ok := sel.X.(*ast.Ident)
			if !ok || local[id.Name] == "" || local[id.Name] != sel.Sel.Name {
				return true
			}
			found[rel]++
			ok = false
			for prefix := range allowed {
				if rel == prefix || (strings.HasSuffix(prefix, "/") && strings.HasPrefix(rel, prefix)) {
					ok = true
				}
			}
			if !ok {
				t.Errorf("%s: %s.%s opens camera/microphone outside the never-silent gate (internal/terminal/gate.go)",
					fset.Position(sel.Pos()), id.Name, sel.Sel.Name)
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The scan must see the gate itself, or it proves nothing.
	if found["internal/terminal/gate.go"] == 0 {
		t.Fatalf("the scan found no media.Open in internal/terminal/gate.go (found %v): is the scan broken?", found)
	}
	t.Logf("references: %v", found)
}
