package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"gopkg.in/yaml.v3"
)

// Issue is one finding about a spec, pointing into the user's file.
type Issue struct {
	File    string
	Line    int
	Col     int
	Path    string // field path such as spec.nodes[3].address
	Msg     string
	Warning bool
	// Name names a warning a spec can acknowledge (spec.acknowledgeWarnings);
	// Acknowledged says the spec does.
	Name         string
	Acknowledged bool
}

func (i Issue) String() string {
	kind := ""
	switch {
	case i.Acknowledged:
		kind = "warning (acknowledged " + i.Name + "): "
	case i.Warning:
		kind = "warning: "
	}
	return fmt.Sprintf("%s:%d:%d: %s%s: %s", oneLine(i.File), i.Line, i.Col, kind, oneLine(i.Path), oneLine(i.Msg))
}

// oneLine escapes control characters (as \n, \x1b, ...) so that an issue is
// always one line of text, whatever a hostile spec put in a key or a value.
func oneLine(s string) string {
	if strings.IndexFunc(s, isControl) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if isControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// isControl reports the C0 and C1 control characters, DEL and the Unicode
// line and paragraph separators: nothing a spec value may hold.
func isControl(r rune) bool {
	return r < 0x20 || (r >= 0x7f && r <= 0x9f) || r == '\u2028' || r == '\u2029'
}

// Issues is a list of findings; it is an error when it holds at least one error.
type Issues []Issue

func (is Issues) Error() string {
	var b strings.Builder
	for i, x := range is {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(x.String())
	}
	return b.String()
}

// Errors returns the non-warning issues, or nil when there are none.
func (is Issues) Errors() Issues { return is.filter(func(x Issue) bool { return !x.Warning }) }

// Warnings returns the warnings.
func (is Issues) Warnings() Issues { return is.filter(func(x Issue) bool { return x.Warning }) }

// Unacknowledged returns the issues but the warnings the spec acknowledges.
func (is Issues) Unacknowledged() Issues {
	return is.filter(func(x Issue) bool { return !x.Acknowledged })
}

// filter returns the issues keep accepts, or nil when there are none.
func (is Issues) filter(keep func(Issue) bool) Issues {
	var out Issues
	for _, x := range is {
		if keep(x) {
			out = append(out, x)
		}
	}
	return out
}

func (is Issues) sort() {
	sort.SliceStable(is, func(a, b int) bool {
		if is[a].Line != is[b].Line {
			return is[a].Line < is[b].Line
		}
		return is[a].Col < is[b].Col
	})
}

// Document is a parsed spec together with where each field came from.
type Document struct {
	File    string // the name used in messages
	Dir     string // directory of the spec; relative paths in the spec are relative to it
	Cluster *Cluster
	pos     map[string]*yaml.Node
	root    *yaml.Node
}

// at returns an issue located at the node that produced path, or at the
// closest ancestor that exists in the file.
func (d *Document) at(path, format string, args ...any) Issue {
	p := path
	for {
		if n, ok := d.pos[p]; ok {
			return Issue{File: d.File, Line: n.Line, Col: n.Column, Path: path, Msg: fmt.Sprintf(format, args...)}
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	line, col := 1, 1
	if d.root != nil {
		line, col = d.root.Line, d.root.Column
	}
	return Issue{File: d.File, Line: line, Col: col, Path: path, Msg: fmt.Sprintf(format, args...)}
}

// Has reports whether the file set the field at path.
func (d *Document) Has(path string) bool { _, ok := d.pos[path]; return ok }

// LoadFile reads and parses a spec file. Structural problems (syntax,
// unknown fields, wrong types, missing required fields, unknown enum values,
// integers out of range) are returned as Issues. Semantic checks are done by
// Validate. Only a regular file of at most maxSpecBytes is read: a FIFO
// would block the open, and /dev/zero would never end.
func LoadFile(path string) (*Document, error) {
	// Stat, not Open: opening a FIFO waits for a writer.
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s)", path, fileKind(fi.Mode()))
	}
	if fi.Size() > maxSpecBytes {
		return nil, Issues{tooLarge(path)}
	}
	// O_NONBLOCK: should path have become a FIFO since the Stat, the open
	// returns at once and the check below refuses it.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi2, err := f.Stat(); err != nil {
		return nil, err
	} else if !os.SameFile(fi, fi2) {
		return nil, fmt.Errorf("%s changed while being opened", path)
	}
	dir := "."
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		dir = path[:i]
	}
	return Read(path, dir, f)
}

// fileKind names the type of a file that is not a regular one.
func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a block device"
	}
	return "mode " + m.String()
}

// maxSpecBytes bounds the input; a cluster spec is a few kilobytes.
const maxSpecBytes = 4 << 20

func tooLarge(name string) Issue {
	return Issue{File: name, Line: 1, Col: 1, Path: "(document)", Msg: fmt.Sprintf("the file is larger than %d MiB, the limit of a cluster spec", maxSpecBytes>>20)}
}

// Parse parses a spec from data; name is used in messages, dir resolves relative paths.
func Parse(name, dir string, data []byte) (*Document, error) {
	d := &Document{File: name, Dir: dir, Cluster: &Cluster{}, pos: map[string]*yaml.Node{}}
	if len(data) > maxSpecBytes {
		return nil, Issues{tooLarge(name)}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, Issues{{File: name, Line: 1, Col: 1, Path: "(document)", Msg: "the file is empty"}}
		}
		return nil, Issues{yamlIssue(name, data, err)}
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		return nil, Issues{{File: name, Line: extra.Line, Col: extra.Column, Path: "(document)", Msg: "only one YAML document is allowed"}}
	case !errors.Is(err, io.EOF):
		return nil, Issues{yamlIssue(name, data, err)}
	}
	doc := &root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = doc.Content[0]
	}
	d.root = doc
	var is Issues
	dc := decoder{d: d, issues: &is, depth: 0}
	dc.decode(doc, reflect.ValueOf(d.Cluster).Elem(), "")
	if len(is) > 0 {
		is.sort()
		return nil, is
	}
	return d, nil
}

// yamlIssue turns a yaml.v3 syntax error ("yaml: line 3: ...") into an Issue.
// yaml.v3 gives a line and no column, and the line is often where the broken
// construct starts (the block mapping, the '[') rather than the line that
// breaks it: problemLine looks for that one. Lacking a column, the issue
// points at the first character of the line's text.
func yamlIssue(name string, data []byte, err error) Issue {
	line, msg := yamlError(err)
	line = problemLine(data, line, msg)
	col := 1
	if lines := strings.Split(string(data), "\n"); line <= len(lines) {
		if i := strings.IndexFunc(lines[line-1], func(r rune) bool { return r != ' ' }); i >= 0 {
			col = i + 1
		}
	}
	return Issue{File: name, Line: line, Col: col, Path: "(document)", Msg: "YAML syntax: " + msg}
}

// yamlError splits a yaml.v3 error into its line (1-based; 1 if it names
// none) and its message. The scanner's errors count lines from 1; the
// parser's (parserProblems) give the 0-based line, one less.
func yamlError(err error) (int, string) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	rest, ok := strings.CutPrefix(msg, "line ")
	if !ok {
		return 1, msg
	}
	i := strings.IndexByte(rest, ':')
	if i < 0 {
		return 1, msg
	}
	n, e := strconv.Atoi(rest[:i])
	if e != nil {
		return 1, msg
	}
	msg = strings.TrimSpace(rest[i+1:])
	if parserProblems[msg] {
		n++
	}
	return n, msg
}

// problemLine returns the first line, from line from on (or the last line
// with text before it), at which the data cut after it fails to parse with
// the same message as the whole: the line that breaks the construct
// yaml.v3 reported. It gives up (returning from)
// after maxProblemScan lines or bytes.
func problemLine(data []byte, from int, msg string) int {
	lines := bytes.SplitAfter(data, []byte("\n"))
	if from < 1 || from > len(lines) {
		return from
	}
	// An error at the end of the input is about the last line with text.
	for from > 1 && len(bytes.TrimSpace(lines[from-1])) == 0 {
		from--
	}
	end := 0
	for _, l := range lines[:from-1] {
		end += len(l)
	}
	scanned := 0
	for l := from; l <= len(lines) && l < from+maxProblemScan && scanned < maxProblemScan<<16; l++ {
		end += len(lines[l-1])
		scanned += end
		if err := parseAll(data[:end]); err != nil {
			if _, m := yamlError(err); m == msg {
				return l
			}
		}
	}
	return from
}

// parseAll parses every YAML document of data and returns the first error.
func parseAll(data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		if err := dec.Decode(&n); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// maxProblemScan bounds problemLine: lines, and 64 KiB of parsing per line.
const maxProblemScan = 64

// parserProblems are the errors of yaml.v3's parser (parserc.go of v3.0.1),
// whose line is 0-based; all others are the scanner's, counted from 1.
var parserProblems = map[string]bool{
	"did not find expected <stream-start>":   true,
	"did not find expected <document start>": true,
	"did not find expected node content":     true,
	"did not find expected key":              true,
	"did not find expected '-' indicator":    true,
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"found duplicate %YAML directive":        true,
	"found duplicate %TAG directive":         true,
	"found incompatible YAML document":       true,
	"found undefined tag handle":             true,
}

type decoder struct {
	d      *Document
	issues *Issues
	depth  int
}

func (dc *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	if path == "" {
		path = "(document)"
	}
	*dc.issues = append(*dc.issues, Issue{File: dc.d.File, Line: n.Line, Col: n.Column, Path: path, Msg: fmt.Sprintf(format, args...)})
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// kindName names a YAML node for messages ("a string", "a list", ...).
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!int":
			return "an integer"
		case "!!float":
			return "a number"
		case "!!bool":
			return "a boolean"
		case "!!null":
			return "null"
		case "!!str":
			return "a string"
		}
		return "a " + strings.TrimPrefix(n.Tag, "!!")
	}
	return "something else"
}

// maxDepth stops alias bombs and absurd nesting; the spec is four levels deep.
const maxDepth = 32

func (dc *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	dc.depth++
	defer func() { dc.depth-- }()
	if dc.depth > maxDepth {
		dc.fail(n, path, "nesting is too deep")
		return
	}
	if n.Kind == yaml.AliasNode {
		dc.fail(n, path, "YAML aliases are not supported in a cluster spec")
		return
	}
	if path != "" {
		dc.d.pos[path] = n
	}
	switch v.Kind() {
	case reflect.Struct:
		dc.decodeStruct(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			dc.fail(n, path, "must be a list, got %s", kindName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			dc.decode(c, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			dc.fail(n, path, "must be a mapping, got %s", kindName(n))
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			kp := join(path, k.Value)
			if m.MapIndex(reflect.ValueOf(k.Value)).IsValid() {
				dc.fail(k, kp, "duplicate key")
				continue
			}
			ev := reflect.New(v.Type().Elem()).Elem()
			dc.decode(val, ev, kp)
			m.SetMapIndex(reflect.ValueOf(k.Value), ev)
		}
		v.Set(m)
	case reflect.String:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
			dc.fail(n, path, "must be a string, got %s", kindName(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Int:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
			dc.fail(n, path, "must be an integer, got %s", kindName(n))
			return
		}
		i, err := strconv.ParseInt(n.Value, 0, 64)
		if err != nil {
			dc.fail(n, path, "integer %s is out of range", n.Value)
			return
		}
		v.SetInt(i)
	default:
		dc.fail(n, path, "unsupported field type %s", v.Type())
	}
}

func (dc *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		dc.fail(n, path, "must be a mapping, got %s", kindName(n))
		return
	}
	fields := Fields(v.Type())
	seen := map[string]bool{}
	meant := map[string]bool{} // fields an unknown key was taken for
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		kp := join(path, k.Value)
		f, ok := fieldByKey(fields, k.Value)
		if !ok {
			hint, mf := suggest(k.Value, fields)
			if mf != nil {
				meant[mf.Key] = true
			}
			dc.fail(k, kp, "unknown field %q%s", k.Value, hint)
			continue
		}
		if seen[k.Value] {
			dc.fail(k, kp, "duplicate key")
			continue
		}
		seen[k.Value] = true
		if val.Kind == yaml.ScalarNode && val.Tag == "!!null" {
			dc.d.pos[kp] = val
			if f.Required {
				dc.fail(val, kp, "required field is empty")
			}
			continue
		}
		fv := v.Field(f.Index)
		if f.Range && outOfInt64(val) {
			dc.d.pos[kp] = val
			dc.fail(val, kp, "%s is out of range (%d to %d)", val.Value, f.Min, f.Max)
			continue
		}
		before := len(*dc.issues)
		dc.decode(val, fv, kp)
		if len(*dc.issues) > before {
			continue
		}
		if len(f.Enum) > 0 {
			dc.checkEnum(val, fv, kp, f.Enum)
		}
		if f.Range && (fv.Int() < int64(f.Min) || fv.Int() > int64(f.Max)) {
			dc.fail(val, kp, "%d is out of range (%d to %d)", fv.Int(), f.Min, f.Max)
		}
	}
	for _, f := range fields {
		// A misspelt required field is reported once, as unknown.
		if f.Required && !seen[f.Key] && !meant[f.Key] {
			dc.fail(n, join(path, f.Key), "required field is missing")
		}
	}
}

// outOfInt64 reports a plain integer literal (decimal, 0x, 0o or 0b) too
// large for 64 bits, which yaml.v3 tags !!float or !!str rather than !!int.
func outOfInt64(n *yaml.Node) bool {
	if n.Kind != yaml.ScalarNode || n.Style != 0 {
		return false
	}
	_, err := strconv.ParseInt(n.Value, 0, 64)
	return errors.Is(err, strconv.ErrRange)
}

func (dc *decoder) checkEnum(n *yaml.Node, v reflect.Value, path string, enum []string) {
	check := func(n *yaml.Node, s, p string) {
		for _, e := range enum {
			if s == e {
				return
			}
		}
		dc.fail(n, p, "%q is not one of %s", s, strings.Join(enum, ", "))
	}
	switch v.Kind() {
	case reflect.String:
		check(n, v.String(), path)
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			check(n.Content[i], v.Index(i).String(), fmt.Sprintf("%s[%d]", path, i))
		}
	}
}

func fieldByKey(fs []Field, key string) (Field, bool) {
	for _, f := range fs {
		if f.Key == key {
			return f, true
		}
	}
	return Field{}, false
}

// Field is the metadata of one spec field, read from its struct tags.
type Field struct {
	Key      string
	Index    int
	Type     reflect.Type
	Required bool
	Enum     []string
	Range    bool // an integer with Min ≤ value ≤ Max
	Min, Max int
	Doc      string
}

// Fields lists the spec fields of a struct type in declaration order. The
// list is made once per type (parsing and validating a spec of N nodes
// asks N times per node type) and shared: callers must not modify it.
func Fields(t reflect.Type) []Field {
	if f, ok := fieldCache.Load(t); ok {
		return f.([]Field)
	}
	f, _ := fieldCache.LoadOrStore(t, fields(t))
	return f.([]Field)
}

// fieldCache maps a reflect.Type to its Fields.
var fieldCache sync.Map

func fields(t reflect.Type) []Field {
	var out []Field
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		key := strings.Split(sf.Tag.Get("yaml"), ",")[0]
		if key == "" || key == "-" {
			continue
		}
		f := Field{Key: key, Index: i, Type: sf.Type, Doc: sf.Tag.Get("doc")}
		for _, opt := range strings.Split(sf.Tag.Get("hw"), ",") {
			switch {
			case opt == "required":
				f.Required = true
			case strings.HasPrefix(opt, "enum="):
				f.Enum = strings.Split(strings.TrimPrefix(opt, "enum="), "|")
			case strings.HasPrefix(opt, "range="):
				lo, hi, _ := strings.Cut(strings.TrimPrefix(opt, "range="), "..")
				f.Min, _ = strconv.Atoi(lo)
				f.Max, _ = strconv.Atoi(hi)
				f.Range = true
			}
		}
		out = append(out, f)
	}
	return out
}
