// Package depcheck finds every external command hardway's code and tests look
// up or run, so that a test can hold it against what hack/deps.sh installs
// and what hack/tools.sh builds: a command added without its package fails the
// quick loop on any machine, not only on a fresh one.
package depcheck

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Use is one place that names an external command.
type Use struct {
	Command string // base name: /usr/bin/sudo is "sudo"
	Pos     string // file:line, relative to the scanned root
}

// sink is a function whose argument at index Arg (every argument from Arg on
// when Variadic) is the name or path of a program it runs or looks up.
type sink struct {
	Arg      int
	Variadic bool
}

// funcKey names a function: its package directory (relative to the root) and
// its name. Methods are not sinks.
type funcKey struct{ dir, name string }

// pkgFile is one parsed file and what its imports resolve to.
type pkgFile struct {
	rel     string // path relative to the root
	dir     string // its package directory, relative to the root
	f       *ast.File
	imports map[string]string // local name -> package directory relative to the root ("" outside it)
}

// execSinks are the standard library's entry points.
var execSinks = map[string]sink{
	"Command":        {Arg: 0},
	"CommandContext": {Arg: 1},
	"LookPath":       {Arg: 0},
}

// Scan parses every Go file under root (skipping testdata, vendor and hidden
// directories) and returns each literal command name that reaches
// exec.Command, exec.CommandContext or exec.LookPath, directly or through a
// helper of ours whose parameter does (need(t, "tar"), commontest.Tool(t,
// "ip", "iproute2"), a loop over a literal list). modules maps a module path
// to its directory relative to root, so imports between our packages resolve.
func Scan(root string, modules map[string]string) ([]Use, error) {
	fset := token.NewFileSet()
	var files []*pkgFile
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			n := d.Name()
			if p != root && (n == "testdata" || n == "vendor" || strings.HasPrefix(n, ".") || n == "bin" || n == "out") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		pf := &pkgFile{rel: filepath.ToSlash(rel), dir: filepath.ToSlash(filepath.Dir(rel)), f: f, imports: map[string]string{}}
		for _, im := range f.Imports {
			ip, _ := strconv.Unquote(im.Path.Value)
			name := path.Base(ip)
			if im.Name != nil {
				name = im.Name.Name
			}
			pf.imports[name] = localDir(ip, modules)
			if ip == "os/exec" {
				pf.imports[name] = "os/exec"
			}
		}
		files = append(files, pf)
		return nil
	})
	if err != nil {
		return nil, err
	}

	// Find our helpers that pass a parameter on to a sink, until no new one
	// turns up (a helper may call another helper).
	sinks := map[funcKey]sink{}
	for changed := true; changed; {
		changed = false
		for _, pf := range files {
			for _, decl := range pf.f.Decls {
				fd, ok := decl.(*ast.FuncDecl)
				if !ok || fd.Recv != nil || fd.Body == nil {
					continue
				}
				k := funcKey{pf.dir, fd.Name.Name}
				if _, done := sinks[k]; done {
					continue
				}
				if s, ok := helperSink(pf, fd, sinks); ok {
					sinks[k] = s
					changed = true
				}
			}
		}
	}

	var uses []Use
	for _, pf := range files {
		ast.Inspect(pf.f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				s, ok := sinkOf(pf, n, sinks)
				if !ok {
					return true
				}
				for _, a := range sinkArgs(n, s) {
					for _, lit := range literals(a, enclosingLists(pf.f, n)) {
						uses = append(uses, Use{Command: path.Base(lit), Pos: pf.rel + ":" + strconv.Itoa(fset.Position(a.Pos()).Line)})
					}
				}
			}
			return true
		})
	}
	sort.Slice(uses, func(i, j int) bool {
		if uses[i].Command != uses[j].Command {
			return uses[i].Command < uses[j].Command
		}
		return uses[i].Pos < uses[j].Pos
	})
	return uses, nil
}

// localDir is the directory of an import path inside one of our modules, or "".
func localDir(ip string, modules map[string]string) string {
	for mod, dir := range modules {
		if ip == mod {
			return dir
		}
		if strings.HasPrefix(ip, mod+"/") {
			return path.Join(dir, strings.TrimPrefix(ip, mod+"/"))
		}
	}
	return ""
}

// sinkOf reports whether call runs or looks up a program, and how.
func sinkOf(pf *pkgFile, call *ast.CallExpr, sinks map[funcKey]sink) (sink, bool) {
	switch fn := call.Fun.(type) {
	case *ast.Ident:
		s, ok := sinks[funcKey{pf.dir, fn.Name}]
		return s, ok
	case *ast.SelectorExpr:
		x, ok := fn.X.(*ast.Ident)
		if !ok {
			return sink{}, false
		}
		dir, ok := pf.imports[x.Name]
		if !ok {
			return sink{}, false
		}
		if dir == "os/exec" {
			s, ok := execSinks[fn.Sel.Name]
			return s, ok
		}
		if dir == "" {
			return sink{}, false
		}
		s, ok := sinks[funcKey{dir, fn.Sel.Name}]
		return s, ok
	}
	return sink{}, false
}

// sinkArgs are the arguments of call that name programs.
func sinkArgs(call *ast.CallExpr, s sink) []ast.Expr {
	if s.Arg >= len(call.Args) {
		return nil
	}
	if s.Variadic {
		if call.Ellipsis.IsValid() {
			return nil // a slice passed on: its literals are found where it is built
		}
		return call.Args[s.Arg:]
	}
	return call.Args[s.Arg : s.Arg+1]
}

// helperSink reports whether one of fd's string parameters reaches a sink's
// program argument, directly or as the variable of a range over it.
func helperSink(pf *pkgFile, fd *ast.FuncDecl, sinks map[funcKey]sink) (sink, bool) {
	params := map[string]sink{}
	i := 0
	for _, field := range fd.Type.Params.List {
		_, variadic := field.Type.(*ast.Ellipsis)
		str := isString(field.Type)
		for _, n := range field.Names {
			if str {
				params[n.Name] = sink{Arg: i, Variadic: variadic}
			}
			i++
		}
		if len(field.Names) == 0 {
			i++
		}
	}
	if len(params) == 0 {
		return sink{}, false
	}
	// Loop variables ranging over a parameter stand for it.
	alias := map[string]string{}
	ast.Inspect(fd.Body, func(n ast.Node) bool {
		if r, ok := n.(*ast.RangeStmt); ok {
			if x, ok := r.X.(*ast.Ident); ok {
				if _, isParam := params[x.Name]; isParam {
					if v, ok := r.Value.(*ast.Ident); ok {
						alias[v.Name] = x.Name
					}
				}
			}
		}
		return true
	})
	var found sink
	ok := false
	ast.Inspect(fd.Body, func(n ast.Node) bool {
		call, isCall := n.(*ast.CallExpr)
		if !isCall || ok {
			return !ok
		}
		s, isSink := sinkOf(pf, call, sinks)
		if !isSink {
			return true
		}
		for _, a := range sinkArgs(call, s) {
			id, isID := a.(*ast.Ident)
			if !isID {
				continue
			}
			name := id.Name
			if p, isAlias := alias[name]; isAlias {
				name = p
			}
			if p, isParam := params[name]; isParam {
				found, ok = p, true
				return false
			}
		}
		return true
	})
	return found, ok
}

// isString reports whether a parameter type is string or ...string.
func isString(t ast.Expr) bool {
	if e, ok := t.(*ast.Ellipsis); ok {
		t = e.Elt
	}
	id, ok := t.(*ast.Ident)
	return ok && id.Name == "string"
}

// literals returns the command names an argument stands for: a string
// literal, or a loop variable ranging over a literal list or map (its keys)
// built in the same function.
func literals(a ast.Expr, lists map[string][]string) []string {
	switch a := a.(type) {
	case *ast.BasicLit:
		if a.Kind == token.STRING {
			if s, err := strconv.Unquote(a.Value); err == nil && s != "" {
				return []string{s}
			}
		}
	case *ast.Ident:
		return lists[a.Name]
	}
	return nil
}

// enclosingLists maps, in the function around call, each range variable to
// the string literals of the list or map it ranges over: a composite literal
// in the range itself, or a local variable built from one (plus literal keys
// added to it by index assignments).
func enclosingLists(f *ast.File, call *ast.CallExpr) map[string][]string {
	var body *ast.BlockStmt
	for _, d := range f.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok && fd.Body != nil && fd.Body.Pos() <= call.Pos() && call.End() <= fd.Body.End() {
			body = fd.Body
		}
	}
	if body == nil {
		return nil
	}
	vars := map[string][]string{}
	ast.Inspect(body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.AssignStmt:
			for i, l := range n.Lhs {
				if i >= len(n.Rhs) {
					break
				}
				switch l := l.(type) {
				case *ast.Ident:
					if cl, ok := n.Rhs[i].(*ast.CompositeLit); ok {
						vars[l.Name] = append(vars[l.Name], compositeStrings(cl)...)
					}
				case *ast.IndexExpr:
					if id, ok := l.X.(*ast.Ident); ok {
						vars[id.Name] = append(vars[id.Name], literals(l.Index, nil)...)
					}
				}
			}
		}
		return true
	})
	out := map[string][]string{}
	ast.Inspect(body, func(n ast.Node) bool {
		r, ok := n.(*ast.RangeStmt)
		if !ok || r.Body.Pos() > call.Pos() || call.End() > r.Body.End() {
			return true
		}
		var strs []string
		switch x := r.X.(type) {
		case *ast.CompositeLit:
			strs = compositeStrings(x)
		case *ast.Ident:
			strs = vars[x.Name]
		}
		// A slice's strings are its values; a map's are its keys.
		for _, v := range []ast.Expr{r.Key, r.Value} {
			if id, ok := v.(*ast.Ident); ok && id.Name != "_" {
				out[id.Name] = strs
			}
		}
		return true
	})
	return out
}

// compositeStrings returns the string literals of a []string{...} (its
// elements) or a map[string]T{...} (its keys).
func compositeStrings(cl *ast.CompositeLit) []string {
	var out []string
	for _, e := range cl.Elts {
		if kv, ok := e.(*ast.KeyValueExpr); ok {
			e = kv.Key
		}
		out = append(out, literals(e, nil)...)
	}
	return out
}

// ReadModules returns the module path of every go.mod under root, mapped to
// its directory relative to root.
func ReadModules(root string) (map[string]string, error) {
	mods := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != root && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) {
			return filepath.SkipDir
		}
		if d.Name() != "go.mod" {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(data), "\n") {
			if mod, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
				rel, _ := filepath.Rel(root, filepath.Dir(p))
				mods[strings.TrimSpace(mod)] = filepath.ToSlash(rel)
				break
			}
		}
		return nil
	})
	return mods, err
}
