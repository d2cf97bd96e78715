package spec

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// Reference returns the Markdown field reference of the spec, generated from
// the same struct tags as the parser and the schema (docs/spec.md).
func Reference() string {
	var b strings.Builder
	b.WriteString("# Cluster spec reference (" + APIVersion + ")\n\n")
	b.WriteString("Generated from `spec/types.go` by `go test ./spec -update`; do not edit.\n")
	b.WriteString("Defaults are applied in one place (`spec/defaults.go`); `hardway validate --show-defaults` prints the effective spec.\n")
	b.WriteString("The Default column holds the defaults that are the same whatever the rest of the spec says, as the JSON schema's `default`;\n")
	b.WriteString("a default derived from another field or from the node's roles and target is in the description.\n\n")
	b.WriteString("| Field | Type | Required | Default | Values | Description |\n|---|---|---|---|---|---|\n")
	walkFields(&b, reflect.TypeOf(Cluster{}), "", schemaDefaults())
	return b.String()
}

func walkFields(b *strings.Builder, t reflect.Type, prefix string, defaults map[string]any) {
	for _, f := range Fields(t) {
		p := prefix + f.Key
		ft := f.Type
		typ := typeName(ft)
		req := ""
		if f.Required {
			req = "yes"
		}
		fmt.Fprintf(b, "| `%s` | %s | %s | %s | %s | %s |\n", p, typ, req, defaultText(defaults, p), values(f, p), f.Doc)
		switch {
		case ft.Kind() == reflect.Struct:
			walkFields(b, ft, p+".", defaults)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			walkFields(b, ft.Elem(), p+"[].", defaults)
		}
	}
}

// defaultText is the default of the field at p (schemaDefaults) as the
// reference shows it: a string as is, anything else as in the schema.
func defaultText(defaults map[string]any, p string) string {
	d, ok := defaults[p]
	if !ok {
		return ""
	}
	if s, ok := d.(string); ok {
		return "`" + s + "`"
	}
	j, err := json.Marshal(d)
	if err != nil {
		return fmt.Sprint(d)
	}
	return "`" + string(j) + "`"
}

func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Struct:
		return "object"
	case reflect.Slice:
		return "list of " + typeName(t.Elem())
	case reflect.Map:
		return "map of " + typeName(t.Elem())
	case reflect.Int:
		return "integer"
	}
	return "string"
}

// values says what a field accepts: its enum, its range or its fieldRules rule.
func values(f Field, p string) string {
	switch {
	case len(f.Enum) > 0:
		return strings.Join(f.Enum, ", ")
	case f.Range:
		return fmt.Sprintf("%d to %d", f.Min, f.Max)
	}
	if r, ok := fieldRules[p]; ok {
		return r.desc
	}
	if r, ok := fieldRules[p+"[]"]; ok {
		return "each " + r.desc
	}
	k, okK := fieldRules[p+".(key)"]
	val, okV := fieldRules[p+".*"]
	if okK && okV {
		return "keys: " + k.desc + "; values: " + val.desc
	}
	return ""
}
