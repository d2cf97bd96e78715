package spec

import (
	"encoding/json"
	"reflect"
)

// Schema returns a JSON Schema (draft 2020-12) of the Cluster document,
// generated from the Go types and their tags, for yaml-language-server.
func Schema() ([]byte, error) {
	s := schemaOf(reflect.TypeOf(Cluster{}))
	s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	s["$id"] = "https://hardway.dev/schemas/v1alpha1/cluster.json"
	s["title"] = "hardway Cluster (" + APIVersion + ")"
	out, err := json.MarshalIndent(s, "", "  ")
	return append(out, '\n'), err
}

func schemaOf(t reflect.Type) map[string]any {
	switch t.Kind() {
	case reflect.Struct:
		props := map[string]any{}
		var required []string
		for _, f := range Fields(t) {
			p := schemaOf(f.Type)
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
		return map[string]any{"type": "array", "items": schemaOf(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": schemaOf(t.Elem())}
	case reflect.Int:
		return map[string]any{"type": "integer"}
	default:
		return map[string]any{"type": "string"}
	}
}
