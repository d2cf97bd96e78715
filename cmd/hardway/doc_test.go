package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hardway-dev/hardway/pki"
)

var update = flag.Bool("update", false, "rewrite docs/cli.md from the commands")

// jsonDocs are the documents -o json prints, by command.
var jsonDocs = []struct {
	cmd string
	doc any
}{
	{"hardway validate", validateOutput{}},
	{"hardway generate", generateOutput{}},
	{"hardway plan", planOutput{}},
	{"hardway certs check", []pki.Status{}},
	{"hardway certs renew", generateOutput{}},
	{"hardway bake", bakeOutput{}},
	{"hardway verify", verifyOutput{}},
	{"hardway version", versionOutput{}},
}

// TestCLIDoc keeps docs/cli.md, the reference of every command, flag,
// JSON document and exit status, what the commands say (make docs
// rewrites it).
func TestCLIDoc(t *testing.T) {
	// Flag defaults that follow the environment are documented as they are
	// without it (make test sets HARDWAY_BIN_DIR).
	t.Setenv("HARDWAY_BIN_DIR", "")
	got := cliDoc()
	const path = "../../docs/cli.md"
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is stale: run make docs", path)
	}
}

// cliDoc renders docs/cli.md from the command tree.
func cliDoc() []byte {
	root := newRoot()
	root.InitDefaultCompletionCmd()
	var b bytes.Buffer
	fmt.Fprintf(&b, `# hardway command line reference

Generated from the commands by `+"`make docs`"+`; do not edit. `+"`hardway COMMAND --help`"+` prints the same.

The flags that several commands take mean the same in each:

| Flag | Meaning |
|---|---|
| `+"`-f, --file`"+` | the cluster spec, default `+"`cluster.yaml`"+`; `+"`-`"+` reads standard input (for `+"`init`"+`: the file it writes, `+"`-`"+` for standard output) |
| `+"`-o, --output`"+` | the output format, `+"`text`"+` (default) or `+"`json`"+`, as kubectl's `+"`-o`"+` |
| `+"`--dir`"+` | the output root: generate writes `+"`<dir>/<cluster>/`"+`, which certs, bake and verify read |
| `+"`-v, --verbose`"+` | log debug details on standard error |

Until this release `+"`-o`"+` also named a file (`+"`init -o FILE`"+`, now `+"`-f FILE`"+`) or a directory
(`+"`generate -o DIR`"+` and `+"`verify -o DIR`"+`, now `+"`--dir DIR`"+`; `+"`bake -o DIR`"+`, now `+"`--artifact-dir DIR`"+`).
Those spellings work until the next release and print a notice on standard error; a value of `+"`-o`"+`
that is neither `+"`text`"+` nor `+"`json`"+` is taken as such a directory.

Messages, warnings and logs go to standard error; standard output holds only what the command
prints as its result, so that `+"`-o json`"+` output can be piped.

## Exit status

| Status | Meaning |
|---|---|
`)
	for _, e := range exitCodes {
		fmt.Fprintf(&b, "| %s | %s |\n", e.Code, e.Meaning)
	}
	b.WriteString("\n## JSON documents (`-o json`)\n\nOne document on standard output, indented; fields marked optional are left out when empty.\n")
	for _, j := range jsonDocs {
		fmt.Fprintf(&b, "\n### `%s -o json`\n\n", j.cmd)
		t := reflect.TypeOf(j.doc)
		if t.Kind() == reflect.Slice {
			b.WriteString("A list of objects:\n\n")
			t = t.Elem()
		}
		b.WriteString("| Field | Type | Meaning |\n|---|---|---|\n")
		jsonFields(&b, t, "")
	}
	b.WriteString("\n## Commands\n")
	walk(root, func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" {
			return
		}
		fmt.Fprintf(&b, "\n### `%s`\n\n%s.\n\n```\n%s\n```\n", c.CommandPath(), c.Short, c.UseLine())
		if c.Long != "" {
			fmt.Fprintf(&b, "\n```text\n%s\n```\n", strings.TrimSpace(c.Long))
		}
		if c.Example != "" {
			fmt.Fprintf(&b, "\nExamples:\n\n```sh\n%s\n```\n", strings.TrimRight(c.Example, "\n"))
		}
		var flags []*pflag.Flag
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if !f.Hidden && f.Name != "help" {
				flags = append(flags, f)
			}
		})
		if len(flags) > 0 {
			b.WriteString("\n| Flag | Default | Meaning |\n|---|---|---|\n")
			for _, f := range flags {
				name := "--" + f.Name
				if f.Shorthand != "" {
					name = "-" + f.Shorthand + ", " + name
				}
				def := f.DefValue
				if def == "" || def == "[]" || def == "false" {
					def = ""
				} else {
					def = "`" + def + "`"
				}
				fmt.Fprintf(&b, "| `%s` | %s | %s |\n", name, def, strings.ReplaceAll(f.Usage, "|", `\|`))
			}
		}
	})
	return b.Bytes()
}

// jsonFields writes a table row for each field of struct t, under prefix.
func jsonFields(b *bytes.Buffer, t reflect.Type, prefix string) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		doc := f.Tag.Get("doc")
		if strings.Contains(opts, "omit") {
			doc = strings.TrimPrefix(doc+"; optional", "; ")
		}
		ft := f.Type
		typ := jsonType(ft)
		fmt.Fprintf(b, "| `%s` | %s | %s |\n", prefix+name, typ, doc)
		if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
			jsonFields(b, ft.Elem(), prefix+name+"[].")
		}
	}
}

// jsonType names the JSON type of a Go type.
func jsonType(t reflect.Type) string {
	switch {
	case t == reflect.TypeOf(time.Time{}):
		return "string (RFC 3339 time)"
	case t.Kind() == reflect.String:
		return "string"
	case t.Kind() == reflect.Bool:
		return "boolean"
	case t.Kind() == reflect.Int:
		return "integer"
	case t.Kind() == reflect.Float64:
		return "number"
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct:
		return "list of objects"
	case t.Kind() == reflect.Slice:
		return "list of " + jsonType(t.Elem())
	}
	return "object"
}
