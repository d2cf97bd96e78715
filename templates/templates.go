// Package templates holds the text of every generated file (text/template
// with sprig functions, embedded at build time). Go code decides; templates write.
package templates

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"text/template"

	"github.com/Masterminds/sprig/v3"
)

//go:embed all:files
var files embed.FS

var (
	once sync.Once
	set  *template.Template
	err  error
)

// funcs are sprig's hermetic functions (no env, no random, no clock) plus
// ours: b64 and the quoting functions (quote.go).
func funcs() template.FuncMap {
	f := sprig.HermeticTxtFuncMap()
	f["b64"] = func(b []byte) string { return b64(b) }
	for name, fn := range quoteFuncs {
		f[name] = fn
	}
	return f
}

func load() {
	set = template.New("").Funcs(funcs()).Option("missingkey=error")
	err = fs.WalkDir(files, "files", func(p string, d fs.DirEntry, e error) error {
		if e != nil || d.IsDir() {
			return e
		}
		data, e := files.ReadFile(p)
		if e != nil {
			return e
		}
		_, e = set.New(strings.TrimPrefix(p, "files/")).Parse(string(data))
		return e
	})
}

// Render executes the template at name (a path under templates/files) with data.
func Render(name string, data any) ([]byte, error) {
	once.Do(load)
	if err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	var b bytes.Buffer
	if e := set.ExecuteTemplate(&b, name, data); e != nil {
		return nil, fmt.Errorf("render %s: %w", name, e)
	}
	return b.Bytes(), nil
}

// MustRender is Render for templates whose data is produced by our own code
// (values from a validated spec, keys and types from Go): a failure is a
// bug in hardway, caught by the golden tests, and panics with its stack;
// nothing recovers it.
func MustRender(name string, data any) []byte {
	out, e := Render(name, data)
	if e != nil {
		panic(e)
	}
	return out
}
