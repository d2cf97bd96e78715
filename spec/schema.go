package spec

import (
	"encoding/json"
	"reflect"
)

// Schema returns a JSON Schema (draft 2020-12) of the Cluster document,
// generated from the Go types and their tags, for yaml-language-server.
func Schema() ([]byte, error) {
	s := schemaOf(reflect.TypeOf(Cluster{}), "")
	s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	s["$id"] = "https://hardway.dev/schemas/v1alpha1/cluster.json"
	s["title"] = "hardway Cluster (" + APIVersion + ")"
	out, err := json.MarshalIndent(s, "", "  ")
	return append(out, '\n'), err
}

// schemaOf is the schema of a value of type t at document path path (in
// fieldRules' notation), whose rules' patterns it carries.
func schemaOf(t reflect.Type, path string) map[string]any {
	switch t.Kind() {
	case reflect.Struct:
		props := map[string]any{}
		var required []string
		for _, f := range Fields(t) {
			p := schemaOf(f.Type, join(path, f.Key))
			if f.Doc != "" {
				p["description"] = f.Doc
			}
			if len(f.Enum) > 0 {
				target := p
				if f.Type.Kind() == reflect.Slice {
					target = p["items"].(map[string]any)
				}
				target["enum"] = f.Enum
			}
			if f.Range {
				p["minimum"], p["maximum"] = f.Min, f.Max
			}
			props[f.Key] = p
			if f.Required {
				required = append(required, f.Key)
			}
		}
		s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
		if len(required) > 0 {
			s["required"] = required
		}
		return s
	case reflect.Slice:
		return map[string]any{"type": "array", "items": schemaOf(t.Elem(), path+"[]")}
	case reflect.Map:
		s := map[string]any{"type": "object", "additionalProperties": schemaOf(t.Elem(), path+".*")}
		if r, ok := fieldRules[path+".(key)"]; ok && r.pattern != "" {
			s["propertyNames"] = map[string]any{"pattern": r.pattern}
		}
		return s
	case reflect.Int:
		return map[string]any{"type": "integer"}
	default:
		s := map[string]any{"type": "string"}
		if r, ok := fieldRules[path]; ok && r.pattern != "" {
			s["pattern"] = r.pattern
		}
		return s
	}
}
